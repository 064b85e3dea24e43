"""Reducing the ranks of a distributed run to one record (pure: records in, a record out; rank 0 calls it).

Each rank measured only what it owns (its GPUs; local rank 0 also its node's node-wide sources), so the run is the
union of the ranks' components, each counted once:

* a component two ranks both measured (two ranks handed the same GPU) is kept from the lower rank, and said so;
* across hosts, component, window and sample names carry the host (``node-a/gpu:0``), so two nodes' ``gpu:0``
  never merge;
* each rank's figure (:class:`~wattwise.records.RankFigure`) is its own devices plus its share of its node's
  node-wide energy, split among the node's ranks by their CPU time, so the ranks add up to the run;
* windows and epochs of the same name (the n-th of that name on each rank) are added up, and the early prediction
  is made again from the summed epochs;
* work the ranks counted (tokens, requests: ``Tracker.count``) is added up: each rank counts what it served (with
  tensor parallelism, where every rank computes the same tokens, rank 0 alone counts them);
* a rank whose last report came before its end (it died) counts up to that report, is marked ``lost`` and makes the
  run ``incomplete``; a rank that never reported is ``missing`` (where no other rank reported either, rank 0 alone
  tracked the run: its status stands, and a note says what is not in it).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import timedelta

from wattwise.measure.notes import capped_notes
from wattwise.measure.ranks import Topology
from wattwise.records import ComponentEnergy, Prediction, RankFigure, Run, WindowRecord, Work

__all__ = ["EpochPredictor", "RankReport", "owners", "qualified", "reduce_run"]

# (epoch energies, epoch durations, energy so far, time so far) → the whole run's prediction
EpochPredictor = Callable[[list[float], list[float], float, float], Prediction | None]

NODE_WIDE_KINDS = frozenset({"cpu", "dram", "memory", "network", "platform"})


@dataclass(frozen=True, slots=True)
class RankReport:
    """What one rank last told rank 0: its own record so far, and how to place it."""

    rank: int
    local_rank: int
    host: str
    pid: int
    final: bool
    started_wall: float  # time.time() when the rank's run started
    updated_wall: float  # time.time() of this report
    cpu_s: float  # CPU seconds of the rank's process tree since its run started
    chunks: int  # sample chunks posted so far
    run: Run


def qualified(name: str, host: str, topology: Topology) -> str:
    """A component's name in the reduced run: with its host where the job may span hosts."""
    return f"{host}/{name}" if topology.multi_node else name


def _status(report: RankReport | None, final: bool, lost: bool) -> str:
    if report is None:
        return "missing"
    if report.final:
        return report.run.status
    return "lost" if final or lost else "running"


def _everyone(
    own: Run, own_cpu_s: float, topology: Topology, reports: Mapping[int, RankReport]
) -> dict[int, RankReport]:
    """Every rank's report, rank 0's made from its own record."""
    main = RankReport(
        rank=topology.rank,
        local_rank=topology.local_rank,
        host=topology.host,
        pid=own.pid,
        final=own.status != "running",
        started_wall=own.started_at.timestamp(),
        updated_wall=own.started_at.timestamp() + own.duration_s,
        cpu_s=own_cpu_s,
        chunks=0,
        run=own,
    )
    everyone: dict[int, RankReport] = {r: rep for r, rep in reports.items() if r != topology.rank}
    everyone[topology.rank] = main
    return everyone


def owners(own: Run, topology: Topology, reports: Mapping[int, RankReport]) -> dict[str, int]:
    """Each of the run's component names (as the run names them) → the rank whose figures it keeps: the lowest
    that measured it."""
    found: dict[str, int] = {}
    for rank, report in sorted(_everyone(own, 0.0, topology, reports).items()):
        for part in report.run.components:
            found.setdefault(qualified(part.name, report.host, topology), rank)
    return found


