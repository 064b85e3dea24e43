"""How right is wattwise's GPU energy, checked against a reference it does not share? Run where a GPU is lent.

    python benchmarks/gpu_accuracy.py [--seconds 30] [--index 0] [--hz 100] [--seed 0] [--no-load] [--cuda-sync]

The reference is a separate process (benchmarks/nvml_sampler.py, pynvml only, no wattwise code) sampling the GPU's
instantaneous power at ``--hz`` (at least 50 Hz) and integrating it. Against it, this script reports:

1. **versions**: the GPU, the driver, the bindings, what the GPU can measure (as ``wattwise doctor`` says);
2. **counter update period**: how often NVML's energy counter moves (median gap between changes, at idle);
3. **whole run**: a wattwise run over a varying torch load (matmuls of changing sizes, idle gaps): its GPU
   energy against the reference's integral and the raw counter delta over the same span (target: 2 %);
4. **short windows**: windows of 20 ms to 2 s opened inside that run: wattwise's energy against the reference,
   and how often the window reads 0 J in wattwise and would in the raw counter alone;
5. **attribution**: a second process (not measured) drives the same GPU with a known, constant load while the
   measured process runs its own: the share attributed to the run, against the run's energy measured alone.

Every figure here comes from NVML, so the result is labelled **self-consistency only**: the reference shares the
GPU's own sensor. An outside meter (the BMC's, a PDU's) is what would make it an accuracy figure.

Needs torch with CUDA to drive the GPU; ``--no-load`` measures whatever the GPU is doing and skips attribution
(for checking this script itself, e.g. against the stand-in NVML library of tests/fakes/libnvml). Exit status: 0
when the whole-run figure is within the target (or there is no GPU, said so), 1 when not, 2 when torch with CUDA
is missing for a loaded run.
"""

from __future__ import annotations

import argparse
import bisect
import importlib
import importlib.util
import itertools
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gpu_load import drive_gpu  # benchmarks/ is on sys.path when a script here runs
from wattwise.config import Settings
from wattwise.devices.nvml import PynvmlBackend, probe_gpu, probe_nvml, visible_gpu_indices
from wattwise.measure.tracker import Tracker
from wattwise.units import mj_to_j, mw_to_w

TARGET_PERCENT = 2.0
WINDOWS_S = (0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0)
SAMPLER = Path(__file__).with_name("nvml_sampler.py")
LABEL = "self-consistency only: the reference is NVML's own instantaneous power, no outside meter (BMC, PDU) was read"


@dataclass
class Reference:
    """The sampler's trace: times (CLOCK_MONOTONIC), power in W, counter in mJ (None without a counter)."""

    t_s: list[float]
    power_w: list[float]
    counter_mj: list[int] | None
    kind: str

    @classmethod
    def load(cls, path: Path) -> Reference:
        lines = path.read_text().splitlines()
        kind = lines[0].removeprefix("# power: ").split(";")[0] if lines and lines[0].startswith("#") else "?"
        rows = [line.split(",") for line in lines if line and not line.startswith("#")]
        counter = [int(r[2]) for r in rows] if rows and all(r[2] for r in rows) else None
        return cls([float(r[0]) for r in rows], [mw_to_w(int(r[1])) for r in rows], counter, kind)

    def rate_hz(self, start: float, end: float) -> float:
        inside = [t for t in self.t_s if start <= t <= end]
        return (len(inside) - 1) / (inside[-1] - inside[0]) if len(inside) > 1 else 0.0

    def _power_at(self, t: float) -> float:
        k = bisect.bisect_right(self.t_s, t)
        if k == 0:
            return self.power_w[0]
        if k == len(self.t_s):
            return self.power_w[-1]
        t0, t1 = self.t_s[k - 1], self.t_s[k]
        w = (t - t0) / (t1 - t0) if t1 > t0 else 0.0
        return self.power_w[k - 1] + w * (self.power_w[k] - self.power_w[k - 1])

    def energy_j(self, start: float, end: float) -> float:
        """The trapezoid of power over [start, end], the ends interpolated."""
        times = [start, *(t for t in self.t_s if start < t < end), end]
        watts = [self._power_at(t) for t in times]
        return sum((watts[k] + watts[k + 1]) / 2 * (times[k + 1] - times[k]) for k in range(len(times) - 1))

    def counter_j(self, start: float, end: float) -> float | None:
        """The raw counter's delta between its last readings at or before ``start`` and ``end``."""
        if self.counter_mj is None:
            return None
        a = max(0, bisect.bisect_right(self.t_s, start) - 1)
        b = max(0, bisect.bisect_right(self.t_s, end) - 1)
        return mj_to_j(self.counter_mj[b] - self.counter_mj[a])

    def counter_period_s(self, start: float, end: float) -> float | None:
        """Median gap between the counter's changes within [start, end]."""
        if self.counter_mj is None:
            return None
        changes = [
            self.t_s[k]
            for k in range(1, len(self.t_s))
            if start <= self.t_s[k] <= end and self.counter_mj[k] != self.counter_mj[k - 1]
        ]
        gaps = [b - a for a, b in itertools.pairwise(changes)]
        return statistics.median(gaps) if gaps else None


