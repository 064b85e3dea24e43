"""NVML source: energy counter and power sampling replayed from traces; visibility, attribution, probing."""

from __future__ import annotations

import csv
import itertools
import subprocess
import sys
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.fakes.nvml import DATA, FakeClock, FakeGpu, ReplayNvml, Trace, replay
from wattwise.devices.base import HostSnapshot, MeterReading, PowerSource
from wattwise.devices.nvml import (
    NvmlError,
    NvmlReason,
    NvmlSource,
    PynvmlBackend,
    open_nvml,
    probe_gpu,
    probe_nvml,
    translate_nvml_error,
    visible_gpu_indices,
)
from wattwise.devices.nvml_counter import EXACT_AFTER_S, STEP_S
from wattwise.errors import ConfigError, DeviceError
from wattwise.units import mj_to_j, mw_to_w

A100 = "synthetic_a100_counter.csv"
P100 = "synthetic_p100_no_counter.csv"
OURS = 100


def rows(name: str) -> list[dict[str, str]]:
    """The trace's rows, read independently of the fake."""
    lines = [line for line in (DATA / name).read_text().splitlines() if not line.startswith("#")]
    return list(csv.DictReader(lines))


def row_at(name: str, t_s: float) -> dict[str, str]:
    return rows(name)[int(t_s * 10 + 1e-6)]  # traces have one row per 0.1 s


def snap(t_s: float = 0.0, pids: frozenset[int] = frozenset({OURS})) -> HostSnapshot:
    return HostSnapshot(t_s=t_s, cpu_busy_s=0.0, cpu_total_s=0.0, tree_cpu_s=0.0, tree_pids=pids)


def source(
    fake: ReplayNvml,
    *,
    attribute_processes: bool = True,
    use_energy_counter: bool = True,
    proc_root: Path | None = None,
    handed: bool = True,
) -> NvmlSource:
    fake.init()
    gpus = [probe_gpu(fake, i, use_energy_counter=use_energy_counter) for i in range(len(fake.gpus))]
    return NvmlSource(
        fake,
        gpus,
        attribute_processes=attribute_processes,
        handed=handed,
        clock=fake.clock.now,
        proc_root=proc_root,
        started_us=0,
    )


def read_at(
    src: NvmlSource,
    fake: ReplayNvml,
    times: list[float],
    pids: frozenset[int] = frozenset({OURS}),
    *,
    final: bool = True,
) -> list[tuple[MeterReading, ...]]:
    """Readings at ``times``; the last is the run's final one (the counter's exact value) unless ``final=False``."""
    readings = []
    for k, t_s in enumerate(times):
        fake.clock.t_s = t_s
        readings.append(src.read(snap(t_s, pids), final=final and k == len(times) - 1))
    return readings


# -- energy --------------------------------------------------------------------------------------------------
def test_counter_path_is_the_counter_delta_to_the_millijoule() -> None:
    fake = replay(A100)
    src = source(fake)
    first, *_, last = read_at(src, fake, [0.0, 2.5, 7.3, 12.5])
    assert first[0].energy_j == 0.0 and first[0].attributed_j == 0.0
    delta_mj = int(row_at(A100, 12.5)["energy_mj"]) - int(row_at(A100, 0.0)["energy_mj"])
    assert last[0].energy_j == mj_to_j(delta_mj)
    assert src.channels()[0].method == "nvml-energy-counter"


@settings(max_examples=60, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.floats(min_value=0.0, max_value=30.0, allow_nan=False), min_size=2, max_size=25))
def test_counter_readings_never_decrease_and_sum_to_the_counter_delta(times: list[float]) -> None:
    times = sorted(times)
    fake = replay(A100)
    readings = read_at(source(fake), fake, times)
    energies = [r[0].energy_j for r in readings]
    assert energies[:-1] == sorted(energies[:-1])  # between counter steps, power fills in; never backwards
    trace = fake.gpus[0].trace
    counted_j = mj_to_j(trace.energy_at(times[-1]) - trace.energy_at(times[0]))
    if times[-1] - times[0] >= EXACT_AFTER_S and counted_j > 0:
        assert energies[-1] == counted_j  # the final reading of a run of half a second or more: the counter, exact
    else:  # shorter: the counted energy corrected at both edges, within one counter step of what was drawn
        drawn_j = power_integral_j(A100, times[0], times[-1])
        assert energies[-1] == pytest.approx(drawn_j, abs=max_power_w(A100) * STEP_S)


