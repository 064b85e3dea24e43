from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest

from wattwise.errors import ConfigError, RunNotFoundError, StoreError
from wattwise.records import ComponentEnergy, Run, Sample
from wattwise.store import SQLiteStore
from wattwise.store.export import RUN_CSV_FIELDS, export_runs, export_samples

from .builders import CPU, GPU, make_run

DRAM = ComponentEnergy("dram:package-0", "dram", 12.5, 20.0, "measured", "rapl")


@pytest.fixture
def runs() -> list[Run]:
    return [
        make_run("run00001", name='fit, "big"\nmodel'),
        make_run("run00002", components=(DRAM, GPU), ended_at=None, exit_code=None, status="failed"),
    ]


def test_json_is_a_list_of_run_dicts(runs: list[Run]) -> None:
    out = io.StringIO()
    assert export_runs(runs, "json", out) == 2
    data = json.loads(out.getvalue())
    assert data == [run.to_dict() for run in runs]
    assert [Run.from_dict(item) for item in data] == runs


def test_json_streams_from_a_generator(runs: list[Run]) -> None:
    out = io.StringIO()
    assert export_runs((run for run in runs), "json", out) == 2
    assert out.getvalue().startswith('[\n{"schema":1,"id":"run00001"')
    assert out.getvalue().endswith("}\n]\n")


def test_json_of_no_runs(tmp_path: Path) -> None:
    out = io.StringIO()
    assert export_runs([], "json", out) == 0
    assert json.loads(out.getvalue()) == []


def test_json_refuses_non_finite_numbers() -> None:
    with pytest.raises(StoreError, match=r"run\.co2e_g is not a finite number"):
        export_runs([make_run(co2e_g=float("inf"))], "json", io.StringIO())


def test_csv_has_the_scalar_fields_and_one_column_per_component(runs: list[Run], tmp_path: Path) -> None:
    path = tmp_path / "runs.csv"
    with path.open("w", newline="", encoding="utf-8") as out:
        assert export_runs(runs, "csv", out) == 2
    with path.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    header = list(rows[0])
    assert header == [*RUN_CSV_FIELDS, "energy_j:gpu:0", "energy_j:cpu:package-0", "energy_j:dram:package-0"]
    first, second = rows
    assert first["id"] == "run00001"
    assert first["name"] == 'fit, "big"\nmodel'
    assert first["started_at"] == "2025-03-01T12:00:00+00:00"
    assert first["ended_at"] == "2025-03-01T12:01:00+00:00"
    assert float(first["energy_j"]) == runs[0].energy_j
    assert float(first["machine_energy_j"]) == runs[0].machine_energy_j
    assert first["source"] == "mixed"
    assert first["exit_code"] == "0"
    assert float(first["energy_j:gpu:0"]) == GPU.energy_j
    assert float(first["energy_j:cpu:package-0"]) == CPU.energy_j
    assert first["energy_j:dram:package-0"] == ""
    assert second["status"] == "failed"
    assert second["ended_at"] == ""
    assert second["exit_code"] == ""
    assert second["source"] == "measured"
    assert second["energy_j:cpu:package-0"] == ""
    assert float(second["energy_j:dram:package-0"]) == 12.5


def test_csv_of_no_runs_is_a_header() -> None:
    out = io.StringIO()
    assert export_runs([], "csv", out) == 0
    assert out.getvalue() == ",".join(RUN_CSV_FIELDS) + "\n"


def test_unknown_format() -> None:
    with pytest.raises(ConfigError, match=r"unknown export format 'xml'; use csv or json"):
        export_runs([], "xml", io.StringIO())  # type: ignore[arg-type]


def test_samples_as_csv(store: SQLiteStore) -> None:
    run = make_run(status="running")
    store.begin(run)
    store.append_samples(run.id, [Sample(2.0, "gpu:0", 301.5, 603.0), Sample(1.0, "gpu:0", 301.5, 301.5)])
    out = io.StringIO()
    assert export_samples(store, run.id, out) == 2
    assert out.getvalue() == "t_s,channel,power_w,energy_j\n1.0,gpu:0,301.5,301.5\n2.0,gpu:0,301.5,603.0\n"


def test_samples_of_an_unknown_run_write_nothing(store: SQLiteStore) -> None:
    out = io.StringIO()
    with pytest.raises(RunNotFoundError):
        export_samples(store, "nope", out)
    assert out.getvalue() == ""