class Sampler:
    """benchmarks/nvml_sampler.py as a child process writing to a temporary file."""

    def __init__(self, uuid: str, hz: float, folder: Path) -> None:
        self.path = folder / "reference.csv"
        command = [sys.executable, str(SAMPLER), "--uuid", uuid, "--hz", f"{hz:g}", "--out", str(self.path)]
        self.process = subprocess.Popen(command, stdin=subprocess.PIPE)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and self.process.poll() is None:
            if self.path.exists() and len(self.path.read_text().splitlines()) >= 3:
                return  # the header and two samples: it is running
            time.sleep(0.05)
        raise RuntimeError(f"the reference sampler did not start (exit status {self.process.poll()})")

    def stop(self) -> Reference:
        assert self.process.stdin is not None
        self.process.stdin.close()
        self.process.wait(timeout=20)
        return Reference.load(self.path)


def settings_for(home: Path, index: int, attribution: str, cuda_sync: bool) -> Settings:
    return Settings(
        home=home,
        db=f"sqlite:///{home / 'runs.db'}",
        gpu_indices=None if attribution == "process" else (index,),
        attribution=attribution,
        cuda_sync=cuda_sync,
        interval_s=0.1,
        network=False,
    )


def gpu_energy_j(run: Any, index: int, *, machine: bool) -> float:
    part = next(c for c in run.components if c.name == f"gpu:{index}")
    return float(part.machine_energy_j if machine else part.energy_j)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--seconds", type=float, default=30.0, help="length of the loaded run")
    parser.add_argument("--index", type=int, help="NVML index of the GPU (default: the first visible one)")
    parser.add_argument("--hz", type=float, default=100.0, help="the reference's sampling rate (at least 50)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-load", action="store_true", help="no torch load; attribution is skipped")
    parser.add_argument("--cuda-sync", action="store_true", help="wattwise's cuda_sync at window edges")
    args = parser.parse_args(argv)
    if args.hz < 50:
        parser.error("--hz must be at least 50")
    if importlib.util.find_spec("pynvml") is None:
        print("the NVML bindings are missing: pip install nvidia-ml-py")
        return 2
    probe = probe_nvml(env=os.environ, gpu_indices=None if args.index is None else (args.index,))
    if not probe.available:
        print(f"no NVIDIA GPU to measure here: {probe.summary}; nothing to compare")
        return 0
    backend = PynvmlBackend()
    backend.init()
    try:
        explicit = None if args.index is None else (args.index,)
        index = next(
            i
            for i in visible_gpu_indices(backend, os.environ.get("CUDA_VISIBLE_DEVICES"), explicit)
            if probe_gpu(backend, i).mode != "none"
        )
        caps = probe_gpu(backend, index)
        versions = f"driver {backend.driver_version()}, {backend.bindings_version()}"
    finally:
        backend.shutdown()
    torch: Any = None
    if not args.no_load:
        os.environ["CUDA_VISIBLE_DEVICES"] = caps.uuid  # torch's cuda:0 is the measured GPU
        try:
            torch = importlib.import_module("torch")
        except ModuleNotFoundError:
            print("torch drives the GPU in this benchmark and is not installed (or run with --no-load)")
            return 2
        if not torch.cuda.is_available():
            print("torch cannot use CUDA here (a CPU-only build?): install a CUDA build of torch, or --no-load")
            return 2
        torch.ones(1, device="cuda")  # the CUDA context exists before the run starts
    print(f"GPU {index}: {caps.name} ({caps.uuid}); {versions}")
    print(f"measures: {caps.describe()}; MIG {'on' if caps.mig else 'off'}; process list: {caps.processes}")
    print(LABEL)
    with tempfile.TemporaryDirectory(prefix="wattwise-gpu-accuracy-") as tmp:
        return compare(torch, index, Path(tmp), caps.uuid, args)


