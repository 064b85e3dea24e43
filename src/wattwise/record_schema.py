"""Run records from JSON, read strictly, and the rules every stored record obeys.

:func:`run_from_dict` turns a JSON object (``wattwise runs show --json``, an export, a record saved under
``unsaved/``) into a :class:`~wattwise.records.Run`, checking every field's type; :func:`check_run` checks the
values (ranges from :mod:`wattwise.validate`, known status and schema, a safe id, consistent totals). The store's
writer and ``wattwise runs import`` both apply :func:`check_run`, so an imported record is held to exactly the
rules a measured one is. Every problem is a :class:`~wattwise.errors.RecordError` whose one line names the field.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any, NoReturn, cast

from wattwise import validate
from wattwise.errors import ConfigError, RecordError
from wattwise.records import (
    ARTIFACT_KINDS,
    RANK_STATUSES,
    RUN_STATUSES,
    SCHEMA_VERSION,
    Artifact,
    ComponentEnergy,
    ExternalFigure,
    IntensityStep,
    Prediction,
    Range,
    RankFigure,
    Run,
    WindowRecord,
    Work,
)

__all__ = [
    "ATTRIBUTIONS",
    "MAX_INTENSITY_STEPS",
    "MAX_NOTES",
    "MAX_TEXT",
    "SIGNALS",
    "SOURCE_KINDS",
    "artifact_from_dict",
    "check_artifact",
    "check_run",
    "run_from_dict",
]

ATTRIBUTIONS = ("process", "machine")
SOURCE_KINDS = ("measured", "estimated")
SIGNALS = ("average", "marginal")
MAX_TEXT = 100_000  # characters in one text field (a name, a note, an error, a command argument)
MAX_NOTES = 1_000
MAX_RANKS = 1_000_000  # the largest training jobs run on about 1e5 accelerators
MAX_EXTERNAL = 10_000  # a cluster's counters for one run: one per GPU, pod or job step
MAX_INTENSITY_STEPS = 20_000  # a month of 5-minute intensity points; the tracker keeps at most this many
_MISSING = object()
_TOTAL_TOLERANCE = 1e-6  # relative: the totals are sums of the components, up to float rounding


class _Fields:
    """Typed access to one JSON object, with errors that name the field's path."""

    def __init__(self, data: object, path: str, where: str) -> None:
        if not isinstance(data, dict):
            _fail(where, path, f"must be a JSON object, not {_kind(data)}")
        self.data: dict[str, Any] = data
        self.path = path
        self.where = where

    def _at(self, key: str) -> str:
        return f"{self.path}.{key}" if self.path else key

    def raw(self, key: str, default: object = _MISSING) -> Any:
        if key not in self.data:
            if default is _MISSING:
                _fail(self.where, self._at(key), "is missing")
            return default
        return self.data[key]

    def text(self, key: str, default: object = _MISSING) -> str:
        value = self.raw(key, default)
        if not isinstance(value, str):
            _fail(self.where, self._at(key), f"must be text, not {_kind(value)}")
        if len(value) > MAX_TEXT:
            _fail(self.where, self._at(key), f"is longer than {MAX_TEXT:,} characters")
        return value

    def optional_text(self, key: str) -> str | None:
        return None if self.raw(key, None) is None else self.text(key)

    def number(self, key: str, default: object = _MISSING) -> float:
        value = self.raw(key, default)
        if not validate.is_number(value) or not math.isfinite(float(value)):
            _fail(self.where, self._at(key), f"must be a finite number, not {_short(value)}")
        return float(value)

    def optional_number(self, key: str) -> float | None:
        return None if self.raw(key, None) is None else self.number(key)

    def integer(self, key: str, default: object = _MISSING) -> int:
        value = self.raw(key, default)
        if not isinstance(value, int) or isinstance(value, bool):
            _fail(self.where, self._at(key), f"must be a whole number, not {_short(value)}")
        return value

    def optional_integer(self, key: str) -> int | None:
        return None if self.raw(key, None) is None else self.integer(key)

    def flag(self, key: str, default: bool) -> bool:
        value = self.raw(key, default)
        if not isinstance(value, bool):
            _fail(self.where, self._at(key), f"must be true or false, not {_short(value)}")
        return value

    def moment(self, key: str) -> datetime:
        value = self.raw(key)
        if value is None:
            _fail(self.where, self._at(key), "must be an ISO 8601 time with a UTC offset, not null")
        if not isinstance(value, str):
            _fail(self.where, self._at(key), f"must be an ISO 8601 time, not {_kind(value)}")
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            _fail(self.where, self._at(key), f"is not an ISO 8601 time: {_short(value)}")
        if moment.utcoffset() is None:
            _fail(self.where, self._at(key), f"has no UTC offset: {_short(value)} (write it with Z or +00:00)")
        try:
            moment.astimezone(UTC)
        except OverflowError:
            _fail(self.where, self._at(key), f"is out of range in UTC: {_short(value)}")
        return moment

    def optional_moment(self, key: str) -> datetime | None:
        return None if self.raw(key, None) is None else self.moment(key)

    def items(self, key: str) -> list[Any]:
        value = self.raw(key, [])
        if value is None:
            return []
        if not isinstance(value, list):
            _fail(self.where, self._at(key), f"must be a list, not {_kind(value)}")
        return value

    def child(self, key: str) -> _Fields:
        return _Fields(self.raw(key), self._at(key), self.where)

    def texts(self, key: str) -> tuple[str, ...]:
        values = self.items(key)
        out = []
        for i, value in enumerate(values):
            if not isinstance(value, str) or len(value) > MAX_TEXT:
                _fail(self.where, f"{self._at(key)}[{i}]", f"must be text of at most {MAX_TEXT:,} characters")
            out.append(value)
        return tuple(out)