def power_integral_j(name: str, start: float, end: float) -> float:
    """What the GPU drew over [start, end], from the trace's power rows (held between rows, as the fake's are)."""
    table = [(float(r["t_s"]), mw_to_w(int(r["power_mw"]))) for r in rows(name)]
    total = 0.0
    for (t0, watts), (t1, _) in itertools.pairwise(table):
        total += watts * max(0.0, min(t1, end) - max(t0, start))
    return total


def max_power_w(name: str) -> float:
    return max(mw_to_w(int(r["power_mw"])) for r in rows(name))


def test_power_sampling_is_the_trapezoid_of_the_readings() -> None:
    fake = replay(P100)
    src = source(fake)
    times = [0.0, 0.35, 2.0, 2.05, 7.3, 12.0, 19.9]
    last = read_at(src, fake, times)[-1]
    power_w = [mw_to_w(int(row_at(P100, t)["power_mw"])) for t in times]
    expected = sum((power_w[k] + power_w[k + 1]) / 2 * (times[k + 1] - times[k]) for k in range(len(times) - 1))
    assert last[0].energy_j == pytest.approx(expected, rel=1e-12)
    channel = src.channels()[0]
    assert (channel.method, channel.source) == ("nvml-power-sampling", "measured")
    assert "NVML power reading" in channel.detail


def test_mixed_gpus_one_counter_one_sampled() -> None:
    fake = replay(A100, P100)
    src = source(fake)
    assert [(c.name, c.component, c.method) for c in src.channels()] == [
        ("gpu:0", "gpu", "nvml-energy-counter"),
        ("gpu:1", "gpu", "nvml-power-sampling"),
    ]
    readings = read_at(src, fake, [float(t) for t in range(11)])
    counter_j = mj_to_j(int(row_at(A100, 10)["energy_mj"]) - int(row_at(A100, 0)["energy_mj"]))
    sampled_j = sum(
        mw_to_w(int(row_at(P100, t)["power_mw"]) + int(row_at(P100, t + 1)["power_mw"])) / 2 for t in range(10)
    )
    assert readings[-1][0].energy_j == counter_j
    assert readings[-1][1].energy_j == pytest.approx(sampled_j, rel=1e-12)


def test_the_counter_can_be_turned_off() -> None:
    src = source(replay(A100), use_energy_counter=False)
    assert src.channels()[0].method == "nvml-instant-power"  # the next best this GPU has


@pytest.mark.parametrize("name", sorted(p.name for p in DATA.glob("*.csv")))
def test_every_trace_counter_exact_and_sampling_close(name: str) -> None:
    """Every trace, synthetic or recorded: real ones added to tests/data/nvml are checked as well."""
    trace = Trace.load(DATA / name)
    times = [float(t) for t in range(int(trace.duration_s) + 1)]
    fake = replay(name)
    sampled_j = read_at(source(fake, use_energy_counter=False), fake, times)[-1][0].energy_j
    assert sampled_j > 0
    if trace.energy_mj is not None:
        fake = replay(name)
        counter_j = read_at(source(fake), fake, times)[-1][0].energy_j
        assert counter_j == mj_to_j(trace.energy_at(times[-1]) - trace.energy_at(0.0))
        assert sampled_j == pytest.approx(counter_j, rel=0.10)


