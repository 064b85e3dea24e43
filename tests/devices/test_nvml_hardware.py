"""NVML as real hardware behaves (issue 11): per-GPU errors and loss, GPUs that give nothing, GPUs charged from
first use, MIG on any GPU, Grace Hopper modules, short windows between counter steps, the sampling floor, per-
process samples from the run's start, the bindings' own errors, and CUDA synchronisation at window edges."""

from __future__ import annotations

import itertools
import random
import statistics
import sys
import time
import types
from pathlib import Path
from typing import Any

import pytest

from tests.devices.test_nvml import A100, OURS, P100, max_power_w, power_integral_j, read_at, row_at, source
from tests.fakes.nvml import DATA, FakeGpu, ReplayNvml, Trace, replay
from wattwise.config import Settings
from wattwise.devices import discover
from wattwise.devices.nvml import NvmlError, NvmlSource, PynvmlBackend, open_nvml, probe_gpu
from wattwise.devices.nvml_counter import STEP_S, CounterSmoother
from wattwise.devices.nvml_source import MIN_INTERVAL_S
from wattwise.measure.edges import sampling_interval, sync_cuda
from wattwise.units import mj_to_j, mw_to_w


def counter_j(t0: float, t1: float) -> float:
    return mj_to_j(int(row_at(A100, t1)["energy_mj"]) - int(row_at(A100, t0)["energy_mj"]))


STEP_J = max_power_w(A100) * STEP_S  # a reading during a run is the counted energy ± the lag since the last step


def blank(name: str = "GeForce RTX 2080") -> FakeGpu:
    """A GPU that answers neither energy nor power."""
    gpu = FakeGpu(Trace.load(DATA / A100), name, "GPU-99999999-0000-4000-8000-000000000009")
    gpu.counter_supported = gpu.instant_supported = gpu.power_supported = False
    return gpu


# -- errors are per GPU --------------------------------------------------------------------------------------
def test_a_gpu_lost_mid_run_keeps_its_energy_to_the_loss_and_the_others_are_unaffected() -> None:
    fake = replay(A100, A100)
    fake.gpus[1].lost_after_s = 5.0
    src = source(fake)
    last = read_at(src, fake, [float(t) for t in range(11)])[-1]
    assert last[0].energy_j == counter_j(0, 10)  # exact, as if nothing had happened beside it
    assert last[1].energy_j == pytest.approx(counter_j(0, 4), abs=STEP_J)  # up to its last answer
    assert (
        "gpu:1 stopped answering at +5.0 s (nvml: total_energy_mj of GPU 1 failed: GPU is lost (fake)); its "
        "energy up to its last good reading (+4.0 s) is kept, nothing after it is counted" in src.notes()
    )
    assert not any(n.startswith("gpu:0") for n in src.notes())


def test_a_passing_error_skips_one_reading_and_loses_nothing_three_in_a_row_lose_the_gpu() -> None:
    fake = replay(A100, A100)
    src = source(fake)
    read_at(src, fake, [0.0, 1.0], final=False)
    fake.gpus[0].fail["total_energy_mj"] = NvmlError("nvml: energy counter of GPU 0 failed: Unknown Error", "failed")
    read_at(src, fake, [2.0], final=False)
    del fake.gpus[0].fail["total_energy_mj"]
    last = read_at(src, fake, [3.0, 4.0])[-1]
    assert last[0].energy_j == counter_j(0, 4)  # the counter is cumulative: the skipped interval is not lost
    assert not any("stopped answering" in n for n in src.notes())

    fake.gpus[1].fail["total_energy_mj"] = NvmlError("nvml: energy counter of GPU 1 failed: Unknown Error", "failed")
    last = read_at(src, fake, [5.0, 6.0, 7.0, 8.0])[-1]
    assert last[1].energy_j == pytest.approx(counter_j(0, 4), abs=STEP_J)
    assert last[0].energy_j == counter_j(0, 8)
    # the note gives when it began failing and its last good reading, not the third failure's time
    assert any(n.startswith("gpu:1 stopped answering at +5.0 s") and "(+4.0 s) is kept" in n for n in src.notes())