def _fail(where: str, path: str, problem: str) -> NoReturn:
    raise RecordError(f"{where}: {path or 'the record'} {problem}")


def _kind(value: object) -> str:
    names = {dict: "an object", list: "a list", str: "text", bool: "true/false", type(None): "null"}
    return names.get(type(value), "a number" if validate.is_number(value) else type(value).__name__)


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _range(fields: _Fields) -> Range:
    return Range(value=fields.number("value"), low=fields.number("low"), high=fields.number("high"))


def _component(fields: _Fields) -> ComponentEnergy:
    energy_j = fields.number("energy_j")
    return ComponentEnergy(
        name=fields.text("name"),
        component=fields.text("component"),
        energy_j=energy_j,
        machine_energy_j=fields.number("machine_energy_j", energy_j),
        source=cast(Any, fields.text("source")),
        method=fields.text("method", ""),
        detail=fields.text("detail", ""),
        in_total=fields.flag("in_total", True),
        low_j=fields.optional_number("low_j"),
        high_j=fields.optional_number("high_j"),
    )


def _window(fields: _Fields) -> WindowRecord:
    components = fields.child("components") if fields.raw("components", None) is not None else None
    parts: dict[str, float] = {}
    if components is not None:
        for key in components.data:
            parts[str(key)] = components.number(key)
    return WindowRecord(
        name=fields.text("name"),
        parent=fields.optional_text("parent"),
        started_at=fields.moment("started_at"),
        duration_s=fields.number("duration_s"),
        energy_j=fields.number("energy_j"),
        co2e_g=fields.number("co2e_g"),
        components=parts,
    )


def _prediction(fields: _Fields) -> Prediction:
    return Prediction(
        epochs_done=fields.integer("epochs_done"),
        epochs_planned=fields.integer("epochs_planned"),
        energy_j=_range(fields.child("energy_j")),
        duration_s=_range(fields.child("duration_s")),
        co2e_g=_range(fields.child("co2e_g")),
        method=fields.text("method", ""),
    )


