"""``wattwise runs`` and ``wattwise doctor``, in-process through ``main()``."""

from __future__ import annotations

import csv
import io
import json
import re
import time
from pathlib import Path

import pytest

from tests.fakes.power import ConstantPowerSource, FakeHost
from wattwise.cli.main import main
from wattwise.config import Settings
from wattwise.measure.tracker import Tracker


def store_runs(settings: Settings, n: int) -> list[str]:
    ids = []
    for i in range(n):
        source = ConstantPowerSource({"gpu:0": 100.0, "cpu:package-0": 10.0 * (i + 1)})
        t = Tracker(f"job-{i}", settings=settings, sources=[source], host=FakeHost())
        with t, t.window("phase"):
            time.sleep(0.01)
        assert t.result is not None
        ids.append(t.result.id)
    return ids


def test_list_show_export(settings: Settings, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    ids = store_runs(settings, 3)
    assert main(["runs", "list", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [r["id"] for r in listed] == ids[::-1]

    assert main(["runs", "list"]) == 0
    text = capsys.readouterr().out
    assert all(i in text for i in ids)

    assert main(["runs", "show", ids[0][:-2], "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["id"] == ids[0] and shown["windows"][0]["name"] == "phase"

    assert main(["runs", "show", "latest"]) == 0
    text = capsys.readouterr().out
    assert ids[-1] in text and "gpu:0" in text and "measured" in text

    out_file = tmp_path / "runs.csv"
    assert main(["runs", "export", "--format", "csv", "--output", str(out_file)]) == 0
    with out_file.open() as f:
        rows = list(csv.DictReader(f))
    assert {r["id"] for r in rows} == set(ids)
    assert all(float(r["energy_j"]) > 0 for r in rows)

    assert main(["runs", "export", "--format", "json"]) == 0
    exported = json.loads(capsys.readouterr().out)
    assert len(exported) == 3

    assert main(["runs", "export", "--format", "csv", "--samples", ids[1]]) == 0
    samples = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert samples and {s["channel"] for s in samples} == {"gpu:0", "cpu:package-0"}


def test_show_unknown_run_is_one_line(settings: Settings, capsys: pytest.CaptureFixture[str]) -> None:
    store_runs(settings, 1)
    assert main(["runs", "show", "zzzz-nope"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("wattwise: error:") and err.strip().count("\n") == 0


def test_empty_store_says_how_to_start(settings: Settings, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["runs", "list"]) == 0
    assert "no runs stored yet" in capsys.readouterr().out


def test_bad_flags_are_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["runs", "export", "--format", "xml"])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert "invalid choice" in err and err.strip().count("\n") == 0
    assert main(["runs", "list", "--limit", "0"]) == 2


def test_doctor_reports_every_source_with_fixes(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("WATTWISE_RAPL_ROOT", str(tmp_path / "no-powercap"))
    assert main(["doctor", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    by_source = {s["source"]: s for s in report["sources"]}
    assert set(by_source) >= {"nvml", "rapl", "cpu-model", "memory-model", "network-model"}
    assert by_source["rapl"]["available"] is False and by_source["rapl"]["fix"]
    assert by_source["cpu-model"]["available"] is True
    assert report["grid"]["region"] == "WORLD" and report["store"]["ok"] is True
    assert main(["doctor"]) == 0
    assert "rapl" in capsys.readouterr().out


def test_doctor_regions(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["doctor", "--regions"]) == 0
    assert "DE" in capsys.readouterr().out.split()


def test_show_gives_energy_per_token_and_per_request(settings: Settings, capsys: pytest.CaptureFixture[str]) -> None:
    t = Tracker("serve", settings=settings, sources=[ConstantPowerSource({"cpu": 50.0})], host=FakeHost())
    with t:
        t.count(tokens=1000, requests=8, prompt_tokens=300)
        time.sleep(0.05)
    run = t.result
    assert run is not None
    assert main(["runs", "show", "latest", "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["work"] == {"output_tokens": 1000.0, "requests": 8.0, "prompt_tokens": 300.0}
    assert shown["per_work"]["j_per_output_token"] == run.energy_j / 1000
    assert shown["per_work"]["wh_per_request"] == run.energy_j / 8 / 3600
    assert shown["per_work"]["source"] == "measured"
    assert main(["runs", "show", "latest"]) == 0
    text = capsys.readouterr().out
    from wattwise.report.numbers import energy_j

    assert "1,000 output tokens, 8 requests, 300 prompt tokens" in text
    for topic, joules in (("per output token", run.energy_j / 1000), ("per request", run.energy_j / 8)):
        assert re.search(rf"{topic} +{re.escape(energy_j(joules))}  \(measured\)", text), text
    assert re.search(
        rf"per 1,000 requests +{re.escape(energy_j(run.energy_j / 8 * 1000))}, .* CO2e  \(measured\)", text
    )
