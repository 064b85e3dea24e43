"""``wattwise hardware list``, in-process: the table, the JSON with every field and source, the kind filter."""

from __future__ import annotations

import json
from typing import Any

import pytest

from wattwise.cli.main import main

FIELDS = {
    "name", "kind", "vendor", "year", "tdp_w", "peak_tflops", "memory_gb", "memory_bandwidth_gbs", "bandwidth_source",
    "embodied_kgco2e", "embodied_source",
    "avg_power_fraction", "avg_power_source", "aliases", "sources",
}  # fmt: skip


def run_json(capsys: pytest.CaptureFixture[str], *args: str) -> list[dict[str, Any]]:
    assert main(["hardware", "list", "--json", *args]) == 0
    data: list[dict[str, Any]] = json.loads(capsys.readouterr().out)
    return data


def test_table_shows_dense_peaks_tdp_and_embodied(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "100")  # rich reads the width from here when stdout is not a terminal
    assert main(["hardware", "list"]) == 0
    out = capsys.readouterr().out
    for header in ("name", "kind", "year", "TDP W", "bf16/fp16 TFLOP/s", "memory GB", "embodied kg"):
        assert header in out
    lines = {line.split()[0]: line for line in out.splitlines() if line.strip()}
    assert "989.5" in lines["H100-SXM"] and "700" in lines["H100-SXM"] and "462.5" in lines["H100-SXM"]
    assert "125 (fp16)" in lines["V100-SXM2-16GB"]  # no bf16 on Volta: the fp16 peak, labelled
    assert "312" in lines["A100-SXM4-80GB"] and "150" in lines["A100-SXM4-80GB"]
    assert "dense" in out


def test_json_has_every_field_and_source(capsys: pytest.CaptureFixture[str]) -> None:
    rows = run_json(capsys)
    assert len(rows) >= 30
    for row in rows:
        assert set(row) == FIELDS, row["name"]
        assert row["sources"] and row["embodied_source"] and row["avg_power_source"], row["name"]
        assert isinstance(row["aliases"], list) and isinstance(row["peak_tflops"], dict)
    h100 = next(r for r in rows if r["name"] == "H100-SXM")
    assert h100["peak_tflops"]["bf16"] == pytest.approx(989.5) and h100["tdp_w"] == 700
    assert "H100-SXM5" in h100["aliases"]
    v5e = next(r for r in rows if r["name"] == "TPUv5e")
    assert v5e["tdp_w"] is None and "no chip power" in v5e["sources"]


@pytest.mark.parametrize("kind", ["gpu", "tpu", "cpu"])
def test_kind_filter(capsys: pytest.CaptureFixture[str], kind: str) -> None:
    rows = run_json(capsys, "--kind", kind)
    assert rows and all(r["kind"] == kind for r in rows)
    assert main(["hardware", "list", "--kind", kind]) == 0
    assert rows[0]["name"] in capsys.readouterr().out


def test_accelerator_kind_is_accepted_and_may_be_empty(capsys: pytest.CaptureFixture[str]) -> None:
    assert run_json(capsys, "--kind", "accelerator") == []


def test_bad_input_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["hardware", "list", "--kind", "fpga"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "invalid choice: 'fpga'" in err and len(err.strip().splitlines()) == 1
    assert main(["hardware"]) == 2  # no subcommand: usage on stderr
    assert "list" in capsys.readouterr().err