def run_from_dict(data: object, where: str = "run record") -> Run:
    """A Run from its JSON form (:meth:`Run.to_dict`), every field's type checked; RecordError names the first
    field that is missing or of the wrong type. Values are not range-checked here: see :func:`check_run`."""
    f = _Fields(data, "", where)
    schema = f.integer("schema", 1)  # exports made before the field existed are schema 1
    if not 1 <= schema <= SCHEMA_VERSION:
        _fail(
            where,
            "schema",
            f"is {schema}, but this wattwise reads schema 1 to {SCHEMA_VERSION}; "
            "upgrade wattwise to read records from a newer version",
        )
    energy_j = f.number("energy_j")
    prediction = f.raw("prediction", None)
    command = f.raw("command", None)
    return Run(
        id=f.text("id"),
        name=f.text("name"),
        status=cast(Any, f.text("status")),
        started_at=f.moment("started_at"),
        ended_at=f.optional_moment("ended_at"),
        duration_s=f.number("duration_s"),
        energy_j=energy_j,
        machine_energy_j=f.number("machine_energy_j", energy_j),
        co2e_g=f.number("co2e_g"),
        region=f.text("region"),
        intensity_g_per_kwh=f.number("intensity_g_per_kwh"),
        intensity_source=f.text("intensity_source", ""),
        pue=f.number("pue"),
        attribution=cast(Any, f.text("attribution", "process")),
        components=tuple(
            _component(_Fields(c, f"components[{i}]", where)) for i, c in enumerate(f.items("components"))
        ),
        windows=tuple(_window(_Fields(w, f"windows[{i}]", where)) for i, w in enumerate(f.items("windows"))),
        prediction=None if prediction is None else _prediction(f.child("prediction")),
        command=None if command is None else f.texts("command"),
        exit_code=f.optional_integer("exit_code"),
        error=f.optional_text("error"),
        host=f.text("host", ""),
        pid=f.integer("pid", 0),
        notes=f.texts("notes"),
        wattwise_version=f.text("wattwise_version", ""),
        emissions_method=f.text("emissions_method", "annual-average"),
        signal=f.text("signal", "average"),
        intensity_fallback=f.flag("intensity_fallback", False),
        water_onsite_l=f.number("water_onsite_l", 0.0),
        water_offsite_l=f.number("water_offsite_l", 0.0),
        water_source=f.text("water_source", ""),
        schedule=_schedule(f.raw("schedule", None), where),
        intensity_series=tuple(
            _intensity_step(_Fields(item, f"intensity_series[{i}]", where))
            for i, item in enumerate(f.items("intensity_series"))
        ),
        ranks=tuple(_rank(_Fields(item, f"ranks[{i}]", where)) for i, item in enumerate(f.items("ranks"))),
        external=tuple(_external(_Fields(item, f"external[{i}]", where)) for i, item in enumerate(f.items("external"))),
        work=None if f.raw("work", None) is None else _work(f.child("work")),
    )


def _work(fields: _Fields) -> Work:
    return Work(
        output_tokens=fields.number("output_tokens", 0.0),
        requests=fields.number("requests", 0.0),
        prompt_tokens=fields.number("prompt_tokens", 0.0),
    )


def _rank(fields: _Fields) -> RankFigure:
    return RankFigure(
        rank=fields.integer("rank"),
        local_rank=fields.integer("local_rank", 0),
        host=fields.text("host", ""),
        energy_j=fields.number("energy_j"),
        node_share_j=fields.number("node_share_j", 0.0),
        cpu_s=fields.number("cpu_s", 0.0),
        status=fields.text("status", "complete"),
    )


def _external(fields: _Fields) -> ExternalFigure:
    return ExternalFigure(
        source=fields.text("source"),
        scope=fields.text("scope", ""),
        energy_j=fields.number("energy_j"),
        started_at=fields.optional_moment("started_at"),
        ended_at=fields.optional_moment("ended_at"),
        detail=fields.text("detail", ""),
    )


