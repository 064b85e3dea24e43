"""Electricity Maps v3 against recorded responses on a local server."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest

from tests.carbon.providers.replay import NOW, FakeClock, ReplayServer, Reply
from wattwise.carbon.base import IntensityProvider
from wattwise.carbon.http import HttpClient
from wattwise.carbon.providers import electricitymaps as em
from wattwise.carbon.providers.electricitymaps import ElectricityMapsProvider
from wattwise.config import Settings
from wattwise.errors import ProviderError

KEY = "em-secret-key-123456"


@pytest.fixture
def server(replay: Callable[[str], ReplayServer]) -> ReplayServer:
    server = replay("electricitymaps")
    for endpoint in ("latest", "history", "past-range", "forecast"):
        server.serve(f"/v3/carbon-intensity/{endpoint}", f"{endpoint}.json")
    return server


@pytest.fixture
def build(
    server: ReplayServer, make_client: Callable[..., HttpClient], clock: FakeClock, live_settings: Settings
) -> Callable[..., ElectricityMapsProvider]:
    def build(settings: Settings = live_settings) -> ElectricityMapsProvider:
        client = make_client(name=em.NAME, label=em.LABEL, auth_hint=em.AUTH_HINT, settings=settings)
        return ElectricityMapsProvider(settings, base_url=server.base_url, client=client, clock=clock.dt)

    return build


def test_latest(server: ReplayServer, build: Callable[..., ElectricityMapsProvider]) -> None:
    provider = build()
    assert isinstance(provider, IntensityProvider) and provider.name == "electricitymaps"
    series = provider.latest("DE")
    assert (series.region, series.signal, series.fallback) == ("DE", "average", False)
    assert series.source == "Electricity Maps v3 carbon-intensity (lifecycle emission factors)"
    [point] = series.points
    assert point.start == datetime(2025, 3, 10, 12, tzinfo=UTC) and point.duration_s == 3600
    assert point.intensity_g_per_kwh == 302 and not point.forecast
    assert "estimated values (TIME_SLICER_AVERAGE)" in series.note
    [hit] = server.hits
    assert hit.headers["auth-token"] == KEY
    assert hit.query == {"zone": "DE", "emissionFactorType": "lifecycle", "shouldUseFallbackCallerLookup": "false"}
    assert KEY not in repr(provider)


def test_recent_history_uses_the_24_hour_endpoint(
    server: ReplayServer, build: Callable[..., ElectricityMapsProvider]
) -> None:
    series = build().history("DE", NOW - timedelta(hours=6), NOW)
    assert [p.start.hour for p in series.points] == [6, 7, 8, 9, 10, 11, 12]
    assert [p.intensity_g_per_kwh for p in series.points] == [312, 308, 304, 300, 296, 292, 288]
    assert all(p.duration_s == 3600 and not p.forecast for p in series.points)
    assert series.mean_over(NOW - timedelta(hours=6), NOW) is not None
    assert server.count("/v3/carbon-intensity/history") == 1 and server.count("/v3/carbon-intensity/past-range") == 0


def test_a_null_value_is_skipped_with_a_note_not_read_as_zero(build: Callable[..., ElectricityMapsProvider]) -> None:
    series = build().history("DE", NOW - timedelta(hours=23), NOW)
    gap = datetime(2025, 3, 9, 18, tzinfo=UTC)
    assert gap not in [p.start for p in series.points] and series.at(gap + timedelta(minutes=30)) is None
    assert all(p.intensity_g_per_kwh > 0 for p in series.points)
    assert "1 period(s) without a value skipped (first at 2025-03-09T18:00Z)" in series.note


def test_older_history_uses_past_range(server: ReplayServer, build: Callable[..., ElectricityMapsProvider]) -> None:
    start = datetime(2025, 2, 1, tzinfo=UTC)
    series = build().history("DE", start, start + timedelta(hours=6))
    assert [p.intensity_g_per_kwh for p in series.points] == [410, 405, 398, 402, 415, 420]
    [hit] = server.requests("/v3/carbon-intensity/past-range")
    assert hit.query["start"] == "2025-02-01T00:00:00Z" and hit.query["end"] == "2025-02-01T06:00:00Z"


def test_past_range_is_fetched_in_windows_of_at_most_ten_days(
    server: ReplayServer, build: Callable[..., ElectricityMapsProvider]
) -> None:
    start = datetime(2025, 1, 20, 0, 30, tzinfo=UTC)
    build().history("DE", start, datetime(2025, 2, 4, tzinfo=UTC))
    spans = [(h.query["start"], h.query["end"]) for h in server.requests("/v3/carbon-intensity/past-range")]
    assert spans == [
        ("2025-01-20T00:00:00Z", "2025-01-30T00:00:00Z"),
        ("2025-01-30T00:00:00Z", "2025-02-04T00:00:00Z"),
    ]


def test_forecast(server: ReplayServer, build: Callable[..., ElectricityMapsProvider]) -> None:
    series = build().forecast("DE", 6)
    assert [p.start.hour for p in series.points] == [12, 13, 14, 15, 16, 17, 18]
    assert all(p.forecast for p in series.points) and series.points[0].intensity_g_per_kwh == 300
    assert server.requests("/v3/carbon-intensity/forecast")[0].query["horizonHours"] == "6"


def test_a_forecast_beyond_72_hours_says_so(
    server: ReplayServer, build: Callable[..., ElectricityMapsProvider]
) -> None:
    series = build().forecast("DE", 100)
    assert server.requests("/v3/carbon-intensity/forecast")[0].query["horizonHours"] == "72"
    assert "at most 72 h ahead" in series.note


def test_a_rejected_key_names_the_setting_and_hides_the_key(
    server: ReplayServer, build: Callable[..., ElectricityMapsProvider]
) -> None:
    server.script("/v3/carbon-intensity/latest", Reply(401, json={"message": f"Invalid token {KEY}"}))
    with pytest.raises(ProviderError, match="check ELECTRICITYMAPS_API_KEY") as info:
        build().latest("DE")
    assert info.value.provider == "electricitymaps" and not info.value.retryable and KEY not in str(info.value)


def test_no_key_is_an_error_before_any_request(
    server: ReplayServer, build: Callable[..., ElectricityMapsProvider], live_settings: Settings
) -> None:
    with pytest.raises(ProviderError, match="needs an API key: set ELECTRICITYMAPS_API_KEY"):
        build(live_settings.replace(electricitymaps_api_key=None)).latest("DE")
    assert server.count() == 0


def test_an_answer_for_another_zone_is_refused(
    server: ReplayServer, build: Callable[..., ElectricityMapsProvider]
) -> None:
    server.script(
        "/v3/carbon-intensity/latest",
        Reply(json={"zone": "FR", "carbonIntensity": 30, "datetime": "2025-03-10T12:00:00Z"}),
    )
    with pytest.raises(ProviderError, match=r"answered /v3/carbon-intensity/latest for zone 'FR', not 'DE'"):
        build().latest("DE")


def test_an_answer_of_the_wrong_shape(server: ReplayServer, build: Callable[..., ElectricityMapsProvider]) -> None:
    server.script("/v3/carbon-intensity/history", Reply(json={"zone": "DE"}))
    with pytest.raises(ProviderError, match=r"unexpected response from Electricity Maps: no list 'history' or 'data'"):
        build().history("DE", NOW - timedelta(hours=2), NOW)


def test_offline_answers_from_the_cache_without_a_key(
    server: ReplayServer, build: Callable[..., ElectricityMapsProvider], live_settings: Settings, clock: FakeClock
) -> None:
    online = build().latest("DE")
    clock.advance(3600)
    offline = build(live_settings.replace(offline=True, electricitymaps_api_key=None)).latest("DE")
    assert offline.points == online.points and "offline: Electricity Maps answer cached 60 min ago" in offline.note
    assert server.count() == 1
