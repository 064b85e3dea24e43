"""Metering NVIDIA GPUs through an :class:`~wattwise.devices.nvml_backend.NvmlBackend`, one GPU at a time.

**What each GPU can give** is found when the source opens (:func:`probe_gpu`), and decides its channel:

=================  ===============================================  =====================================
mode               energy                                           label
=================  ===============================================  =====================================
``counter``        NVML's total-energy counter (mJ, Volta and        measured, ``nvml-energy-counter``
                   newer); between two counter steps (it moves
                   about every 100 ms) the instantaneous power
                   fills in, and is taken back when the counter
                   moves (:class:`CounterSmoother`)
``instant``        trapezoid of the instantaneous power field        measured, ``nvml-instant-power``
``average``        trapezoid of ``nvmlDeviceGetPowerUsage`` (an      measured, ``nvml-power-sampling``
                   average over ~1 s on Ampere and newer)
(none)             NVML gives neither: the GPU gets no channel, and  not measured, never a measured zero
                   the run's notes say so
=================  ===============================================  =====================================

**Errors are per GPU.** A reading that fails skips that GPU for that interval; three in a row, or NVML saying
the GPU is lost, and the GPU keeps the energy it had, gets a note with the time, and is read no more. The other
GPUs are not affected.

**Which GPUs the run pays for.** A GPU handed to the job (``CUDA_VISIBLE_DEVICES`` or ``gpu_indices`` name it) is
the job's from the start, idle included. Otherwise, with every GPU of the node visible, a GPU is charged only from
the first interval in which a process of the run has a context on it; until then, and for GPUs the run never
uses, its energy is the machine's only (``machine_energy_j``), and the notes say which. Once charged, the shares
are: no process on it → 1 (the job holds it); only the run's → 1; the run's and others → by NVML's per-process SM
utilisation (an equal split per process where it has none); only others → 0.

**PID namespaces.** NVML reports the host's pids. Where /proc is an outer namespace's, the tree's pids are already
in that numbering (:mod:`wattwise.devices.pidns`); in a container with its own /proc they cannot be matched, and
:func:`~wattwise.devices.nvml.open_nvml` turns per-process attribution off (each GPU charged whole, with a note).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from wattwise.devices.base import Channel, HostSnapshot, MeterReading
from wattwise.devices.nvml_backend import EnergyCounterUnsupported, NvmlBackend, NvmlError
from wattwise.devices.nvml_counter import CounterSmoother
from wattwise.errors import DeviceError
from wattwise.units import mw_to_w

__all__ = ["MIN_INTERVAL_S", "CounterSmoother", "GpuCapabilities", "NvmlSource", "probe_gpu"]

Mode = Literal["counter", "instant", "average", "none"]
MIN_INTERVAL_S = 0.1  # the counter moves about every 100 ms; each query costs about a millisecond per GPU
MIN_INTERVAL_REASON = (
    "NVML's energy counter moves about every 100 ms and each query costs about a millisecond per GPU: sampling "
    "faster adds overhead, not information (windows are also read at their own edges)"
)
MIN_INTERVAL_REASON_POWER = (
    "each NVML query costs about a millisecond per GPU: sampling power faster than 10 times a second adds overhead "
    "more than accuracy (windows are also read at their own edges)"
)
MAX_CONSECUTIVE_FAILURES = 3
_UNAVAILABLE = frozenset({"not-supported", "no-permission"})
_MODULE_NAMES = ("GH200", "GH100", "Grace Hopper")  # the module's counter covers its Grace CPU and memory too


@dataclass(frozen=True, slots=True)
class GpuCapabilities:
    """What one GPU answered when the source opened."""

    index: int
    name: str
    uuid: str
    counter: bool  # the total-energy counter
    instant: bool  # the instantaneous power field
    average: bool  # nvmlDeviceGetPowerUsage
    processes: bool  # the running-process lists
    mig: bool
    power_limit_w: float | None
    module: bool  # a Grace Hopper module: the counter includes the CPU and its memory
    problems: tuple[str, ...] = ()  # capabilities whose query failed at open (not "not supported"): done without

    @property
    def mode(self) -> Mode:
        if self.counter:
            return "counter"
        if self.instant:
            return "instant"
        return "average" if self.average else "none"

    def describe(self) -> str:
        """``energy counter`` / ``instantaneous power`` / ``averaged power`` / ``nothing``, for doctor."""
        return {
            "counter": "energy counter" + (" + instantaneous power" if self.instant else ""),
            "instant": "instantaneous power (no energy counter)",
            "average": "averaged power only (no energy counter)",
            "none": "nothing: neither energy nor power",
        }[self.mode]


def probe_gpu(backend: NvmlBackend, index: int, *, use_energy_counter: bool = True) -> GpuCapabilities:
    """Ask GPU ``index`` what it can give (NvmlError if it cannot even be named: the caller skips it)."""
    name, uuid = backend.name(index), backend.uuid(index)
    try:
        limit_w: float | None = mw_to_w(backend.power_limit_mw(index))
    except NvmlError:
        limit_w = None
    try:
        mig = backend.mig_enabled(index)
    except NvmlError:
        mig = False
    problems: list[str] = []

    def answers(what: str, call: Callable[[], object]) -> bool:
        """Whether the GPU answers ``call``; a failure other than "not supported" is kept as a problem (a lost
        GPU is raised: the caller skips it)."""
        try:
            call()
        except NvmlError as exc:
            if exc.reason == "gpu-lost":
                raise
            if not (isinstance(exc, EnergyCounterUnsupported) or exc.reason in _UNAVAILABLE):
                problems.append(f"its {what} failed when the GPU was opened ({exc}); wattwise does without it")
            return False
        return True

    return GpuCapabilities(
        index=index,
        name=name,
        uuid=uuid,
        counter=use_energy_counter and answers("energy counter", lambda: backend.total_energy_mj(index)),
        instant=answers("instantaneous power", lambda: backend.power_instant_mw(index)),
        average=answers("power reading", lambda: backend.power_mw(index)),
        processes=answers("process list", lambda: backend.running_pids(index)),
        mig=mig,
        power_limit_w=limit_w,
        module=any(mark.lower() in name.lower() for mark in _MODULE_NAMES),
        problems=tuple(problems),
    )


@dataclass(slots=True)
class _Meter:
    """One metered GPU's state."""

    caps: GpuCapabilities
    channel: Channel
    handed: bool
    smoother: CounterSmoother = field(default_factory=CounterSmoother)
    energy_j: float = 0.0
    unattributed_j: float = 0.0
    last_mw: int | None = None
    last_t_s: float | None = None  # the clock at the last good reading
    good_readings: int = 0
    good_at_s: float = 0.0  # +seconds of the last good reading
    failures: int = 0
    failing_since_s: float = 0.0
    lost_at_s: float | None = None
    charged_at_s: float | None = None
    share: float | None = None  # the last share computed
    pids: frozenset[int] = frozenset()
    util_supported: bool = True
    util_since_us: int = 0


