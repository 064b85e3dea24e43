"""Handing a planned job to a cluster engine: Slurm (``sbatch --begin``) and Ray (a detached actor that waits).

Both run ``wattwise run --plan-file PLAN -- COMMAND`` at the planned start, with the Python that submitted (the
cluster must see the same environment and files, as shared filesystems provide), so the job is measured as any
run and its record carries the plan, the executor and the job id, and the emissions avoided against starting at
submission. :func:`submit` writes the plan file and returns the job id.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from wattwise.errors import ConfigError

EXECUTORS = ("slurm", "ray")


class Executor(Protocol):
    name: str

    def submit(self, argv: Sequence[str], *, begin_at: datetime, name: str, workdir: Path) -> str:
        """Start ``argv`` at ``begin_at``; the job id."""
        ...


@dataclass
class SlurmExecutor:
    """``sbatch --begin=now+SECONDS`` (relative, so the controller's time zone does not matter)."""

    extra_args: tuple[str, ...] = ()
    sbatch: str = "sbatch"
    name: str = "slurm"

    def submit(self, argv: Sequence[str], *, begin_at: datetime, name: str, workdir: Path) -> str:
        exe = shutil.which(self.sbatch)
        if exe is None:
            raise ConfigError(f"{self.sbatch} is not on PATH: run this on a Slurm login node (or install Slurm)")
        script = workdir / f"{name}.sbatch"
        script.write_text("#!/bin/sh\nexec " + shlex.join(argv) + "\n", encoding="utf-8")
        script.chmod(0o700)
        delay = max(0, round((begin_at - datetime.now(UTC)).total_seconds()))
        cmd = [
            exe,
            "--parsable",
            f"--begin=now+{delay}",
            f"--job-name={name}",
            f"--output={workdir / (name + '-%j.out')}",
            *self.extra_args,
            str(script),
        ]
        done = subprocess.run(cmd, capture_output=True, text=True, check=False, timeout=60)
        if done.returncode != 0:
            raise ConfigError(f"sbatch refused the job: {done.stderr.strip() or done.stdout.strip()}")
        return done.stdout.strip().split(";")[0]


@dataclass
class RayExecutor:
    """A detached actor on an existing Ray cluster that sleeps until the start, runs the command, and exits."""

    address: str = "auto"
    name: str = "ray"

    def submit(self, argv: Sequence[str], *, begin_at: datetime, name: str, workdir: Path) -> str:
        ray = _ray()
        _reachable(self.address)
        try:
            ray.init(address=self.address, namespace="wattwise", ignore_reinit_error=True, log_to_driver=False)
        except (ConnectionError, RuntimeError, ValueError) as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ConfigError(
                f"could not reach a Ray cluster at {self.address}: {first}; start one (ray start --head) or give "
                "--ray-address"
            ) from None
        waiter = ray.remote(num_cpus=0)(_Waiter)
        actor = waiter.options(name=f"wattwise-{name}", lifetime="detached", get_if_exists=False).remote()
        ref = actor.run.remote(list(argv), begin_at.timestamp(), str(workdir / f"{name}-ray.out"), dict(os.environ))
        del ref  # the actor lives on after this driver exits
        return f"wattwise-{name}"


class _Waiter:
    """Runs inside the Ray cluster (named, detached)."""

    def run(self, argv: list[str], begin_ts: float, output: str, env: dict[str, str]) -> int:
        time.sleep(max(0.0, begin_ts - time.time()))
        env = {**env, "RAY_JOB_ID": env.get("RAY_JOB_ID", "") or _actor_name()}
        with open(output, "w", encoding="utf-8") as out:  # noqa: PTH123 - a plain file handle for the child
            code = subprocess.run(argv, stdout=out, stderr=subprocess.STDOUT, env=env, check=False).returncode
        _ray().actor.exit_actor()
        return code  # pragma: no cover - exit_actor does not return


def _reachable(address: str, timeout_s: float = 5.0) -> None:
    """A ``host:port`` address must answer within ``timeout_s`` (Ray itself retries for minutes)."""
    import socket

    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit() or "://" in address:
        return  # "auto", "ray://...", a bare host: Ray finds and reports it quickly
    try:
        with socket.create_connection((host.strip("[]") or "127.0.0.1", int(port)), timeout=timeout_s):
            pass
    except OSError as exc:
        raise ConfigError(
            f"could not reach a Ray cluster at {address}: {exc.strerror or exc}; start one (ray start --head) or "
            "give --ray-address"
        ) from None


def _actor_name() -> str:
    return str(_ray().get_runtime_context().get_actor_name() or "")


def _ray() -> Any:
    """The ray module (typed loosely: an optional extra)."""
    import importlib

    try:
        return importlib.import_module("ray")
    except ImportError:
        raise ConfigError("the Ray executor needs ray: pip install 'wattwise[ray]'") from None


def executor(name: str, *, sbatch_args: Sequence[str] = (), ray_address: str = "auto") -> Executor:
    if name == "slurm":
        return SlurmExecutor(tuple(sbatch_args))
    if name == "ray":
        return RayExecutor(ray_address)
    raise ConfigError(f"unknown executor {name!r}: choose one of {', '.join(EXECUTORS)}")


def submit(
    engine: Executor,
    command: Sequence[str],
    plan: dict[str, Any],
    *,
    begin_at: datetime,
    name: str,
    home: Path,
    run_args: Sequence[str] = (),
) -> tuple[str, Path]:
    """Write the plan file and hand ``wattwise run --plan-file PLAN [run_args] -- command`` to ``engine``."""
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in name)[:60] or "job"
    workdir = home / "jobs"
    workdir.mkdir(parents=True, exist_ok=True)
    job_name = f"{safe}-{stamp}"
    plan_file = workdir / f"{job_name}.plan.json"
    plan = {**plan, "executor": engine.name}
    plan_file.write_text(json.dumps(plan, indent=2), encoding="utf-8")
    argv = [
        sys.executable,
        "-m",
        "wattwise",
        "run",
        "--name",
        name,
        "--plan-file",
        str(plan_file),
        *run_args,
        "--",
        *command,
    ]
    try:
        job_id = engine.submit(argv, begin_at=begin_at, name=job_name, workdir=workdir)
    except BaseException:
        for leftover in (plan_file, workdir / f"{job_name}.sbatch"):
            leftover.unlink(missing_ok=True)
        raise
    plan["job_id"] = job_id
    plan_file.write_text(json.dumps(plan, indent=2), encoding="utf-8")
    return job_id, plan_file
