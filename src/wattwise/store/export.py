"""Runs and samples out of the store as CSV or JSON, for spreadsheets, notebooks and other tools.

JSON is a list of ``Run.to_dict()`` (the record ``wattwise runs show --json`` prints), written one run at a
time. CSV has one row per run: the scalar fields, then one ``energy_j:<component>`` column per component
name seen in any of the runs (so the runs are held in memory to collect the header first). Non-finite
numbers are refused rather than written as invalid JSON.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable
from typing import Literal, Protocol

from wattwise.errors import ConfigError
from wattwise.records import Run
from wattwise.store.base import RunStore, encode_record

__all__ = ["RUN_CSV_FIELDS", "SAMPLE_CSV_FIELDS", "TextSink", "export_runs", "export_samples"]

RUN_CSV_FIELDS = (
    "id",
    "name",
    "status",
    "started_at",
    "ended_at",
    "duration_s",
    "energy_j",
    "machine_energy_j",
    "co2e_g",
    "source",
    "region",
    "intensity_g_per_kwh",
    "intensity_source",
    "pue",
    "attribution",
    "exit_code",
)
SAMPLE_CSV_FIELDS = ("t_s", "channel", "power_w", "energy_j")
COMPONENT_PREFIX = "energy_j:"


class TextSink(Protocol):
    """Where an export goes: anything with ``write(str)`` (``sys.stdout``, an open text file, ``io.StringIO``)."""

    def write(self, text: str, /) -> object: ...


def export_runs(runs: Iterable[Run], fmt: Literal["csv", "json"], out: TextSink) -> int:
    """Write ``runs`` to ``out`` as ``fmt``; return how many runs were written.

    Open files with ``newline=""`` for CSV (names may hold line breaks); rows end with ``\\n``.
    """
    if fmt == "json":
        return _runs_json(runs, out)
    if fmt == "csv":
        return _runs_csv(runs, out)
    raise ConfigError(f"unknown export format {fmt!r}; use csv or json")


def _runs_json(runs: Iterable[Run], out: TextSink) -> int:
    count = 0
    out.write("[")
    for run in runs:
        out.write(",\n" if count else "\n")
        out.write(encode_record(run, check=False))  # what is stored, as strict JSON
        count += 1
    out.write("\n]\n" if count else "]\n")
    return count


def _runs_csv(runs: Iterable[Run], out: TextSink) -> int:
    held = list(runs)
    components: dict[str, None] = {}  # names in order of first appearance
    for run in held:
        components.update((c.name, None) for c in run.components)
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow([*RUN_CSV_FIELDS, *(COMPONENT_PREFIX + name for name in components)])
    for run in held:
        data = run.to_dict()
        energy = {c.name: c.energy_j for c in run.components}
        writer.writerow([*(data[f] for f in RUN_CSV_FIELDS), *(energy.get(name) for name in components)])
    return len(held)


def export_samples(store: RunStore, run_id: str, out: TextSink) -> int:
    """Write one run's samples as CSV (``t_s,channel,power_w,energy_j``), streamed; return the row count."""
    samples = store.iter_samples(run_id)  # an unknown run fails here, before anything is written
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(SAMPLE_CSV_FIELDS)
    count = 0
    for sample in samples:
        writer.writerow((sample.t_s, sample.channel, sample.power_w, sample.energy_j))
        count += 1
    return count
