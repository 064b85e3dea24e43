"""CsvTraceProvider over each documented layout, its rules for units, time zones, gaps, duplicates and bad rows, and
the real shared traces checked against the published means (BENCHMARKS.md, table A)."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from wattwise.carbon.base import IntensityProvider
from wattwise.carbon.csvtrace import CsvTraceProvider, FixedProvider
from wattwise.errors import ConfigError, ProviderError

TRACES = Path(__file__).resolve().parents[1] / "data" / "traces"
SHARED = Path(__file__).resolve().parents[3] / "shared" / "data" / "carbon-intensity"


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


def write(tmp_path: Path, text: str, name: str = "trace.csv") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def hourly(values: list[float | None], start: str = "2024-01-01T00:00:00Z") -> str:
    t0 = datetime.fromisoformat(start)
    lines = ["timestamp,intensity_g_per_kwh"]
    for i, value in enumerate(values):
        if value is not None:
            lines.append(f"{(t0 + timedelta(hours=i)).isoformat()},{value}")
    return "\n".join(lines) + "\n"


# -- the layouts ---------------------------------------------------------------------------------------------------


def test_providers_satisfy_the_interface() -> None:
    assert isinstance(CsvTraceProvider(TRACES / "wattwise.csv"), IntensityProvider)
    assert isinstance(FixedProvider(100.0), IntensityProvider)
    assert CsvTraceProvider(TRACES / "wattwise.csv").name == "csv" and FixedProvider(1.0).name == "fixed"


def test_dacf_layout_naive_times_are_utc() -> None:
    p = CsvTraceProvider(TRACES / "dacf_CISO_direct.csv")
    assert p.layout == "dacf" and p.step_s == 3600
    s = p.series
    assert s.points[0].start == utc(2020, 1, 1) and s.points[0].intensity_g_per_kwh == 242.9
    assert s.signal == "average" and "DACF" in s.source
    assert p.latest("").points[-1].intensity_g_per_kwh == 279.74


def test_dacf_forecast_layout_uses_the_forecast_column_for_forecast() -> None:
    p = CsvTraceProvider(TRACES / "dacf_CISO_forecast.csv", now=lambda: utc(2021, 7, 1, 2, 30))
    assert p.layout == "dacf-forecast"
    actual = p.history("CISO", utc(2021, 7, 1), utc(2021, 7, 1, 3))
    assert [pt.intensity_g_per_kwh for pt in actual.points] == [162.35, 183.72, 226.5]
    assert not any(pt.forecast for pt in actual.points)
    ahead = p.forecast("CISO", 2)
    assert [pt.intensity_g_per_kwh for pt in ahead.points] == [239.0, 255.8, 255.75]  # 02:00 (in effect), 03, 04
    assert all(pt.forecast for pt in ahead.points)


def test_electricitymaps_layout_life_cycle_by_default_direct_on_request() -> None:
    lca = CsvTraceProvider(TRACES / "em_US-CAL-CISO_2022.csv")
    direct = CsvTraceProvider(TRACES / "em_US-CAL-CISO_2022.csv", emission_factor="direct")
    assert lca.layout == "electricitymaps" and lca.file_zone == "US-CAL-CISO" and lca.region == "US-CAL-CISO"
    assert lca.series.points[0].intensity_g_per_kwh == 274.07 and "life-cycle" in lca.source
    assert direct.series.points[0].intensity_g_per_kwh == 209.26 and "direct" in direct.source


def test_zone_is_checked_against_the_files_zone_column() -> None:
    p = CsvTraceProvider(TRACES / "em_US-CAL-CISO_2022.csv")
    assert p.latest("us-cal-ciso").points[-1].intensity_g_per_kwh == 303.12
    with pytest.raises(ConfigError, match="holds zone US-CAL-CISO, not DE"):
        p.latest("DE")
    assert CsvTraceProvider(TRACES / "dacf_CISO_direct.csv").latest("anything").points  # no zone column: any zone


def test_lets_wait_awhile_layout_says_utc_is_inferred() -> None:
    p = CsvTraceProvider(TRACES / "lwa_ger.csv")
    assert p.layout == "lets-wait-awhile" and p.step_s == 900
    assert p.series.points[1].start == utc(2019, 12, 20, 0, 15)
    assert "inferred" in p.series.note


def test_wattwise_layout_converts_offsets_to_utc_with_a_note() -> None:
    p = CsvTraceProvider(TRACES / "wattwise.csv")
    assert p.layout == "wattwise" and p.file_zone == "DE"
    assert [(pt.start.hour, pt.intensity_g_per_kwh) for pt in p.series.points] == [
        (0, 100),
        (1, 200),
        (2, 300),
        (3, 400),
    ]
    assert all(pt.start.tzinfo is UTC for pt in p.series.points)
    assert "1 timestamps with a UTC offset converted to UTC" in p.note


def test_wattwise_layout_rejects_naive_timestamps_naming_the_row(tmp_path: Path) -> None:
    path = write(tmp_path, "timestamp,intensity_g_per_kwh\n2024-01-01T00:00:00Z,1\n2024-01-01 01:00:00,2\n")
    with pytest.raises(ConfigError, match=r"trace\.csv:3: timestamp '2024-01-01 01:00:00' has no UTC offset"):
        CsvTraceProvider(path)


def test_unrecognised_header_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="unrecognised header"):
        CsvTraceProvider(write(tmp_path, "when,what\n2024-01-01,1\n"))


# -- units ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("column", "raw", "expected"),
    [
        ("intensity_g_per_kwh", "250", 250.0),
        ("intensity_kg_per_kwh", "0.25", 250.0),
        ("intensity (lbs/MWh)", "1000", 453.59237),
        ("intensity_lb_per_mwh", "1000", 453.59237),
        ("intensity (tCO2/MWh)", "0.4", 400.0),
        ("intensity (kgCO2e/MWh)", "300", 300.0),
        ("intensity (gCO₂eq/kWh)", "12", 12.0),
    ],
)
def test_units_in_the_header_are_converted(tmp_path: Path, column: str, raw: str, expected: float) -> None:
    path = write(tmp_path, f"timestamp,{column}\n2024-01-01T00:00:00Z,{raw}\n2024-01-01T01:00:00Z,{raw}\n")
    assert CsvTraceProvider(path).series.points[0].intensity_g_per_kwh == pytest.approx(expected)


@pytest.mark.parametrize("column", ["intensity (gCO2/MJ)", "intensity_%", "intensity (lbs/kWh per hour)"])
def test_unconvertible_unit_is_rejected_naming_the_column(tmp_path: Path, column: str) -> None:
    path = write(tmp_path, f"timestamp,{column}\n2024-01-01T00:00:00Z,1\n")
    with pytest.raises(ConfigError) as err:
        CsvTraceProvider(path)
    assert repr(column) in str(err.value) and "\n" not in str(err.value)


# -- gaps, duplicates, order, bad rows -----------------------------------------------------------------------------


def test_short_gaps_are_bridged_and_long_ones_left_empty(tmp_path: Path) -> None:
    # hourly; 03:00 missing (one step: bridged); 07..10 missing (four steps: a gap)
    values: list[float | None] = [100, 100, 200, None, 300, 300, 300, None, None, None, None, 500, 500]
    p = CsvTraceProvider(write(tmp_path, hourly(values)))
    s = p.history("", utc(2024, 1, 1), utc(2024, 1, 1, 13))
    assert s.mean_over(utc(2024, 1, 1, 2), utc(2024, 1, 1, 4)) == 200  # 03:00 holds 02:00's value
    assert s.mean_over(utc(2024, 1, 1, 4), utc(2024, 1, 1, 7)) == 300
    assert s.mean_over(utc(2024, 1, 1, 6), utc(2024, 1, 1, 12)) is None  # covers the gap
    assert s.at(utc(2024, 1, 1, 8)) is None and s.at(utc(2024, 1, 1, 11, 30)).intensity_g_per_kwh == 500  # type: ignore[union-attr]
    assert "1 short gaps" in s.note and "1 longer gaps left empty (first 2024-01-01T07:00:00+00:00" in s.note


def test_two_missing_steps_are_still_bridged(tmp_path: Path) -> None:
    p = CsvTraceProvider(write(tmp_path, hourly([100, 100, 100, None, None, 400, 400, 400])))
    assert p.series.mean_over(utc(2024, 1, 1), utc(2024, 1, 1, 8)) == pytest.approx((5 * 100 + 3 * 400) / 8)


def test_identical_duplicates_collapse(tmp_path: Path) -> None:
    text = hourly([1, 2, 3]) + "2024-01-01T01:00:00Z,2\n"
    assert [pt.intensity_g_per_kwh for pt in CsvTraceProvider(write(tmp_path, text)).series.points] == [1, 2, 3]


def test_conflicting_duplicates_name_both_rows(tmp_path: Path) -> None:
    text = hourly([1, 2, 3]) + "2024-01-01T01:00:00Z,7\n"
    with pytest.raises(ConfigError, match=r"trace\.csv:5: duplicate timestamp .* with 7 g/kWh; line 3 has 2"):
        CsvTraceProvider(write(tmp_path, text))


def test_unsorted_rows_are_sorted(tmp_path: Path) -> None:
    text = "timestamp,intensity_g_per_kwh\n2024-01-01T02:00:00Z,3\n2024-01-01T00:00:00Z,1\n2024-01-01T01:00:00Z,2\n"
    assert [pt.intensity_g_per_kwh for pt in CsvTraceProvider(write(tmp_path, text)).series.points] == [1, 2, 3]


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ("2024-01-01T02:00:00Z,abc", "intensity 'abc' is not a number"),
        ("2024-01-01T02:00:00Z,-5", "is outside the plausible range, between 0 and 5,000 g/kWh"),
        ("2024-01-01T02:00:00Z,nan", "is outside the plausible range, between 0 and 5,000 g/kWh"),
        ("2024-01-01T02:00:00Z,1e300", "is outside the plausible range, between 0 and 5,000 g/kWh"),
        ("2024-01-01T02:00:00Z,5000.5", "is outside the plausible range, between 0 and 5,000 g/kWh"),
        ("2024-01-01T02:00:00Z", "fewer than the header's columns"),
        ("yesterday,5", "timestamp 'yesterday' is not ISO-8601"),
    ],
)
def test_unparseable_row_is_one_line_naming_file_and_row(tmp_path: Path, row: str, message: str) -> None:
    path = write(tmp_path, hourly([1, 2]) + row + "\n")
    with pytest.raises(ConfigError) as err:
        CsvTraceProvider(path)
    assert str(err.value).startswith(f"{path}:4: ") and message in str(err.value) and "\n" not in str(err.value)


def test_missing_and_empty_files_are_config_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        CsvTraceProvider(tmp_path / "nope.csv")
    with pytest.raises(ConfigError, match="empty file"):
        CsvTraceProvider(write(tmp_path, ""))
    with pytest.raises(ConfigError, match="no data rows"):
        CsvTraceProvider(write(tmp_path, "timestamp,intensity_g_per_kwh\n"))


# -- history and forecast windows ----------------------------------------------------------------------------------


def test_history_outside_the_file_and_forecast_past_its_end_are_provider_errors() -> None:
    p = CsvTraceProvider(TRACES / "wattwise.csv", now=lambda: utc(2030, 1, 1))
    with pytest.raises(ProviderError, match="nothing in"):
        p.history("DE", utc(2020, 1, 1), utc(2020, 1, 2))
    with pytest.raises(ProviderError, match="holds no values for the next 24 h"):
        p.forecast("DE", 24)


def test_forecast_of_a_plain_series_flags_the_future_points() -> None:
    p = CsvTraceProvider(TRACES / "wattwise.csv", now=lambda: utc(2024, 3, 1, 1, 30))
    ahead = p.forecast("DE", 1.5)
    assert [(pt.intensity_g_per_kwh, pt.forecast) for pt in ahead.points] == [(200, True), (300, True)]


def test_a_year_of_15_minute_rows_parses_quickly(tmp_path: Path) -> None:
    t0 = datetime(2024, 1, 1, tzinfo=UTC)
    lines = ["timestamp,intensity_g_per_kwh"] + [
        f"{(t0 + timedelta(minutes=15 * i)).isoformat()},{100 + i % 96}" for i in range(35_040)
    ]
    path = write(tmp_path, "\n".join(lines) + "\n")
    began = time.perf_counter()
    p = CsvTraceProvider(path)
    assert time.perf_counter() - began < 3.0
    assert len(p.series.points) == 35_040 and p.step_s == 900
    assert p.series.mean_over(t0, t0 + timedelta(days=1)) == pytest.approx(100 + 95 / 2)


def test_fixed_provider_is_constant_and_validated() -> None:
    p = FixedProvider(123.0)
    for series in (p.latest("DE"), p.history("DE", utc(2024, 1, 1), utc(2024, 1, 2)), p.forecast("DE", 48)):
        assert series.constant and series.region == "DE" and series.at(utc(2031, 5, 5)).intensity_g_per_kwh == 123  # type: ignore[union-attr]
        assert "fixed value 123 g/kWh" in series.source
    with pytest.raises(ConfigError):
        FixedProvider(-1.0)
    with pytest.raises(ConfigError):
        FixedProvider(float("nan"))


# -- the real shared traces against BENCHMARKS.md table A ----------------------------------------------------------

BENCHMARK_MEANS: list[tuple[str, int, float, dict[str, str]]] = [  # file, calendar year, table A mean, options
    ("lets-wait-awhile/ger_ci.csv", 2020, 313, {}),
    ("lets-wait-awhile/gb_ci.csv", 2020, 213, {}),
    ("lets-wait-awhile/fr_ci.csv", 2020, 56, {}),
    ("dacf/CISO_direct_emissions.csv", 2020, 201, {}),
    ("electricitymaps/US-CAL-CISO_2022_hourly.csv", 2022, 261, {}),
    ("dacf/ERCO_direct_emissions.csv", 2020, 302, {}),
    ("dacf/PJM_direct_emissions.csv", 2020, 296, {}),
    ("dacf/ISNE_direct_emissions.csv", 2020, 232, {}),
    ("dacf/SE_direct_emissions.csv", 2020, 40, {}),
    ("electricitymaps/NO_2022_hourly.csv", 2022, 38, {}),
    ("electricitymaps/BR_2022_hourly.csv", 2022, 93, {}),
]


@pytest.mark.skipif(not SHARED.is_dir(), reason="../shared/data/carbon-intensity is not beside this checkout")
@pytest.mark.parametrize(("name", "year", "mean", "options"), BENCHMARK_MEANS, ids=[b[0] for b in BENCHMARK_MEANS])
def test_shared_trace_means_match_the_benchmarks(name: str, year: int, mean: float, options: dict[str, str]) -> None:
    p = CsvTraceProvider(SHARED / name, **options)  # type: ignore[arg-type]
    got = p.history("", utc(year, 1, 1), utc(year + 1, 1, 1)).mean_over(utc(year, 1, 1), utc(year + 1, 1, 1))
    assert got is not None and got == pytest.approx(mean, rel=0.01)


@pytest.mark.skipif(not SHARED.is_dir(), reason="../shared/data/carbon-intensity is not beside this checkout")
def test_every_shared_trace_parses() -> None:
    files = sorted(SHARED.rglob("*.csv"))
    assert len(files) >= 20
    for path in files:
        p = CsvTraceProvider(path)
        assert len(p.series.points) > 4000 and p.step_s in (900, 1800, 3600), path
