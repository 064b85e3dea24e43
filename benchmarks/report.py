"""The HTML report of a long run: how long ``wattwise report ID --html F`` takes and how big the page is.

Targets: the page of a 1-hour run sampled at 1 Hz per component renders in under 2 s and is under 5 MB (decimal
megabytes); the same targets are checked on a 24-hour run. For each run length the script builds, in a temporary
directory, a SQLite store holding one realistic run: ``--channels`` power channels (default gpu:0, gpu:1,
cpu:package-0, memory) with warm-up, 60 training epochs (each ending in an evaluation phase), data-loader dips,
noise and a few spikes; samples kept the way the tracker keeps them (``wattwise.measure.samples.resolution_s``:
every 1 s sample in the first hour, one per 10 s up to 24 h, one per 60 s after), so a 1-hour run stores 3,600
rows per channel and a 24-hour one 3,599 + 8,280; the 60 ``epoch-N`` windows with energy per channel, the
epoch-mean prediction (60 epochs planned), and an hourly intensity series with time-resolved emissions.

Then, ``--repeats`` times each (median and max printed), side by side in one process:

(a) read: open the store read-only, get the run, stream its samples and build the view (``build_run_view``);
(b) render: ``run_page(view, pages=Pages())`` with a fresh template environment each time, as the CLI does
    (templates compiled every time);
(c) report: ``wattwise.cli.main.main(["report", ID, "--html", F, "--db", DB])`` in this process (imports
    already warm), end to end: open, read, view, render, write;
(d) once, ``.venv/bin/wattwise report ID --html F --db DB`` as a subprocess: (c) plus interpreter start-up and
    imports, what a user waits for.

It also counts the raw samples against the points the page draws (its ``data-points`` attributes: the power
chart's, and every chart's), and prints the machine. No GPU is needed: the run is synthetic.

    .venv/bin/python benchmarks/report.py [--hours 1 24] [--channels 4] [--repeats 5] [--keep DIR]

Exits 1 when a row misses its target (every timing row: under 2 s; the page: under 5 MB), else 0.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import itertools
import math
import os
import platform
import re
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np

from wattwise import __version__
from wattwise.cli.main import main as cli_main
from wattwise.measure.prediction import predict
from wattwise.measure.samples import resolution_s
from wattwise.records import ComponentEnergy, IntensityStep, Run, Sample, WindowRecord
from wattwise.report.build import run_page
from wattwise.report.html import Pages
from wattwise.report.run_view import DISPLAY_POINTS, RunView, build_run_view
from wattwise.store import open_store
from wattwise.store.base import this_host
from wattwise.units import J_PER_KWH

RENDER_TARGET_S = 2.0
SIZE_TARGET_B = 5_000_000  # 5 MB, decimal
EPOCHS = 60
START = datetime(2025, 3, 1, 12, 17, 30, tzinfo=UTC)  # off the hour: the intensity steps are cut at both ends
PUE = 1.2
APPEND_ROWS = 4_000  # rows per append_samples call, as the tracker's writer flushes in batches


# --- the synthetic run -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Channel:
    name: str
    component: str
    share: float  # the process tree's share of the channel (attribution "process")
    source: str
    method: str
    detail: str


def channels(n: int) -> list[Channel]:
    """``n`` channels: GPUs first, then the CPU package and memory (1: one GPU; 2: a GPU and the CPU)."""
    cpu = Channel("cpu:package-0", "cpu", 0.72, "measured", "rapl", "Intel Xeon (RAPL package-0)")
    memory = Channel("memory", "memory", 0.65, "estimated", "dram-per-gb-model", "512 GB DDR5, 0.375 W/GB")
    gpus = max(1, n - 2)
    out = [
        Channel(f"gpu:{i}", "gpu", 0.98, "measured", "nvml-energy-counter", f"NVIDIA H100 80GB HBM3 #{i}")
        for i in range(gpus)
    ]
    return [*out, cpu, memory][:n]


def epoch_bounds(total_s: int, rng: np.random.Generator) -> list[tuple[int, int]]:
    """[start, end) of each epoch in whole seconds: after a warm-up, before a final checkpoint save; the first
    epoch is longer (compilation, cache filling), the others vary by a few percent."""
    warmup = min(90, max(20, total_s // 40))
    tail = min(60, max(5, total_s // 300))
    weights = 1.0 + rng.normal(0.0, 0.02, EPOCHS)
    weights[0] = 1.25
    edges = warmup + np.concatenate(([0.0], np.cumsum(weights) / weights.sum())) * (total_s - warmup - tail)
    return list(itertools.pairwise(round(float(e)) for e in edges))


def power_profile(chs: list[Channel], total_s: int, epochs: list[tuple[int, int]], seed: int) -> np.ndarray:
    """Machine power per channel and second, shape (channels, seconds): ``[c, s]`` is the mean over [s, s+1)."""
    rng = np.random.default_rng(seed)
    t = np.arange(total_s, dtype=float)
    phase = np.zeros(total_s, dtype=np.int8)  # 0 warm-up/save, 1 training, 2 evaluation, 3 data-loader dip
    for begin, end in epochs:
        length = end - begin
        phase[begin:end] = 1
        phase[end - max(2, length // 12) : end] = 2
        phase[begin : begin + min(3, max(1, length // 20))] = 3
    out = np.empty((len(chs), total_s))
    for i, ch in enumerate(chs):
        if ch.component == "gpu":
            level = np.array([62.0, 285.0 - 12 * i, 165.0, 95.0])
            noise = rng.normal(0.0, 11.0, total_s)
            drift = 9.0 * np.sin(2 * np.pi * t / 417.0 + i)  # thermal / clock drift
            power = level[phase] + noise + drift
            for _ in range(8):  # spikes: a few seconds near the board limit
                at = int(rng.integers(0, total_s))
                power[at : at + int(rng.integers(1, 4))] = rng.uniform(390.0, 440.0)
        elif ch.component == "cpu":
            level = np.array([88.0, 57.0, 96.0, 112.0])
            power = level[phase] + rng.normal(0.0, 4.5, total_s)
            for _ in range(4):
                at = int(rng.integers(0, total_s))
                power[at : at + int(rng.integers(2, 6))] = rng.uniform(180.0, 230.0)
        else:
            level = np.array([14.0, 19.5, 17.0, 21.0])
            power = level[phase] + rng.normal(0.0, 0.7, total_s)
        out[i] = np.clip(power, 1.0, None)
    return out


def kept_times(total_s: int) -> list[int]:
    """The end times of the samples the tracker keeps at 1 s sampling (its SampleThinner's rule, on whole
    seconds): every reading in the first hour, then coarser buckets, and the final partial bucket."""
    kept = []
    start = 0
    for t in range(1, total_s + 1):
        if t - start >= resolution_s(float(t), 1.0) * 0.95:
            kept.append(t)
            start = t
    if start < total_s:
        kept.append(total_s)
    return kept


def hourly_intensity(total_s: int) -> tuple[list[IntensityStep], np.ndarray]:
    """Hourly steps covering the run (a daily cycle with an evening peak), and the intensity per second of it."""
    first = START.replace(minute=0, second=0, microsecond=0)
    steps = []
    moment = first
    end = START + timedelta(seconds=total_s)
    while moment < end:
        hour = moment.hour
        value = 360.0 + 90.0 * math.sin(2 * math.pi * (hour - 13) / 24) + 25.0 * math.cos(2 * math.pi * hour / 6)
        steps.append(IntensityStep(moment, 3600.0, round(value, 1)))
        moment += timedelta(hours=1)
    offset = int((START - first).total_seconds())
    per_second = np.array([steps[(offset + s) // 3600].intensity_g_per_kwh for s in range(total_s)])
    return steps, per_second


def build_run(run_id: str, hours: float, n_channels: int, seed: int) -> tuple[Run, list[Sample]]:
    """A finished ``hours``-long training run of 60 epochs and its kept samples (process attribution)."""
    total_s = round(hours * 3600)
    rng = np.random.default_rng(seed)
    chs = channels(n_channels)
    epochs = epoch_bounds(total_s, rng)
    machine = power_profile(chs, total_s, epochs, seed + 1)
    share = np.array([ch.share for ch in chs])[:, None]
    charged = machine * share
    cumulative = np.concatenate((np.zeros((len(chs), 1)), np.cumsum(charged, axis=1)), axis=1)
    steps, intensity = hourly_intensity(total_s)
    co2e_per_s = charged.sum(axis=0) * PUE * intensity / J_PER_KWH  # g per second, time-resolved

    samples: list[Sample] = []
    previous = 0
    for t in kept_times(total_s):
        for i, ch in enumerate(chs):
            energy = float(cumulative[i, t])
            power = (energy - float(cumulative[i, previous])) / (t - previous)
            samples.append(Sample(t_s=float(t), channel=ch.name, power_w=power, energy_j=energy))
        previous = t

    windows = []
    for k, (begin, end) in enumerate(epochs, start=1):
        parts = {ch.name: float(charged[i, begin:end].sum()) for i, ch in enumerate(chs)}
        windows.append(
            WindowRecord(
                name=f"epoch-{k}",
                started_at=START + timedelta(seconds=begin),
                duration_s=float(end - begin),
                energy_j=sum(parts.values()),
                co2e_g=float(co2e_per_s[begin:end].sum()),
                components=parts,
            )
        )
    components = []
    for i, ch in enumerate(chs):
        energy_j = float(charged[i].sum())
        estimated = ch.source == "estimated"
        components.append(
            ComponentEnergy(
                name=ch.name,
                component=ch.component,
                energy_j=energy_j,
                machine_energy_j=float(machine[i].sum()),
                source="estimated" if estimated else "measured",
                method=ch.method,
                detail=ch.detail,
                low_j=energy_j * 0.8 if estimated else energy_j,
                high_j=energy_j * 1.25 if estimated else energy_j,
            )
        )
    energy_total = sum(c.energy_j for c in components)
    co2e_g = float(co2e_per_s.sum())
    effective = co2e_g / (energy_total * PUE / J_PER_KWH) if energy_total > 0 else 0.0
    last_end = epochs[-1][1]
    prediction = predict(
        [w.energy_j for w in windows],
        [w.duration_s for w in windows],
        EPOCHS,
        float(cumulative[:, last_end].sum()),
        float(last_end),
        PUE,
        effective,
    )
    run = Run(
        id=run_id,
        name=f"train-resnet50-{hours:g}h",
        status="complete",
        started_at=START,
        ended_at=START + timedelta(seconds=total_s),
        duration_s=float(total_s),
        energy_j=energy_total,
        machine_energy_j=sum(c.machine_energy_j for c in components),
        co2e_g=co2e_g,
        region="DE",
        intensity_g_per_kwh=effective,
        intensity_source="electricitymaps (hourly, benchmark synthetic)",
        pue=PUE,
        attribution="process",
        components=tuple(components),
        windows=tuple(windows),
        prediction=prediction,
        command=("python", "train.py", "--epochs", str(EPOCHS), "--model", "resnet50"),
        exit_code=0,
        host=this_host(),
        pid=os.getpid(),
        wattwise_version=__version__,
        emissions_method="time-resolved",
        intensity_series=tuple(steps),
    )
    return run, samples


def store_run(db: Path, run: Run, samples: list[Sample]) -> None:
    """Write the run as the tracker does: begin, samples appended in batches, the final record saved."""
    with open_store(str(db)) as store:
        store.begin(run)
        for i in range(0, len(samples), APPEND_ROWS):
            store.append_samples(run.id, samples[i : i + APPEND_ROWS])
        store.save(run)


# --- measuring ---------------------------------------------------------------------------------------------


def read_view(db: Path, run_id: str) -> RunView:
    with open_store(str(db), read_only=True) as store:
        return build_run_view(store.get(run_id), store.iter_samples(run_id))


def report_in_process(db: Path, run_id: str, out: Path) -> None:
    with contextlib.redirect_stdout(io.StringIO()):
        code = cli_main(["report", run_id, "--html", str(out), "--db", str(db)])
    if code != 0:
        raise SystemExit(f"wattwise report exited {code} in-process")


@contextlib.contextmanager
def isolated_env(home: Path) -> Iterator[None]:
    """No WATTWISE_* setting of the caller's (a config file, a store) reaches the measured commands."""
    saved = dict(os.environ)
    for key in [k for k in os.environ if k.startswith("WATTWISE_")]:
        del os.environ[key]
    os.environ["WATTWISE_HOME"] = str(home)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def data_points(page: str) -> tuple[int, int]:
    """(points drawn in the power chart, points drawn in all charts), from each ``<svg>``'s ``data-points``."""
    power = total = 0
    for tag in re.findall(r"<svg\b[^>]*>", page):
        found = re.search(r'data-points="(\d+)"', tag)
        if found is None:
            continue
        total += int(found.group(1))
        if 'aria-label="Power over time' in tag:
            power += int(found.group(1))
    return power, total