def test_counter_going_backwards_restarts_and_fills_the_interval_from_power() -> None:
    fake = replay(A100)
    src = source(fake)
    read_at(src, fake, [0.0, 5.0])
    fake.clock.t_s = 7.0
    fake.reset_counter(0)  # driver reload: the counter restarts from zero
    readings = read_at(src, fake, [8.0, 10.0])
    e = [int(row_at(A100, t)["energy_mj"]) for t in (0, 5, 8, 10)]
    fill_j = mw_to_w(int(row_at(A100, 8.0)["power_mw"])) * 3.0
    step_j = max_power_w(A100) * STEP_S  # a reading during the run is the counted energy ± the lag since a step
    assert readings[0][0].energy_j == pytest.approx(mj_to_j(e[1] - e[0]) + fill_j, abs=step_j)
    assert readings[1][0].energy_j == pytest.approx(mj_to_j(e[1] - e[0] + e[3] - e[2]) + fill_j)
    assert any("went backwards" in note for note in src.notes())


def test_close_twice_is_safe_and_read_after_close_fails() -> None:
    fake = replay(A100)
    src = source(fake)
    assert isinstance(src, PowerSource)
    src.close()
    src.close()
    assert fake.shutdowns == 1
    with pytest.raises(DeviceError, match="after close"):
        src.read(snap())


def test_a_gpu_that_cannot_be_opened_is_skipped_and_if_none_can_nvml_shuts_down() -> None:
    fake = replay(A100, A100)
    fake.gpus[0].fail["name"] = NvmlError("nvml: name of GPU 0 failed: Insufficient Permissions", "no-permission")
    src = open_nvml(None, {}, fake, proc_root=None)
    assert src is not None and [c.name for c in src.channels()] == ["gpu:1"]
    why = "nvml: name of GPU 0 failed: Insufficient Permissions"
    assert f"gpu:0 is not measured: it cannot be opened ({why})" in src.notes()
    only = replay(A100)
    only.fail["name"] = NvmlError("nvml: GPU is lost", "gpu-lost")
    with pytest.raises(NvmlError, match="none of the visible GPUs can be opened"):
        open_nvml(None, {}, only, proc_root=None)
    assert only.shutdowns == 1


# -- attribution ---------------------------------------------------------------------------------------------
def shared(processes: dict[int, float], proc_root: Path | None = None) -> tuple[float, float, NvmlSource]:
    fake = replay(A100)
    fake.gpus[0].processes = processes
    src = source(fake, proc_root=proc_root)
    last = read_at(src, fake, [0.0, 4.0, 9.0])[-1][0]
    return last.energy_j, last.attributed_j, src


@pytest.mark.parametrize(
    ("processes", "share"),
    [
        ({OURS: 80.0}, 1.0),  # only ours
        ({}, 1.0),  # no context yet, or idle: the GPU is the job's
        ({OURS: 50.0, 200: 50.0}, 0.5),
        ({OURS: 25.0, 101: 0.0, 200: 75.0}, 0.25),
    ],
)
def test_share_follows_sm_utilisation(processes: dict[int, float], share: float) -> None:
    energy_j, attributed_j, src = shared(processes)
    assert energy_j > 0
    assert attributed_j == pytest.approx(energy_j * share)
    assert src.notes() == ()


def test_without_sm_samples_the_energy_is_split_per_process() -> None:
    fake = replay(A100)
    fake.gpus[0].processes = {OURS: 0.0, 101: 0.0, 200: 0.0}
    fake.gpus[0].sm_supported = False
    src = source(fake)
    last = read_at(src, fake, [0.0, 5.0], frozenset({OURS, 101}))[-1][0]
    assert last.attributed_j == pytest.approx(last.energy_j * 2 / 3)
    assert any("split equally" in note for note in src.notes())


def test_only_other_processes_get_nothing_with_a_note(tmp_path: Path) -> None:
    (tmp_path / "200").mkdir()
    energy_j, attributed_j, src = shared({200: 90.0}, proc_root=tmp_path)
    assert energy_j > 0 and attributed_j == pytest.approx(0.0, abs=1e-9)
    assert any("only other processes" in note for note in src.notes())


