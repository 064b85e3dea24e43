"""``wattwise intensity``, in-process; no network (the static table, a trace, offline providers)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from wattwise.cli.main import main

TRACE = Path(__file__).parent / "data" / "traces"


def run_json(capsys: pytest.CaptureFixture[str], *args: str) -> dict[str, object]:
    assert main(["intensity", *args, "--json"]) == 0
    data: dict[str, object] = json.loads(capsys.readouterr().out)
    return data


def test_now_from_the_static_table_says_so(capsys: pytest.CaptureFixture[str]) -> None:
    data = run_json(capsys, "now", "--region", "FR")
    assert data["region"] == "FR" and data["signal"] == "average" and data["static"] is True
    assert data["fallback"] is False and 0 < float(data["intensity_g_per_kwh"]) < 200  # type: ignore[arg-type]
    assert main(["intensity", "now", "--region", "FR"]) == 0
    assert "static annual average" in capsys.readouterr().out


def test_history_from_a_trace(capsys: pytest.CaptureFixture[str]) -> None:
    trace = next(TRACE.glob("*.csv"))
    series = run_json(capsys, "history", "--trace", str(trace), "--from", "2000-01-01", "--to", "2100-01-01")
    assert series["provider"] == "csv"
    low, mid, high = (float(series[k]) for k in ("min_g_per_kwh", "intensity_g_per_kwh", "max_g_per_kwh"))  # type: ignore[arg-type]
    assert low <= mid <= high
    assert len(series["points"]) > 1  # type: ignore[arg-type]


def test_offline_live_provider_falls_back_visibly(capsys: pytest.CaptureFixture[str]) -> None:
    data = run_json(capsys, "forecast", "--provider", "electricitymaps", "--region", "DE", "--offline")
    assert data["fallback"] is True and data["provider"] == "static"
    assert "offline" in str(data["note"])


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["now", "--region", "Narnia"], "unknown region 'Narnia'"),
        (["history", "--from", "yesterday", "--to", "2024-01-01"], "--from 'yesterday' is not an ISO 8601 time"),
        (["history", "--from", "2024-01-02", "--to", "2024-01-01"], "must be after --from"),
        (["forecast", "--hours", "1000"], "--hours must be above 0 and at most 240"),
        (["now", "--trace", "/no/such/file.csv"], "cannot read the intensity trace"),
    ],
)
def test_bad_input_is_one_line(capsys: pytest.CaptureFixture[str], args: list[str], message: str) -> None:
    assert main(["intensity", *args]) == 2
    err = capsys.readouterr().err
    assert message in err and err.strip().count("\n") == 0
