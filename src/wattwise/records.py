"""Frozen records shared by every layer: the tracker writes them, the store keeps them, reports read them.

A :class:`Run` is the unit users see. It carries the energy per component (``components``), per named window
(``windows``), the emissions and where every number came from (``source``/``method``/``detail`` per component,
``intensity_source`` for the grid figure). ``Run.to_dict()`` is the JSON users get from
``wattwise runs show --json``; ``Run.from_dict`` reads it back, so a stored run survives a round trip.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from wattwise.units import j_to_wh

RunStatus = Literal["running", "complete", "incomplete", "failed"]
SourceKind = Literal["measured", "estimated"]
Attribution = Literal["process", "machine"]

RUN_STATUSES: tuple[RunStatus, ...] = ("running", "complete", "incomplete", "failed")
ArtifactKind = Literal["training-estimate", "inference-estimate", "plan"]
ARTIFACT_KINDS: tuple[ArtifactKind, ...] = ("training-estimate", "inference-estimate", "plan")
SCHEMA_VERSION = 1


def utc_now() -> datetime:
    return datetime.now(UTC)


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.astimezone(UTC).isoformat()


@dataclass(frozen=True, slots=True)
class ComponentEnergy:
    """Energy of one power channel over a run or window.

    ``energy_j`` is what the totals use (the share attributed to the measured processes, or the whole machine,
    per the run's ``attribution``); ``machine_energy_j`` is what the channel drew in all. ``in_total`` is false for
    channels that overlap others (RAPL ``core`` is inside ``package``; ``psys`` covers the whole SoC).
    ``low_j``/``high_j`` bound an estimated channel from the stated range of its model; for a measured channel
    they equal ``energy_j``.
    """

    name: str
    component: str
    energy_j: float
    machine_energy_j: float
    source: SourceKind
    method: str
    detail: str = ""
    in_total: bool = True
    low_j: float | None = None
    high_j: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass(frozen=True, slots=True)
class WindowRecord:
    """A named, possibly nested, span inside a run (``t.window("epoch-3")``)."""

    name: str
    started_at: datetime
    duration_s: float
    energy_j: float
    co2e_g: float
    components: dict[str, float] = field(default_factory=dict)
    parent: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "parent": self.parent,
            "started_at": _iso(self.started_at),
            "duration_s": self.duration_s,
            "energy_j": self.energy_j,
            "co2e_g": self.co2e_g,
            "components": dict(self.components),
        }


@dataclass(frozen=True, slots=True)
class Range:
    """A point figure with the low and high ends of its stated range."""

    value: float
    low: float
    high: float

    def to_dict(self) -> dict[str, float]:
        return {"value": self.value, "low": self.low, "high": self.high}


@dataclass(frozen=True, slots=True)
class Prediction:
    """The whole run's footprint predicted from the epochs seen so far (carbontracker-style)."""

    epochs_done: int
    epochs_planned: int
    energy_j: Range
    duration_s: Range
    co2e_g: Range
    method: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "epochs_done": self.epochs_done,
            "epochs_planned": self.epochs_planned,
            "energy_j": self.energy_j.to_dict(),
            "duration_s": self.duration_s.to_dict(),
            "co2e_g": self.co2e_g.to_dict(),
            "method": self.method,
        }


@dataclass(frozen=True, slots=True)
class IntensityStep:
    """The grid intensity that applied over ``[start, start + duration_s)`` of a run (time-resolved emissions)."""

    start: datetime
    duration_s: float
    intensity_g_per_kwh: float
    forecast: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {
            "start": _iso(self.start),
            "duration_s": self.duration_s,
            "intensity_g_per_kwh": self.intensity_g_per_kwh,
            "forecast": self.forecast,
        }


RANK_STATUSES = ("running", "complete", "incomplete", "failed", "lost", "missing")


@dataclass(frozen=True, slots=True)
class RankFigure:
    """One rank of a distributed run (``torchrun``): what it measured, on which host.

    ``energy_j`` is the rank's own devices (its GPU) plus ``node_share_j``, its share of its node's node-wide
    energy (CPU, DRAM, memory, network: read once per node) split among the node's ranks by their CPU time
    (``cpu_s``); so the ranks add up to the run and nothing is counted twice. ``status`` is the rank's own end
    (``complete``/``incomplete``/``failed``), ``lost`` when its last report came before its end (it died: its
    figures run to that report) and ``missing`` when it never reported.
    """

    rank: int
    local_rank: int
    host: str
    energy_j: float
    node_share_j: float = 0.0
    cpu_s: float = 0.0
    status: str = "complete"

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass(frozen=True, slots=True)
class ExternalFigure:
    """Energy a cluster's own counters recorded for (part of) a run, kept beside wattwise's figures, never added to
    them: DCGM's GPU energy counter, Kepler's per-pod joules, Slurm's ``ConsumedEnergy``.

    ``source`` names the counter (``dcgm``, ``kepler``, ``slurm``), ``scope`` what it covers (``gpu 0``, ``pod
    ns/name``, ``job 1234``); ``detail`` says how it was read (the metric, the query, the command).
    """

    source: str
    scope: str
    energy_j: float
    started_at: datetime | None = None
    ended_at: datetime | None = None
    detail: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "scope": self.scope,
            "energy_j": self.energy_j,
            "started_at": _iso(self.started_at),
            "ended_at": _iso(self.ended_at),
            "detail": self.detail,
        }


