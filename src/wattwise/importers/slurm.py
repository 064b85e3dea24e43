"""Slurm's own energy figure for a job, from ``sacct``: ``ConsumedEnergyRaw``, in joules.

Slurm fills it only where an energy plugin is configured (``AcctGatherEnergyType`` in ``slurm.conf``: RAPL, IPMI,
Cray's pm_counters, GPU): elsewhere it is empty or 0, which says *no measurement*, never *no energy*, and nothing
is stored. A figure printed with a unit prefix (``3.60M``, as sacct writes ``ConsumedEnergy``) is read in powers of
1,000, as sacct writes it, and the record says it was rounded. The job's own line (its id without a step suffix) is
used: its steps (``.batch``, ``.extern``, ``.0``) overlap it; an array job or a heterogeneous job has no line of its
own, and one of its tasks (``1234_7``) or components (``1234+0``) must be named. The figure covers the job's nodes
whole, from the job's start to its end; it is stored only once the job has ended, when its start is known, when the
run's host is among its nodes and when the run falls within it. ``sacct`` runs with a timeout; a missing ``sacct``, a
failing one and a job it does not know each give one clear line.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from wattwise import validate
from wattwise.errors import ConfigError, CounterError
from wattwise.records import ExternalFigure
from wattwise.report.safe import printable

if TYPE_CHECKING:
    from wattwise.records import Run

__all__ = ["FIELDS", "SOURCE", "SacctJob", "expand_nodes", "parse_sacct", "runs_on", "sacct_job", "slurm_figure"]

SOURCE = "slurm"
FIELDS = ("JobID", "JobName", "Start", "End", "ConsumedEnergyRaw", "NodeList", "State")
RUNNING_STATES = ("PENDING", "RUNNING", "REQUEUED", "RESIZING", "SUSPENDED", "CONFIGURING", "COMPLETING")
NO_VALUE = 2**63  # Slurm's NO_VAL64 and INFINITE64 markers (18446744073709551614/5): no figure
SLACK = timedelta(seconds=2)  # sacct's times are whole seconds


@dataclass(frozen=True, slots=True)
class SacctJob:
    """A job's own line from sacct. ``energy_j`` is None when Slurm recorded no energy for it."""

    job_id: str
    name: str
    started_at: datetime | None
    ended_at: datetime | None
    energy_j: float | None
    nodes: str
    state: str
    energy_text: str = ""  # ConsumedEnergyRaw as sacct printed it


def _moment(text: str) -> datetime | None:
    """sacct's ``2025-03-01T12:00:00`` (local time of the machine running sacct); None for Unknown/None."""
    try:
        return datetime.fromisoformat(text).astimezone(UTC)
    except ValueError:
        return None


_PREFIXES = {"K": 1e3, "M": 1e6, "G": 1e9, "T": 1e12, "P": 1e15}  # sacct's energy prefixes: powers of 1,000
_ENERGY = re.compile(r"(\d+(?:\.\d+)?)([KMGTP]?)")


def _energy(text: str) -> float | None:
    """Joules from sacct's figure (``1843211``, or ``3.60M`` with a unit prefix); None for no figure or garbage."""
    match = _ENERGY.fullmatch(text.strip())
    if match is None or not text.isascii():
        return None
    number, prefix = match.groups()
    value = float(number) * _PREFIXES.get(prefix, 1.0)
    if value <= 0 or (not prefix and int(number.split(".")[0]) >= NO_VALUE):
        return None
    return validate.ENERGY_J.check(value, "sacct ConsumedEnergyRaw")


def _has_prefix(text: str) -> bool:
    return text.strip()[-1:] in _PREFIXES


def _no_figure(text: str) -> bool:
    """Whether sacct's energy says *no measurement* (empty, 0, Slurm's NO_VAL marker), not something unreadable."""
    text = text.strip()
    return not text or (text.isascii() and text.isdigit() and (int(text) == 0 or int(text) >= NO_VALUE))