def compare(torch: Any, index: int, tmp: Path, uuid: str, args: argparse.Namespace) -> int:
    sampler = Sampler(uuid, args.hz, tmp)
    idle_start = time.monotonic()
    time.sleep(3.0)  # idle: the counter's update period
    idle_end = time.monotonic()

    stop_load = threading.Event()
    load = None
    if torch is not None:
        load = threading.Thread(target=drive_gpu, args=(torch, stop_load, args.seed), daemon=True)
    settings = settings_for(tmp, index, "machine", args.cuda_sync)
    windows: list[tuple[str, float, float]] = []
    run_start = time.monotonic()
    with Tracker("gpu-accuracy", settings=settings, handle_signals=False) as tracker:
        if load is not None:
            load.start()
        k = 0
        while time.monotonic() - run_start < args.seconds:
            length = WINDOWS_S[k % len(WINDOWS_S)]
            name = f"w{k}-{length:g}s"
            t0 = time.monotonic()
            tracker.begin_window(name)
            t0 = (t0 + time.monotonic()) / 2  # the read happened inside the call
            time.sleep(length)
            t1 = time.monotonic()
            tracker.end_window(name)
            windows.append((name, t0, (t1 + time.monotonic()) / 2))
            k += 1
        stop_load.set()
        if load is not None:
            load.join()
    run = tracker.result
    assert run is not None and run.ended_at is not None
    # the run's own span (its first and last readings), on the monotonic clock the sampler uses
    offset_s = time.time() - time.monotonic()
    run_start, run_end = run.started_at.timestamp() - offset_s, run.ended_at.timestamp() - offset_s
    attribution = attribution_rows(torch, index, tmp, args) if torch is not None else None
    reference = sampler.stop()
    return report(reference, run, index, windows, (idle_start, idle_end), (run_start, run_end), attribution)


def attribution_rows(torch: Any, index: int, tmp: Path, args: argparse.Namespace) -> tuple[float, float, float]:
    """(the run's energy alone, its attributed energy beside a second process, the GPU's energy then)."""
    seconds = max(5.0, args.seconds / 3)

    def constant_load(tracker_settings: Settings) -> Any:
        stop = threading.Event()
        worker = threading.Thread(target=steady, args=(torch, stop, 2048), daemon=True)
        with Tracker("attribution", settings=tracker_settings, handle_signals=False) as tracker:
            worker.start()
            time.sleep(seconds)
            stop.set()
            worker.join()
        return tracker.result

    alone = constant_load(settings_for(tmp, index, "process", args.cuda_sync))
    code = (
        "import sys, time, torch\n"
        "a = torch.randn(4096, 4096, device='cuda', dtype=torch.float16)\n"
        "print('ready', flush=True)\n"
        "end = time.monotonic() + float(sys.argv[1])\n"
        "while time.monotonic() < end:\n"
        "    for _ in range(8): torch.matmul(a, a)\n"
        "    torch.cuda.synchronize()\n"
    )
    other = subprocess.Popen([sys.executable, "-c", code, str(seconds + 10)], stdout=subprocess.PIPE, text=True)
    assert other.stdout is not None
    other.stdout.readline()  # its CUDA context exists and it is computing
    shared = constant_load(settings_for(tmp, index, "process", args.cuda_sync))
    other.terminate()
    other.wait(timeout=30)
    return (
        gpu_energy_j(alone, index, machine=False),
        gpu_energy_j(shared, index, machine=False),
        gpu_energy_j(shared, index, machine=True),
    )


