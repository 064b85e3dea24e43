"""The UK Carbon Intensity API against recorded responses on a local server: national and regional by postcode."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest

from tests.carbon.providers.replay import NOW, FakeClock, ReplayServer, Reply, Sleeps
from wattwise.carbon.base import IntensityProvider
from wattwise.carbon.http import HttpClient
from wattwise.carbon.providers import LIVE_PROVIDERS, live_provider
from wattwise.carbon.providers import ukgrid as uk
from wattwise.carbon.providers.ukgrid import UkGridProvider, parse_zone
from wattwise.config import Settings
from wattwise.errors import ConfigError, ProviderError

RANGE_START = datetime(2025, 3, 1, tzinfo=UTC)


@pytest.fixture
def server(replay: Callable[[str], ReplayServer]) -> ReplayServer:
    server = replay("ukgrid")
    server.serve("/intensity", "intensity.json")
    server.serve(r"/intensity/[^/]+/fw48h", "intensity-fw48h.json")
    server.serve(r"/intensity/[^/]+/[^/]+", "intensity-range.json")
    server.serve(r"/regional/postcode/[A-Z0-9]+", "regional-postcode.json")
    server.serve(r"/regional/intensity/[^/]+/fw48h/postcode/[A-Z0-9]+", "regional-fw48h.json")
    server.serve(r"/regional/intensity/[^/]+/[^/]+/postcode/[A-Z0-9]+", "regional-range.json")
    return server


@pytest.fixture
def provider(
    server: ReplayServer, make_client: Callable[..., HttpClient], clock: FakeClock, live_settings: Settings
) -> UkGridProvider:
    client = make_client(name=uk.NAME, label=uk.LABEL)
    return UkGridProvider(live_settings, base_url=server.base_url, client=client, clock=clock.dt)


@pytest.mark.parametrize(
    ("zone", "outward"),
    [
        ("GB", None),
        ("gb", None),
        ("GB-postcode:SW1", "SW1"),
        ("gb-postcode: sw1a 1aa", "SW1A"),
        ("GB-postcode:M1", "M1"),
    ],
)
def test_zone_names(zone: str, outward: str | None) -> None:
    assert parse_zone(zone) == outward


@pytest.mark.parametrize("zone", ["DE", "GB-NIR", "GB-postcode:", "GB-postcode:12", "SW1"])
def test_zones_outside_great_britain_are_refused(zone: str) -> None:
    with pytest.raises(ProviderError, match=r"covers Great Britain only: use zone 'GB' or 'GB-postcode:SW1'"):
        parse_zone(zone)


def test_national_latest_uses_the_measured_value(server: ReplayServer, provider: UkGridProvider) -> None:
    assert isinstance(provider, IntensityProvider)
    series = provider.latest("GB")
    [point] = series.points
    assert (point.start, point.duration_s, point.intensity_g_per_kwh, point.forecast) == (
        datetime(2025, 3, 10, 12, tzinfo=UTC),
        1800,
        142,
        False,
    )
    assert series.signal == "average" and series.source == "UK Carbon Intensity API (NESO), Great Britain"
    assert server.hits[0].path == "/intensity" and "auth-token" not in server.hits[0].headers


def test_without_a_measured_value_the_forecast_stands_in_and_is_flagged(
    server: ReplayServer, provider: UkGridProvider
) -> None:
    server.script("/intensity", Reply(file="intensity-no-actual.json"))
    [point] = provider.latest("GB").points
    assert point.intensity_g_per_kwh == 150 and point.forecast


def test_national_history(server: ReplayServer, provider: UkGridProvider) -> None:
    series = provider.history("GB", RANGE_START, RANGE_START + timedelta(hours=3))
    assert server.hits[0].path == "/intensity/2025-03-01T00:00Z/2025-03-01T03:00Z"
    assert [(p.intensity_g_per_kwh, p.forecast) for p in series.points] == [
        (118, False),
        (119, False),
        (122, True),  # no actual yet: the forecast, flagged
        (121, False),
        (123, False),
    ]
    assert "1 period(s) without a value skipped (first at 2025-03-01T02:00Z)" in series.note
    assert series.mean_over(RANGE_START, RANGE_START + timedelta(hours=1)) == pytest.approx(118.5)


def test_history_longer_than_the_api_allows_is_fetched_in_windows(
    server: ReplayServer, provider: UkGridProvider
) -> None:
    provider.history("GB", datetime(2025, 2, 1, tzinfo=UTC), datetime(2025, 3, 1, 3, tzinfo=UTC))
    assert [h.path for h in server.hits] == [
        "/intensity/2025-02-01T00:00Z/2025-02-14T00:00Z",
        "/intensity/2025-02-14T00:00Z/2025-02-27T00:00Z",
        "/intensity/2025-02-27T00:00Z/2025-03-01T03:00Z",
    ]


def test_national_forecast(server: ReplayServer, provider: UkGridProvider) -> None:
    series = provider.forecast("GB", 2)
    assert server.hits[0].path == "/intensity/2025-03-10T12:00Z/fw48h"
    assert [p.start for p in series.points] == [
        datetime(2025, 3, 10, 12, tzinfo=UTC) + timedelta(minutes=30 * i) for i in range(5)
    ]
    assert all(p.forecast and p.duration_s == 1800 for p in series.points)


def test_regional_latest_by_postcode(server: ReplayServer, provider: UkGridProvider) -> None:
    series = provider.latest("GB-postcode:SW1A 1AA")
    assert server.hits[0].path == "/regional/postcode/SW1A"
    [point] = series.points
    assert point.intensity_g_per_kwh == 181 and point.forecast
    assert (
        series.source == "UK Carbon Intensity API (NESO), London (postcode SW1A)"
        and series.region == "GB-postcode:SW1A 1AA"
    )
    assert "modelled estimates" in series.note


def test_regional_forecast_covers_48_hours(server: ReplayServer, provider: UkGridProvider) -> None:
    series = provider.forecast("GB-postcode:SW1", 48)
    assert server.hits[0].path == "/regional/intensity/2025-03-10T12:00Z/fw48h/postcode/SW1"
    assert len(series.points) == 96 and series.points[-1].end == datetime(2025, 3, 12, 12, tzinfo=UTC)
    assert series.mean_over(NOW, NOW + timedelta(hours=24)) is not None


def test_regional_history(server: ReplayServer, provider: UkGridProvider) -> None:
    series = provider.history("GB-postcode:SW1", RANGE_START, RANGE_START + timedelta(hours=3))
    assert server.hits[0].path == "/regional/intensity/2025-03-01T00:00Z/2025-03-01T03:00Z/postcode/SW1"
    assert [p.intensity_g_per_kwh for p in series.points] == [170, 171, 172, 173, 174, 175]


def test_a_server_error_then_success_through_the_provider(
    server: ReplayServer, provider: UkGridProvider, sleeps: Sleeps
) -> None:
    server.script("/intensity", Reply(500), Reply(429, headers={"Retry-After": "3"}))
    assert provider.latest("GB").points[0].intensity_g_per_kwh == 142
    assert sleeps.calls == [0.5, 3.0]


def test_live_provider_builds_each_by_name(live_settings: Settings) -> None:
    for name in LIVE_PROVIDERS:
        provider = live_provider(name, live_settings, base_url="http://127.0.0.1:9")
        assert provider.name == name and isinstance(provider, IntensityProvider)
    with pytest.raises(ConfigError, match="unknown live provider 'static'"):
        live_provider("static", live_settings)


def test_the_public_hosts_are_never_contacted(live_settings: Settings) -> None:
    provider = UkGridProvider(live_settings)  # the default base URL: the no_internet guard must stop it
    with pytest.raises(AssertionError, match=r"a test tried to reach api\.carbonintensity\.org\.uk"):
        provider.latest("GB")
    provider.close()
