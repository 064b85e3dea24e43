"""NVML as real hardware behaves (issue 11): per-GPU errors and loss, GPUs that give nothing, GPUs charged from
first use, MIG on any GPU, Grace Hopper modules, short windows between counter steps, the sampling floor, per-
process samples from the run's start, the bindings' own errors, and CUDA synchronisation at window edges."""

from __future__ import annotations

import itertools
import sys
import time
import types
from pathlib import Path
from typing import Any

import pytest

from tests.devices.test_nvml import A100, OURS, read_at, row_at, source
from tests.fakes.nvml import DATA, FakeGpu, ReplayNvml, Trace, replay
from wattwise.config import Settings
from wattwise.devices import discover
from wattwise.devices.nvml import NvmlError, NvmlSource, PynvmlBackend, open_nvml, probe_gpu
from wattwise.devices.nvml_source import MIN_INTERVAL_S, CounterSmoother
from wattwise.measure.edges import sampling_interval, sync_cuda
from wattwise.units import mj_to_j


def counter_j(t0: float, t1: float) -> float:
    return mj_to_j(int(row_at(A100, t1)["energy_mj"]) - int(row_at(A100, t0)["energy_mj"]))


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
    assert last[1].energy_j == counter_j(0, 4)  # up to its last answer
    assert any(n.startswith("gpu:1 stopped answering at +5.0 s") and "is kept" in n for n in src.notes())
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
    assert last[1].energy_j == counter_j(0, 4)
    assert last[0].energy_j == counter_j(0, 8)
    assert any(n.startswith("gpu:1 stopped answering at +7.0 s") for n in src.notes())


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
    assert last[0].attributed_j == pytest.approx(counter_j(2, 6))
    assert last[1].energy_j == counter_j(0, 6) and last[1].attributed_j == 0.0
    notes = src.notes()
    assert "gpu:0 is charged to the run from +3.0 s, when it first used it" in notes
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
    steps = [b - a for a, b in itertools.pairwise(energies[:-1])]  # the last may step back to the exact count
    assert all(step > 0 for step in steps)  # no window reads 0 J
    assert energies[-1] == counter_j(0, 0.9)  # the final reading is the counter's delta, to the millijoule
    zero_windows = sum(  # what the counter alone gives the same windows
        1 for a, b in itertools.pairwise(times) if row_at(A100, a)["energy_mj"] == row_at(A100, b)["energy_mj"]
    )
    assert zero_windows >= len(times) // 3  # the problem being solved is real in this trace


def test_the_smoother_never_goes_back_and_holds_an_overestimate_until_the_counter_catches_up() -> None:
    smoother = CounterSmoother()
    assert smoother.update(1_000, 0.0, lambda: 300.0) == 0.0
    assert smoother.update(1_000, 0.05, lambda: 300.0) == pytest.approx(15.0)  # filled: 300 W × 50 ms
    assert smoother.update(11_000, 0.05, lambda: 300.0) == pytest.approx(15.0)  # counted 10 J < 15 J: held
    assert smoother.update(31_000, 0.05, lambda: 300.0) == pytest.approx(30.0)  # the counter overtakes
    assert smoother.update(31_000, 0.05, lambda: 300.0, final=True) == pytest.approx(30.0)  # exact at the end
    fill_only = CounterSmoother()
    fill_only.update(0, 0.0, lambda: 100.0)
    fill_only.update(0, 0.05, lambda: 100.0)
    assert fill_only.update(0, 0.05, lambda: 100.0, final=True) == 0.0  # the end is what the counter says


def test_the_sampling_interval_has_a_floor_with_nvml_and_says_why() -> None:
    fake = replay(A100)
    src = source(fake)
    notes: list[str] = []
    assert sampling_interval(0.02, [src], notes) == MIN_INTERVAL_S
    assert notes == [
        f"sampling interval raised from 0.02 s to {MIN_INTERVAL_S:g} s: NVML's energy counter moves about every "
        "100 ms and each query costs about a millisecond per GPU: sampling faster adds overhead, not information "
        "(windows stay exact at their edges)"
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


@pytest.mark.parametrize("error", [TypeError("bad struct"), AttributeError("no field"), OSError("ioctl")])
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
