"""A fake NVML that behaves like the hardware, replaying power/energy traces against a clock the test moves.

A trace is a CSV with columns ``t_s,index,power_mw,energy_mj`` (``energy_mj`` empty where the GPU has no
counter; lines starting with ``#`` are comments), as written by ``benchmarks/record_nvml_trace.py`` or by
``tests/data/nvml/make_synthetic.py``. What the fake answers at clock time ``t`` (seconds since the trace's first
row), as the hardware does:

* the **energy counter** steps: it holds the value of the last trace row at or before ``t`` (rows every 100 ms, as
  the counter updates), never interpolating between rows;
* the **instantaneous power** field is the power row in effect at ``t``;
* **nvmlDeviceGetPowerUsage** is, on Ampere and newer, an average: the mean of the rows of the last
  ``power_average_s`` (1 s by default; 0 gives the row in effect, as older GPUs do).

Each :class:`FakeGpu` says what it supports, which processes hold a context on it and their SM utilisation, its
MIG mode and power limit; ``fail`` (per GPU) makes one method raise, ``lost_after_s`` makes the GPU answer
"GPU is lost" from that time on. ``fail`` on :class:`ReplayNvml` makes a method raise for every GPU; ``calls``
counts every call.
"""

from __future__ import annotations

import bisect
import csv
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from wattwise.devices.nvml import EnergyCounterUnsupported, NvmlError, ProcessUtilisation

DATA = Path(__file__).resolve().parent.parent / "data" / "nvml"
_EPS_S = 1e-9  # clock times built from sums of 0.1 s steps land a hair off the rows


@dataclass
class FakeClock:
    t_s: float = 0.0

    def now(self) -> float:
        return self.t_s

    def advance(self, dt_s: float) -> None:
        self.t_s += dt_s


@dataclass(frozen=True)
class Trace:
    t_s: tuple[float, ...]
    power_mw: tuple[int, ...]
    energy_mj: tuple[int, ...] | None  # None: the recorded GPU had no energy counter

    @classmethod
    def load(cls, path: Path, index: int | None = None) -> Trace:
        """The rows of GPU ``index`` (default: the file's first GPU), times counted from its first row."""
        lines = [line for line in path.read_text().splitlines() if line and not line.startswith("#")]
        rows = list(csv.DictReader(lines))
        if index is None and rows:
            index = int(rows[0]["index"])
        t_s: list[float] = []
        power: list[int] = []
        energy: list[int] = []
        for row in rows:
            if int(row["index"]) != index:
                continue
            t_s.append(float(row["t_s"]))
            power.append(int(row["power_mw"]))
            if row["energy_mj"]:
                energy.append(int(row["energy_mj"]))
        if not t_s:
            raise ValueError(f"{path} has no rows for GPU {index}")
        start = t_s[0]
        has_energy = len(energy) == len(t_s)
        return cls(tuple(t - start for t in t_s), tuple(power), tuple(energy) if has_energy else None)

    @property
    def duration_s(self) -> float:
        return self.t_s[-1]

    def _row(self, t_s: float) -> int:
        if not -_EPS_S <= t_s <= self.duration_s + _EPS_S:
            raise ValueError(f"clock at {t_s:.3f} s is outside the trace (0 to {self.duration_s:.3f} s)")
        return max(0, bisect.bisect_right(self.t_s, t_s + _EPS_S) - 1)

    def power_at(self, t_s: float) -> int:
        """The instantaneous power: the row in effect."""
        return self.power_mw[self._row(t_s)]

    def power_average(self, t_s: float, window_s: float) -> int:
        """NVML's averaged power reading: the mean of the rows in ``(t - window, t]`` (the row in effect if none)."""
        k = self._row(t_s)
        rows = [j for j in range(k + 1) if self.t_s[j] > t_s - window_s - _EPS_S] or [k]
        return round(sum(self.power_mw[j] for j in rows) / len(rows))

    def energy_at(self, t_s: float) -> int:
        """The counter: the value of the last row at or before ``t`` (it steps, as the hardware's does)."""
        if self.energy_mj is None:
            raise ValueError("this trace has no energy counter column")
        return self.energy_mj[self._row(t_s)]


@dataclass
class FakeGpu:
    trace: Trace
    name: str = "Synthetic GPU"
    uuid: str = "GPU-00000000-0000-0000-0000-000000000000"
    counter_supported: bool = True
    instant_supported: bool = True
    power_supported: bool = True
    power_average_s: float = 1.0  # nvmlDeviceGetPowerUsage averages over this (Ampere+); 0: instantaneous
    processes: dict[int, float] = field(default_factory=dict)  # pid -> SM utilisation % per sample
    processes_supported: bool = True
    sm_supported: bool = True
    mig_uuids: tuple[str, ...] = ()
    mig_enabled: bool = False
    power_limit_mw: int | None = 400_000
    counter_offset_mj: int = 0
    fail: dict[str, NvmlError] = field(default_factory=dict)  # method -> error, for this GPU only
    lost_after_s: float | None = None


