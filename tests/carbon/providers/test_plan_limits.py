"""The plans most users have, and outages behind a 200: a run degrades to what the plan allows and says why."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests.carbon.providers.replay import FakeClock, ReplayServer, Reply
from wattwise.carbon.http import HttpClient
from wattwise.carbon.providers import ElectricityMapsProvider, UkGridProvider, WattTimeProvider, electricitymaps
from wattwise.carbon.providers import ukgrid as uk
from wattwise.carbon.providers import watttime as wt
from wattwise.carbon.service import IntensityService
from wattwise.config import Settings
from wattwise.errors import ProviderError
from wattwise.measure.emissions import CarbonPlan

LATEST = "/v3/carbon-intensity/latest"
FORECAST = "/v3/carbon-intensity/forecast"
NOW_IN_HOUR = datetime(2025, 3, 10, 12, 30, tzinfo=UTC)


def em(
    settings: Settings, server: ReplayServer, make_client: Callable[..., HttpClient], clock: FakeClock
) -> CarbonPlan:
    client = make_client(name="electricitymaps", label="Electricity Maps", auth_hint=electricitymaps.AUTH_HINT)
    provider = ElectricityMapsProvider(settings, base_url=server.base_url, client=client, clock=clock.dt)
    return CarbonPlan(settings, service=IntensityService(settings, provider=provider), refresh_s=60)


@pytest.fixture
def em_settings(live_settings: Settings, tmp_path: Path) -> Settings:
    return live_settings.replace(provider="electricitymaps", region="DE", gpu=False, rapl_root=tmp_path / "none")


def test_a_free_electricity_maps_key_runs_on_latest_without_a_forecast(
    replay: Callable[[str], ReplayServer],
    make_client: Callable[..., HttpClient],
    clock: FakeClock,
    em_settings: Settings,
) -> None:
    server = replay("electricitymaps")
    server.serve(LATEST, "latest.json")
    server.serve(FORECAST, "forecast-forbidden-free-tier.json", status=403)
    plan = em(em_settings, server, make_client, clock)
    series = plan.series
    assert not series.fallback and len(series.points) == 1  # the latest value, not the annual table
    assert series.points[0].intensity_g_per_kwh == pytest.approx(302.0)
    note = " ".join(plan.notes)
    assert "refused forecast" in note and "plan does not include it" in note and "without a forecast" in note
    assert "ELECTRICITYMAPS_API_KEY" not in note  # not blamed on the key
    assert server.count(FORECAST) == 1
    plan._live_series()  # the periodic refresh: latest again, never the refused forecast
    assert server.count(FORECAST) == 1 and server.count(LATEST) >= 1


def test_a_forecast_refused_with_401_after_latest_worked_is_a_plan_limit(
    replay: Callable[[str], ReplayServer],
    make_client: Callable[..., HttpClient],
    clock: FakeClock,
    em_settings: Settings,
) -> None:
    server = replay("electricitymaps")
    server.serve(LATEST, "latest.json")
    server.serve(FORECAST, "forecast-forbidden-free-tier.json", status=401)
    plan = em(em_settings, server, make_client, clock)
    assert not plan.series.fallback and "plan does not include it" in " ".join(plan.notes)


def test_a_zone_outside_the_plan_falls_back_to_the_table_naming_the_limit(
    replay: Callable[[str], ReplayServer],
    make_client: Callable[..., HttpClient],
    clock: FakeClock,
    em_settings: Settings,
) -> None:
    server = replay("electricitymaps")
    server.serve(LATEST, "latest-forbidden-zone.json", status=403)
    plan = em(em_settings, server, make_client, clock)
    assert plan.series.fallback and plan.series.plan_limit
    assert plan.series.points[0].intensity_g_per_kwh == pytest.approx(344.14, rel=1e-3)  # Germany's annual figure
    assert "refused latest for zone DE" in plan.series.note and "one zone" in plan.series.note


def test_a_wrong_key_on_latest_still_stops_the_run(
    replay: Callable[[str], ReplayServer],
    make_client: Callable[..., HttpClient],
    clock: FakeClock,
    em_settings: Settings,
) -> None:
    server = replay("electricitymaps")
    server.script(LATEST, Reply(status=401, json={"message": "Invalid auth-token"}))
    with pytest.raises(ProviderError, match="refused the credentials") as info:
        em(em_settings, server, make_client, clock)
    assert not info.value.plan_limit


# -- WattTime --------------------------------------------------------------------------------------------------


@pytest.fixture
def wt_server(replay: Callable[[str], ReplayServer]) -> ReplayServer:
    server = replay("watttime")
    server.serve("/login", "login.json")
    return server


def wt_provider(
    server: ReplayServer, make_client: Callable[..., HttpClient], clock: FakeClock, settings: Settings
) -> WattTimeProvider:
    client = make_client(name=wt.NAME, label=wt.LABEL, auth_hint=wt.AUTH_HINT, settings=settings)
    return WattTimeProvider(settings, base_url=server.base_url, client=client, clock=clock.dt)


def test_watttime_invalid_scope_is_a_plan_limit_after_one_token_renewal(
    wt_server: ReplayServer, make_client: Callable[..., HttpClient], clock: FakeClock, live_settings: Settings
) -> None:
    wt_server.serve("/v3/forecast", "forbidden-invalid-scope.json", status=403)
    provider = wt_provider(wt_server, make_client, clock, live_settings)
    with pytest.raises(ProviderError) as info:
        provider.latest("PJM_ROANOKE")
    error = info.value
    assert error.plan_limit and error.status == 403
    assert "CAISO_NORTH" in str(error) and "plan does not include" in str(error)
    assert "WATTTIME_PASSWORD" not in str(error)  # the password is fine: do not send the user to check it
    assert wt_server.count("/login") == 2  # a 403 renews the token once, as a 401 does
    assert wt_server.count("/v3/forecast") == 2


def test_watttime_a_403_cured_by_a_fresh_token_is_not_a_plan_limit(
    wt_server: ReplayServer, make_client: Callable[..., HttpClient], clock: FakeClock, live_settings: Settings
) -> None:
    wt_server.script("/v3/forecast", Reply(status=403, json={"error": "token expired"}))
    wt_server.serve("/v3/forecast", "forecast.json")
    series = wt_provider(wt_server, make_client, clock, live_settings).latest("CAISO_NORTH")
    assert series.points and wt_server.count("/login") == 2


def test_a_run_on_watttime_outside_its_plan_uses_the_table_and_names_the_limit(
    wt_server: ReplayServer, make_client: Callable[..., HttpClient], clock: FakeClock, live_settings: Settings
) -> None:
    wt_server.serve("/v3/forecast", "forbidden-invalid-scope.json", status=403)
    wt_server.serve("/v3/region-from-loc", "region-from-loc.json")
    settings = live_settings.replace(provider="watttime", region="aws:us-west-1")
    service = IntensityService(settings, provider=wt_provider(wt_server, make_client, clock, settings))
    plan = CarbonPlan(settings, service=service)
    assert plan.series.fallback and plan.series.plan_limit
    assert "CAISO_NORTH" in plan.series.note


# -- the UK Carbon Intensity API ----------------------------------------------------------------------------


@pytest.mark.parametrize("empty", ["empty-object.json", "empty-data.json"])
def test_an_empty_uk_answer_is_an_outage_retried_then_a_fallback_never_cached(
    replay: Callable[[str], ReplayServer],
    make_client: Callable[..., HttpClient],
    clock: FakeClock,
    live_settings: Settings,
    empty: str,
) -> None:
    server = replay("ukgrid")
    server.serve("/intensity", empty)
    server.serve(r"/intensity/[^/]+/fw48h", empty)
    settings = live_settings.replace(provider="ukgrid", region="GB")
    client = make_client(name=uk.NAME, label=uk.LABEL)
    provider = UkGridProvider(settings, base_url=server.base_url, client=client, clock=clock.dt)
    with pytest.raises(ProviderError) as info:
        provider.latest("GB")
    assert info.value.retryable and "no data" in str(info.value) and "outage" in str(info.value)
    assert server.count("/intensity") == 3  # retried like a 5xx
    plan = CarbonPlan(settings, service=IntensityService(settings, provider=provider))
    assert plan.series.fallback and "no data" in plan.series.note
    server.routes.clear()  # the API is back: the empty answers were not cached
    server.serve("/intensity", "intensity.json")
    assert provider.latest("GB").points[0].intensity_g_per_kwh == 142


def test_uk_latest_says_it_is_the_last_complete_half_hour(
    replay: Callable[[str], ReplayServer], make_client: Callable[..., HttpClient], live_settings: Settings
) -> None:
    server = replay("ukgrid")
    server.serve("/intensity", "intensity.json")  # 12:00-12:30
    client = make_client(name=uk.NAME, label=uk.LABEL)
    later = FakeClock(datetime(2025, 3, 10, 12, 40, tzinfo=UTC))
    series = UkGridProvider(live_settings, base_url=server.base_url, client=client, clock=later.dt).latest("GB")
    assert "the last complete half hour, 12:00-12:30 UTC" in series.note
    during = FakeClock(datetime(2025, 3, 10, 12, 10, tzinfo=UTC))
    client2 = make_client(name=uk.NAME, label=uk.LABEL)
    series = UkGridProvider(live_settings, base_url=server.base_url, client=client2, clock=during.dt).latest("GB")
    assert "the current half hour" in series.note
