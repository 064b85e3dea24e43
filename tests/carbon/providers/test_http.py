"""The shared HTTP client against a real local server: caching, retries, back-off, errors, offline, secrets."""

from __future__ import annotations

import email.utils
import json
import random
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest

from tests.carbon.providers.replay import FakeClock, ReplayServer, Reply, Sleeps
from wattwise.carbon.http import HttpClient, format_age
from wattwise.config import Settings
from wattwise.errors import ProviderError

SECRET = "em-secret-key-123456"
MakeClient = Callable[..., HttpClient]


@pytest.fixture
def server(replay: Callable[[str], ReplayServer]) -> ReplayServer:
    server = replay("ukgrid")
    server.serve("/intensity", "intensity.json")
    return server


def cache_files(settings: Settings) -> list[Path]:
    return sorted((settings.home / "cache" / "http").glob("*.json"))


def everything_written(settings: Settings) -> str:
    return "".join(p.read_text() for p in settings.home.rglob("*") if p.is_file())


def test_answers_json_and_serves_it_from_the_cache_within_its_ttl(
    server: ReplayServer, make_client: MakeClient, clock: FakeClock, live_settings: Settings
) -> None:
    client = make_client()
    first = client.get_json(server.base_url + "/intensity", ttl_s=300)
    assert first.data["data"][0]["intensity"]["actual"] == 142
    assert not first.from_cache and not first.stale and first.fetched_at == clock.dt()
    clock.advance(299)
    again = client.get_json(server.base_url + "/intensity", ttl_s=300)
    assert again.from_cache and again.data == first.data and not again.stale and again.note == ""
    assert server.count() == 1
    clock.advance(2)
    client.get_json(server.base_url + "/intensity", ttl_s=300)
    assert server.count() == 2
    [path] = cache_files(live_settings)
    record = json.loads(path.read_text())
    assert record["url"] == server.base_url + "/intensity" and json.loads(record["body"]) == first.data
    assert record["fetched_at"] == clock()


def test_cache_key_is_method_url_and_params_never_headers(
    server: ReplayServer, make_client: MakeClient, live_settings: Settings
) -> None:
    client = make_client()
    url = server.base_url + "/intensity"
    client.get_json(url, params={"zone": "DE", "a": 1}, headers={"auth-token": SECRET}, ttl_s=300)
    client.get_json(url, params={"a": "1", "zone": "DE"}, headers={"auth-token": "another-key-999"}, ttl_s=300)
    assert server.count() == 1  # same params in another order, another key: one cache entry
    client.get_json(url, params={"zone": "FR", "a": 1}, headers={"auth-token": SECRET}, ttl_s=300)
    assert server.count() == 2
    assert server.hits[0].headers["auth-token"] == SECRET and server.hits[0].query == {"zone": "DE", "a": "1"}
    assert len(cache_files(live_settings)) == 2
    assert SECRET not in everything_written(live_settings) and "another-key" not in everything_written(live_settings)


def test_5xx_is_retried_with_exponential_back_off(
    server: ReplayServer, make_client: MakeClient, sleeps: Sleeps
) -> None:
    server.script("/intensity", Reply(500), Reply(503, text="busy"))
    response = make_client().get_json(server.base_url + "/intensity", ttl_s=300)
    assert response.data["data"][0]["intensity"]["actual"] == 142
    assert sleeps.calls == [0.5, 1.0] and server.count() == 3


def test_5xx_on_every_attempt_is_a_retryable_error(
    server: ReplayServer, make_client: MakeClient, sleeps: Sleeps
) -> None:
    server.script("/intensity", *[Reply(502, json={"message": "bad gateway"})] * 3)
    with pytest.raises(ProviderError, match=r"Test API had a server error \(502: bad gateway; 3 attempts\)") as info:
        make_client().get_json(server.base_url + "/intensity", ttl_s=300)
    assert info.value.retryable and info.value.provider == "test"
    assert sleeps.calls == [0.5, 1.0] and server.count() == 3