class ReplayNvml:
    """An :class:`~wattwise.devices.nvml.NvmlBackend` over traces; time comes from ``clock``."""

    def __init__(
        self,
        gpus: Sequence[FakeGpu],
        clock: FakeClock | None = None,
        fail: Mapping[str, NvmlError] | None = None,
        driver: str = "535.104.05",
    ) -> None:
        self.gpus = list(gpus)
        self.clock = clock or FakeClock()
        self.fail = dict(fail or {})
        self.driver = driver
        self.calls: Counter[str] = Counter()
        self.initialised = False
        self.shutdowns = 0
        self.since_us: list[int] = []
        self._sample_us = 0

    def _enter(self, method: str, index: int | None = None) -> FakeGpu | None:
        self.calls[method] += 1
        if method in self.fail:
            raise self.fail[method]
        if index is None:
            return None
        if not self.initialised:
            raise NvmlError("nvml: not initialised (fake)", "failed")
        if not 0 <= index < len(self.gpus):
            raise NvmlError(f"nvml: no GPU {index} (fake)", "failed")
        gpu = self.gpus[index]
        if method in gpu.fail:
            raise gpu.fail[method]
        if gpu.lost_after_s is not None and self.clock.now() >= gpu.lost_after_s:
            raise NvmlError(f"nvml: {method} of GPU {index} failed: GPU is lost (fake)", "gpu-lost", 15)
        return gpu

    def _gpu(self, method: str, index: int) -> FakeGpu:
        gpu = self._enter(method, index)
        assert gpu is not None
        return gpu

    # -- test controls -------------------------------------------------------------------------------------
    def reset_counter(self, index: int) -> None:
        """The driver reloads now: GPU ``index``'s energy counter restarts from zero."""
        gpu = self.gpus[index]
        gpu.counter_offset_mj = -gpu.trace.energy_at(self.clock.now())

    # -- NvmlBackend ---------------------------------------------------------------------------------------
    def init(self) -> None:
        self._enter("init")
        self.initialised = True

    def shutdown(self) -> None:
        self._enter("shutdown")
        self.initialised = False
        self.shutdowns += 1

    def device_count(self) -> int:
        self._enter("device_count")
        return len(self.gpus)

    def name(self, index: int) -> str:
        return self._gpu("name", index).name

    def uuid(self, index: int) -> str:
        return self._gpu("uuid", index).uuid

    def mig_uuids(self, index: int) -> tuple[str, ...]:
        return self._gpu("mig_uuids", index).mig_uuids

    def mig_enabled(self, index: int) -> bool:
        gpu = self._gpu("mig_enabled", index)
        return gpu.mig_enabled or bool(gpu.mig_uuids)

    def total_energy_mj(self, index: int) -> int:
        gpu = self._gpu("total_energy_mj", index)
        if not gpu.counter_supported:
            raise EnergyCounterUnsupported(f"nvml: GPU {index} has no energy counter (fake)")
        return gpu.trace.energy_at(self.clock.now()) + gpu.counter_offset_mj

    def power_mw(self, index: int) -> int:
        gpu = self._gpu("power_mw", index)
        if not gpu.power_supported:
            raise NvmlError(f"nvml: GPU {index} reports no power (fake)", "not-supported", 3)
        if gpu.power_average_s <= 0:
            return gpu.trace.power_at(self.clock.now())
        return gpu.trace.power_average(self.clock.now(), gpu.power_average_s)

    def power_instant_mw(self, index: int) -> int:
        gpu = self._gpu("power_instant_mw", index)
        if not gpu.instant_supported:
            raise NvmlError(f"nvml: GPU {index} has no instantaneous power field (fake)", "not-supported", 3)
        return gpu.trace.power_at(self.clock.now())

    def power_limit_mw(self, index: int) -> int:
        gpu = self._gpu("power_limit_mw", index)
        if gpu.power_limit_mw is None:
            raise NvmlError(f"nvml: GPU {index} has no power limit (fake)", "not-supported", 3)
        return gpu.power_limit_mw

    def running_pids(self, index: int) -> frozenset[int]:
        gpu = self._gpu("running_pids", index)
        if not gpu.processes_supported:
            raise NvmlError(f"nvml: GPU {index} cannot list its processes (fake)", "not-supported")
        return frozenset(gpu.processes)

    def process_sm_utilisation(self, index: int, since_us: int) -> ProcessUtilisation:
        gpu = self._gpu("process_sm_utilisation", index)
        if not gpu.sm_supported:
            raise NvmlError(f"nvml: GPU {index} has no process utilisation (fake)", "not-supported")
        self.since_us.append(since_us)
        self._sample_us += 1  # a strictly increasing sample time stands in for NVML's
        return ProcessUtilisation(dict(gpu.processes), since_us + self._sample_us)

    def driver_version(self) -> str:
        self._enter("driver_version")
        return self.driver

    def bindings_version(self) -> str:
        return "fake"


def replay(*names: str, clock: FakeClock | None = None) -> ReplayNvml:
    """A fake with one GPU per trace file under tests/data/nvml; a GPU has a counter where its trace has."""
    gpus = []
    for k, file_name in enumerate(names):
        trace = Trace.load(DATA / file_name)
        uuid = f"GPU-{k:08x}-0000-4000-8000-{k:012x}"
        has_counter = trace.energy_mj is not None
        gpus.append(
            FakeGpu(
                trace,
                Path(file_name).stem,
                uuid,
                counter_supported=has_counter,
                instant_supported=has_counter,  # the traces without a counter are of older GPUs
                power_average_s=1.0 if has_counter else 0.0,
            )
        )
    return ReplayNvml(gpus, clock)