def expand_nodes(nodes: str, limit: int = 100_000) -> list[str] | None:
    """The node names of a Slurm host list (``gpu-node-[07-08,10],login1``); None when it is not one or names more
    than ``limit`` nodes."""
    items: list[str] = []
    depth, start = 0, 0
    for i, char in enumerate(nodes):
        depth += {"[": 1, "]": -1}.get(char, 0)
        if depth not in (0, 1):
            return None
        if char == "," and depth == 0:
            items.append(nodes[start:i])
            start = i + 1
    items.append(nodes[start:])
    names: list[str] = []
    for item in items:
        expanded = _expand(item.strip(), limit - len(names))
        if expanded is None or not item.strip():
            return None
        names.extend(expanded)
    return names


def _expand(item: str, limit: int) -> list[str] | None:
    if any(c.isspace() for c in item):  # "None assigned": a job that never ran has no nodes
        return None
    if "[" not in item:
        return None if "]" in item or not item else [item]
    head, _, rest = item.partition("[")
    ranges, closed, tail = rest.partition("]")
    if not closed:
        return None
    out: list[str] = []
    for part in ranges.split(","):
        low, dash, high = part.partition("-")
        if not low.isdigit() or (dash and not high.isdigit()):
            return None
        first, last = int(low), int(high) if dash else int(low)
        if last < first or len(out) + (last - first + 1) > limit:
            return None
        for number in range(first, last + 1):
            rests = _expand(f"{head}{number:0{len(low)}d}{tail}", limit - len(out))
            if rests is None:
                return None
            out.extend(rests)
    return out


def runs_on(nodes: str, host: str) -> bool | None:
    """Whether ``host`` (a name or a fully qualified one) is among a job's ``nodes``; None when that cannot be
    told (no host recorded, a node list that is not one)."""
    names = expand_nodes(nodes) if host else None
    if names is None:
        return None
    short = host.split(".", 1)[0]
    return any(name == host or name.split(".", 1)[0] == short for name in names)


def parse_sacct(output: str, job_id: str) -> SacctJob | None:
    """The job's own line in ``sacct --parsable2`` output of :data:`FIELDS`; None when it is not there.

    A job name may hold ``|``: the fields after it are counted from the end of the line."""
    for line in output.splitlines():
        parts = line.split("|")
        if len(parts) < len(FIELDS) or parts[0] != job_id:
            continue
        start, end, energy, nodes, state = parts[-5:]
        return SacctJob(
            job_id=job_id,
            name="|".join(parts[1:-5]),
            started_at=_moment(start),
            ended_at=_moment(end),
            energy_j=_energy(energy),
            nodes=nodes,
            state=state.strip(),
            energy_text=energy.strip(),
        )
    return None


def _parts_of(output: str, job_id: str) -> list[str]:
    """The array tasks (``1234_7``) or heterogeneous components (``1234+0``) of ``job_id`` that sacct listed."""
    ids = (line.split("|", 1)[0] for line in output.splitlines())
    return list(dict.fromkeys(i.split(".", 1)[0] for i in ids if i.startswith((f"{job_id}_", f"{job_id}+"))))


def _first_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return printable(lines[0][:200]) if lines else "no message"