@dataclass(frozen=True, slots=True)
class Work:
    """Work a run served, as the program counted it (``Tracker.count``, ``wattwise.report_work``).

    ``output_tokens``: tokens generated (decoded); ``prompt_tokens``: tokens read (prefilled); ``requests``: requests
    answered. Energy per token is per *output* token: decoding is what a served request waits for.
    """

    output_tokens: float = 0.0
    requests: float = 0.0
    prompt_tokens: float = 0.0

    def to_dict(self) -> dict[str, float]:
        return {"output_tokens": self.output_tokens, "requests": self.requests, "prompt_tokens": self.prompt_tokens}

    def __add__(self, other: Work) -> Work:
        return Work(
            self.output_tokens + other.output_tokens,
            self.requests + other.requests,
            self.prompt_tokens + other.prompt_tokens,
        )


@dataclass(frozen=True, slots=True)
class EnergyPerWork:
    """A run's energy (and emissions) divided by the work it counted; None where that work was not counted.

    ``source`` is the run's (``measured``, ``estimated``, ``mixed``): a figure per token is as good as the energy.
    """

    j_per_output_token: float | None
    j_per_request: float | None
    co2e_g_per_request: float | None
    source: str

    @property
    def wh_per_request(self) -> float | None:
        return None if self.j_per_request is None else j_to_wh(self.j_per_request)

    def to_dict(self) -> dict[str, Any]:
        return {
            "j_per_output_token": self.j_per_output_token,
            "j_per_request": self.j_per_request,
            "wh_per_request": self.wh_per_request,
            "co2e_g_per_request": self.co2e_g_per_request,
            "source": self.source,
        }


def _per(total: float, count: float) -> float | None:
    """``total`` per one of ``count``; None for no count (or one so small that the quotient is not finite)."""
    if count <= 0:
        return None
    quotient = total / count
    return quotient if math.isfinite(quotient) else None


@dataclass(frozen=True, slots=True)
class Sample:
    """Power of one channel over one sampling interval, ending ``t_s`` seconds after the run started."""

    t_s: float
    channel: str
    power_w: float
    energy_j: float  # cumulative energy of the channel since the run started (the totals' attribution)


