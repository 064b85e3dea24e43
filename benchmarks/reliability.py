"""Faults injected into real runs, and what was kept: runs and samples expected, found and lost; tracebacks seen.

Each fault runs in fresh processes against a store of its own (a temporary WATTWISE_HOME): kill -9 of ``wattwise
run`` and of a tracked Python script, SIGTERM/SIGINT/SIGHUP to both, eight concurrent writers, a power source that
vanishes mid-run, a provider that answers garbage mid-run, a store on a read-only file, a simulated 24-hour run,
and the coverage-guided fuzzers for a bounded time. Target: nothing lost beyond one flush interval, no traceback.

    python benchmarks/reliability.py [--flush 5] [--fuzz-seconds 60] [--hours 24]

"lost" for a killed or signalled run is the time between the fault and the last sample the store holds (a crash
may lose up to one flush interval; a signal that is handled loses nothing); "samples exp." there is the run's
duration × 10 Hz × channels, an upper bound (a busy program delays the sampler). "tracebacks" counts those that
pass through wattwise's code: a program's own KeyboardInterrupt traceback after SIGINT is its output, not ours.
Needs the test extra (the fuzzers need atheris; without it that row says so).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import tracemalloc
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the tests' fakes: hosts and sources on a simulated clock

from wattwise.store import open_store  # noqa: E402

TRACKED = """
import sys, time, wattwise
flush = float(sys.argv[1])
with wattwise.track("api", interval_s=0.1, flush_s=flush):
    print("ready", flush=True)
    end = time.time() + 60
    while time.time() < end:
        sum(range(5000))
"""


@dataclass
class Row:
    fault: str
    runs_expected: int
    runs_found: int
    samples_expected: str
    samples_found: str
    lost: str
    tracebacks: int
    note: str = ""
    errors: list[str] = field(default_factory=list)


def wattwise_tracebacks(stderr: str) -> int:
    """Tracebacks that pass through wattwise's code. A tracked program's own KeyboardInterrupt traceback (Python
    prints one when nothing catches Ctrl-C) is the program's output, not a wattwise failure."""
    blocks = stderr.split("Traceback (most recent call last):")[1:]
    return sum(1 for block in blocks if "/wattwise/" in block.split("\n\n")[0])


def env_for(home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("WATTWISE_")}
    env.update(WATTWISE_HOME=str(home), WATTWISE_GPU="0", WATTWISE_INTERVAL_S="0.1", **extra)
    return env


def stored(home: Path) -> list[tuple[object, list[float]]]:
    """(run, sample times) of every run in the store, read-only."""
    db = home / "wattwise.db"
    if not db.exists():
        return []
    with open_store(str(db), read_only=True) as store:
        return [(run, [s.t_s for s in store.iter_samples(run.id)]) for run in store.list_runs(limit=None)]


def signalled(kind: str, signum: int, flush: float, after_s: float = 3.0) -> Row:
    """Start a run (CLI or API), send ``signum`` after ``after_s``, then read what the store kept."""
    name = f"{'kill -9' if signum == signal.SIGKILL else signal.Signals(signum).name} to {kind}"
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp) / "home"
        err_path = Path(tmp) / "stderr"
        script = Path(tmp) / "tracked.py"
        script.write_text(TRACKED)
        if kind == "CLI":
            argv = [sys.executable, "-m", "wattwise", "run", "--quiet", "--kill-grace", "2", "--"]
            argv += [sys.executable, "-c", "import time; print('ready', flush=True); time.sleep(60)"]
        else:
            argv = [sys.executable, str(script), f"{flush:g}"]
        with err_path.open("wb") as err:
            proc = subprocess.Popen(
                argv, env=env_for(home, WATTWISE_FLUSH_S=f"{flush:g}"), stdout=subprocess.PIPE, stderr=err
            )
            assert proc.stdout is not None
            proc.stdout.readline()
            started = time.monotonic()
            time.sleep(after_s)
            elapsed = time.monotonic() - started
            proc.send_signal(signum)
            proc.wait(timeout=60)
            proc.stdout.close()
        time.sleep(0.5)
        stderr = err_path.read_text(errors="replace")
        found = stored(home)
        row = Row(name, 1, len(found), "", "", "", wattwise_tracebacks(stderr))
        if found:
            run, times = found[0]
            last = max(times) if times else 0.0
            expected = int(run.duration_s / 0.1) * len(run.components)  # type: ignore[attr-defined]
            row.samples_expected = f"~{expected}"
            row.samples_found = str(len(times))
            row.lost = f"{max(0.0, elapsed - last):.2f} s"
            row.note = f"{run.status}: {run.error or (run.notes[-1] if run.notes else '')}"[:70]  # type: ignore[attr-defined]
        return row


