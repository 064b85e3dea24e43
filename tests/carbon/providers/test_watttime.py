"""WattTime v3 against recorded responses on a local server: login, token renewal, units, marginal signal."""

from __future__ import annotations

import base64
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest

from tests.carbon.providers.replay import NOW, FakeClock, ReplayServer, Reply
from wattwise.carbon.base import IntensityProvider
from wattwise.carbon.http import HttpClient
from wattwise.carbon.providers import watttime as wt
from wattwise.carbon.providers.watttime import WattTimeProvider, WattTimeRegion
from wattwise.config import Settings
from wattwise.errors import ProviderError
from wattwise.units import lbs_per_mwh_to_g_per_kwh

PASSWORD = "wt-secret-pass-654321"
FIRST_TOKEN = "wt-token-first-abcdef"
SECOND_TOKEN = "wt-token-second-ghijkl"


@pytest.fixture
def server(replay: Callable[[str], ReplayServer]) -> ReplayServer:
    server = replay("watttime")
    server.serve("/login", "login.json")
    server.serve("/v3/forecast", "forecast.json")
    server.serve("/v3/historical", "historical.json")
    server.serve("/v3/region-from-loc", "region-from-loc.json")
    return server


@pytest.fixture
def build(
    server: ReplayServer, make_client: Callable[..., HttpClient], clock: FakeClock, live_settings: Settings
) -> Callable[..., WattTimeProvider]:
    def build(settings: Settings = live_settings) -> WattTimeProvider:
        client = make_client(name=wt.NAME, label=wt.LABEL, auth_hint=wt.AUTH_HINT, settings=settings)
        return WattTimeProvider(settings, base_url=server.base_url, client=client, clock=clock.dt)

    return build


def test_known_conversion_from_lbs_per_mwh() -> None:
    assert lbs_per_mwh_to_g_per_kwh(1000.0) == pytest.approx(453.59237)  # 1 lb = 453.59237 g, 1 MWh = 1000 kWh


def test_latest_logs_in_with_basic_auth_and_converts_to_g_per_kwh(
    server: ReplayServer, build: Callable[..., WattTimeProvider]
) -> None:
    provider = build()
    assert isinstance(provider, IntensityProvider) and provider.name == "watttime"
    series = provider.latest("CAISO_NORTH")
    assert series.signal == "marginal" and series.region == "CAISO_NORTH"
    assert "co2_moer" in series.source and "marginal" in series.source and "model 2023-03-01" in series.source
    [point] = series.points
    assert point.start == NOW and point.duration_s == 300 and not point.forecast
    assert point.intensity_g_per_kwh == pytest.approx(453.59237)  # 1000 lbs/MWh in the recording
    assert "nowcast" in series.note
    [login] = server.requests("/login")
    assert login.headers["authorization"] == "Basic " + base64.b64encode(f"wt-user:{PASSWORD}".encode()).decode()
    [data] = server.requests("/v3/forecast")
    assert data.headers["authorization"] == f"Bearer {FIRST_TOKEN}"
    assert data.query == {"region": "CAISO_NORTH", "horizon_hours": "0", "signal_type": "co2_moer"}


def test_the_token_is_reused_until_it_expires(
    server: ReplayServer, build: Callable[..., WattTimeProvider], clock: FakeClock
) -> None:
    provider = build()
    provider.latest("CAISO_NORTH")
    provider.forecast("CAISO_NORTH", 1)
    assert server.count("/login") == 1
    clock.advance(30 * 60)
    provider.history("CAISO_NORTH", datetime(2025, 3, 9, tzinfo=UTC), datetime(2025, 3, 9, 1, tzinfo=UTC))
    assert server.count("/login") == 2


def test_a_401_logs_in_again_once(server: ReplayServer, build: Callable[..., WattTimeProvider]) -> None:
    server.script("/login", Reply(file="login.json"), Reply(file="login-renewed.json"))
    server.script("/v3/forecast", Reply(401, json={"error": "token expired"}))
    series = build().forecast("CAISO_NORTH", 0.5)
    assert len(series.points) == 6 and all(p.forecast for p in series.points)
    assert server.count("/login") == 2
    assert [h.headers["authorization"] for h in server.requests("/v3/forecast")] == [
        f"Bearer {FIRST_TOKEN}",
        f"Bearer {SECOND_TOKEN}",
    ]