def test_back_off_is_jittered_and_capped(server: ReplayServer, make_client: MakeClient, sleeps: Sleeps) -> None:
    server.script("/intensity", *[Reply(500)] * 6)
    client = make_client(max_attempts=6, backoff_max_s=2.0, jitter=random.Random(7).random)
    with pytest.raises(ProviderError):
        client.get_json(server.base_url + "/intensity", ttl_s=300)
    ceilings = [0.5, 1.0, 2.0, 2.0, 2.0]
    assert len(sleeps.calls) == 5
    assert all(c / 2 <= s <= c for s, c in zip(sleeps.calls, ceilings, strict=True)), sleeps.calls
    assert len(set(sleeps.calls)) == 5  # jittered, not lock-step


def test_429_honours_retry_after_in_seconds(server: ReplayServer, make_client: MakeClient, sleeps: Sleeps) -> None:
    server.script("/intensity", Reply(429, headers={"Retry-After": "7"}))
    assert make_client().get_json(server.base_url + "/intensity", ttl_s=300).data["data"]
    assert sleeps.calls == [7.0] and server.count() == 2


def test_429_honours_retry_after_as_an_http_date(
    server: ReplayServer, make_client: MakeClient, sleeps: Sleeps, clock: FakeClock
) -> None:
    when = email.utils.format_datetime(clock.dt() + timedelta(seconds=12), usegmt=True)
    server.script("/intensity", Reply(429, headers={"Retry-After": when}))
    make_client().get_json(server.base_url + "/intensity", ttl_s=300)
    assert sleeps.calls == [12.0]


def test_429_beyond_the_cap_fails_at_once_and_says_when(
    server: ReplayServer, make_client: MakeClient, sleeps: Sleeps
) -> None:
    server.script("/intensity", Reply(429, headers={"Retry-After": "3600"}))
    with pytest.raises(ProviderError, match=r"^Test API rate limited the request: retry after 3600 s$") as info:
        make_client().get_json(server.base_url + "/intensity", ttl_s=300)
    assert info.value.retryable and sleeps.calls == [] and server.count() == 1


def test_429_on_every_attempt(server: ReplayServer, make_client: MakeClient, sleeps: Sleeps) -> None:
    server.script("/intensity", *[Reply(429, headers={"Retry-After": "2"})] * 3)
    with pytest.raises(ProviderError, match="rate limited the request: retry after 2 s") as info:
        make_client().get_json(server.base_url + "/intensity", ttl_s=300)
    assert info.value.retryable and sleeps.calls == [2.0, 2.0]


@pytest.mark.parametrize("status", [401, 403])
def test_auth_errors_are_not_retried_name_the_fix_and_hide_the_secret(
    status: int, server: ReplayServer, make_client: MakeClient, sleeps: Sleeps, live_settings: Settings
) -> None:
    server.script("/intensity", Reply(status, json={"message": f"invalid auth-token {SECRET}"}))
    client = make_client(auth_hint="check ELECTRICITYMAPS_API_KEY")
    with pytest.raises(
        ProviderError, match=rf"refused the credentials \({status}: .*check ELECTRICITYMAPS_API_KEY$"
    ) as info:
        client.get_json(server.base_url + "/intensity", headers={"auth-token": SECRET}, ttl_s=300)
    assert not info.value.retryable and sleeps.calls == [] and server.count() == 1
    assert SECRET not in str(info.value) and "***" in str(info.value)
    assert SECRET not in everything_written(live_settings)


def test_basic_auth_password_is_scrubbed_from_messages(server: ReplayServer, make_client: MakeClient) -> None:
    server.script("/intensity", Reply(401, text="bad password wt-secret-pass-654321 for wt-user"))
    with pytest.raises(ProviderError) as info:
        make_client().get_json(server.base_url + "/intensity", auth=("wt-user", "wt-secret-pass-654321"), ttl_s=0)
    assert "wt-secret-pass-654321" not in str(info.value) and "wt-user" not in str(info.value)


