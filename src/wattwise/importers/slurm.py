"""Slurm's own energy figure for a job, from ``sacct``: ``ConsumedEnergyRaw``, in joules.

Slurm fills it only where an energy plugin is configured (``AcctGatherEnergyType`` in ``slurm.conf``: RAPL, IPMI,
Cray's pm_counters, GPU): elsewhere it is empty or 0, which says *no measurement*, never *no energy*, and nothing
is stored. The job's own line (its id without a step suffix) is used: its steps (``.batch``, ``.extern``, ``.0``)
overlap it. The figure covers the job's nodes whole, from the job's start to its end; it is stored only once the
job has ended and only when the run falls within the job. ``sacct`` runs with a timeout; a missing ``sacct``, a
failing one and a job it does not know each give one clear line.
"""

from __future__ import annotations

import os
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

__all__ = ["FIELDS", "SOURCE", "SacctJob", "parse_sacct", "sacct_job", "slurm_figure"]

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


def _moment(text: str) -> datetime | None:
    """sacct's ``2025-03-01T12:00:00`` (local time of the machine running sacct); None for Unknown/None."""
    try:
        return datetime.fromisoformat(text).astimezone(UTC)
    except ValueError:
        return None


def _energy(text: str) -> float | None:
    text = text.strip()
    if not text.isascii() or not text.isdigit():
        return None
    value = int(text)
    if value <= 0 or value >= NO_VALUE:
        return None
    return validate.ENERGY_J.check(float(value), "sacct ConsumedEnergyRaw")


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
        )
    return None


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
    if job.energy_j is None:
        raise CounterError(
            f"Slurm recorded no energy for job {job.job_id} (ConsumedEnergyRaw is empty or 0): the cluster has no "
            "energy accounting (AcctGatherEnergyType in slurm.conf), so there is no figure to attach; nothing was "
            "stored"
        )
    run_end = run.ended_at or run.started_at + timedelta(seconds=run.duration_s)
    if job.started_at is not None and (run.started_at < job.started_at - SLACK or run_end > job.ended_at + SLACK):
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
        ),
    )