@dataclass(slots=True)
class Case:
    hours: float
    rows: int
    per_channel: str
    build_s: float
    db_bytes: int
    read_s: list[float]
    render_s: list[float]
    report_s: list[float]
    subprocess_s: float | None
    page_bytes: int
    view_points: int
    power_points: int
    all_points: int


def measure(workdir: Path, hours: float, n_channels: int, repeats: int, seed: int) -> Case:
    run_id = f"bench-{hours:g}h-{n_channels}ch".replace(".", "_")
    db = workdir / f"report-{hours:g}h.db"
    t0 = time.perf_counter()
    run, samples = build_run(run_id, hours, n_channels, seed)
    store_run(db, run, samples)
    build_s = time.perf_counter() - t0
    with sqlite3.connect(db) as conn:
        rows = int(conn.execute("SELECT count(*) FROM samples WHERE run_id = ?", (run_id,)).fetchone()[0])
    counts = sorted({sum(1 for s in samples if s.channel == ch.name) for ch in channels(n_channels)})
    read_s: list[float] = []
    render_s: list[float] = []
    report_s: list[float] = []
    page = ""
    view: RunView | None = None
    out = workdir / f"report-{hours:g}h.html"
    for _ in range(repeats):
        t0 = time.perf_counter()
        view = read_view(db, run_id)
        t1 = time.perf_counter()
        page = run_page(view, pages=Pages())
        t2 = time.perf_counter()
        report_in_process(db, run_id, out)
        t3 = time.perf_counter()
        read_s.append(t1 - t0)
        render_s.append(t2 - t1)
        report_s.append(t3 - t2)
    assert view is not None
    written = out.read_text(encoding="utf-8")
    if written != page:
        print(f"note: the CLI's page for {hours:g} h differs from run_page's ({len(written)} vs {len(page)} chars)")
    subprocess_s = None
    exe = Path(sys.executable).with_name("wattwise")
    command = [str(exe)] if exe.exists() else ([found] if (found := shutil.which("wattwise")) else None)
    if command is not None:
        sub_out = workdir / f"report-{hours:g}h-subprocess.html"
        args = [*command, "report", run_id, "--html", str(sub_out), "--db", str(db)]
        t0 = time.perf_counter()
        done = subprocess.run(args, check=False, capture_output=True, text=True)
        subprocess_s = time.perf_counter() - t0
        if done.returncode != 0:
            raise SystemExit(f"{' '.join(args)} exited {done.returncode}: {done.stderr.strip()}")
    power_points, all_points = data_points(page)
    return Case(
        hours=hours,
        rows=rows,
        per_channel=" / ".join(f"{c:,}" for c in counts),
        build_s=build_s,
        db_bytes=db.stat().st_size,
        read_s=read_s,
        render_s=render_s,
        report_s=report_s,
        subprocess_s=subprocess_s,
        page_bytes=out.stat().st_size,
        view_points=sum(len(series.t_s) for series in view.power),
        power_points=power_points,
        all_points=all_points,
    )