def test_other_4xx_is_not_retried(server: ReplayServer, make_client: MakeClient, sleeps: Sleeps) -> None:
    server.script("/intensity", Reply(400, json={"error": {"code": "400", "message": "Please enter a valid postcode"}}))
    with pytest.raises(
        ProviderError, match=r"rejected the request \(400 for /intensity: Please enter a valid postcode\)"
    ):
        make_client().get_json(server.base_url + "/intensity", ttl_s=300)
    assert sleeps.calls == [] and server.count() == 1


def test_malformed_json_is_an_unexpected_response(server: ReplayServer, make_client: MakeClient) -> None:
    server.script("/intensity", Reply(200, text="<html>maintenance</html>"))
    with pytest.raises(
        ProviderError, match=r"^unexpected response from Test API: /intensity did not answer JSON"
    ) as info:
        make_client().get_json(server.base_url + "/intensity", ttl_s=300)
    assert not info.value.retryable and server.count() == 1


def test_a_slow_server_times_out_as_a_retryable_error(
    replay: Callable[[str], ReplayServer], make_client: MakeClient, sleeps: Sleeps, live_settings: Settings
) -> None:
    server = replay("ukgrid")
    server.serve("/intensity", "intensity.json", delay_s=5.0)
    client = make_client(settings=live_settings.replace(http_timeout_s=0.05), max_attempts=2)
    started = time.monotonic()
    with pytest.raises(ProviderError, match=r"did not answer within 0\.05 s \(2 attempts\)") as info:
        client.get_json(server.base_url + "/intensity", ttl_s=300)
    assert info.value.retryable and sleeps.calls == [0.5]
    assert time.monotonic() - started < 2.0


def test_connection_refused_is_retryable_and_says_where(
    refused_url: str, make_client: MakeClient, sleeps: Sleeps
) -> None:
    host = refused_url.split("://")[1]
    with pytest.raises(ProviderError, match=rf"cannot reach Test API at {host} \(.*3 attempts\)") as info:
        make_client().get_json(refused_url + "/intensity", ttl_s=300)
    assert info.value.retryable and sleeps.calls == [0.5, 1.0]


def test_a_dropped_connection_is_retried(server: ReplayServer, make_client: MakeClient, sleeps: Sleeps) -> None:
    server.script("/intensity", Reply(drop=True))
    assert make_client().get_json(server.base_url + "/intensity", ttl_s=300).data["data"]
    assert sleeps.calls == [0.5] and server.count() == 2


def test_a_stale_answer_bridges_an_outage_and_says_its_age(
    server: ReplayServer, make_client: MakeClient, clock: FakeClock
) -> None:
    client = make_client()
    fresh = client.get_json(server.base_url + "/intensity", ttl_s=300)
    clock.advance(2 * 3600)
    server.script("/intensity", *[Reply(500)] * 3)
    stale = client.get_json(server.base_url + "/intensity", ttl_s=300)
    assert stale.stale and stale.from_cache and stale.data == fresh.data and stale.fetched_at == fresh.fetched_at
    assert "server error (500" in stale.note and "using the answer cached 2.0 h ago" in stale.note


def test_a_stale_answer_never_hides_a_wrong_key(
    server: ReplayServer, make_client: MakeClient, clock: FakeClock
) -> None:
    client = make_client()
    client.get_json(server.base_url + "/intensity", ttl_s=300)
    clock.advance(3600)
    server.script("/intensity", Reply(401))
    with pytest.raises(ProviderError, match="refused the credentials"):
        client.get_json(server.base_url + "/intensity", ttl_s=300)


