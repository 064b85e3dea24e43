"""Memory power where RAPL has no DRAM domain: a documented model, labelled ``estimated``.

Power is proportional to memory size, at ``w_per_gb`` watts per GiB (binary gigabytes, 2^30 bytes, as
memory is sized and as ``/proc/meminfo`` and RSS count it; converted by :func:`wattwise.units.bytes_to_gib`):

* machine power = total memory (``HostSnapshot.mem_total_bytes``) × ``w_per_gb``;
* attributed power = the process tree's resident memory (``tree_rss_bytes``) × ``w_per_gb``, so the figure
  scales with what the job uses (CodeCarbon's fixed 20 W, 71 % of a 2-vCPU VM's total, is what this avoids).
  Over an interval the tree's RSS is the mean of its two ends (trapezoid rule), capped at the machine's.

The default, 0.3725 W/GB, is Green Algorithms' figure: Lannelongue, Grealey & Inouye (2021), "Green
Algorithms: Quantifying the Carbon Footprint of Computation", Advanced Science 8(12), 2100707, based on
Micron's DDR power figures. The stated range, ×0.5 … ×2, is an ASSUMPTION of wattwise, not a published
figure: DRAM power depends on generation, DIMM count and, above all, traffic, which a size model cannot see.

Energy over an interval is power × ``dt`` (``dt = snap.t_s − prev.t_s``); the first read returns zeros. If the
total memory is unknown (0), the tree's memory stands in for the machine's, so the channel never reads 0 W
while the tree holds memory.
"""

from __future__ import annotations

from wattwise.devices.base import Channel, HostSnapshot, MeterReading, ProbeResult
from wattwise.units import bytes_to_gib

__all__ = ["GREEN_ALGORITHMS_W_PER_GB", "MemoryModelSource", "probe_memory_model"]

GREEN_ALGORITHMS_W_PER_GB = 0.3725  # Lannelongue, Grealey & Inouye 2021 (Green Algorithms), W per GB
LOW_FACTOR = 0.5  # ASSUMPTION (see the module docstring), not a published figure
HIGH_FACTOR = 2.0  # ASSUMPTION (see the module docstring), not a published figure


def _detail(w_per_gb: float, origin: str) -> str:
    return f"{w_per_gb:g} W per GiB ({origin}) × the process tree's resident memory; machine: × total memory"


class MemoryModelSource:
    """One estimated channel, ``memory``: power proportional to resident (tree) and total (machine) memory."""

    name: str = "memory-model"

    def __init__(self, w_per_gb: float | None = None) -> None:
        """``w_per_gb`` in W per GiB; None (``Settings.memory_w_per_gb`` unset) means the default."""
        if w_per_gb is None:
            self.w_per_gb, origin = GREEN_ALGORITHMS_W_PER_GB, "Green Algorithms, Lannelongue et al. 2021"
        else:
            self.w_per_gb, origin = w_per_gb, "memory_w_per_gb setting"
        self._channel = Channel(
            "memory",
            "memory",
            "estimated",
            "memory-model",
            _detail(self.w_per_gb, origin),
            low_factor=LOW_FACTOR,
            high_factor=HIGH_FACTOR,
        )
        self._last: HostSnapshot | None = None
        self._energy_j = 0.0
        self._attributed_j = 0.0

    def channels(self) -> tuple[Channel, ...]:
        return (self._channel,)

    def read(self, snapshot: HostSnapshot, final: bool = False) -> tuple[MeterReading, ...]:
        last = self._last
        if last is not None and snapshot.t_s > last.t_s:
            dt_s = snapshot.t_s - last.t_s
            tree_bytes = (last.tree_rss_bytes + snapshot.tree_rss_bytes) / 2
            machine_bytes = float(snapshot.mem_total_bytes) or tree_bytes
            tree_bytes = min(tree_bytes, machine_bytes)
            self._energy_j += bytes_to_gib(machine_bytes) * self.w_per_gb * dt_s
            self._attributed_j += bytes_to_gib(tree_bytes) * self.w_per_gb * dt_s
        self._last = snapshot
        return (MeterReading(self._energy_j, self._attributed_j),)

    def close(self) -> None:
        """Nothing to release."""


def probe_memory_model(w_per_gb: float | None = None) -> ProbeResult:
    """Always available; says the coefficient and its source."""
    channels = MemoryModelSource(w_per_gb).channels()
    return ProbeResult(
        source="memory-model",
        available=True,
        summary=f"estimated: {channels[0].detail}; range ×{LOW_FACTOR:g}…×{HIGH_FACTOR:g} (assumed)",
        channels=channels,
    )