def concurrent_writers(n: int = 8, seconds: float = 3.0) -> Row:
    code = f"""
import json, sys, time
sys.path.insert(0, {str(ROOT)!r})
from tests.fakes.power import ConstantPowerSource, FakeHost
from wattwise.config import Settings
from wattwise.measure.tracker import Tracker
s = Settings.load({{"gpu": False, "interval_s": 0.01, "flush_s": 0.02, "rapl_root": "/nonexistent"}})
with Tracker("w", settings=s, sources=[ConstantPowerSource({{"gpu:0": 100.0, "cpu": 20.0}})], host=FakeHost()) as t:
    time.sleep({seconds})
print(json.dumps({{"id": t.result.id, "taken": t.samples_taken}}))
"""
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp) / "home"
        procs = [
            subprocess.Popen(
                [sys.executable, "-c", code],
                env=env_for(home),
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for _ in range(n)
        ]
        outs = [p.communicate(timeout=120) for p in procs]
        reports = [json.loads(out) for out, _ in outs if out.strip()]
        errors = "".join(err for _, err in outs)
        found = {run.id: times for run, times in stored(home)}  # type: ignore[attr-defined]
        expected = sum(r["taken"] for r in reports)
        got = sum(len(found.get(r["id"], [])) for r in reports)
        locked = errors.count("locked")
        note = f"{locked} 'database is locked' seen" if locked else "no lock error reached the user"
        return Row(
            f"{n} concurrent writers",
            n,
            len(found),
            str(expected),
            str(got),
            str(expected - got),
            errors.count("Traceback"),
            note,
        )


def source_vanishes() -> Row:
    from tests.fakes.power import ConstantPowerSource, FakeHost

    from wattwise.config import Settings
    from wattwise.measure.tracker import Tracker

    with tempfile.TemporaryDirectory() as tmp:
        os.environ["WATTWISE_HOME"] = str(Path(tmp) / "home")
        settings = Settings.load({"gpu": False, "interval_s": 0.05, "flush_s": 0.2, "rapl_root": "/nonexistent"})
        gpu = ConstantPowerSource({"gpu:0": 100.0}, name="nvml", fail_after_reads=10)
        cpu = ConstantPowerSource({"cpu": 10.0}, name="cpu-model")
        with Tracker("vanish", settings=settings, sources=[gpu, cpu], host=FakeHost()) as t:
            time.sleep(1.5)
        run = t.result
        assert run is not None
        note = next((n for n in run.notes if "stopped reporting" in n), "no note!")
        found = stored(Path(tmp) / "home")
        return Row(
            "GPU vanishes mid-run",
            1,
            len(found),
            str(t.samples_taken),
            str(t.samples_stored),
            str(t.samples_taken - t.samples_stored),
            0,
            note[:70],
        )


def provider_garbage() -> Row:
    from tests.carbon.providers.replay import ReplayServer, Reply
    from tests.fakes.power import ConstantPowerSource, FakeHost

    from wattwise.carbon.http import HttpClient
    from wattwise.carbon.providers import ElectricityMapsProvider
    from wattwise.carbon.service import IntensityService
    from wattwise.config import Settings
    from wattwise.measure.emissions import CarbonPlan
    from wattwise.measure.tracker import Tracker

    with tempfile.TemporaryDirectory() as tmp:
        os.environ["WATTWISE_HOME"] = str(Path(tmp) / "home")
        server = ReplayServer("electricitymaps")
        server.script("/v3/carbon-intensity/latest", Reply(file="latest.json"), *[Reply(text="<html>502</html>")] * 20)
        server.serve("/v3/carbon-intensity/forecast", "forecast.json")
        s = Settings.load(
            {
                "gpu": False,
                "interval_s": 0.05,
                "flush_s": 0.2,
                "rapl_root": "/nonexistent",
                "provider": "electricitymaps",
                "region": "DE",
                "electricitymaps_api_key": "k3y-123456",
            }
        )
        ticks = iter(range(10**6))
        client = HttpClient(
            s,
            name="electricitymaps",
            label="Electricity Maps",
            clock=lambda: time.time() + 600 * next(ticks),
            sleep=lambda _: None,
        )
        provider = ElectricityMapsProvider(s, base_url=server.base_url, client=client)
        plan = CarbonPlan(s, service=IntensityService(s, provider=provider), refresh_s=0.2)
        with Tracker(
            "garbage", settings=s, sources=[ConstantPowerSource({"gpu:0": 10.0})], host=FakeHost(), carbon=plan
        ) as t:
            time.sleep(1.0)
        server.close()
        run = t.result
        assert run is not None
        note = next((n for n in run.notes if n.startswith("intensity refresh")), "no note!")
        return Row(
            "provider answers garbage mid-run",
            1,
            len(stored(Path(tmp) / "home")),
            str(t.samples_taken),
            str(t.samples_stored),
            str(t.samples_taken - t.samples_stored),
            0,
            note[:70],
        )


def read_only_store() -> Row:
    from tests.store.builders import make_run

    from wattwise.store import SQLiteStore

    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp) / "home"
        with SQLiteStore(home / "wattwise.db") as store:
            store.save(make_run("ro000001"))
        mount = Path(tmp) / "ro"
        mount.mkdir()
        ok = (
            subprocess.run(["mount", "--bind", str(home), str(mount)], capture_output=True, check=False).returncode == 0
        )
        ok = (
            ok
            and subprocess.run(
                ["mount", "-o", "remount,bind,ro", str(mount)], capture_output=True, check=False
            ).returncode
            == 0
        )
        target = mount if ok else home
        if not ok:
            (home / "wattwise.db").chmod(0o444)
            home.chmod(0o555)
        try:
            out = subprocess.run(
                [sys.executable, "-m", "wattwise", "runs", "list"],
                env=env_for(target),
                capture_output=True,
                text=True,
                check=False,
            )
        finally:
            if ok:
                subprocess.run(["umount", str(mount)], check=False)
            home.chmod(0o755)
        how = "read-only bind mount" if ok else "read-only file and directory (no mount here)"
        listed = "ro000001" in out.stdout
        return Row(
            f"store on a {how}",
            1,
            int(listed),
            "-",
            "-",
            "0" if listed else "1",
            out.stderr.count("Traceback"),
            f"exit {out.returncode}; {out.stderr.strip()[:50]}",
        )