@dataclass(frozen=True, slots=True)
class Run:
    """One measured run: the record every later layer (reports, scheduler, dashboard, stores) reads."""

    id: str
    name: str
    status: RunStatus
    started_at: datetime
    duration_s: float
    energy_j: float
    machine_energy_j: float
    co2e_g: float
    region: str
    intensity_g_per_kwh: float
    intensity_source: str
    pue: float
    attribution: Attribution
    components: tuple[ComponentEnergy, ...] = ()
    windows: tuple[WindowRecord, ...] = ()
    prediction: Prediction | None = None
    ended_at: datetime | None = None
    command: tuple[str, ...] | None = None
    exit_code: int | None = None
    error: str | None = None
    host: str = ""
    pid: int = 0
    notes: tuple[str, ...] = ()
    wattwise_version: str = ""
    emissions_method: str = "annual-average"  # "time-resolved" when an intensity series covered the run
    signal: str = "average"  # "marginal" for marginal-emissions providers (WattTime)
    intensity_fallback: bool = False  # the chosen provider failed and the packaged table answered
    water_onsite_l: float = 0.0  # cooling water at the facility: IT energy × WUE
    water_offsite_l: float = 0.0  # water consumed generating the electricity: facility energy × L/kWh of the grid
    water_source: str = ""
    # a deferred or interruptible run (``run --deadline``): its plan, waits, pauses and what it avoided
    schedule: dict[str, Any] | None = None
    # the intensity series the emissions were integrated over (empty when one figure applied to the whole run)
    intensity_series: tuple[IntensityStep, ...] = ()
    # a distributed run's ranks (empty for a single process), reduced into this record on rank 0
    ranks: tuple[RankFigure, ...] = ()
    # what the cluster's own counters recorded for the run (DCGM, Kepler, Slurm), beside wattwise's figures
    external: tuple[ExternalFigure, ...] = ()
    # work the program counted (tokens, requests); None when it counted none
    work: Work | None = None

    @property
    def water_l(self) -> float:
        return self.water_onsite_l + self.water_offsite_l

    @property
    def source(self) -> Literal["measured", "estimated", "mixed", "none"]:
        """Whether the total rests on counters, on models, or on both."""
        kinds = {c.source for c in self.components if c.in_total and c.energy_j > 0}
        if not kinds:
            return "none"
        if len(kinds) == 2:
            return "mixed"
        return "measured" if kinds == {"measured"} else "estimated"

    @property
    def per_work(self) -> EnergyPerWork | None:
        """Energy per output token and per request (None when the run counted no work)."""
        if self.work is None:
            return None
        return EnergyPerWork(
            j_per_output_token=_per(self.energy_j, self.work.output_tokens),
            j_per_request=_per(self.energy_j, self.work.requests),
            co2e_g_per_request=_per(self.co2e_g, self.work.requests),
            source=self.source,
        )

    def replace(self, **changes: Any) -> Run:
        return dataclasses.replace(self, **changes)

    def with_external(self, figures: Sequence[ExternalFigure]) -> Run:
        """This record with ``figures`` in ``external``, each replacing an earlier one of the same source and scope
        (attaching again refreshes a figure, never doubles it)."""
        latest = {(f.source, f.scope): f for f in figures}  # of two for one scope, the later
        kept = tuple(f for f in self.external if (f.source, f.scope) not in latest)
        return dataclasses.replace(self, external=(*kept, *latest.values()))

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": SCHEMA_VERSION,
            "id": self.id,
            "name": self.name,
            "status": self.status,
            "started_at": _iso(self.started_at),
            "ended_at": _iso(self.ended_at),
            "duration_s": self.duration_s,
            "energy_j": self.energy_j,
            "machine_energy_j": self.machine_energy_j,
            "co2e_g": self.co2e_g,
            "source": self.source,
            "region": self.region,
            "intensity_g_per_kwh": self.intensity_g_per_kwh,
            "intensity_source": self.intensity_source,
            "pue": self.pue,
            "attribution": self.attribution,
            "components": [c.to_dict() for c in self.components],
            "windows": [w.to_dict() for w in self.windows],
            "prediction": None if self.prediction is None else self.prediction.to_dict(),
            "command": None if self.command is None else list(self.command),
            "exit_code": self.exit_code,
            "error": self.error,
            "host": self.host,
            "pid": self.pid,
            "notes": list(self.notes),
            "wattwise_version": self.wattwise_version,
            "emissions_method": self.emissions_method,
            "signal": self.signal,
            "intensity_fallback": self.intensity_fallback,
            "water_l": self.water_l,
            "water_onsite_l": self.water_onsite_l,
            "water_offsite_l": self.water_offsite_l,
            "water_source": self.water_source,
            "schedule": None if self.schedule is None else dict(self.schedule),
            "intensity_series": [step.to_dict() for step in self.intensity_series],
            "ranks": [rank.to_dict() for rank in self.ranks],
            "external": [figure.to_dict() for figure in self.external],
            "work": None if self.work is None else self.work.to_dict(),
            "per_work": None if (per := self.per_work) is None else per.to_dict(),  # derived: not read back
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Run:
        """The inverse of :meth:`to_dict`, every field's type checked (RecordError names a bad field); values are
        checked by :func:`wattwise.record_schema.check_run`, which the store applies before writing."""
        from wattwise.record_schema import run_from_dict

        return run_from_dict(data)


@dataclass(frozen=True, slots=True)
class Artifact:
    """Something wattwise worked out and the user saved beside the runs: an estimate or a schedule plan.

    ``data`` is what the command prints with ``--json`` (the estimate's or the plan's JSON form), so a saved
    artifact reads back exactly as it was shown, and a page can be drawn from it alone.
    """

    id: str
    kind: ArtifactKind
    name: str
    created_at: datetime
    data: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": SCHEMA_VERSION,
            "id": self.id,
            "kind": self.kind,
            "name": self.name,
            "created_at": _iso(self.created_at),
            "data": self.data,
        }


def new_id(now: datetime | None = None) -> str:
    """A fresh id for a run or an artifact: its UTC start to the second and six random hex digits."""
    import os

    moment = (now or utc_now()).astimezone(UTC)
    return f"{moment:%Y%m%d-%H%M%S}-{os.urandom(3).hex()}"