# --- output ------------------------------------------------------------------------------------------------


def cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def print_table(cases: list[Case], n_channels: int, repeats: int) -> bool:
    head = f"{'run':>5} {'step':<44} {'median':>9} {'max':>9} {'target':>8} {'result':>6}"
    print(head)
    print("-" * len(head))
    all_ok = True
    for case in cases:
        label = f"{case.hours:g} h"
        timing = [
            ("(a) read samples + build view", case.read_s),
            ("(b) render page (fresh Pages)", case.render_s),
            ("(c) wattwise report --html, in-process", case.report_s),
        ]
        if case.subprocess_s is not None:
            timing.append(("(d) .venv/bin/wattwise report --html (1 run)", [case.subprocess_s]))
        for step, values in timing:
            ok = max(values) < RENDER_TARGET_S
            all_ok &= ok
            print(
                f"{label:>5} {step:<44} {statistics.median(values):8.3f}s {max(values):8.3f}s "
                f"{'< 2 s':>8} {verdict(ok):>6}"
            )
        ok = case.page_bytes < SIZE_TARGET_B
        all_ok &= ok
        size = f"{case.page_bytes / 1e6:.3f} MB"
        print(f"{label:>5} {f'page size ({case.page_bytes:,} B)':<44} {size:>19} {'< 5 MB':>8} {verdict(ok):>6}")
    print()
    print(f"median and max of {repeats} repeats; (d) once, with interpreter start-up. MB = 10^6 bytes.")
    print()
    head = (
        f"{'run':>5} {'channels':>8} {'raw samples':>12} {'per channel':>15} {'view points':>12} "
        f"{'power drawn':>12} {'all drawn':>10} {'store MB':>9} {'build s':>8}"
    )
    print(head)
    print("-" * len(head))
    for case in cases:
        print(
            f"{f'{case.hours:g} h':>5} {n_channels:>8} {case.rows:>12,} {case.per_channel:>15} "
            f"{case.view_points:>12,} {case.power_points:>12,} {case.all_points:>10,} "
            f"{case.db_bytes / 1e6:9.2f} {case.build_s:8.2f}"
        )
    print()
    print(
        f"view points: kept by build_run_view (at most {DISPLAY_POINTS} per channel); power/all drawn: the "
        "data-points of the power chart's <svg> (every point the view kept) and of every chart's."
    )
    return all_ok


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0] if __doc__ else None)
    ap.add_argument("--hours", type=float, nargs="+", default=[1.0, 24.0], help="run lengths (default: 1 24)")
    ap.add_argument("--channels", type=int, default=4, help="power channels (default 4: 2 GPUs, CPU, memory)")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--keep", type=Path, metavar="DIR", help="write the stores and pages here and keep them")
    args = ap.parse_args()
    if args.channels < 1 or args.repeats < 1 or any(h <= 0 for h in args.hours):
        ap.error("--channels, --repeats and --hours must be positive")
    print(
        f"machine: {cpu_model()}, {os.cpu_count()} CPUs, {platform.system()} {platform.release()}; "
        f"Python {platform.python_version()}, SQLite {sqlite3.sqlite_version}, wattwise {__version__}"
    )
    print(f"channels: {', '.join(ch.name for ch in channels(args.channels))}; 1 Hz sampling, {EPOCHS} epochs")
    print()
    with contextlib.ExitStack() as stack:
        if args.keep is not None:
            args.keep.mkdir(parents=True, exist_ok=True)
            workdir = args.keep
        else:
            workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="wattwise-bench-report-")))
        stack.enter_context(isolated_env(workdir))
        cases = [measure(workdir, hours, args.channels, args.repeats, args.seed) for hours in args.hours]
    ok = print_table(cases, args.channels, args.repeats)
    print(f"\nall targets met: {'yes' if ok else 'NO'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