def _intensity_step(fields: _Fields) -> IntensityStep:
    return IntensityStep(
        start=fields.moment("start"),
        duration_s=fields.number("duration_s"),
        intensity_g_per_kwh=fields.number("intensity_g_per_kwh"),
        forecast=fields.flag("forecast", False),
    )


def _schedule(value: object, where: str) -> dict[str, Any] | None:
    """The schedule part of a record: a flat object of text, numbers, booleans, nulls and lists of those."""
    if value is None:
        return None
    if not isinstance(value, dict):
        _fail(where, "schedule", f"must be an object or null, not {_kind(value)}")
    scalar = (str, int, float, bool, type(None))
    for key, item in value.items():
        flat = isinstance(item, scalar) or (
            isinstance(item, list) and all(isinstance(x, (*scalar, dict)) for x in item)
        )
        if not isinstance(key, str) or not flat:
            _fail(where, f"schedule.{key}", f"must be text, a number, a flag or a list, not {_kind(item)}")
    return dict(value)


def _bounded(bounds: validate.Bounds, value: float, where: str, path: str) -> None:
    if not bounds.contains(value):
        _fail(where, path, f"must be {bounds.describe()} (got {value!r})")


def check_run(run: Run, where: str = "run record") -> None:
    """Every rule a stored record obeys; RecordError names the first field that breaks one.

    The id is safe to use in a file name; status, attribution, signal and component sources are known words;
    times carry a UTC offset and the end is not before the start; every number is finite and in its range
    (:mod:`wattwise.validate`); a run has at least one component, and its totals are the sums of the
    components that count towards them.
    """
    try:
        validate.check_run_id(run.id)
    except ConfigError as exc:
        raise RecordError(f"{where}: {exc}") from None
    where = f"{where} {run.id}"
    run_from_dict(run.to_dict(), where)  # every field's type and size, as a reader will see them
    for name in ("name", "region", "intensity_source", "emissions_method", "water_source", "wattwise_version"):
        value = getattr(run, name)
        if not isinstance(value, str) or len(value) > MAX_TEXT:
            _fail(where, name, f"must be text of at most {MAX_TEXT:,} characters")
    _word(run.status, RUN_STATUSES, where, "status")
    _word(run.attribution, ATTRIBUTIONS, where, "attribution")
    _word(run.signal, SIGNALS, where, "signal")
    _aware(run.started_at, where, "started_at")
    if run.ended_at is not None:
        _aware(run.ended_at, where, "ended_at")
        if run.ended_at < run.started_at:
            _fail(where, "ended_at", f"({run.ended_at.isoformat()}) is before started_at")
    _bounded(validate.DURATION_S, run.duration_s, where, "duration_s")
    _bounded(validate.ENERGY_J, run.energy_j, where, "energy_j")
    _bounded(validate.ENERGY_J, run.machine_energy_j, where, "machine_energy_j")
    _bounded(validate.CO2E_G, run.co2e_g, where, "co2e_g")
    _bounded(validate.INTENSITY, run.intensity_g_per_kwh, where, "intensity_g_per_kwh")
    _bounded(validate.PUE, run.pue, where, "pue")
    _bounded(validate.WATER_L, run.water_onsite_l, where, "water_onsite_l")
    _bounded(validate.WATER_L, run.water_offsite_l, where, "water_offsite_l")
    if not 0 <= run.pid < 2**31:
        _fail(where, "pid", f"must be a process id (got {run.pid})")
    if run.exit_code is not None and not -(2**31) <= run.exit_code < 2**31:
        _fail(where, "exit_code", f"is out of range (got {run.exit_code})")
    if len(run.notes) > MAX_NOTES:
        _fail(where, "notes", f"has {len(run.notes):,} entries; at most {MAX_NOTES:,}")
    _check_components(run, where)
    for i, window in enumerate(run.windows):
        path = f"windows[{i}]"
        if not window.name:
            _fail(where, f"{path}.name", "is empty")
        _aware(window.started_at, where, f"{path}.started_at")
        _bounded(validate.DURATION_S, window.duration_s, where, f"{path}.duration_s")
        _bounded(validate.ENERGY_J, window.energy_j, where, f"{path}.energy_j")
        _bounded(validate.CO2E_G, window.co2e_g, where, f"{path}.co2e_g")
        for key, value in window.components.items():
            _bounded(validate.ENERGY_J, value, where, f"{path}.components.{key}")
    _check_ranks(run, where)
    if run.work is not None:
        _bounded(validate.WORK_TOKENS, run.work.output_tokens, where, "work.output_tokens")
        _bounded(validate.WORK_REQUESTS, run.work.requests, where, "work.requests")
        _bounded(validate.WORK_TOKENS, run.work.prompt_tokens, where, "work.prompt_tokens")
    if len(run.intensity_series) > MAX_INTENSITY_STEPS:
        _fail(where, "intensity_series", f"has {len(run.intensity_series):,} entries; at most {MAX_INTENSITY_STEPS:,}")
    for i, step in enumerate(run.intensity_series):
        _aware(step.start, where, f"intensity_series[{i}].start")
        _bounded(validate.DURATION_S, step.duration_s, where, f"intensity_series[{i}].duration_s")
        _bounded(validate.INTENSITY, step.intensity_g_per_kwh, where, f"intensity_series[{i}].intensity_g_per_kwh")
    if run.prediction is not None:
        p = run.prediction
        if p.epochs_done < 1 or p.epochs_planned < 1:
            _fail(where, "prediction", f"epochs {p.epochs_done} of {p.epochs_planned} do not make sense")
        for name, bounds in (("energy_j", validate.ENERGY_J), ("duration_s", validate.DURATION_S)):
            r: Range = getattr(p, name)
            for part in (r.value, r.low, r.high):
                _bounded(bounds, part, where, f"prediction.{name}")
        for part in (p.co2e_g.value, p.co2e_g.low, p.co2e_g.high):
            _bounded(validate.CO2E_G, part, where, "prediction.co2e_g")
        for name in ("energy_j", "duration_s", "co2e_g"):
            r = getattr(p, name)
            if not r.low <= r.value <= r.high:
                _fail(where, f"prediction.{name}", f"must have low <= value <= high (got {r.low}, {r.value}, {r.high})")


