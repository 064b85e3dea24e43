"""The published-runs validation table: it parses, every figure is sourced, the publications' own arithmetic holds
where they are self-consistent, and the benchmark that uses it runs end to end."""

from __future__ import annotations

import csv
import importlib
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CSV_PATH = ROOT / "benchmarks" / "data" / "published_training_runs.csv"
SCRIPT = ROOT / "benchmarks" / "estimate_validation.py"
SOURCES_MD = ROOT / "benchmarks" / "data" / "SOURCES.md"

COLUMNS = [
    "run", "source", "source_kind", "verification", "hardware", "devices", "hours", "accelerator_hours",
    "power_w_published", "power_basis", "host_included", "power_measured", "pue_published",
    "intensity_g_per_kwh_published", "pue_implied", "intensity_implied_g_per_kwh", "energy_mwh_published",
    "energy_scope", "co2e_t_published", "co2e_scope", "params", "active_params", "tokens", "flops_published",
    "arithmetic_check", "notes",
]  # fmt: skip
NUMERIC = [
    "devices", "hours", "accelerator_hours", "power_w_published", "pue_published", "intensity_g_per_kwh_published",
    "pue_implied", "intensity_implied_g_per_kwh", "energy_mwh_published", "co2e_t_published", "params",
    "active_params", "tokens", "flops_published",
]  # fmt: skip
HARDWARE = {"P100-SXM2", "V100-SXM2", "A100-SXM4-40GB", "A100-SXM4-80GB", "H100-SXM", "TPUv3", "TPUv4"}


def load() -> list[dict[str, str]]:
    with CSV_PATH.open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


ROWS = load()
IDS = [row["run"] for row in ROWS]


def num(row: dict[str, str], key: str) -> float | None:
    text = row[key].strip()
    return float(text) if text else None


def pue(row: dict[str, str]) -> float | None:
    return num(row, "pue_published") or num(row, "pue_implied")


def intensity(row: dict[str, str]) -> float | None:
    published = num(row, "intensity_g_per_kwh_published")
    return published if published is not None else num(row, "intensity_implied_g_per_kwh")


def accelerator_hours(row: dict[str, str]) -> float | None:
    hours, devices = num(row, "hours"), num(row, "devices")
    given = num(row, "accelerator_hours")
    if given is not None:
        return given
    return devices * hours if devices is not None and hours is not None else None


def inconsistent(row: dict[str, str]) -> bool:
    return row["arithmetic_check"].startswith("inconsistent")


def test_header_and_size() -> None:
    with CSV_PATH.open(newline="", encoding="utf-8") as handle:
        header = next(csv.reader(handle))
    assert header == COLUMNS
    assert len(ROWS) >= 20
    assert len(set(IDS)) == len(IDS), "run names must be unique"
    assert sum(row["power_measured"] == "yes" for row in ROWS) >= 10


@pytest.mark.parametrize("row", ROWS, ids=IDS)
def test_row_is_well_formed_and_sourced(row: dict[str, str]) -> None:
    for key in NUMERIC:
        value = num(row, key)  # raises on anything but a plain number
        assert value is None or value > 0, f"{key} must be positive"
    assert row["source"].strip() and row["verification"].strip() and row["notes"].strip()
    assert row["source_kind"] in {"paper", "model card", "secondary"}
    assert row["hardware"] in HARDWARE
    assert row["power_basis"] in {"measured", "TDP", "other"}
    assert row["host_included"] in {"yes", "no"} and row["power_measured"] in {"yes", "no"}
    if row["power_measured"] == "yes":
        assert row["power_basis"] == "measured"
    for figure, scope in (("energy_mwh_published", "energy_scope"), ("co2e_t_published", "co2e_scope")):
        assert row[scope] in ({"it", "facility"} if row[figure] else {""}), f"{scope} goes with {figure}"
    assert row["arithmetic_check"] == "ok" or row["arithmetic_check"].split(":", 1)[0] in {"skip", "inconsistent"}
    if row["arithmetic_check"] != "ok":
        assert row["arithmetic_check"].split(":", 1)[1].strip(), "say why the check is skipped"
    active, params = num(row, "active_params"), num(row, "params")
    if active is not None and params is not None:
        assert active <= params


@pytest.mark.parametrize("row", ROWS, ids=IDS)
def test_published_energy_times_intensity_gives_published_co2e(row: dict[str, str]) -> None:
    """Within 5 %, on each figure's own scope (before or after PUE); rows marked 'skip' lack a figure."""
    energy, co2e, grams, factor = (
        num(row, "energy_mwh_published"),
        num(row, "co2e_t_published"),
        intensity(row),
        pue(row),
    )
    if row["arithmetic_check"].startswith("skip"):
        assert None in (energy, co2e, grams), "a row with all three figures must be checked, or marked inconsistent"
        return
    if inconsistent(row):
        pytest.skip(row["arithmetic_check"])
    assert energy is not None and co2e is not None and grams is not None
    if row["energy_scope"] != row["co2e_scope"]:
        assert factor is not None, "converting between scopes needs the PUE"
        energy = energy * factor if row["energy_scope"] == "it" else energy / factor
    assert energy * grams / 1000 == pytest.approx(co2e, rel=0.05)