def test_a_gpu_lost_before_two_readings_says_its_zero_is_not_a_measurement() -> None:
    fake = replay(A100)
    fake.gpus[0].lost_after_s = 0.5
    src = source(fake)
    read_at(src, fake, [0.0, 1.0, 2.0])
    assert any(
        "before NVML gave two readings of it: the 0 J shown for it is not a measurement" in n for n in src.notes()
    )


def test_a_failing_process_list_keeps_the_energy_and_the_last_share() -> None:
    fake = replay(A100)
    fake.gpus[0].processes = {OURS: 50.0, 200: 50.0}
    src = source(fake)
    read_at(src, fake, [0.0, 1.0, 2.0], final=False)
    fake.gpus[0].fail["running_pids"] = NvmlError("nvml: process list of GPU 0 failed: Unknown Error", "failed")
    last = read_at(src, fake, [3.0, 4.0, 5.0, 6.0])[-1][0]
    assert last.energy_j == counter_j(0, 6)  # never lost for a failing process query
    assert last.attributed_j == pytest.approx(last.energy_j / 2)  # the last known share, 50 %
    assert any("could not list its processes from +3.0 s" in n and "the last known share" in n for n in src.notes())
    assert not any("stopped answering" in n for n in src.notes())


def test_a_capability_failing_at_open_is_done_without_and_said() -> None:
    fake = replay(A100)
    fake.gpus[0].fail["running_pids"] = NvmlError("nvml: process list of GPU 0 failed: Unknown Error", "failed")
    src = source(fake)
    assert [c.method for c in src.channels()] == ["nvml-energy-counter"]
    assert any(n.startswith("gpu:0: its process list failed when the GPU was opened") for n in src.notes())


def test_a_failed_power_reading_is_bridged_not_lost() -> None:
    fake = replay(P100)
    src = source(fake)
    read_at(src, fake, [0.0, 1.0], final=False)
    fake.gpus[0].fail["power_mw"] = NvmlError("nvml: power of GPU 0 failed: Unknown Error", "failed")
    read_at(src, fake, [2.0], final=False)
    del fake.gpus[0].fail["power_mw"]
    bridged = read_at(src, fake, [3.0])[-1][0].energy_j
    p = [mw_to_w(int(row_at(P100, t)["power_mw"])) for t in (0, 1, 3)]
    assert bridged == pytest.approx((p[0] + p[1]) / 2 + (p[1] + p[2]) / 2 * 2.0)  # 1 → 3 s in one trapezoid


def test_a_gpu_giving_nothing_is_not_measured_never_a_measured_zero() -> None:
    fake = ReplayNvml([FakeGpu(Trace.load(DATA / A100), "H100"), blank()])
    src = source(fake)
    assert [c.name for c in src.channels()] == ["gpu:0"]
    assert len(read_at(src, fake, [0.0, 3.0])[-1]) == 1
    note = next(n for n in src.notes() if n.startswith("gpu:1"))
    assert "GeForce RTX 2080" in note and "is not measured" in note and "not in the run's energy" in note
    assert probe_gpu(fake, 1).describe() == "nothing: neither energy nor power"


# -- which GPUs the run pays for -----------------------------------------------------------------------------
def test_with_every_gpu_visible_a_gpu_is_charged_from_first_use_and_an_unused_one_is_the_machines() -> None:
    fake = replay(A100, A100)
    src = source(fake, handed=False)
    read_at(src, fake, [0.0, 1.0, 2.0], final=False)
    fake.gpus[0].processes = {OURS: 60.0}  # the run's first CUDA context, on GPU 0, in (2, 3]
    last = read_at(src, fake, [3.0, 4.0, 5.0, 6.0])[-1]
    assert last[0].energy_j == counter_j(0, 6)
    assert last[0].attributed_j == pytest.approx(counter_j(2, 6), abs=STEP_J)
    assert last[1].energy_j == counter_j(0, 6) and last[1].attributed_j == 0.0
    notes = src.notes()
    assert "gpu:0 is charged to the run from +3.0 s, when the run first used it" in notes
    assert any(n.startswith("gpu:1 (synthetic_a100_counter) was not used by the run") for n in notes)


