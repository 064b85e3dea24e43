"""A single-node Slurm (Debian's slurm-wlm and munge) on 127.0.0.1 for the tests: started in a temporary
directory with its own ports, munge socket and state, and stopped by process id. scripts/test.sh installs the
packages (as root); without them the Slurm tests are skipped, saying why."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

BINARIES = ("munged", "slurmctld", "slurmd", "sbatch", "squeue", "sinfo")


def missing() -> str | None:
    absent = [b for b in BINARIES if shutil.which(b) is None]
    if absent:
        return f"Slurm is not installed ({', '.join(absent)} missing): scripts/test.sh installs slurm-wlm and munge"
    if os.geteuid() != 0:
        return "starting slurmd needs root"
    if not Path("/etc/munge/munge.key").exists():
        return "no munge key at /etc/munge/munge.key (install munge)"
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _config(root: Path) -> Path:
    host = socket.gethostname()
    conf = root / "slurm.conf"
    lines = {
        "ClusterName": "wattwise-test",
        "SlurmctldHost": f"{host}(127.0.0.1)",
        "SlurmctldPort": _free_port(),
        "SlurmdPort": _free_port(),
        "AuthType": "auth/munge",
        "AuthInfo": f"socket={root / 'munge.socket'}",
        "CredType": "cred/munge",
        "SlurmUser": "root",
        "SlurmdUser": "root",
        "StateSaveLocation": root / "state",
        "SlurmdSpoolDir": root / "spool",
        "SlurmctldPidFile": root / "slurmctld.pid",
        "SlurmdPidFile": root / "slurmd.pid",
        "SlurmctldLogFile": root / "slurmctld.log",
        "SlurmdLogFile": root / "slurmd.log",
        "ProctrackType": "proctrack/linuxproc",
        "TaskPlugin": "task/none",
        "MpiDefault": "none",
        "ReturnToService": 2,
        "SchedulerType": "sched/backfill",
        "SelectType": "select/cons_tres",
        "SelectTypeParameters": "CR_Core",
        "JobAcctGatherType": "jobacct_gather/none",
        "AccountingStorageType": "accounting_storage/none",
    }
    text = "\n".join(f"{k}={v}" for k, v in lines.items())
    text += f"\nNodeName={host} NodeAddr=127.0.0.1 CPUs={os.cpu_count() or 1} State=UNKNOWN\n"
    text += "PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP\n"
    (root / "state").mkdir()
    (root / "spool").mkdir()
    conf.write_text(text)
    return conf


@contextlib.contextmanager
def slurm(root: Path) -> Iterator[dict[str, str]]:
    """Start munged, slurmctld and slurmd under ``root``; yield the environment that points sbatch at them."""
    root.mkdir(parents=True, exist_ok=True)
    conf = _config(root)
    env = {**os.environ, "SLURM_CONF": str(conf)}
    pids: list[int] = []
    procs: list[subprocess.Popen[bytes]] = []
    logs: list[BinaryIO] = []
    try:
        subprocess.run(
            [
                "munged",
                "--force",
                f"--socket={root / 'munge.socket'}",
                f"--pid-file={root / 'munged.pid'}",
                f"--log-file={root / 'munged.log'}",
                f"--seed-file={root / 'munged.seed'}",
            ],
            check=True,
            timeout=30,
        )
        pids.append(int((root / "munged.pid").read_text().strip()))
        for daemon in ("slurmctld", "slurmd"):
            logs.append((root / f"{daemon}.out").open("wb"))
            procs.append(
                subprocess.Popen([daemon, "-D", "-f", str(conf)], env=env, stdout=subprocess.DEVNULL, stderr=logs[-1])
            )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            state = subprocess.run(["sinfo", "-h", "-o", "%T"], env=env, capture_output=True, text=True, check=False)
            if state.stdout.strip().startswith("idle"):
                break
            time.sleep(0.5)
        else:
            raise RuntimeError(f"the test Slurm did not come up: {(root / 'slurmctld.log').read_text()[-2000:]}")
        yield env
    finally:
        for proc in reversed(procs):
            proc.terminate()
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
        for log in logs:
            log.close()