def _check_components(run: Run, where: str) -> None:
    if not run.components:
        _fail(where, "components", "is empty: a run record says what was measured (at least one component)")
    seen: set[str] = set()
    energy = machine = 0.0
    for i, c in enumerate(run.components):
        path = f"components[{i}]"
        if not c.name or c.name in seen:
            _fail(where, f"{path}.name", f"is {'empty' if not c.name else 'repeated: ' + repr(c.name)}")
        seen.add(c.name)
        _word(c.source, SOURCE_KINDS, where, f"{path}.source")
        _bounded(validate.ENERGY_J, c.energy_j, where, f"{path}.energy_j")
        _bounded(validate.ENERGY_J, c.machine_energy_j, where, f"{path}.machine_energy_j")
        for name in ("low_j", "high_j"):
            value = getattr(c, name)
            if value is not None:
                _bounded(validate.ENERGY_J, value, where, f"{path}.{name}")
        if c.in_total:
            energy += c.energy_j
            machine += c.machine_energy_j
    for name, total, expected in (
        ("energy_j", run.energy_j, energy),
        ("machine_energy_j", run.machine_energy_j, machine),
    ):
        if abs(total - expected) > _TOTAL_TOLERANCE * max(abs(expected), 1.0):
            _fail(where, name, f"({total:g}) is not the sum of the components in the total ({expected:g})")