WITH_HOURS_POWER_ENERGY = [
    row
    for row in ROWS
    if None not in (num(row, "energy_mwh_published"), accelerator_hours(row), num(row, "power_w_published"))
    and not inconsistent(row)
]


def test_enough_rows_carry_hours_power_and_energy() -> None:
    assert len(WITH_HOURS_POWER_ENERGY) >= 15


@pytest.mark.parametrize("row", WITH_HOURS_POWER_ENERGY, ids=[row["run"] for row in WITH_HOURS_POWER_ENERGY])
def test_published_energy_matches_hours_times_published_power(row: dict[str, str]) -> None:
    """Where a publication gives accelerator-hours, per-device power and energy, they multiply out within 5 %."""
    energy, hours, watts = num(row, "energy_mwh_published"), accelerator_hours(row), num(row, "power_w_published")
    assert energy is not None and hours is not None and watts is not None
    it_mwh = hours * watts / 1e6
    if row["energy_scope"] == "facility":
        factor = pue(row)
        assert factor is not None
        it_mwh *= factor
    assert it_mwh == pytest.approx(energy, rel=0.05)


def test_sources_document_names_every_source() -> None:
    text = SOURCES_MD.read_text(encoding="utf-8")
    for marker in ("arXiv:2104.10350", "arXiv:2302.13971", "arXiv:2211.02001", "arXiv:2503.05804", "llama-models"):
        assert marker in text


def _estimate_module_error() -> str | None:
    try:
        importlib.import_module("wattwise.estimate.model")
    except ImportError as exc:
        return f"{type(exc).__name__}: {exc}"
    return None


def _run_script(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=120, check=False, cwd=ROOT
    )


def test_benchmark_runs_end_to_end() -> None:
    error = _estimate_module_error()
    if error is not None:
        pytest.skip(f"wattwise.estimate.model is not importable yet ({error})")
    result = _run_script()
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "Mode a, from published inputs" in out and "Mode b, from parameters" in out
    assert "measured-power runs" in out and "median |error|" in out
    for run in IDS:
        assert run[:34] in out
    assert "Traceback" not in out + result.stderr


def test_benchmark_reports_an_unknown_hardware_row_and_goes_on(tmp_path: Path) -> None:
    error = _estimate_module_error()
    if error is not None:
        pytest.skip(f"wattwise.estimate.model is not importable yet ({error})")
    rows = [dict(ROWS[0]), dict(ROWS[0])]
    rows[0]["run"], rows[0]["hardware"] = "bogus", "NoSuchAccelerator-9000"
    path = tmp_path / "runs.csv"
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    result = _run_script("--csv", str(path))
    assert result.returncode == 0, result.stderr
    assert "bogus: mode a: estimate failed" in result.stdout
    assert "n=1," in result.stdout  # the good row still counted


def _benchmark_module() -> object:
    spec = importlib.util.spec_from_file_location("estimate_validation", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["estimate_validation"] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    return module


def test_gpu_only_publications_are_set_against_the_accelerator_part(tmp_path: Path) -> None:
    error = _estimate_module_error()
    if error is not None:
        pytest.skip(f"wattwise.estimate.model is not importable yet ({error})")
    from wattwise.estimate.model import TrainingInputs, estimate_training

    bench = _benchmark_module()
    row = dict.fromkeys(COLUMNS, "")
    row.update(
        run="gpu-only",
        source="test",
        hardware="H100-SXM",
        host_included="no",
        power_measured="yes",
        pue_published="1.2",
        energy_mwh_published="100",
        energy_scope="it",
        params="7e9",
        tokens="1e12",
    )
    path = tmp_path / "runs.csv"
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerow(row)
    (run,) = bench.load_runs(path)  # type: ignore[attr-defined]
    b = bench.mode_b(run, estimate_training)  # type: ignore[attr-defined]
    e = estimate_training(TrainingInputs(hardware="H100-SXM", params=7e9, tokens=1e12, pue=1.2))
    assert b.accelerator_only
    assert b.energy_mwh == pytest.approx(e.accelerator_energy_kwh.value / 1000)  # IT scope, accelerators only
    assert b.system_err == pytest.approx((e.it_energy_kwh.value / 1000 - 100) / 100 * 100)
    plain = bench.mode_b(run, estimate_training, goodput=1.0)  # type: ignore[attr-defined]
    assert plain.energy_mwh == pytest.approx(b.energy_mwh * 0.9)  # the ablation undoes goodput
    dense = bench.mode_b(run, estimate_training, dense_only=True)  # type: ignore[attr-defined]
    assert dense.energy_mwh < b.energy_mwh  # and the attention FLOPs