@pytest.mark.parametrize(
    ("env", "gpu_indices", "charged"),
    [
        ({}, None, False),  # every GPU visible: charged from first use
        ({"CUDA_VISIBLE_DEVICES": "0"}, None, True),  # named for the job: from the start
        ({}, (0,), True),
    ],
)
def test_gpus_named_for_the_job_are_charged_from_the_start(
    env: dict[str, str], gpu_indices: tuple[int, ...] | None, charged: bool
) -> None:
    fake = replay(A100)
    src = open_nvml(gpu_indices, env, fake, clock=fake.clock.now, proc_root=None)
    assert src is not None
    last = read_at(src, fake, [0.0, 2.0])[-1][0]  # no process on it yet: idle, or about to be used
    assert last.attributed_j == (last.energy_j if charged else 0.0)


def test_in_a_container_with_its_own_proc_every_gpu_is_charged_whole_with_a_note(tmp_path: Path) -> None:
    (tmp_path / "1").mkdir()
    (tmp_path / "1" / "status").write_text("NSpid:\t1\n")
    (tmp_path / "1" / "ns").mkdir()
    (tmp_path / "1" / "ns" / "pid").symlink_to("pid:[4026532174]")
    (tmp_path / "self").symlink_to(tmp_path / "1")
    fake = replay(A100)
    fake.gpus[0].processes = {48213: 90.0}  # the host's pid of our process: nothing here can tell
    src = open_nvml(None, {}, fake, clock=fake.clock.now, proc_root=tmp_path)
    assert src is not None
    last = read_at(src, fake, [0.0, 2.0], pids=frozenset({1}))[-1][0]
    assert last.attributed_j == last.energy_j > 0
    assert any(n.startswith("in a container with its own /proc") for n in src.notes())


# -- MIG, Grace Hopper ---------------------------------------------------------------------------------------
def test_mig_is_checked_on_every_metered_gpu_without_cuda_naming_an_instance() -> None:
    fake = replay(A100, A100)
    fake.gpus[1].mig_enabled = True
    src = open_nvml(None, {}, fake, clock=fake.clock.now, proc_root=None)
    assert src is not None
    assert [n for n in src.notes() if "MIG" in n] == [
        "gpu:1 has MIG on: NVML meters the whole physical GPU, so its energy includes every MIG instance's work"
    ]
    assert "whole physical GPU" in src.channels()[1].detail and "MIG" not in src.channels()[0].detail