def _check_ranks(run: Run, where: str) -> None:
    """A distributed run's ranks (distinct, each in range) and the cluster counters kept beside it."""
    if len(run.ranks) > MAX_RANKS:
        _fail(where, "ranks", f"has {len(run.ranks):,} entries; at most {MAX_RANKS:,}")
    seen: set[int] = set()
    for i, rank in enumerate(run.ranks):
        path = f"ranks[{i}]"
        if not 0 <= rank.rank < MAX_RANKS or rank.rank in seen:
            _fail(where, f"{path}.rank", f"must be a distinct rank from 0 to {MAX_RANKS - 1:,} (got {rank.rank})")
        seen.add(rank.rank)
        if not 0 <= rank.local_rank < MAX_RANKS:
            _fail(where, f"{path}.local_rank", f"must be from 0 to {MAX_RANKS - 1:,} (got {rank.local_rank})")
        _word(rank.status, RANK_STATUSES, where, f"{path}.status")
        _bounded(validate.ENERGY_J, rank.energy_j, where, f"{path}.energy_j")
        _bounded(validate.ENERGY_J, rank.node_share_j, where, f"{path}.node_share_j")
        _bounded(validate.DURATION_S, rank.cpu_s, where, f"{path}.cpu_s")
    if len(run.external) > MAX_EXTERNAL:
        _fail(where, "external", f"has {len(run.external):,} entries; at most {MAX_EXTERNAL:,}")
    for i, figure in enumerate(run.external):
        path = f"external[{i}]"
        if not figure.source:
            _fail(where, f"{path}.source", "is empty: name the counter (dcgm, kepler, slurm)")
        _bounded(validate.ENERGY_J, figure.energy_j, where, f"{path}.energy_j")
        for name in ("started_at", "ended_at"):
            moment = getattr(figure, name)
            if moment is not None:
                _aware(moment, where, f"{path}.{name}")


def _word(value: object, allowed: tuple[str, ...], where: str, path: str) -> None:
    if value not in allowed:
        _fail(where, path, f"is {_short(value)}; it must be one of {', '.join(allowed)}")


def _aware(moment: object, where: str, path: str) -> None:
    if not isinstance(moment, datetime) or moment.utcoffset() is None:
        _fail(where, path, "must be a time with a UTC offset")


MAX_ARTIFACT_BYTES = 8 * 1024 * 1024  # an estimate is a few kB; a plan over ten regions a few hundred


def artifact_from_dict(data: object, where: str = "saved artifact") -> Artifact:
    """An Artifact from its JSON form (:meth:`Artifact.to_dict`), every field's type checked."""
    f = _Fields(data, "", where)
    body = f.raw("data")
    if not isinstance(body, dict):
        _fail(where, "data", f"must be an object, not {_kind(body)}")
    return Artifact(
        id=f.text("id"),
        kind=cast(Any, f.text("kind")),
        name=f.text("name", ""),
        created_at=f.moment("created_at"),
        data=body,
    )


def check_artifact(artifact: Artifact, where: str = "saved artifact") -> str:
    """Every rule a stored artifact obeys; returns its strict JSON (RecordError names what is wrong)."""
    import json

    try:
        validate.check_run_id(artifact.id)
    except ConfigError as exc:
        raise RecordError(f"{where}: {exc}") from None
    where = f"{where} {artifact.id}"
    _word(artifact.kind, ARTIFACT_KINDS, where, "kind")
    if not isinstance(artifact.name, str) or len(artifact.name) > MAX_TEXT:
        _fail(where, "name", f"must be text of at most {MAX_TEXT:,} characters")
    _aware(artifact.created_at, where, "created_at")
    try:
        text = json.dumps(artifact.to_dict(), allow_nan=False, separators=(",", ":"))
    except (TypeError, ValueError) as exc:
        _fail(where, "data", f"is not strict JSON ({exc})")
    if len(text) > MAX_ARTIFACT_BYTES:
        _fail(where, "data", f"is {len(text):,} bytes; at most {MAX_ARTIFACT_BYTES:,}")
    return text