def test_pids_from_another_namespace_charge_the_whole_gpu_with_a_note(tmp_path: Path) -> None:
    energy_j, attributed_j, src = shared({4242: 90.0}, proc_root=tmp_path)  # no /proc/4242 here
    assert attributed_j == pytest.approx(energy_j)
    assert any("PID namespace" in note for note in src.notes())


def test_unlisted_processes_charge_the_whole_gpu_with_a_note() -> None:
    fake = replay(A100)
    fake.gpus[0].processes_supported = False
    src = source(fake)
    last = read_at(src, fake, [0.0, 3.0])[-1][0]
    assert last.attributed_j == pytest.approx(last.energy_j)
    assert any("cannot list" in note for note in src.notes())


def test_nvml_calls_per_read() -> None:
    fake = replay(A100)
    fake.gpus[0].processes = {OURS: 70.0}
    src = source(fake)
    read_at(src, fake, [0.0])
    before = sum(fake.calls.values())
    read_at(src, fake, [1.0])
    assert sum(fake.calls.values()) - before == 3  # the counter, the power (its lag) and the process list
    fake.gpus[0].processes = {OURS: 70.0, 200: 30.0}
    before = sum(fake.calls.values())
    started_us = int(time.time() * 1e6)
    read_at(src, fake, [2.0, 3.0])
    assert sum(fake.calls.values()) - before == 8  # ... plus SM utilisation while the GPU is shared
    # the first shared interval asks for samples since the last reading, not since the run started; then each
    # query asks for those after the previous one
    assert fake.since_us[0] >= started_us - 2_000_000 and fake.since_us[1] == fake.since_us[0] + 1

    machine = replay(A100)
    machine.gpus[0].processes = {OURS: 70.0, 200: 30.0}
    src = source(machine, attribute_processes=False)
    probed = machine.calls["running_pids"]  # once, when the source opened: can this GPU list its processes?
    last = read_at(src, machine, [0.0, 1.0, 2.0])[-1][0]
    assert machine.calls["running_pids"] == probed and machine.calls["process_sm_utilisation"] == 0
    assert last.attributed_j == last.energy_j


# -- which GPUs --------------------------------------------------------------------------------------------
UUIDS = [
    "GPU-aaaa1111-0000-4000-8000-000000000000",
    "GPU-aaaa2222-0000-4000-8000-000000000001",
    "GPU-bbbb3333-0000-4000-8000-000000000002",
    "GPU-cccc4444-0000-4000-8000-000000000003",
]


def four_gpus(clock: FakeClock | None = None, names: tuple[str, ...] = ("A100",) * 4) -> ReplayNvml:
    trace = Trace.load(DATA / A100)
    gpus = [FakeGpu(trace, name, uuid) for name, uuid in zip(names, UUIDS, strict=True)]
    gpus[2].mig_uuids = (
        "MIG-11112222-3333-4444-5555-666677778888",
        "MIG-99990000-3333-4444-5555-666677778888",
    )
    fake = ReplayNvml(gpus, clock)
    fake.init()
    return fake


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        (None, [0, 1, 2, 3]),
        ("", []),
        ("2,1", [2, 1]),
        ("0,2,-1,1", [0, 2]),  # the CUDA documentation's example: an invalid id ends the list
        ("0,7,1", [0]),  # out of range ends it too
        ("1,,3", [1]),
        (" 1 , 3 ", [1, 3]),
        ("1gpu2,3", [1, 3]),  # read like strtoul
        ("+2", [2]),
        ("0,0", []),  # a GPU named twice: CUDA sees none
        ("0,GPU-cccc4444", [0]),  # the first entry fixes the kind
        (UUIDS[3], [3]),
        (f"{UUIDS[2]},{UUIDS[0]}", [2, 0]),
        ("GPU-bbbb,GPU-cccc", [2, 3]),  # unique prefixes
        ("GPU-aaaa,GPU-bbbb", []),  # ambiguous prefix: invalid, ends the list at once
        ("GPU-cccc,GPU-zzzz,GPU-bbbb", [3]),
        ("GPU-cccc,1", [3]),
        ("GPU-bbbb3333,GPU-bbbb", []),  # the same GPU twice
        ("MIG-99990000", [2]),  # a MIG instance: its physical GPU
        ("MIG-GPU-bbbb3333-0000-4000-8000-000000000002/1/0", [2]),  # before driver R470
        ("MIG-12345678", []),
        ("abc", []),
    ],
)
def test_cuda_visible_devices(spec: str | None, expected: list[int]) -> None:
    assert visible_gpu_indices(four_gpus(), spec, None) == expected


