"""The jobs file of ``wattwise schedule batch``: YAML (or JSON), validated with the shared validators.

::

    capacity: 4                  # concurrent units (jobs, or GPUs when jobs say how many they use)
    region: DE                   # or trace: FILE with at: 2020-06-01T00:00Z; provider: electricitymaps
    jobs:
      - name: finetune-a
        duration: 4h             # 90m, 1.5h, 2d
        deadline: 24h            # finish within this, from the batch's start
        power_kw: 2.5            # or power_w: 2500
        units: 1                 # optional (default 1)
        release: 2h              # optional earliest start (default 0)

Every problem is one line naming the file, the job (by number and name) and the field.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from wattwise.errors import ConfigError
from wattwise.schedule.batch import BatchJob
from wattwise.validate import CAPACITY, JOB_HOURS, JOBS, POWER_W, WINDOW_HOURS, hours, renamed

_JOB_KEYS = {"name", "duration", "deadline", "power_kw", "power_w", "units", "release"}
_TOP_KEYS = {"capacity", "region", "provider", "trace", "at", "forecaster", "jobs"}


@dataclass(frozen=True, slots=True)
class JobsFile:
    capacity: int
    jobs: list[BatchJob]
    settings: dict[str, Any]  # region, provider, trace, at, forecaster as given


def load(path: str | Path) -> JobsFile:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the jobs file ({exc.strerror or exc})") from exc
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not a UTF-8 text file") from None
    data = _parse(path, text)
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping with 'capacity' and 'jobs' at the top")
    unknown = set(data) - _TOP_KEYS
    if unknown:
        raise ConfigError(f"{path}: unknown key {sorted(unknown)[0]!r}; expected {', '.join(sorted(_TOP_KEYS))}")
    if "capacity" not in data:
        raise ConfigError(f"{path}: missing 'capacity' (how many jobs, or GPUs, may run at once)")
    capacity = CAPACITY.check_int(data["capacity"], f"{path}: capacity")
    raw_jobs = data.get("jobs")
    if not isinstance(raw_jobs, list) or not raw_jobs:
        raise ConfigError(f"{path}: 'jobs' must be a non-empty list of jobs")
    JOBS.check_int(len(raw_jobs), f"{path}: number of jobs")
    jobs = [_job(path, i, raw) for i, raw in enumerate(raw_jobs, start=1)]
    settings = {k: data[k] for k in ("region", "provider", "trace", "at", "forecaster") if k in data}
    for key, value in settings.items():
        if not isinstance(value, str):
            raise ConfigError(f"{path}: {key} must be text (got {type(value).__name__})")
    return JobsFile(capacity, jobs, settings)


def _parse(path: Path, text: str) -> Any:
    if path.suffix.lower() == ".json":
        import json

        try:
            return json.loads(text)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"{path}:{exc.lineno}: not valid JSON ({exc.msg})") from None
    try:
        import yaml
    except ImportError:
        raise ConfigError(
            f"{path}: YAML needs PyYAML (pip install 'wattwise[schedule]'), or give a .json file"
        ) from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f":{mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"{path}{where}: not valid YAML ({getattr(exc, 'problem', None) or exc})") from None


def _job(path: Path, number: int, raw: object) -> BatchJob:
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: job {number} must be a mapping with name, duration, deadline and power")
    label = f"{path}: job {number}" + (f" ({raw['name']})" if isinstance(raw.get("name"), str) else "")
    unknown = set(raw) - _JOB_KEYS
    if unknown:
        raise ConfigError(f"{label}: unknown field {sorted(unknown)[0]!r}; expected {', '.join(sorted(_JOB_KEYS))}")
    for key in ("name", "duration", "deadline"):
        if key not in raw:
            raise ConfigError(f"{label}: missing {key!r}")
    if "power_kw" not in raw and "power_w" not in raw:
        raise ConfigError(f"{label}: missing 'power_kw' (or 'power_w'): the job's average power")
    if "power_kw" in raw and "power_w" in raw:
        raise ConfigError(f"{label}: give power_kw or power_w, not both")
    name = raw["name"]
    if not isinstance(name, str) or not name.strip() or len(name) > 200 or not name.isprintable():
        raise ConfigError(f"{label}: name must be printable text of 1 to 200 characters")
    power_w = (
        POWER_W.check(raw["power_w"], f"{label}: power_w")
        if "power_w" in raw
        else renamed(POWER_W, "power_kw").check(
            raw["power_kw"] * 1000 if _num(raw["power_kw"]) else raw["power_kw"], f"{label}: power_kw (as W)"
        )
    )
    units = CAPACITY.check_int(raw.get("units", 1), f"{label}: units")
    return BatchJob(
        name=name,
        duration_h=hours(raw["duration"], JOB_HOURS, f"{label}: duration"),
        deadline_h=hours(raw["deadline"], WINDOW_HOURS, f"{label}: deadline"),
        power_kw=power_w / 1000.0,
        units=units,
        release_h=hours(raw.get("release", 0), WINDOW_HOURS, f"{label}: release"),
    )


def _num(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)