def _channel(caps: GpuCapabilities) -> Channel:
    how = {
        "counter": ("nvml-energy-counter", "NVML total-energy counter (mJ since the driver loaded)"),
        "instant": ("nvml-instant-power", "NVML instantaneous power, integrated at every reading"),
        "average": (
            "nvml-power-sampling",
            "NVML power reading (an average over about a second on Ampere and newer), integrated at every reading",
        ),
    }
    method, detail = how[caps.mode]
    extras = []
    if caps.mig:
        extras.append("MIG on: the whole physical GPU is metered")
    if caps.module:
        extras.append("Grace Hopper module: includes its CPU and memory")
    suffix = f"; {'; '.join(extras)}" if extras else ""
    return Channel(f"gpu:{caps.index}", "gpu", "measured", method, f"{caps.name} ({caps.uuid}): {detail}{suffix}")


class NvmlSource:
    """Meters the GPUs of ``gpus`` (from :func:`probe_gpu`; those that give nothing get no channel) through an
    initialised ``backend``, which it owns and shuts down. ``handed``: the GPUs were named for the job
    (CUDA_VISIBLE_DEVICES, gpu_indices), so they are charged from the start. ``clock`` times the power integrals;
    ``started_us`` (µs since the epoch) is where per-process samples start, so the driver's older buffer is ignored.
    """

    name = "nvml"
    min_interval_s = MIN_INTERVAL_S

    def __init__(
        self,
        backend: NvmlBackend,
        gpus: Sequence[GpuCapabilities],
        *,
        attribute_processes: bool = True,
        handed: bool = True,
        clock: Callable[[], float] = time.monotonic,
        proc_root: Path | None = Path("/proc"),
        notes: Iterable[str] = (),
        started_us: int | None = None,
    ) -> None:
        self._backend = backend
        self._attribute = attribute_processes
        self._clock = clock
        self._proc_root = proc_root
        self._notes: dict[str, None] = dict.fromkeys(notes)
        self._first_t: float | None = None
        self._closed = False
        since = int(time.time() * 1e6) if started_us is None else started_us
        self._meters: list[_Meter] = []
        for caps in gpus:
            if caps.mode == "none":
                self._note(
                    f"gpu:{caps.index} ({caps.name}) is not measured: NVML gives neither its energy counter nor its "
                    "power (not supported on this GPU or driver); it is not in the run's energy"
                )
                continue
            # a Grace Hopper module's CPU runs the job whether or not it uses the GPU: charged from the start
            meter = _Meter(caps, _channel(caps), handed or not attribute_processes or caps.module, util_since_us=since)
            self._meters.append(meter)
            for problem in caps.problems:
                self._note(f"gpu:{caps.index}: {problem}")
            if caps.mig:
                self._note(
                    f"gpu:{caps.index} has MIG on: NVML meters the whole physical GPU, so its energy includes every "
                    "MIG instance's work"
                )
        self.covers_host = any(m.caps.module for m in self._meters)  # a Grace Hopper module's CPU and memory

    @property
    def min_interval_reason(self) -> str:
        counted = any(m.caps.mode == "counter" for m in self._meters)
        return MIN_INTERVAL_REASON if counted else MIN_INTERVAL_REASON_POWER

    @property
    def gpus(self) -> tuple[GpuCapabilities, ...]:
        return tuple(m.caps for m in self._meters)

    def channels(self) -> tuple[Channel, ...]:
        return tuple(m.channel for m in self._meters)

    def notes(self) -> tuple[str, ...]:
        """What the tracker shows with the run: GPUs not measured, lost, charged late or never, caveats."""
        found = dict(self._notes)
        for meter in self._meters:
            label = f"gpu:{meter.caps.index}"
            smoother = meter.smoother
            if smoother.resets:
                how = (
                    "estimated that interval from one power reading"
                    if smoother.unfilled < smoother.resets
                    else "could not estimate that interval (no power reading): it is missing"
                )
                found.setdefault(
                    f"{label}: the energy counter went backwards (driver reload or GPU reset); wattwise restarted "
                    f"from the new value and {how}"
                )
            if smoother.stalls:
                found.setdefault(
                    f"{label}: the energy counter stopped moving at +{smoother.stalls[0]:.1f} s while the GPU drew "
                    "power and then moved again without counting it; that gap is filled from the GPU's power"
                )
            reason = smoother.final_reason
            if reason == "never-moved":
                found.setdefault(
                    f"{label}: the energy counter did not move in these {smoother.elapsed_s:.2f} s (it moves about "
                    "every 100 ms): the energy is estimated from the GPU's power"
                )
            elif reason == "stalled":
                found.setdefault(
                    f"{label}: the energy counter stopped moving at +{smoother.step_t_s - smoother.first_t_s:.1f} s "
                    "and did not move again: from then on the energy is estimated from the GPU's power"
                )
            elif reason == "short":
                found.setdefault(
                    f"{label}: the run lasted {smoother.elapsed_s:.2f} s, a few steps of the energy counter (about "
                    "100 ms each): its energy is the counted energy corrected at both ends with the power then"
                )
            if meter.handed:
                continue
            if meter.charged_at_s is None:
                found.setdefault(
                    f"{label} ({meter.caps.name}) was not used by the run: its energy is the machine's only, "
                    "not charged to the run"
                )
            elif meter.charged_at_s > 0:
                found.setdefault(
                    f"{label} is charged to the run from +{meter.charged_at_s:.1f} s, when the run first used it"
                )
        dropped = sorted(getattr(self._backend, "dropped_pids", ()))
        if dropped:
            shown = ", ".join(str(pid) for pid in dropped[:5]) + (", ..." if len(dropped) > 5 else "")
            found.setdefault(
                f"NVML listed {len(dropped)} implausible process id(s) ({shown}; a driver bug); they were ignored"
            )
        return tuple(found)

    def read(self, snapshot: HostSnapshot, final: bool = False) -> tuple[MeterReading, ...]:
        if self._closed:
            raise DeviceError("nvml: read() after close()")
        now = self._clock()
        if self._first_t is None:
            self._first_t = now
        readings = []
        for meter in self._meters:
            if meter.lost_at_s is None:
                self._read_one(meter, snapshot, now, now - self._first_t, final)
            attributed = min(meter.energy_j, max(0.0, meter.energy_j - meter.unattributed_j))
            readings.append(MeterReading(meter.energy_j, attributed))
        return tuple(readings)

    def _read_one(self, meter: _Meter, snapshot: HostSnapshot, now: float, at_s: float, final: bool) -> None:
        """Energy first: a GPU is lost only when its energy cannot be read. A failed process query keeps the last
        share (the whole GPU before there is one) with a note."""
        try:
            energy_j = self._energy(meter, now, final)
        except NvmlError as exc:
            meter.failures += 1
            if meter.failures == 1:
                meter.failing_since_s = at_s
            if exc.reason == "gpu-lost" or meter.failures >= MAX_CONSECUTIVE_FAILURES:
                meter.lost_at_s = at_s
                self._note(self._lost_note(meter, exc))
            return
        meter.failures = 0
        meter.good_readings += 1
        meter.good_at_s = at_s
        share = self._safe_share(meter, snapshot, at_s) if self._attribute else 1.0
        delta_j = energy_j - meter.energy_j
        meter.energy_j = energy_j
        meter.unattributed_j += delta_j * (1.0 - share)

    @staticmethod
    def _lost_note(meter: _Meter, exc: NvmlError) -> str:
        label = f"gpu:{meter.caps.index}"
        if meter.good_readings < 2:
            return (
                f"{label} stopped answering at +{meter.failing_since_s:.1f} s ({exc}) before NVML gave two readings "
                "of it: the 0 J shown for it is not a measurement"
            )
        return (
            f"{label} stopped answering at +{meter.failing_since_s:.1f} s ({exc}); its energy up to its last good "
            f"reading (+{meter.good_at_s:.1f} s) is kept, nothing after it is counted"
        )

    def _safe_share(self, meter: _Meter, snapshot: HostSnapshot, at_s: float) -> float:
        since = meter.util_since_us
        try:
            meter.share = self._share(meter, snapshot, at_s)
            if meter.util_since_us == since:  # not asked this time: the next shared interval starts now
                meter.util_since_us = max(since, int(time.time() * 1e6))
        except NvmlError as exc:
            kept = "the last known share" if meter.share is not None else "the whole GPU"
            self._note(
                f"gpu:{meter.caps.index}: NVML could not list its processes from +{at_s:.1f} s ({exc}); those "
                f"intervals are charged at {kept}"
            )
            return meter.share if meter.share is not None else 1.0
        return meter.share

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._backend.shutdown()

    def _note(self, text: str) -> None:
        self._notes.setdefault(text)

    # -- energy ----------------------------------------------------------------------------------------------

    def _energy(self, meter: _Meter, now: float, final: bool) -> float:
        """The GPU's cumulative energy after this reading. Power is integrated from this GPU's last good reading,
        so an interval it failed to answer is bridged, not lost."""
        index = meter.caps.index
        if meter.caps.mode == "counter":
            raw = self._backend.total_energy_mj(index)
            return meter.smoother.update(raw, now, lambda: self._power_w(meter), final=final)
        if meter.caps.mode == "instant":
            power_mw = self._backend.power_instant_mw(index)
        else:
            power_mw = self._backend.power_mw(index)
        last_mw, meter.last_mw = meter.last_mw, power_mw
        last_t, meter.last_t_s = meter.last_t_s, now
        if last_mw is None or last_t is None or now <= last_t:
            return meter.energy_j
        return meter.energy_j + mw_to_w((last_mw + power_mw) / 2) * (now - last_t)

    def _power_w(self, meter: _Meter) -> float | None:
        """Power now, for the counter's lag since its last step: instantaneous if the GPU has it, else averaged."""
        index = meter.caps.index
        if meter.caps.instant:
            try:
                return mw_to_w(self._backend.power_instant_mw(index))
            except NvmlError:
                pass
        if meter.caps.average:
            try:
                return mw_to_w(self._backend.power_mw(index))
            except NvmlError:
                return None
        return None

    # -- attribution -----------------------------------------------------------------------------------------

    def _share(self, meter: _Meter, snapshot: HostSnapshot, at_s: float) -> float:
        label = f"gpu:{meter.caps.index}"
        if not meter.caps.processes:
            self._note(f"{label}: NVML cannot list the GPU's processes; the whole GPU is charged to the run")
            return 1.0
        try:
            current = self._backend.running_pids(meter.caps.index)
        except NvmlError as exc:
            if exc.reason not in _UNAVAILABLE:
                raise
            self._note(f"{label}: NVML cannot list the GPU's processes ({exc.reason}); the whole GPU is charged")
            return 1.0
        pids, meter.pids = current | meter.pids, current
        tree = snapshot.tree_pids
        ours, others = pids & tree, pids - tree
        if not meter.handed and meter.charged_at_s is None:
            if not ours:
                return 0.0  # not used by the run (yet): the machine's energy
            meter.charged_at_s = at_s
        if not others:
            return 1.0
        if not tree:
            self._note(f"{label}: no measured process tree to attribute to; the whole GPU is charged")
            return 1.0
        if not ours:
            if any(self._pid_exists(pid) for pid in others):
                self._note(f"{label}: only other processes used the GPU in some intervals; those are not charged")
                return 0.0
            self._note(
                f"{label}: NVML reports pids from another PID namespace that wattwise cannot map to this one (a "
                "container on a kernel without NSpid?); attribution is impossible, the whole GPU is charged"
            )
            return 1.0
        sm = self._sm_percent(meter)
        total = sum(sm.values()) if sm else 0.0
        if total > 0:
            return min(1.0, sum(v for pid, v in sm.items() if pid in tree) / total)
        self._note(f"{label}: no per-process SM utilisation; energy split equally among the GPU's processes")
        return len(ours) / len(pids)

    def _sm_percent(self, meter: _Meter) -> Mapping[int, float]:
        if not meter.util_supported:
            return {}
        try:
            util = self._backend.process_sm_utilisation(meter.caps.index, meter.util_since_us)
        except NvmlError as exc:
            if exc.reason not in _UNAVAILABLE:
                raise
            meter.util_supported = False
            return {}
        meter.util_since_us = util.last_seen_us
        return util.sm_percent_by_pid

    def _pid_exists(self, pid: int) -> bool:
        if self._proc_root is None or not self._proc_root.is_dir():
            return True
        return (self._proc_root / str(pid)).exists()
