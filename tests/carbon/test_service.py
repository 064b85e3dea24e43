from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pytest

from wattwise.carbon.base import IntensitySeries
from wattwise.carbon.service import IntensityService
from wattwise.config import Settings
from wattwise.errors import ConfigError, ProviderError


class Refusing:
    name = "electricitymaps"

    def latest(self, zone: str) -> IntensitySeries:
        raise ProviderError("rate limited, retry after 30 s", provider="electricitymaps", retryable=True)

    def history(self, zone: str, start: datetime, end: datetime) -> IntensitySeries:
        raise ProviderError("timeout", provider="electricitymaps", retryable=True)

    def forecast(self, zone: str, hours: float) -> IntensitySeries:
        raise ProviderError("timeout", provider="electricitymaps", retryable=True)


def test_provider_choice() -> None:
    assert IntensityService(Settings()).provider_name == "static"
    assert IntensityService(Settings(intensity=100.0)).provider_name == "fixed"
    assert IntensityService(Settings(trace=Path("x.csv"))).provider_name == "csv"
    with pytest.raises(ConfigError, match="--trace reads a CSV file"):
        IntensityService(Settings(trace=Path("x.csv"), provider="watttime"))


def test_zones_in_each_providers_terms() -> None:
    assert IntensityService(Settings(provider="electricitymaps", region="aws:us-west-1")).zone() == "US-CAL-CISO"
    assert IntensityService(Settings(provider="ukgrid", region="GB")).zone() == "GB"
    assert IntensityService(Settings(provider="ukgrid", region="gcp:europe-west2")).zone() == "GB"
    postcode = IntensityService(Settings(provider="ukgrid", region="GB-postcode:sw1a 1aa"))
    assert postcode.zone() == "GB-postcode:SW1A" and postcode.region.code == "GB"
    with pytest.raises(ConfigError, match="Great Britain only"):
        IntensityService(Settings(provider="ukgrid", region="FR")).zone()
    with pytest.raises(ConfigError, match="WattTime finds its region from a location"):
        IntensityService(Settings(provider="watttime", region="DE")).zone()


def test_a_provider_error_falls_back_with_the_reason() -> None:
    service = IntensityService(Settings(provider="electricitymaps", region="FR"), provider=Refusing())
    series = service.latest()
    assert series.fallback and series.constant
    assert "rate limited" in series.note and "packaged annual average" in series.note
    assert series.points[0].intensity_g_per_kwh == service.region.intensity.intensity_g_per_kwh


def test_facility_precedence() -> None:
    local = IntensityService(Settings(region="DE")).facility()
    assert (local.pue, local.wue_l_per_kwh) == (1.0, 0.0)
    cloud = IntensityService(Settings(region="azure:westeurope")).facility()
    assert cloud.pue == pytest.approx(1.18) and cloud.wue_l_per_kwh == pytest.approx(0.30)
    mine = IntensityService(Settings(region="azure:westeurope", pue=1.4, wue_l_per_kwh=1.1)).facility()
    assert (mine.pue, mine.wue_l_per_kwh, mine.pue_source) == (1.4, 1.1, "set by the user")
    assert cloud.offsite_water_l_per_kwh > 0 and "NL" in cloud.offsite_water_source + "NL"


def test_a_trace_of_another_zone_is_refused_before_a_run(tmp_path: Path) -> None:
    from wattwise.measure.emissions import CarbonPlan

    trace = Path(__file__).parent.parent / "data" / "traces" / "em_US-CAL-CISO_2022.csv"
    with pytest.raises(ConfigError, match="holds zone US-CAL-CISO, not DE"):
        CarbonPlan(Settings(region="DE", trace=trace))
    assert CarbonPlan(Settings(trace=trace)).series.points  # no region: the trace's own place
    assert CarbonPlan(Settings(region="US-CAL-CISO", trace=trace)).series.points


def test_trace_history_accepts_naive_utc_times() -> None:
    from wattwise.carbon.csvtrace import CsvTraceProvider

    trace = Path(__file__).parent.parent / "data" / "traces" / "em_US-CAL-CISO_2022.csv"
    provider = CsvTraceProvider(trace)
    first = provider.series.points[0].start
    series = provider.history(
        "", first.replace(tzinfo=None), (first + (provider.series.points[1].end - first)).replace(tzinfo=None)
    )
    assert series.points


def test_fixed_provider_needs_a_value() -> None:
    with pytest.raises(ConfigError, match="provider fixed needs a value"):
        Settings.load({"provider": "fixed"})