def reduce_run(
    own: Run,
    own_cpu_s: float,
    topology: Topology,
    reports: Mapping[int, RankReport],
    *,
    final: bool,
    water_l: Callable[[float], tuple[float, float]],
    predict_epochs: EpochPredictor | None = None,
    lost: frozenset[int] = frozenset(),
) -> Run:
    """Rank 0's record ``own`` merged with the other ranks' latest ``reports`` (see the module docstring).

    ``final``: the run is ending, so a rank without a final report is ``lost``; ``lost``: ranks already known to
    be gone (a checkpoint then says so: if rank 0 is killed next, its last checkpoint still tells).
    ``water_l(energy_j)`` gives the run's (on-site, off-site) water for its total energy; ``predict_epochs`` the
    early prediction from the summed epochs (None keeps rank 0's)."""
    everyone = _everyone(own, own_cpu_s, topology, reports)
    notes = list(own.notes)
    said: dict[str, list[int]] = {}  # the other ranks' notes that rank 0's do not already say → who said them
    components: list[ComponentEnergy] = []
    kept: dict[int, set[str]] = {}  # rank → the (unqualified) components of it the run keeps
    owner: dict[str, int] = {}
    for rank in sorted(everyone):
        report = everyone[rank]
        kept[rank] = set()
        for part in report.run.components:
            name = qualified(part.name, report.host, topology)
            if name in owner:
                notes.append(
                    f"{name} was measured by ranks {owner[name]} and {rank}: counted once, for rank {owner[name]}"
                )
                continue
            owner[name] = rank
            kept[rank].add(part.name)
            components.append(replace(part, name=name))
        if rank != topology.rank:
            for note in report.run.notes:
                if note not in own.notes:
                    said.setdefault(note, []).append(rank)
    notes.extend(f"{_who(ranks)}: {note}" for note, ranks in said.items())
    figures = _figures(everyone, kept, topology, final, lost)
    missing = [r for r in range(topology.world_size) if r not in everyone]
    figures.extend(RankFigure(rank=r, local_rank=0, host="", energy_j=0.0, status="missing") for r in missing if final)
    figures.sort(key=lambda f: f.rank)
    troubled = [f for f in figures if f.status in _TROUBLE and f.rank != topology.rank]
    status = own.status
    error = own.error
    alone = len(everyone) == 1  # no other rank ever reported: rank 0 alone tracked the run (``if rank == 0:``)
    if final and alone and topology.world_size > 1:
        notes.append(
            f"only rank {topology.rank} tracked this run: the other {topology.world_size - 1} ranks never reported, so "
            "their GPUs (and other nodes) are not in it; call wattwise.track() on every rank"
        )
    elif final and troubled:
        for figure in troubled:
            notes.append(_trouble(figure))
        if status == "complete":
            status = "incomplete"
            error = error or f"{len(troubled)} of {topology.world_size} ranks did not complete (see the ranks)"
    energy_j = sum(c.energy_j for c in components if c.in_total)
    machine_j = sum(c.machine_energy_j for c in components if c.in_total)
    co2e_g = 0.0
    for rank, report in everyone.items():
        counted = sum(c.energy_j for c in report.run.components if c.in_total and c.name in kept[rank])
        whole = report.run.energy_j
        co2e_g += report.run.co2e_g * (counted / whole if whole > 0 else 1.0)
    windows = _windows(everyone, kept, topology)
    prediction = own.prediction
    if predict_epochs is not None and own.prediction is not None:
        epochs = [w for w in windows if w.name.startswith("epoch-") and w.parent is None]
        energies, durations = [w.energy_j for w in epochs], [w.duration_s for w in epochs]
        # epochs run back to back from the start: their sums are the run so far at the last epoch's end, as the
        # tracker's own prediction has them
        predicted = predict_epochs(energies, durations, sum(energies), sum(durations))
        prediction = predicted if predicted is not None else prediction
    onsite_l, offsite_l = water_l(energy_j)
    intensity = own.intensity_g_per_kwh
    # the run spans every rank's measurement: one that ended after rank 0 lengthens it; one that began well before
    # rank 0 is said (its energy before then is in the totals, not in the time series)
    start = own.started_at.timestamp()
    end = max(rep.started_wall + rep.run.duration_s for rep in everyone.values())
    duration_s = max(own.duration_s, end - start)
    early = sorted(r for r, rep in everyone.items() if start - rep.started_wall > _EARLY_S)
    if early:
        notes.append(
            f"{_who(early)} began measuring more than {_EARLY_S:.0f} s before rank {topology.rank}: that energy is in "
            "the totals but not in the time series"
        )
    ended_at = None if own.ended_at is None else own.started_at + timedelta(seconds=duration_s)
    works = [rep.run.work for rep in everyone.values() if rep.run.work is not None]
    return replace(
        own,
        duration_s=duration_s,
        ended_at=ended_at,
        status=status,
        error=error,
        energy_j=energy_j,
        machine_energy_j=machine_j,
        co2e_g=co2e_g,
        intensity_g_per_kwh=intensity,
        components=tuple(components),
        windows=tuple(windows),
        prediction=prediction,
        water_onsite_l=onsite_l,
        water_offsite_l=offsite_l,
        notes=capped_notes(list(dict.fromkeys(notes))),
        ranks=tuple(figures),
        work=sum(works, Work()) if works else None,
    )


