"""A measured run whose intensity comes from a live provider (recorded responses on a local server)."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests.carbon.providers.replay import FakeClock, ReplayServer, Reply
from tests.fakes.power import ConstantPowerSource, FakeHost
from wattwise.carbon.http import HttpClient
from wattwise.carbon.providers import ElectricityMapsProvider, electricitymaps
from wattwise.carbon.service import IntensityService
from wattwise.config import Settings
from wattwise.errors import ProviderError
from wattwise.measure.emissions import CarbonPlan
from wattwise.measure.tracker import Tracker
from wattwise.units import J_PER_KWH

RECORDED_NOW = datetime(2025, 3, 10, 12, 30, tzinfo=UTC)  # inside the recorded latest/forecast hours


def em_plan(settings: Settings, server: ReplayServer, client: HttpClient, clock: FakeClock) -> CarbonPlan:
    provider = ElectricityMapsProvider(settings, base_url=server.base_url, client=client, clock=clock.dt)
    return CarbonPlan(settings, service=IntensityService(settings, provider=provider))


def run_for(settings: Settings, plan: CarbonPlan, seconds: float) -> Tracker:
    start = time.time()
    t = Tracker(
        "live",
        settings=settings,
        sources=[ConstantPowerSource({"gpu:0": 1000.0})],
        host=FakeHost(),
        carbon=plan,
        wall_clock=lambda: RECORDED_NOW.timestamp() + time.time() - start,
    )
    with t:
        time.sleep(seconds)
    return t


def test_a_run_uses_the_providers_values(
    replay: Callable[[str], ReplayServer],
    make_client: Callable[..., HttpClient],
    clock: FakeClock,
    live_settings: Settings,
    tmp_path: Path,
) -> None:
    server = replay("electricitymaps")
    server.serve("/v3/carbon-intensity/latest", "latest.json")
    server.serve("/v3/carbon-intensity/forecast", "forecast.json")
    settings = live_settings.replace(
        provider="electricitymaps", region="DE", gpu=False, interval_s=0.05, flush_s=0.2, rapl_root=tmp_path / "none"
    )
    t = run_for(settings, em_plan(settings, server, make_client(), clock), 0.2)
    run = t.result
    assert run is not None and not run.intensity_fallback
    assert run.intensity_g_per_kwh == pytest.approx(302.0)  # the latest value covers 12:00-13:00
    assert run.co2e_g == pytest.approx(run.energy_j / J_PER_KWH * run.pue * 302.0, rel=1e-6)
    assert run.emissions_method == "time-resolved" and run.signal == "average"
    assert "Electricity Maps" in run.intensity_source or "electricitymaps" in run.intensity_source.lower()


def test_an_outage_falls_back_to_the_table_and_says_so(
    replay: Callable[[str], ReplayServer],
    make_client: Callable[..., HttpClient],
    clock: FakeClock,
    live_settings: Settings,
    tmp_path: Path,
) -> None:
    server = replay("electricitymaps")
    server.script("/v3/carbon-intensity/latest", *[Reply(status=503, json={"error": "down"})] * 5)
    settings = live_settings.replace(
        provider="electricitymaps", region="DE", gpu=False, interval_s=0.05, flush_s=0.2, rapl_root=tmp_path / "none"
    )
    client = make_client(name="electricitymaps", label="Electricity Maps", auth_hint=electricitymaps.AUTH_HINT)
    t = run_for(settings, em_plan(settings, server, client, clock), 0.1)
    run = t.result
    assert run is not None and run.intensity_fallback
    assert run.intensity_g_per_kwh == pytest.approx(344.14, rel=1e-3)  # Germany, packaged annual figure
    assert any("could not answer" in n and "503" in n for n in run.notes), run.notes
    assert "em-secret-key" not in str(run.to_dict())


def test_a_wrong_key_is_an_error_before_the_run_not_a_silent_fallback(
    replay: Callable[[str], ReplayServer],
    make_client: Callable[..., HttpClient],
    clock: FakeClock,
    live_settings: Settings,
    tmp_path: Path,
) -> None:
    server = replay("electricitymaps")
    server.script("/v3/carbon-intensity/latest", Reply(status=401, json={"error": "bad key"}))
    settings = live_settings.replace(provider="electricitymaps", region="DE", gpu=False, rapl_root=tmp_path / "none")
    client = make_client(name="electricitymaps", label="Electricity Maps", auth_hint=electricitymaps.AUTH_HINT)
    with pytest.raises(ProviderError, match="ELECTRICITYMAPS_API_KEY") as info:
        em_plan(settings, server, client, clock)
    assert "em-secret-key" not in str(info.value)