def simulated_day(hours: float) -> Row:
    from tests.measure.test_faults import SimulatedHost, SimulatedPower

    from wattwise.config import Settings
    from wattwise.measure.tracker import Tracker

    with tempfile.TemporaryDirectory() as tmp:
        os.environ["WATTWISE_HOME"] = str(Path(tmp) / "home")
        settings = Settings.load({"gpu": False, "interval_s": 1.0, "flush_s": 5.0, "rapl_root": "/nonexistent"})
        host = SimulatedHost(step_s=1.0)
        t = Tracker(
            "day", settings=settings, sources=[SimulatedPower(300.0)], host=host, pace=lambda stop, s: stop.is_set()
        )
        tracemalloc.start()
        marks = {}
        started = time.monotonic()
        t.start()
        for h in (1, hours / 2, hours):
            while host.t < 1000.0 + h * 3600:
                time.sleep(0.01)
            marks[h] = tracemalloc.get_traced_memory()[0]
        run = t.stop()
        tracemalloc.stop()
        wall = time.monotonic() - started
        db = Path(tmp) / "home" / "wattwise.db"
        size = db.stat().st_size + sum(p.stat().st_size for p in db.parent.glob("wattwise.db-*"))
        kept = t.samples_stored
        grow = (marks[hours] - marks[1]) / 1e6
        note = (
            f"{run.duration_s / 3600:.1f} h in {wall:.0f} s; memory +{grow:.2f} MB after hour 1; "
            f"{size / kept:.0f} B/sample"
        )
        return Row(
            f"{hours:g} h run, 1 s sampling (simulated)",
            1,
            1,
            str(int(run.duration_s)),
            str(kept),
            "0 (thinned by policy)",
            0,
            note,
        )


