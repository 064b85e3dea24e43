"""Which of wattwise's own figures a cluster counter's figure compares with, and why (or why none does).

- DCGM, per GPU: wattwise's channel of the same GPU (matched by UUID), its *machine* energy: DCGM counts every
  process on the GPU, as that figure does.
- Kepler, per pod: the components the metric covers (the whole pod: the run's total; ``cpu, dram``: those
  channels), their *attributed* energy: Kepler shares a node among pods as wattwise shares it among processes.
- Slurm, per job: the run's machine energy when the job ran on one node, the run's host; the plugin counts the node
  whole, but over the whole job, which may be longer than the run.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from wattwise.importers.dcgm import gpu_uuid

if TYPE_CHECKING:
    from wattwise.records import ExternalFigure, Run

__all__ = ["Counterpart", "counterpart"]

_KEPLER_COMPONENTS = {
    "cpu, dram": ("cpu", "dram", "memory"),
    "cpu": ("cpu",),
    "dram": ("dram", "memory"),
    "gpu": ("gpu",),
}


@dataclass(frozen=True, slots=True)
class Counterpart:
    """wattwise's figure beside a cluster's: ``label`` names it, ``energy_j`` is None when none compares (``note``
    then says why; otherwise what is compared with what)."""

    label: str
    energy_j: float | None
    note: str
    channels: tuple[str, ...] = ()  # wattwise's channels the figure is made of (totals add only disjoint ones)


def _kepler(run: Run, figure: ExternalFigure) -> Counterpart:
    covers = figure.scope.rsplit("(", 1)[1].rstrip(")") if figure.scope.endswith(")") else ""
    if not covers:
        return Counterpart(
            "run total",
            run.energy_j,
            f"the pod's share of its node against the run's {run.attribution} share, every component",
            tuple(c.name for c in run.components if c.in_total),
        )
    kinds = _KEPLER_COMPONENTS.get(covers)
    parts = [c for c in run.components if kinds is not None and c.component in kinds and c.in_total]
    if not parts:
        return Counterpart("–", None, f"wattwise measured no channel of what the metric covers ({covers})")
    names = ", ".join(c.name for c in parts)
    return Counterpart(
        names,
        sum(c.energy_j for c in parts),
        f"the pod's {covers} against the same channels' share",
        tuple(c.name for c in parts),
    )


def counterpart(run: Run, figure: ExternalFigure) -> Counterpart:
    """wattwise's figure to set beside ``figure`` (see the module)."""
    if figure.source == "dcgm":
        uuid = gpu_uuid(figure.scope)
        gpu = next((c for c in run.components if c.component == "gpu" and uuid and uuid in c.detail), None)
        if gpu is None:
            return Counterpart("–", None, "wattwise measured no channel for this GPU")
        return Counterpart(
            f"{gpu.name} (whole GPU)", gpu.machine_energy_j, "DCGM and wattwise's reading of the whole GPU", (gpu.name,)
        )
    if figure.source == "kepler":
        return _kepler(run, figure)
    if figure.source == "slurm":
        from wattwise.importers.slurm import runs_on

        nodes = figure.scope.split(" on ", 1)[1] if " on " in figure.scope else ""
        if not nodes or "," in nodes or "[" in nodes or runs_on(nodes, run.host) is False:
            return Counterpart(
                "–", None, f"Slurm counts the nodes {nodes or '(unknown)'}; wattwise measured {run.host or 'one host'}"
            )
        return Counterpart(
            f"machine energy of {run.host or 'the host'}",
            run.machine_energy_j,
            "Slurm's plugin counts the node whole over the whole job; wattwise's machine figure covers the run",
            tuple(c.name for c in run.components),
        )
    return Counterpart("–", None, f"no wattwise figure is known to compare with {figure.source}")
