"""``wattwise schedule plan|evaluate``, in-process, on synthetic traces and the static table (no network)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.schedule.conftest import synthetic, write_trace
from wattwise.cli.main import main
from wattwise.schedule.evaluate import select_weekly
from wattwise.schedule.replay import Outcome


def run_json(capsys: pytest.CaptureFixture[str], *args: str) -> dict[str, Any]:
    assert main(["schedule", *args, "--json"]) == 0
    data: dict[str, Any] = json.loads(capsys.readouterr().out)
    return data


def error_of(capsys: pytest.CaptureFixture[str], *args: str) -> str:
    try:
        code = main(["schedule", *args])
    except SystemExit as exc:  # argparse's own errors
        code = int(exc.code or 0)
    assert code == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "Traceback" not in err
    return err


def test_evaluate_reports_oracle_forecaster_and_baseline(capsys: pytest.CaptureFixture[str], year_trace: Path) -> None:
    data = run_json(
        capsys,
        "evaluate",
        "--trace",
        str(year_trace),
        "--duration",
        "4h",
        "--window",
        "24h",
        "--semantics",
        "start",
        "--forecaster",
        "auto",
    )
    for key in ("oracle_savings_pct", "savings_pct", "baseline_savings_pct", "forecaster", "semantics", "column"):
        assert key in data
    assert data["forecaster"] == "auto" and data["semantics"] == "start" and data["column"] == "intensity_g_per_kwh"
    assert data["year"] == 2022 and data["submissions"] > 8000
    oracle, got, base = (float(data[k]) for k in ("oracle_savings_pct", "savings_pct", "baseline_savings_pct"))
    assert 0 < base < oracle and 0 < got < oracle
    assert got > base  # the synthetic grid's weather persists: following it beats the weekly mean
    assert sum(data["chosen"].values()) >= 52
    assert (
        main(
            [
                "schedule",
                "evaluate",
                "--trace",
                str(year_trace),
                "--duration",
                "4h",
                "--window",
                "24h",
                "--forecaster",
                "m7",
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "oracle (hindsight)" in out and "baseline m7" in out


def test_deadline_semantics_saves_less_than_start(capsys: pytest.CaptureFixture[str], year_trace: Path) -> None:
    start = run_json(
        capsys, "evaluate", "--trace", str(year_trace), "--duration", "8h", "--window", "12h", "--forecaster", "m7"
    )
    deadline = run_json(
        capsys,
        "evaluate",
        "--trace",
        str(year_trace),
        "--duration",
        "8h",
        "--window",
        "12h",
        "--semantics",
        "deadline",
        "--forecaster",
        "m7",
    )
    assert float(deadline["oracle_savings_pct"]) < float(start["oracle_savings_pct"])


def test_auto_chooses_only_from_closed_windows() -> None:
    n = 24 * 7 * 10
    now = np.ones(n)
    good_future = Outcome(now, np.where(np.arange(n) >= 24 * 7 * 6, 0.1, 1.0), now * 0.1, np.ones(n, dtype=bool))
    steady = Outcome(now, np.full(n, 0.9), now * 0.1, np.ones(n, dtype=bool))
    _, used = select_weekly({"m7": steady, "other": good_future}, 24 * 7 * 5, n, 28)
    # "other" is better only from week 6 on: it may be chosen only once those submissions have closed
    assert used[0] == "m7"
    assert used[1] == "m7"  # week 6 starts: nothing of week 6 has closed yet
    assert used[2] == "other"


def test_plan_on_a_trace_with_hindsight(capsys: pytest.CaptureFixture[str], year_trace: Path) -> None:
    data = run_json(
        capsys,
        "plan",
        "--trace",
        str(year_trace),
        "--at",
        "2022-03-01T06:00Z",
        "--duration",
        "4h",
        "--window",
        "24h",
        "--energy-kwh",
        "10",
    )
    assert data["semantics"] == "start" and data["submitted_at"] == "2022-03-01T06:00:00+00:00"
    region = data["regions"][0]
    assert region["forecast"]["issued_at"] == "2022-03-01T06:00:00+00:00"
    assert "forecaster" in region["forecast"]["method"] and region["forecast"]["horizon_h"] == 28
    assert "actual_savings_pct" in region
    start = datetime.fromisoformat(region["start_at"])
    assert datetime(2022, 3, 1, 6, tzinfo=UTC) <= start <= datetime(2022, 3, 2, 6, tzinfo=UTC)
    assert data["best"]["co2e_g"] == pytest.approx(10 * region["expected_g_per_kwh"])
    assert (
        main(
            [
                "schedule",
                "plan",
                "--trace",
                str(year_trace),
                "--at",
                "2022-03-01T06:00Z",
                "--duration",
                "3h",
                "--window",
                "12h",
                "--semantics",
                "deadline",
                "--interruptible",
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "deadline: must finish within WINDOW" in out and "in hindsight" in out


@pytest.mark.parametrize("interruptible", [False, True])
def test_plan_page_shows_the_outlook_and_the_alternatives(
    capsys: pytest.CaptureFixture[str], year_trace: Path, tmp_path: Path, interruptible: bool
) -> None:
    pytest.importorskip("jinja2")
    page = tmp_path / "plan.html"
    argv = ["schedule", "plan", "--trace", str(year_trace), "--at", "2022-03-01T06:00Z", "--duration", "4h"]
    argv += ["--window", "24h", "--html", str(page), *(["--interruptible"] if interruptible else [])]
    assert main(argv) == 0
    assert "plan page written" in capsys.readouterr().out
    html = page.read_text()
    assert 'id="chart-outlook"' in html and "what happened" in html and "chosen:" in html
    assert ('id="chart-starts"' in html) is not interruptible  # every start hour, for a job that runs in one piece
    assert "2022-03-01 06:00 UTC" in html


def test_plan_on_the_annual_table_warns_there_is_nothing_to_shift(capsys: pytest.CaptureFixture[str]) -> None:
    data = run_json(capsys, "plan", "--region", "DE", "--duration", "4h", "--window", "12h")
    region = data["regions"][0]
    assert "packaged annual average" in region["forecast"]["warning"]
    assert region["expected_savings_pct"] == 0.0
    data = run_json(capsys, "plan", "--regions", "PL,FR", "--duration", "1h", "--window", "2h")
    assert data["home_region"] == "PL" and data["best"]["region"] == "FR"
    assert float(data["best"]["savings_pct"]) > 50


def test_bad_input_is_one_line_each(capsys: pytest.CaptureFixture[str], tmp_path: Path, year_trace: Path) -> None:
    short = write_trace(tmp_path / "short.csv", synthetic(20), datetime(2022, 1, 1, tzinfo=UTC))
    assert "too short" in error_of(capsys, "evaluate", "--trace", str(short), "--duration", "4h", "--window", "24h")
    assert "shorter than the job" in error_of(
        capsys, "plan", "--region", "DE", "--duration", "4h", "--window", "2h", "--semantics", "deadline"
    )
    assert "unknown region" in error_of(capsys, "plan", "--region", "XX", "--duration", "4h", "--window", "24h")
    assert "unknown forecaster" in error_of(
        capsys, "evaluate", "--trace", str(year_trace), "--duration", "4h", "--window", "24h", "--forecaster", "x"
    )
    assert "span like 4h" in error_of(capsys, "plan", "--region", "DE", "--duration", "soon", "--window", "24h")
    assert "must fall inside it, after its first 7 days" in error_of(
        capsys, "plan", "--trace", str(year_trace), "--at", "2030-01-01T00:00Z", "--duration", "4h", "--window", "24h"
    )
    assert "not an ISO 8601 time" in error_of(
        capsys, "plan", "--trace", str(year_trace), "--at", "tomorrow", "--duration", "4h", "--window", "24h"
    )
    assert "holds less than a week of 1999" in error_of(
        capsys, "evaluate", "--trace", str(year_trace), "--duration", "4h", "--window", "24h", "--year", "1999"
    )


def test_intensity_forecast_with_a_model_and_backtest(capsys: pytest.CaptureFixture[str], year_trace: Path) -> None:
    assert (
        main(
            [
                "intensity",
                "forecast",
                "--trace",
                str(year_trace),
                "--model",
                "anomaly",
                "--at",
                "2022-02-01T00:00Z",
                "--hours",
                "12",
                "--json",
            ]
        )
        == 0
    )
    data = json.loads(capsys.readouterr().out)
    assert len(data["points"]) == 12 and all(p["forecast"] for p in data["points"])
    assert data["points"][0]["start"] == "2022-02-01T00:00:00+00:00" and "forecaster anomaly" in data["source"]
    assert main(["intensity", "backtest", "--trace", str(year_trace), "--model", "p24", "--json"]) == 0
    back = json.loads(capsys.readouterr().out)
    assert back["forecaster"] == "p24" and back["mape_pct"] > 0 and "savings_pct" in back
    assert main(["intensity", "forecast", "--region", "DE", "--model", "m7"]) == 2
    assert "no history to forecast from" in capsys.readouterr().err
    assert main(["intensity", "forecast", "--region", "DE", "--at", "2022-01-01"]) == 2
    assert "--at goes with --model" in capsys.readouterr().err


def test_review_findings_are_one_line_each(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, year_trace: Path
) -> None:
    assert "--regions names no region" in error_of(
        capsys, "plan", "--regions", ",", "--duration", "4h", "--window", "24h"
    )
    assert "unknown forecaster 'bogus'" in error_of(
        capsys, "plan", "--region", "DE", "--duration", "4h", "--window", "24h", "--forecaster", "bogus"
    )
    infeasible = tmp_path / "infeasible.yaml"
    infeasible.write_text("capacity: 2\njobs:\n  - {name: a, duration: 5h, deadline: 3h, power_kw: 1}\n")
    assert "job 'a' cannot run" in error_of(
        capsys, "batch", str(infeasible), "--trace", str(year_trace), "--at", "2022-03-01T00:00Z"
    )
    tight = tmp_path / "tight.yaml"
    tight.write_text(
        "capacity: 1\njobs:\n  - {name: a, duration: 90m, deadline: 3.5h, power_kw: 0.5, release: 1h}\n"
        "  - {name: b, duration: 2h, deadline: 4h, power_kw: 0.5}\n"
    )
    assert (
        main(
            [
                "schedule",
                "batch",
                str(tight),
                "--trace",
                str(year_trace),
                "--at",
                "2022-03-01T00:00Z",
                "--method",
                "greedy",
                "--json",
            ]
        )
        == 0
    )
    starts = {j["name"]: j["start_offset_h"] for j in json.loads(capsys.readouterr().out)["jobs"]}
    assert starts == {"a": 2, "b": 0}
    assert "span like 4h" in error_of(capsys, "plan", "--region", "DE", "--duration", "-3h", "--window", "24h")
    assert "energy_kwh" in error_of(
        capsys, "plan", "--region", "DE", "--duration", "4h", "--window", "24h", "--energy-kwh", "-1"
    )


def test_an_unreachable_ray_cluster_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("ray")
    args = ["--ray-address", "127.0.0.1:1", "--deadline", "3h", "--duration", "1h", "--region", "DE", "--", "true"]
    assert "could not reach a Ray cluster" in error_of(capsys, "submit", "--executor", "ray", *args)


def test_direct_emission_factor_needs_a_two_column_trace(capsys: pytest.CaptureFixture[str], year_trace: Path) -> None:
    assert "has one intensity column" in error_of(
        capsys,
        "evaluate",
        "--trace",
        str(year_trace),
        "--duration",
        "4h",
        "--window",
        "24h",
        "--emission-factor",
        "direct",
    )