_TROUBLE = frozenset({"lost", "missing", "failed", "incomplete"})
_EARLY_S = 2.0  # a rank that began this much before rank 0 is said to have


def _who(ranks: list[int]) -> str:
    """``rank 3``, ``ranks 1, 2, 3``, ``ranks 1, 2, 3 and 997 more``."""
    if len(ranks) == 1:
        return f"rank {ranks[0]}"
    shown = ", ".join(str(r) for r in ranks[:3])
    return f"ranks {shown}" + (f" and {len(ranks) - 3} more" if len(ranks) > 3 else "")


def _trouble(figure: RankFigure) -> str:
    where = f"rank {figure.rank}" + (f" ({figure.host})" if figure.host else "")
    if figure.status == "missing":
        return f"{where} never reported: did it call wattwise.track()? Its energy is not in the run"
    if figure.status == "lost":
        return f"{where} sent no final report (it died, or hung): its figures run to its last report"
    return f"{where} ended {figure.status}"


def _figures(
    everyone: Mapping[int, RankReport],
    kept: Mapping[int, set[str]],
    topology: Topology,
    final: bool,
    lost: frozenset[int],
) -> list[RankFigure]:
    """Each rank's own devices plus its share of its node's node-wide energy (split by CPU time)."""
    node_j: dict[str, float] = {}
    cpu_on: dict[str, float] = {}
    ranks_on: dict[str, int] = {}
    own_j: dict[int, float] = {}
    for rank, report in everyone.items():
        devices = node = 0.0
        for part in report.run.components:
            if not part.in_total or part.name not in kept[rank]:
                continue
            if part.component in NODE_WIDE_KINDS:
                node += part.energy_j
            else:
                devices += part.energy_j
        own_j[rank] = devices
        node_j[report.host] = node_j.get(report.host, 0.0) + node
        cpu_on[report.host] = cpu_on.get(report.host, 0.0) + max(report.cpu_s, 0.0)
        ranks_on[report.host] = ranks_on.get(report.host, 0) + 1
    figures = []
    for rank, report in everyone.items():
        host = report.host
        cpu = max(report.cpu_s, 0.0)
        share = cpu / cpu_on[host] if cpu_on[host] > 0 else 1.0 / ranks_on[host]
        node_share = node_j[host] * share
        figures.append(
            RankFigure(
                rank=rank,
                local_rank=report.local_rank,
                host=host,
                energy_j=own_j[rank] + node_share,
                node_share_j=node_share,
                cpu_s=cpu,
                status=_status(report, final, rank in lost) if rank != topology.rank else report.run.status,
            )
        )
    return figures


def _windows(
    everyone: Mapping[int, RankReport], kept: Mapping[int, set[str]], topology: Topology
) -> list[WindowRecord]:
    """Windows of the same name and occurrence added up over the ranks, in rank 0's order (then the others')."""
    merged: dict[tuple[str, int], WindowRecord] = {}
    for rank in sorted(everyone, key=lambda r: (r != topology.rank, r)):
        report = everyone[rank]
        counts: dict[str, int] = {}
        totals = {c.name for c in report.run.components if c.in_total}
        for window in report.run.windows:
            n = counts.get(window.name, 0)
            counts[window.name] = n + 1
            parts = {
                qualified(name, report.host, topology): energy
                for name, energy in window.components.items()
                if name in kept[rank]
            }
            energy = sum(e for name, e in window.components.items() if name in kept[rank] and name in totals)
            whole = window.energy_j
            co2e = window.co2e_g * (energy / whole if whole > 0 else 1.0)
            key = (window.name, n)
            found = merged.get(key)
            if found is None:
                merged[key] = replace(window, energy_j=energy, co2e_g=co2e, components=parts)
            else:
                combined = dict(found.components)
                for name, value in parts.items():
                    combined[name] = combined.get(name, 0.0) + value
                merged[key] = replace(
                    found, energy_j=found.energy_j + energy, co2e_g=found.co2e_g + co2e, components=combined
                )
    return list(merged.values())
