"""The one small interface every power source implements, and the host snapshot they read from.

A power source exposes *channels* (``gpu:0``, ``cpu:package-0``, ``dram:package-0``, ``memory``, ``network``).
Each channel is a meter: ``read()`` returns, per channel, the **cumulative** energy since the source was opened,
both for the whole machine and for the share attributed to the measured process tree. Counter sources (RAPL,
NVML's energy counter) return counter deltas, unwrapped; sampled or modelled sources integrate between calls.
Everything above (windows, samples, totals) is then a difference of two readings, so a window of any length
is exact at its boundaries and short runs never read 0.

``read()`` is called from one thread at a time (the tracker holds a lock); sources may keep state between calls.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal, Protocol, runtime_checkable

from wattwise.records import SourceKind

Component = Literal["gpu", "cpu", "dram", "memory", "network", "platform"]


@dataclass(frozen=True, slots=True)
class Channel:
    """One thing a source meters, and how.

    ``source`` says whether the figure comes from a hardware counter (``measured``) or a documented model
    (``estimated``); ``method`` names the mechanism (``rapl``, ``nvml-energy-counter``, ``nvml-power-sampling``,
    ``cpu-tdp-model``, ``memory-model``, ``network-model``); ``detail`` is one human line (device, table row,
    coefficient and its source). ``in_total`` is false when the channel overlaps another one (RAPL core ⊂
    package; psys ⊇ package + dram). ``low_factor``/``high_factor`` bound a model's stated range as factors of
    its point value; for measured channels both are 1.
    """

    name: str
    component: Component
    source: SourceKind
    method: str
    detail: str = ""
    in_total: bool = True
    low_factor: float = 1.0
    high_factor: float = 1.0


@dataclass(frozen=True, slots=True)
class MeterReading:
    """Cumulative energy of one channel since its source was opened."""

    energy_j: float  # the whole machine (or device)
    attributed_j: float  # the share attributed to the measured process tree


@dataclass(frozen=True, slots=True)
class HostSnapshot:
    """Counters of the host and of the measured process tree at one instant; read once per tick, shared by all.

    All CPU times are cumulative seconds summed over logical CPUs. ``tree_cpu_s`` counts the live processes of
    the tree and the children they have reaped, so it is continuous as children exit.
    """

    t_s: float  # time.monotonic() when taken
    cpu_busy_s: float
    cpu_total_s: float
    tree_cpu_s: float
    tree_pids: frozenset[int] = field(default_factory=frozenset)
    tree_rss_bytes: int = 0
    mem_total_bytes: int = 0
    logical_cpus: int = 1
    net_bytes: int = 0  # bytes received + sent on non-loopback interfaces, machine-wide
    tree_allowed_cpus: float | None = None  # logical CPUs the tree may use (affinity, cgroup quota); None: all


def cpu_share(previous: HostSnapshot, current: HostSnapshot) -> float:
    """Share of the machine's busy CPU time over the interval that the measured tree used, in [0, 1]."""
    busy = current.cpu_busy_s - previous.cpu_busy_s
    tree = current.tree_cpu_s - previous.tree_cpu_s
    if busy <= 0:
        return 1.0 if tree > 0 else 0.0
    return min(1.0, max(0.0, tree / busy))


def allocation_share(snapshot: HostSnapshot) -> float:
    """Share of the machine's logical CPUs the measured tree may run on (its CPU affinity and cgroup CPU quota), in
    [0, 1]. It does not change with what else runs, which is why idle power is charged by it."""
    allowed = snapshot.tree_allowed_cpus
    if allowed is None or snapshot.logical_cpus <= 0:
        return 1.0
    return min(1.0, max(0.0, allowed / snapshot.logical_cpus))


def memory_share(previous: HostSnapshot, current: HostSnapshot) -> float:
    """Share of the machine's memory the tree held over the interval (mean resident size), in [0, 1]."""
    if current.mem_total_bytes <= 0:
        return 1.0
    held = (previous.tree_rss_bytes + current.tree_rss_bytes) / 2
    return min(1.0, max(0.0, held / current.mem_total_bytes))


def attribute(
    energy_j: float, idle_j: float, previous: HostSnapshot, current: HostSnapshot, *, idle_by: str = "allocation"
) -> float:
    """The measured tree's share of one interval's energy, idle and dynamic power charged separately.

    * **dynamic** (the energy above the idle baseline) by the tree's share of the machine's busy CPU time, as Kepler
      and Scaphandre do: under a linear power model that is ``(P_max − P_idle) × Δt × tree CPU / all CPU``, the same
      whatever else the machine is doing;
    * **idle** (the baseline the machine draws doing nothing) by what the tree holds, not what it uses:
      ``idle_by="allocation"`` the share of logical CPUs it may run on (:func:`allocation_share`: all of them
      without a CPU set or quota), ``"memory"`` (DRAM) the share of memory it holds (:func:`memory_share`). A job
      that sleeps is charged the same idle power on a busy machine as on an idle one.

    ``idle_j`` is clipped to ``[0, energy_j]``. See docs/measurement.md, "Attribution".
    """
    idle = min(max(idle_j, 0.0), max(energy_j, 0.0))
    held = memory_share(previous, current) if idle_by == "memory" else allocation_share(current)
    return idle * held + (energy_j - idle) * cpu_share(previous, current)


def cpu_utilisation(previous: HostSnapshot, current: HostSnapshot) -> float:
    """Machine CPU utilisation over the interval, in [0, 1]."""
    total = current.cpu_total_s - previous.cpu_total_s
    if total <= 0:
        return 0.0
    return min(1.0, max(0.0, (current.cpu_busy_s - previous.cpu_busy_s) / total))


@dataclass(frozen=True, slots=True)
class ProbeResult:
    """What ``wattwise doctor`` prints for one source: does it work here, and if not, why and how to fix it."""

    source: str
    available: bool
    summary: str
    fix: str | None = None
    channels: tuple[Channel, ...] = ()
    details: Mapping[str, object] | None = None  # structured facts for ``doctor --json`` (per GPU, versions)


@runtime_checkable
class PowerSource(Protocol):
    """A power source: a fixed list of channels and a cumulative read of all of them at once."""

    name: str

    def channels(self) -> tuple[Channel, ...]:
        """The channels, in the order ``read`` returns them. Fixed once the source is opened."""
        ...

    def read(self, snapshot: HostSnapshot, final: bool = False) -> tuple[MeterReading, ...]:
        """Cumulative energy per channel since the source was opened (the first call returns zeros).

        ``final`` marks the run's last reading: a source that estimates between the steps of a coarse counter
        (NVML) returns the counter's exact value then, so a run's total is what its counters say."""
        ...

    def close(self) -> None:
        """Release handles (NVML shutdown, open files). Safe to call twice."""
        ...