def test_every_cuda_visible_devices_selection_maps_to_its_nvml_indices() -> None:
    fake = four_gpus()
    for size in range(1, 5):
        for chosen in itertools.permutations(range(4), size):
            for spec in (
                ",".join(str(i) for i in chosen),
                ",".join(UUIDS[i] for i in chosen),
                ",".join(UUIDS[i][:13] for i in chosen),  # GPU-aaaa1111 etc.: unique prefixes
            ):
                assert visible_gpu_indices(fake, spec, None) == list(chosen), spec
                src = open_nvml(None, {"CUDA_VISIBLE_DEVICES": spec}, four_gpus(), proc_root=None)
                assert src is not None
                assert [c.name for c in src.channels()] == [f"gpu:{i}" for i in chosen]
                src.close()


def test_explicit_indices_override_cuda_visible_devices() -> None:
    fake = four_gpus()
    assert visible_gpu_indices(fake, "0", (3, 1)) == [3, 1]
    assert visible_gpu_indices(fake, "", (2, 2, 0)) == [2, 0]
    with pytest.raises(ConfigError, match="gpu_indices names GPU 4"):
        visible_gpu_indices(fake, None, (0, 4))


# -- probe and open ------------------------------------------------------------------------------------------
def failing(method: str, reason: NvmlReason) -> ReplayNvml:
    fake = replay(A100, P100)
    fake.fail[method] = NvmlError(f"nvml: {method} failed: {reason} (NVML error 999)", reason)
    return fake


def no_bindings() -> ReplayNvml:
    raise NvmlError("nvml: the NVML bindings are not installed", "pynvml-missing")


@pytest.mark.parametrize(
    ("factory", "summary", "fix"),
    [
        (no_bindings, "nvidia-ml-py", "pip install nvidia-ml-py"),
        (
            lambda: failing("init", "library-not-found"),
            "no NVIDIA driver (libnvidia-ml.so not found)",
            "install the NVIDIA driver, or ignore on machines without NVIDIA GPUs",
        ),
        (lambda: failing("init", "driver-not-loaded"), "installed but not loaded", "modprobe nvidia"),
        (lambda: failing("init", "no-permission"), "no permission to use NVML", "/dev/nvidia"),
        (lambda: failing("device_count", "gpu-lost"), "device_count failed", "nvidia-smi"),
        (lambda: ReplayNvml([]), "NVML sees no GPU", None),
    ],
)
def test_probe_says_why_and_how_to_fix(factory: object, summary: str, fix: str | None) -> None:
    result = probe_nvml(factory, {})  # type: ignore[arg-type]
    assert (result.source, result.available) == ("nvml", False)
    assert summary in result.summary
    assert result.fix == fix if fix is None else fix in (result.fix or "")


def test_probe_names_each_gpu_and_whether_it_has_a_counter() -> None:
    fake = replay(A100, P100)
    result = probe_nvml(lambda: fake, {})
    assert result.available
    assert "gpu:0 synthetic_a100_counter: energy counter + instantaneous power" in result.summary
    assert "gpu:1 synthetic_p100_no_counter: averaged power only (no energy counter)" in result.summary
    assert "driver 535.104.05" in result.summary
    assert [c.method for c in result.channels] == ["nvml-energy-counter", "nvml-power-sampling"]
    assert fake.shutdowns == 1 and result.fix is None