def fuzz(seconds: int) -> list[Row]:
    import importlib.util

    if importlib.util.find_spec("atheris") is None:
        return [Row("fuzzers", 0, 0, "-", "-", "-", 0, "atheris not installed: skipped")]
    rows = []
    for target in ("trace", "config", "record"):
        with tempfile.TemporaryDirectory() as tmp:
            corpus = Path(tmp) / "corpus"
            subprocess.run(["cp", "-r", str(ROOT / "tests" / "fuzz" / "corpus" / target), str(corpus)], check=True)
            done = subprocess.run(
                [
                    sys.executable,
                    str(ROOT / "tests" / "fuzz" / f"fuzz_{target}.py"),
                    f"-max_total_time={seconds}",
                    "-rss_limit_mb=2048",
                    f"-artifact_prefix={tmp}/",
                    str(corpus),
                ],
                capture_output=True,
                text=True,
                cwd=tmp,
                env=env_for(Path(tmp) / "home"),
                check=False,
            )
            crashes = [p for p in Path(tmp).iterdir() if p.name.startswith(("crash-", "oom-", "timeout-"))]
            runs = next((line for line in done.stderr.splitlines() if line.startswith("Done ")), "no summary")
            rows.append(
                Row(
                    f"fuzz {target} ({seconds} s)",
                    0,
                    0,
                    "-",
                    "-",
                    "-",
                    done.stderr.count("Traceback"),
                    f"{runs}; {len(crashes)} crash(es); exit {done.returncode}",
                )
            )
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--flush", type=float, default=5.0, help="flush interval of the killed runs (s; the default)")
    parser.add_argument("--fuzz-seconds", type=int, default=60, help="per fuzzer")
    parser.add_argument("--hours", type=float, default=24.0, help="length of the simulated run")
    args = parser.parse_args()
    rows: list[Row] = []
    for kind in ("CLI", "API"):
        for signum in (signal.SIGKILL, signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            rows.append(signalled(kind, signum, args.flush, after_s=args.flush * 1.6 + 1))
            print(f"  {rows[-1].fault}: done", file=sys.stderr)
    rows.append(concurrent_writers())
    rows.append(source_vanishes())
    rows.append(provider_garbage())
    rows.append(read_only_store())
    rows.append(simulated_day(args.hours))
    rows.extend(fuzz(args.fuzz_seconds))
    header = (
        "fault",
        "runs exp.",
        "runs found",
        "samples exp.",
        "samples found",
        "lost",
        "tracebacks",
        "what the run says",
    )
    table = [header] + [
        (
            r.fault,
            str(r.runs_expected),
            str(r.runs_found),
            r.samples_expected,
            r.samples_found,
            r.lost,
            str(r.tracebacks),
            r.note,
        )
        for r in rows
    ]
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    print(f"\nflush interval of the killed runs: {args.flush:g} s (kill -9 may lose up to that much)\n")
    for i, row in enumerate(table):
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
        if i == 0:
            print("  ".join("-" * w for w in widths))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