def steady(torch: Any, stop: threading.Event, size: int) -> None:
    a = torch.randn(size, size, device="cuda", dtype=torch.float16)
    while not stop.is_set():
        for _ in range(8):
            torch.matmul(a, a)
        torch.cuda.synchronize()


def report(
    reference: Reference,
    run: Any,
    index: int,
    windows: list[tuple[str, float, float]],
    idle: tuple[float, float],
    span: tuple[float, float],
    attribution: tuple[float, float, float] | None,
) -> int:
    print(f"reference: {reference.kind} power at {reference.rate_hz(*span):.0f} Hz achieved, in its own process")
    period = reference.counter_period_s(*idle)
    print(f"energy counter update period at idle: {'no counter' if period is None else f'{period * 1000:.0f} ms'}")
    measured = gpu_energy_j(run, index, machine=True)
    ref_j = reference.energy_j(*span)
    raw = reference.counter_j(*span)
    diff = (measured - ref_j) / ref_j * 100 if ref_j else float("nan")
    print(f"\n{'whole run':<44} {'energy J':>12} {'vs reference':>13}")
    print(f"{'reference: integral of sampled power':<44} {ref_j:>12.2f}")
    if raw is not None:
        print(f"{'raw counter delta (sampler)':<44} {raw:>12.2f} {(raw - ref_j) / ref_j * 100:>+12.2f}%")
    method = next(c.method for c in run.components if c.name == f"gpu:{index}")
    print(f"{'wattwise ' + method:<44} {measured:>12.2f} {diff:>+12.2f}%")
    by_window = {w.name: w for w in run.windows}
    print(f"\n{'window':>8} {'n':>4} {'median |error|':>15} {'wattwise 0 J':>13} {'raw counter 0 J':>16}")
    for length in WINDOWS_S:
        chosen = [(n, a, b) for n, a, b in windows if n.endswith(f"-{length:g}s") and n in by_window]
        if not chosen:
            continue
        errors, ours_zero, raw_zero = [], 0, 0
        for name, a, b in chosen:
            energy = by_window[name].components.get(f"gpu:{index}", 0.0)
            expected = reference.energy_j(a, b)
            errors.append(abs(energy - expected) / expected * 100 if expected else float("nan"))
            ours_zero += energy == 0.0
            raw_zero += reference.counter_j(a, b) == 0.0
        raw_text = f"{raw_zero}/{len(chosen)}" if reference.counter_mj is not None else "no counter"
        err = statistics.median(errors)
        label = f"{length * 1000:g} ms"
        print(f"{label:>8} {len(chosen):>4} {err:>14.1f}% {ours_zero:>9}/{len(chosen):<3} {raw_text:>16}")
    if attribution is not None:
        alone, attributed, total = attribution
        print("\nattribution: the run's constant load beside a second, unmeasured process's heavier one")
        print(f"  the run alone: {alone:.1f} J; beside the other: {attributed:.1f} J of the GPU's {total:.1f} J")
        print(f"  attributed share {attributed / total:.2f}; attributed / alone {attributed / alone:.2f}")
    ok = abs(diff) <= TARGET_PERCENT
    verdict = "PASS" if ok else "FAIL"
    print(f"\ntarget: whole run within {TARGET_PERCENT:g} % of the reference: {verdict} ({LABEL})")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