def test_a_second_401_is_an_error_that_names_the_settings(
    server: ReplayServer, build: Callable[..., WattTimeProvider]
) -> None:
    server.script("/v3/forecast", Reply(401, text=f"bad token {FIRST_TOKEN}"), Reply(401, text=f"bad {FIRST_TOKEN}"))
    with pytest.raises(ProviderError, match="check WATTTIME_USERNAME and WATTTIME_PASSWORD") as info:
        build().latest("CAISO_NORTH")
    assert FIRST_TOKEN not in str(info.value) and not info.value.retryable and server.count("/login") == 2


def test_wrong_credentials_at_login(server: ReplayServer, build: Callable[..., WattTimeProvider]) -> None:
    server.script("/login", Reply(403, text=f"no such user wt-user / {PASSWORD}"))
    with pytest.raises(ProviderError, match=r"WattTime refused the credentials \(403") as info:
        build().latest("CAISO_NORTH")
    assert PASSWORD not in str(info.value) and server.count("/v3/forecast") == 0


def test_missing_credentials_are_an_error_before_any_request(
    server: ReplayServer, build: Callable[..., WattTimeProvider], live_settings: Settings
) -> None:
    with pytest.raises(ProviderError, match="needs a username and password: set WATTTIME_USERNAME"):
        build(live_settings.replace(watttime_password=None)).latest("CAISO_NORTH")
    assert server.count() == 0


def test_a_percentile_index_is_refused_not_converted(
    server: ReplayServer, build: Callable[..., WattTimeProvider]
) -> None:
    server.script("/v3/forecast", Reply(file="signal-index.json"))
    with pytest.raises(ProviderError, match=r"values in 'percentile', not lbs_co2_per_mwh"):
        build().latest("CAISO_NORTH")


def test_forecast(server: ReplayServer, build: Callable[..., WattTimeProvider]) -> None:
    series = build().forecast("CAISO_NORTH", 0.5)
    assert server.requests("/v3/forecast")[0].query["horizon_hours"] == "1"
    assert [p.start for p in series.points] == [NOW + timedelta(minutes=5 * i) for i in range(6)]
    assert series.points[1].intensity_g_per_kwh == pytest.approx(980 * 0.45359237)


def test_history_skips_missing_values(server: ReplayServer, build: Callable[..., WattTimeProvider]) -> None:
    start = datetime(2025, 3, 9, tzinfo=UTC)
    series = build().history("CAISO_NORTH", start, start + timedelta(hours=1))
    assert len(series.points) == 11 and start + timedelta(minutes=15) not in [p.start for p in series.points]
    assert "1 period(s) without a value skipped (first at 2025-03-09T00:15Z)" in series.note
    [hit] = server.requests("/v3/historical")
    assert hit.query == {
        "region": "CAISO_NORTH",
        "start": "2025-03-09T00:00:00Z",
        "end": "2025-03-09T01:00:00Z",
        "signal_type": "co2_moer",
    }


def test_region_from_loc(server: ReplayServer, build: Callable[..., WattTimeProvider]) -> None:
    region = build().region_from_loc(38.58, -121.49)
    assert region == WattTimeRegion("CAISO_NORTH", "California ISO Northern", "co2_moer")
    [hit] = server.requests("/v3/region-from-loc")
    assert hit.query == {"latitude": "38.5800", "longitude": "-121.4900", "signal_type": "co2_moer"}


def test_neither_token_nor_password_is_written_to_disk(
    server: ReplayServer, build: Callable[..., WattTimeProvider], live_settings: Settings
) -> None:
    provider = build()
    provider.latest("CAISO_NORTH")
    provider.forecast("CAISO_NORTH", 1)
    written = "".join(p.read_text() for p in live_settings.home.rglob("*") if p.is_file())
    assert written and FIRST_TOKEN not in written and PASSWORD not in written
    assert FIRST_TOKEN not in repr(provider) and PASSWORD not in repr(provider)