def test_probe_when_cuda_visible_devices_hides_every_gpu() -> None:
    result = probe_nvml(lambda: replay(A100, P100), {"CUDA_VISIBLE_DEVICES": ""})
    assert not result.available
    assert result.summary == "CUDA_VISIBLE_DEVICES='' hides all 2 GPU(s)"
    assert "unset CUDA_VISIBLE_DEVICES" in (result.fix or "")
    bad = probe_nvml(lambda: replay(A100), {}, gpu_indices=(3,))
    assert not bad.available and "gpu_indices" in bad.summary


def test_probe_warns_when_cuda_and_nvml_may_number_mixed_gpus_differently() -> None:
    env = {"CUDA_VISIBLE_DEVICES": "1"}
    assert "CUDA_DEVICE_ORDER=PCI_BUS_ID" in (probe_nvml(lambda: replay(A100, P100), env).fix or "")
    env["CUDA_DEVICE_ORDER"] = "PCI_BUS_ID"
    assert probe_nvml(lambda: replay(A100, P100), env).fix is None
    assert probe_nvml(four_gpus, {"CUDA_VISIBLE_DEVICES": "1"}).fix is None  # all the same model


@pytest.mark.parametrize("reason", ["library-not-found", "driver-not-loaded"])
def test_open_returns_none_without_a_driver(reason: NvmlReason) -> None:
    assert open_nvml(None, {}, failing("init", reason)) is None


def test_open_returns_none_without_a_visible_gpu_and_shuts_down() -> None:
    for fake, env in ((ReplayNvml([]), {}), (replay(A100), {"CUDA_VISIBLE_DEVICES": "-1"})):
        assert open_nvml(None, env, fake) is None
        assert fake.shutdowns == 1


def test_open_raises_for_real_failures() -> None:
    with pytest.raises(DeviceError, match="no-permission"):
        open_nvml(None, {}, failing("init", "no-permission"))
    fake = replay(A100)
    with pytest.raises(ConfigError):
        open_nvml((1,), {}, fake)
    assert fake.shutdowns == 1


def test_open_notes_a_mig_instance_meters_the_whole_gpu() -> None:
    src = open_nvml(None, {"CUDA_VISIBLE_DEVICES": "MIG-1111"}, four_gpus(), proc_root=None)
    assert src is not None and [c.name for c in src.channels()] == ["gpu:2"]
    assert any("whole physical GPU" in note for note in src.notes())


def test_nvml_error_codes_map_to_wattwise_reasons() -> None:
    import pynvml

    expected = {
        pynvml.NVML_ERROR_NOT_SUPPORTED: "not-supported",
        pynvml.NVML_ERROR_LIBRARY_NOT_FOUND: "library-not-found",
        pynvml.NVML_ERROR_DRIVER_NOT_LOADED: "driver-not-loaded",
        pynvml.NVML_ERROR_NO_PERMISSION: "no-permission",
        pynvml.NVML_ERROR_GPU_IS_LOST: "gpu-lost",
        pynvml.NVML_ERROR_UNKNOWN: "failed",
    }
    for code, reason in expected.items():
        error = translate_nvml_error(pynvml, pynvml.NVMLError(code), "a call")
        assert isinstance(error, DeviceError) and (error.reason, error.code) == (reason, code)
        assert str(error).startswith("nvml: a call failed: ")


def test_real_backend_on_this_machine() -> None:
    """Without a GPU the real probe explains itself; with one it lists the GPUs. Either way no exception."""
    result = probe_nvml(PynvmlBackend, {})
    assert result.source == "nvml" and result.summary
    if not result.available:
        assert result.fix
    if "libnvidia-ml.so not found" in result.summary:
        assert open_nvml(None, {}) is None


def test_importing_the_module_does_not_import_pynvml() -> None:
    code = "import sys, wattwise.devices.nvml; print('pynvml' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