def test_a_grace_hopper_module_replaces_the_cpu_and_memory_models(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    gh200 = ReplayNvml([FakeGpu(Trace.load(DATA / A100), "NVIDIA GH200 480GB")])
    monkeypatch.setattr("wattwise.devices.nvml.PynvmlBackend", lambda: gh200)
    settings = Settings(home=tmp_path, gpu_indices=(0,), rapl_root=tmp_path / "no-powercap")
    found = discover(settings, env={})
    names = sorted(s.name for s in found.sources)
    assert "nvml" in names and "cpu-model" not in names and "memory-model" not in names
    assert any("includes its CPU and memory (Grace Hopper)" in n for n in found.notes)
    nvml = next(s for s in found.sources if isinstance(s, NvmlSource))
    assert "Grace Hopper module" in nvml.channels()[0].detail
    nvml.close()

    plain = replay(A100)
    monkeypatch.setattr("wattwise.devices.nvml.PynvmlBackend", lambda: plain)
    found = discover(settings, env={})
    assert "cpu-model" in {s.name for s in found.sources}
    for src in found.sources:
        src.close()


# -- short windows ---------------------------------------------------------------------------------------------
def test_windows_shorter_than_a_counter_step_are_filled_from_instant_power_and_the_end_is_exact() -> None:
    fake = replay(A100)
    src = source(fake)
    times = [round(0.03 * k, 2) for k in range(34)]  # 30 ms windows; the counter moves every 100 ms
    energies = [r[0].energy_j for r in read_at(src, fake, times)]
    windows = [b - a for a, b in itertools.pairwise(energies[:-1])]  # the last may step back to the exact count
    drawn = [power_integral_j(A100, a, b) for a, b in itertools.pairwise(times[:-1])]
    assert all(w > 0 for w in windows)  # no window reads 0 J
    # each within the lag uncertainty of its edges (half a 30 ms reading interval each) of what was drawn
    assert all(abs(w - d) <= max_power_w(A100) * 0.03 for w, d in zip(windows, drawn, strict=True))
    assert energies[-1] == counter_j(0, 0.9)  # the run's final reading is the counter's delta, to the millijoule
    zero_windows = sum(  # what the counter alone gives the same windows
        1 for a, b in itertools.pairwise(times) if row_at(A100, a)["energy_mj"] == row_at(A100, b)["energy_mj"]
    )
    assert zero_windows >= len(times) // 3  # the problem being solved is real in this trace


def stepping_counter(watts: float, seconds: float) -> Trace:
    """A GPU drawing ``watts`` steadily whose counter moves every 100 ms, as NVML's does (rows every 10 ms)."""
    times = tuple(round(0.01 * k, 4) for k in range(int(seconds * 100)))
    counter = tuple(10**9 + int(watts * (int(t * 10 + 1e-9) / 10) * 1000) for t in times)
    return Trace(times, tuple([int(watts * 1000)] * len(times)), counter)


def window_errors(length_s: float, sampler_s: float | None, seed: int = 0) -> tuple[list[float], list[float]]:
    """Errors of ``length_s`` windows (J) at a steady 300 W, read at their edges and by a sampler every
    ``sampler_s``, each reading a few ms late as threads are: (wattwise's, the raw counter's)."""
    rng = random.Random(seed)
    trace = stepping_counter(300.0, 32.0)
    fake = ReplayNvml([FakeGpu(trace, "H100")])
    src = source(fake)
    edges = [round(length_s * k + 0.013 + rng.uniform(0, 0.004), 5) for k in range(int(30 / length_s))]
    sampler = (
        [round(sampler_s * k + 0.037 + rng.uniform(0, 0.004), 5) for k in range(int(30 / sampler_s))]
        if sampler_s
        else []
    )
    times = sorted(t for t in {*edges, *sampler} if t <= edges[-1])
    energies = dict(zip(times, (r[0].energy_j for r in read_at(src, fake, times, final=False)), strict=True))
    ours = [abs(energies[b] - energies[a] - 300.0 * (b - a)) for a, b in itertools.pairwise(edges)]
    raw = [
        abs(mj_to_j(trace.energy_at(b) - trace.energy_at(a)) - 300.0 * (b - a)) for a, b in itertools.pairwise(edges)
    ]
    return ours, raw


@pytest.mark.parametrize("length_s", [0.15, 0.25, 0.06])
def test_windows_of_a_few_counter_steps_are_within_a_few_percent_not_a_whole_step(length_s: float) -> None:
    ours, raw = window_errors(length_s, sampler_s=0.1)
    true_j = 300.0 * length_s
    # the raw counter is off by up to a whole step (30 J) per window; once the counter's phase is known from the
    # readings (a second or so), wattwise's windows are right to a few per cent
    assert statistics.median(raw) >= min(10.0, 0.2 * true_j)
    assert statistics.median(ours) <= 0.02 * true_j
    assert max(ours[len(ours) // 4 :]) <= 0.05 * true_j


@pytest.mark.parametrize(("length_s", "sampler_s"), [(0.15, 1.0), (0.25, None), (0.35, 1.0), (1.0, None)])
def test_readings_a_step_or_more_apart_are_never_worse_than_the_raw_counter(
    length_s: float, sampler_s: float | None
) -> None:
    for seed in range(3):  # such readings say nothing of the counter's phase: the lag is half a step on average
        ours, raw = window_errors(length_s, sampler_s, seed)
        assert statistics.mean(ours) <= statistics.mean(raw) * 1.05 + 0.5


def test_a_run_shorter_than_a_counter_step_is_not_a_measured_zero() -> None:
    fake = replay(A100)
    src = source(fake)
    last = read_at(src, fake, [0.0, 0.012])[-1][0]  # a 12 ms run: the counter did not move
    assert last.energy_j == pytest.approx(power_integral_j(A100, 0.0, 0.012), rel=0.05)
    assert any("the energy counter did not move in these 0.01 s" in n for n in src.notes())


def test_the_smoother_learns_the_counters_phase_and_is_exact_at_the_end_of_a_long_run() -> None:
    smoother = CounterSmoother()

    def watts() -> float:
        return 300.0

    def counter(t: float) -> int:  # steps at 0.0963 + k × 0.1 s
        return 1_000 + 30_000 * int(t / STEP_S + 0.037)

    assert smoother.update(counter(0.0), 0.0, watts) == 0.0
    times = [round(0.013 * k, 4) for k in range(1, 60)]  # readings 13 ms apart: the phase is pinned down fast
    for t in times:
        smoother.update(counter(t), t, watts)
    phase = smoother.phase.phase_s()
    assert phase is not None and abs(phase - 0.0963) <= 0.004
    drawn = 300.0 * times[-1]
    assert smoother.reported_j == pytest.approx(drawn, abs=300.0 * 0.004)  # corrected at both edges
    final = smoother.update(counter(0.8), 0.8, watts, final=True)
    assert final == mj_to_j(counter(0.8) - counter(0.0)) and not smoother.estimated_final  # ≥ 0.5 s: exact
    frozen = CounterSmoother()
    frozen.update(0, 0.0, lambda: 100.0)
    assert frozen.update(0, 1.0, lambda: 100.0, final=True) == pytest.approx(100.0)  # it never moved: estimated
    assert frozen.final_reason == "never-moved"


def test_a_counter_that_stops_moving_gives_way_to_the_power_and_says_so() -> None:
    fake = ReplayNvml([FakeGpu(stepping_counter(300.0, 12.0), "H100")])
    src = source(fake)
    times = [round(0.1 * k + 0.05, 3) for k in range(100)]
    fake.gpus[0].trace = Trace(
        fake.gpus[0].trace.t_s,
        fake.gpus[0].trace.power_mw,
        tuple(
            e if t < 5.0 else fake.gpus[0].trace.energy_at(5.0)
            for t, e in zip(fake.gpus[0].trace.t_s, fake.gpus[0].trace.energy_mj or (), strict=True)
        ),
    )  # the counter freezes at 5 s while the GPU draws 300 W
    final = read_at(src, fake, times)[-1][0].energy_j
    assert final == pytest.approx(300.0 * (times[-1] - times[0]), rel=0.01)
    assert any("stopped moving at +5.0 s and did not move again" in n for n in src.notes())


def test_a_counter_reset_without_a_power_reading_says_the_interval_is_missing() -> None:
    smoother = CounterSmoother()
    smoother.update(31_000, 0.0, lambda: None)
    smoother.update(61_000, 1.0, lambda: None)
    assert smoother.update(500, 2.0, lambda: None) == pytest.approx(30.0)
    assert smoother.resets == 1 and smoother.unfilled == 1


def test_the_sampling_interval_has_a_floor_with_nvml_and_says_why() -> None:
    fake = replay(A100)
    src = source(fake)
    notes: list[str] = []
    assert sampling_interval(0.02, [src], notes) == MIN_INTERVAL_S
    assert notes == [
        f"sampling interval raised from 0.02 s to {MIN_INTERVAL_S:g} s: NVML's energy counter moves about every "
        "100 ms and each query costs about a millisecond per GPU: sampling faster adds overhead, not information "
        "(windows are also read at their own edges)"
    ]
    notes.clear()
    assert sampling_interval(0.5, [src], notes) == 0.5 and notes == []


def test_per_process_samples_start_at_the_run_not_the_drivers_whole_buffer() -> None:
    fake = replay(A100)
    fake.gpus[0].processes = {OURS: 50.0, 200: 50.0}
    fake.init()
    before_us = int(time.time() * 1e6)
    src = NvmlSource(fake, [probe_gpu(fake, 0)], clock=fake.clock.now, proc_root=None)
    after_us = int(time.time() * 1e6)
    read_at(src, fake, [0.0, 1.0])
    assert before_us <= fake.since_us[0] <= after_us


# -- the bindings' own errors --------------------------------------------------------------------------------
class MismatchError(Exception):
    """Stands in for pynvml.NVMLLibraryMismatchError, which is not an NVMLError."""


class FakeBindings(types.SimpleNamespace):
    """The parts of pynvml the process list and the catch-all touch."""

    NVMLError = type("NVMLError", (Exception,), {})
    NVMLLibraryMismatchError = MismatchError

    def __init__(self, versions: dict[str, Any]) -> None:
        super().__init__(**versions)

    def nvmlDeviceGetHandleByIndex(self, index: int) -> str:
        return f"handle-{index}"


def backend_with(versions: dict[str, Any]) -> PynvmlBackend:
    backend = PynvmlBackend()
    backend._nvml = FakeBindings(versions)
    return backend


def process(pid: int) -> types.SimpleNamespace:
    return types.SimpleNamespace(pid=pid)


def test_a_library_mismatch_falls_back_to_the_next_version_and_garbage_pids_are_dropped() -> None:
    def v3(handle: str) -> list[Any]:
        raise MismatchError("Unversioned function called and the pyNVML version does not match")

    backend = backend_with(
        {
            "nvmlDeviceGetComputeRunningProcesses_v3": v3,
            "nvmlDeviceGetGraphicsRunningProcesses_v3": v3,
            "nvmlDeviceGetComputeRunningProcesses_v2": lambda h: [process(OURS), process(4_294_967_295)],
            "nvmlDeviceGetGraphicsRunningProcesses_v2": lambda h: [process(0)],
        }
    )
    assert backend.running_pids(0) == frozenset({OURS})
    assert backend.dropped_pids == {0, 4_294_967_295}


@pytest.mark.parametrize(
    "error",
    [
        TypeError("bad struct"),
        AttributeError("no field"),
        OSError("ioctl"),
        MemoryError(),  # a garbage process count sizes the table the bindings allocate
        OverflowError("int too large to convert"),
        IndexError("list index out of range"),
    ],
)
def test_any_error_of_the_bindings_is_one_nvml_error(error: Exception) -> None:
    def broken(handle: str) -> int:
        raise error

    backend = backend_with({"nvmlDeviceGetPowerUsage": broken})
    with pytest.raises(NvmlError, match=f"power of GPU 0 failed in the bindings: {type(error).__name__}"):
        backend.power_mw(0)


# -- CUDA synchronisation ------------------------------------------------------------------------------------
def fake_torch(initialised: bool = True, fails: bool = False) -> tuple[types.ModuleType, list[str]]:
    calls: list[str] = []

    def synchronize() -> None:
        calls.append("synchronize")
        if fails:
            raise RuntimeError("CUDA error: an illegal memory access was encountered")

    torch = types.ModuleType("torch")
    torch.cuda = types.SimpleNamespace(  # type: ignore[attr-defined]
        is_available=lambda: True, is_initialized=lambda: initialised, synchronize=synchronize
    )
    return torch, calls


def test_cuda_sync_waits_only_when_asked_and_only_where_torch_has_a_cuda_context(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delitem(sys.modules, "torch", raising=False)
    notes: list[str] = []
    sync_cuda(True, notes)
    assert "torch" not in sys.modules and notes == []  # never imports torch itself

    torch, calls = fake_torch()
    monkeypatch.setitem(sys.modules, "torch", torch)
    sync_cuda(False, notes)
    assert calls == []
    sync_cuda(True, notes)
    assert calls == ["synchronize"]

    idle, idle_calls = fake_torch(initialised=False)
    monkeypatch.setitem(sys.modules, "torch", idle)
    sync_cuda(True, notes)
    assert idle_calls == []  # no CUDA context: nothing queued, and no context created by us

    broken, _ = fake_torch(fails=True)
    monkeypatch.setitem(sys.modules, "torch", broken)
    sync_cuda(True, notes)
    assert notes == [
        "cuda_sync: torch.cuda.synchronize() failed (RuntimeError: CUDA error: an illegal memory access was "
        "encountered)"
    ]


def test_cuda_sync_runs_at_every_window_edge_of_a_tracked_run(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from tests.fakes.power import ConstantPowerSource, FakeHost
    from wattwise.measure.tracker import Tracker

    torch, calls = fake_torch()
    monkeypatch.setitem(sys.modules, "torch", torch)
    settings = Settings(home=tmp_path, db="sqlite:///:memory:", cuda_sync=True, interval_s=0.05)
    source_ = ConstantPowerSource({"gpu:0": 100.0}, name="nvml")
    with Tracker("x", settings=settings, sources=[source_], host=FakeHost(), handle_signals=False) as t:
        with t.window("epoch 1"):
            pass
        with t.window("epoch 2"):
            pass
    assert len(calls) >= 2 + 2 * 2  # the run's start and end, and each window's start and end


def test_cuda_sync_says_when_it_could_not_have_any_effect() -> None:
    from wattwise.measure.edges import CudaSync

    notes: list[str] = []
    for_command = CudaSync(True, command=True)
    for_command(notes)
    assert for_command.waited == 0 and "no effect on a measured command" in (for_command.closing_note() or "")
    without_cuda = CudaSync(True)
    without_cuda(notes)
    assert "never had a CUDA context" in (without_cuda.closing_note() or "")
    assert CudaSync(False).closing_note() is None


# -- one GPU must not hide the others -------------------------------------------------------------------------
@pytest.mark.parametrize("spec", ["0", "GPU-00000000", "MIG-aaaa"])
def test_a_gpu_that_cannot_be_asked_does_not_hide_the_one_named_for_the_job(spec: str) -> None:
    fake = replay(A100, A100)
    fake.gpus[0].mig_uuids = ("MIG-aaaa1111-2222-3333-4444-555566667777",)
    fake.gpus[1].uuid = "GPU-11111111-0000-4000-8000-000000000001"
    denied = NvmlError("nvml: GPU 1 failed: Insufficient Permissions", "no-permission")
    for method in ("name", "uuid", "mig_uuids", "mig_enabled", "total_energy_mj"):
        fake.gpus[1].fail[method] = denied
    src = open_nvml(None, {"CUDA_VISIBLE_DEVICES": spec}, fake, clock=fake.clock.now, proc_root=None)
    assert src is not None and [c.name for c in src.channels()] == ["gpu:0"]


def test_with_every_gpu_visible_one_that_cannot_be_opened_is_listed_by_doctor() -> None:
    from wattwise.devices.nvml import probe_nvml

    fake = replay(A100, A100)
    fake.gpus[1].fail["name"] = NvmlError("nvml: GPU 1 failed: Insufficient Permissions", "no-permission")
    result = probe_nvml(lambda: fake, {}, proc_root=Path("/proc"))
    assert result.available and result.summary.startswith("2 GPU(s)")
    assert "gpu:1: cannot be opened (no-permission)" in result.summary
    assert result.details is not None
    rows = result.details["gpus"]
    assert isinstance(rows, list) and rows[1] == {
        "index": 1,
        "measures": "cannot be opened: " + str(fake.gpus[1].fail["name"]),
    }
    machine = probe_nvml(lambda: replay(A100), {}, attribute_processes=False)
    assert machine.details is not None and str(machine.details["attribution"]).startswith("off (attribution = machine)")
    assert probe_nvml(lambda: replay(A100), {}, enabled=False).summary == "turned off by the settings (gpu = false)"


def test_a_grace_hopper_module_is_charged_from_the_start_its_cpu_runs_the_job() -> None:
    fake = ReplayNvml([FakeGpu(Trace.load(DATA / A100), "NVIDIA GH200 480GB")])
    src = source(fake, handed=False)  # every GPU visible, and no process on the GPU
    last = read_at(src, fake, [0.0, 2.0])[-1][0]
    assert last.attributed_j == last.energy_j > 0