def test_offline_answers_from_the_cache_of_any_age_without_the_network(
    server: ReplayServer, make_client: MakeClient, clock: FakeClock, live_settings: Settings
) -> None:
    make_client().get_json(server.base_url + "/intensity", ttl_s=300)
    offline = make_client(settings=live_settings.replace(offline=True))
    fresh = offline.get_json(server.base_url + "/intensity", ttl_s=300)
    assert fresh.from_cache and not fresh.stale
    clock.advance(3 * 86400)
    old = offline.get_json(server.base_url + "/intensity", ttl_s=300)
    assert old.stale and old.note == "offline: Test API answer cached 3.0 days ago"
    assert server.count() == 1


def test_offline_without_a_cached_answer_is_an_error_and_opens_no_connection(
    make_client: MakeClient, live_settings: Settings
) -> None:
    client = make_client(settings=live_settings.replace(offline=True))
    with pytest.raises(ProviderError, match=r"^offline and no cached Test API answer for /intensity") as info:
        client.get_json("http://127.0.0.1:9/intensity", ttl_s=300)
    assert not info.value.retryable and client._client is None


def test_401_renews_credentials_once(server: ReplayServer, make_client: MakeClient, sleeps: Sleeps) -> None:
    server.script("/intensity", Reply(401))
    renewals: list[int] = []

    def renew() -> dict[str, str]:
        renewals.append(1)
        return {"Authorization": "Bearer renewed-token-1234"}

    client = make_client()
    client.get_json(
        server.base_url + "/intensity", headers={"Authorization": "Bearer old"}, ttl_s=0, on_unauthorized=renew
    )
    assert renewals == [1] and sleeps.calls == []
    assert [h.headers["authorization"] for h in server.hits] == ["Bearer old", "Bearer renewed-token-1234"]
    server.script("/intensity", Reply(401), Reply(401, text="still no renewed-token-1234"))
    with pytest.raises(ProviderError, match="refused the credentials") as info:
        client.get_json(server.base_url + "/intensity", ttl_s=0, cache=False, on_unauthorized=renew)
    assert renewals == [1, 1] and "renewed-token-1234" not in str(info.value)


def test_an_unreadable_cache_file_is_ignored(
    server: ReplayServer, make_client: MakeClient, live_settings: Settings
) -> None:
    client = make_client()
    client.get_json(server.base_url + "/intensity", ttl_s=300)
    [path] = cache_files(live_settings)
    path.write_text("{not json")
    assert client.get_json(server.base_url + "/intensity", ttl_s=300).data["data"]
    assert server.count() == 2 and json.loads(path.read_text())["format"] == 1


def test_cache_false_neither_reads_nor_writes(
    server: ReplayServer, make_client: MakeClient, live_settings: Settings
) -> None:
    client = make_client()
    client.get_json(server.base_url + "/intensity", ttl_s=300, cache=False)
    client.get_json(server.base_url + "/intensity", ttl_s=300, cache=False)
    assert server.count() == 2 and cache_files(live_settings) == []


def test_a_url_httpx_cannot_use_is_not_retried(make_client: MakeClient, sleeps: Sleeps) -> None:
    with pytest.raises(ProviderError, match=r"^cannot use 'ftp://127\.0\.0\.1/x' for Test API") as info:
        make_client().get_json("ftp://127.0.0.1/x", ttl_s=0)
    assert not info.value.retryable and sleeps.calls == []


def test_a_transport_can_be_injected(make_client: MakeClient) -> None:
    import httpx

    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"ok": True})

    client = make_client(transport=httpx.MockTransport(handler))
    assert client.get_json("https://api.example.invalid/x", params={"zone": "DE"}, ttl_s=0).data == {"ok": True}
    assert str(seen[0].url) == "https://api.example.invalid/x?zone=DE"


def test_format_age() -> None:
    assert [format_age(s) for s in (5, 600, 7200, 3 * 86400)] == ["5 s", "10 min", "2.0 h", "3.0 days"]


def test_importing_the_providers_does_not_import_httpx() -> None:
    code = "import sys, wattwise.carbon.providers; print('httpx' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"