def sacct_job(
    job_id: str, *, sacct: str = "sacct", timeout_s: float = 30.0, env: Mapping[str, str] | None = None
) -> SacctJob:
    """Ask ``sacct`` about the job (see the module); one-line errors for every way that can fail."""
    job_id = validate.check_slurm_job_id(job_id)
    path = shutil.which(sacct, path=(env or os.environ).get("PATH"))
    if path is None:
        raise ConfigError(
            f"{sacct} is not on PATH: read Slurm's figures on a node of the cluster (a login node), where sacct is"
        )
    command = [path, "-j", job_id, "--noheader", "--parsable2", f"--format={','.join(FIELDS)}"]
    try:
        done = subprocess.run(
            command, capture_output=True, text=True, errors="replace", timeout=timeout_s, env=env, check=False
        )
    except subprocess.TimeoutExpired:
        raise CounterError(
            f"sacct did not answer within {timeout_s:g} s (is slurmdbd up?); nothing was stored"
        ) from None
    except OSError as exc:
        raise CounterError(f"cannot run {printable(path)}: {exc.strerror or exc}") from None
    if done.returncode != 0:
        message = _first_line(done.stderr or done.stdout)
        if "accounting storage is disabled" in message.lower():
            raise CounterError(
                "Slurm has no energy accounting here: its accounting storage is disabled (AccountingStorageType is "
                f"none), so sacct keeps no ConsumedEnergy for job {job_id}; nothing was stored"
            )
        raise CounterError(f"sacct failed (exit code {done.returncode}): {message}; nothing was stored")
    job = parse_sacct(done.stdout, job_id)
    if job is None:
        parts = _parts_of(done.stdout, job_id)
        if parts:
            kind, what = ("an array job", "tasks") if "_" in parts[0] else ("a heterogeneous job", "components")
            listed = ", ".join(printable(p) for p in parts[:3]) + (", …" if len(parts) > 3 else "")
            raise ConfigError(
                f"Slurm job {job_id} is {kind} with no energy figure of its own: name one of its {what}, each a job "
                f"with its own ConsumedEnergy (e.g. --slurm {printable(parts[0])}; sacct lists {listed})"
            )
        raise ConfigError(f"sacct knows no job {job_id}: check the id (`sacct -X` lists your recent jobs)")
    return job


def slurm_figure(job: SacctJob, run: Run) -> ExternalFigure:
    """The job's ConsumedEnergy as a figure of ``run``: CounterError when it is not one (no energy plugin, the job
    still running, the run outside the job)."""
    state = job.state.split()[0] if job.state else "UNKNOWN"
    if state in RUNNING_STATES or job.ended_at is None:
        raise CounterError(
            f"Slurm job {job.job_id} is {state}: its ConsumedEnergy is final only once it has ended; attach it then"
        )
    if job.energy_j is None and not _no_figure(job.energy_text):
        raise CounterError(
            f"sacct's ConsumedEnergyRaw of job {job.job_id} is {printable(job.energy_text[:40])!r}, not a number of "
            "joules (with K, M, G, T or P for powers of 1,000); nothing was stored"
        )
    if job.energy_j is None:
        raise CounterError(
            f"Slurm recorded no energy for job {job.job_id} (ConsumedEnergyRaw is empty or 0): the cluster has no "
            "energy accounting (AcctGatherEnergyType in slurm.conf), so there is no figure to attach; nothing was "
            "stored"
        )
    if job.started_at is None:
        raise CounterError(
            f"sacct gives no start time for Slurm job {job.job_id} (Start is Unknown or None), so whether run {run.id} "
            "lies within it cannot be checked; nothing was stored"
        )
    if runs_on(job.nodes, run.host) is False:
        raise CounterError(
            f"run {run.id} was measured on {printable(run.host)}, which is not among Slurm job {job.job_id}'s nodes "
            f"({printable(job.nodes)}): is it the right job?"
        )
    run_end = run.ended_at or run.started_at + timedelta(seconds=run.duration_s)
    if run.started_at < job.started_at - SLACK or run_end > job.ended_at + SLACK:
        raise CounterError(
            f"run {run.id} ({run.started_at:%Y-%m-%d %H:%M:%S} to {run_end:%H:%M:%S} UTC) is not within Slurm job "
            f"{job.job_id} ({job.started_at:%Y-%m-%d %H:%M:%S} to {job.ended_at:%H:%M:%S} UTC): is it the right job?"
        )
    return ExternalFigure(
        source=SOURCE,
        scope=f"job {job.job_id} on {job.nodes}",
        energy_j=job.energy_j,
        started_at=job.started_at,
        ended_at=job.ended_at,
        detail=(
            f"sacct ConsumedEnergyRaw of job {job.job_id} ({printable(job.name)}, {job.state}): the energy plugin's "
            "figure for the job's nodes, whole, over the whole job"
            + (
                f" (sacct printed {printable(job.energy_text)}: rounded, read in powers of 1,000)"
                if _has_prefix(job.energy_text)
                else ""
            )
        ),
    )
