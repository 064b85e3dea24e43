"""Where this process sits in a distributed job, read from the launcher's environment (torchrun and friends).

``torchrun`` gives every worker ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK`` and ``LOCAL_WORLD_SIZE`` (so do the
launchers built on it: accelerate, DeepSpeed, Lightning). Slurm's ``SLURM_PROCID`` and Open MPI's variables are not
read: they are also set around a single process (an sbatch script with ``--ntasks=4``), which would then wait for
ranks that never come. From them wattwise decides what this process measures:

* its own GPUs: the visible GPUs (``CUDA_VISIBLE_DEVICES``, in CUDA's order) split into ``LOCAL_WORLD_SIZE``
  equal blocks, block ``LOCAL_RANK`` (one GPU per rank in the usual case; a rank that sees a single GPU owns it);
* the node-wide sources (RAPL, the CPU and memory models, the network), which only local rank 0 reads, so a node
  is counted once however many ranks it runs.

Nothing here touches torch: the process group stays the user's (see :mod:`wattwise.measure.rank_exchange`).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from wattwise.errors import ConfigError

__all__ = ["Topology", "detect", "owned_gpus"]

# the launcher variables read for each figure (torchrun's)
_RANK = ("RANK",)
_WORLD = ("WORLD_SIZE",)
_LOCAL_RANK = ("LOCAL_RANK",)
_LOCAL_WORLD = ("LOCAL_WORLD_SIZE",)
MAX_WORLD = 1_000_000


@dataclass(frozen=True, slots=True)
class Topology:
    """This process's place in the job. ``local_world_size`` is None where the launcher does not say it."""

    rank: int
    world_size: int
    local_rank: int
    local_world_size: int | None
    host: str
    scope: str  # what keeps this job's keys apart from another's in a shared key-value store
    agent_store: tuple[str, int] | None = None  # torchrun's agent store (MASTER_ADDR, MASTER_PORT)

    @property
    def main(self) -> bool:
        """Rank 0: the process that stores the run."""
        return self.rank == 0

    @property
    def node_wide(self) -> bool:
        """Local rank 0: the process that reads the node's node-wide sources."""
        return self.local_rank == 0

    @property
    def multi_node(self) -> bool:
        """True where ranks may run on more than one host (their component names then carry the host)."""
        return self.local_world_size is None or self.world_size > self.local_world_size

    @property
    def elastic(self) -> bool:
        """Launched by torchrun: the parent process is its agent, whose tree holds every local rank."""
        return self.agent_store is not None


def _first(env: Mapping[str, str], names: Sequence[str]) -> tuple[str, int] | None:
    for name in names:
        text = env.get(name, "").strip()
        if not text:
            continue
        try:
            value = int(text)
        except ValueError:
            raise ConfigError(
                f"{name}={text[:40]!r} is not a whole number; fix the launcher's environment, or set "
                "WATTWISE_DISTRIBUTED=false to measure each process on its own"
            ) from None
        if not 0 <= value <= MAX_WORLD:
            raise ConfigError(f"{name}={value} is out of range (0 to {MAX_WORLD:,}); fix the launcher's environment")
        return name, value
    return None


def detect(env: Mapping[str, str] | None = None, host: str | None = None) -> Topology | None:
    """The job this process belongs to, or None for a process on its own (no launcher, or a world of one).

    A launcher's variables that contradict each other (a rank outside the world) are a ConfigError: measuring
    with them would count a node twice or not at all."""
    env = os.environ if env is None else env
    world = _first(env, _WORLD)
    rank = _first(env, _RANK)
    if world is None or rank is None or world[1] <= 1:
        return None
    local_rank = _first(env, _LOCAL_RANK)
    local_world = _first(env, _LOCAL_WORLD)
    if not 0 <= rank[1] < world[1]:
        raise ConfigError(f"{rank[0]}={rank[1]} is not below {world[0]}={world[1]}; fix the launcher's environment")
    if local_rank is None:
        raise ConfigError(
            f"{rank[0]} and {world[0]} are set but not LOCAL_RANK: wattwise cannot tell which GPUs this rank owns; "
            "launch with torchrun (it sets LOCAL_RANK), or set WATTWISE_DISTRIBUTED=false"
        )
    if local_world is not None and not 0 <= local_rank[1] < local_world[1]:
        raise ConfigError(
            f"{local_rank[0]}={local_rank[1]} is not below {local_world[0]}={local_world[1]}; fix the launcher's "
            "environment"
        )
    agent: tuple[str, int] | None = None
    run_id = env.get("TORCHELASTIC_RUN_ID", "")
    if env.get("TORCHELASTIC_USE_AGENT_STORE", "").lower() == "true" and env.get("MASTER_ADDR"):
        port = _first(env, ("MASTER_PORT",))
        if port is not None and 0 < port[1] < 65536:
            agent = (env["MASTER_ADDR"], port[1])
    scope = f"{run_id}/{env.get('TORCHELASTIC_RESTART_COUNT', '0')}" if run_id else "pg"
    if host is None:
        from wattwise.store.base import this_host

        host = this_host()
    return Topology(
        rank=rank[1],
        world_size=world[1],
        local_rank=local_rank[1],
        local_world_size=None if local_world is None else local_world[1],
        host=host,
        scope=scope,
        agent_store=agent,
    )


def owned_gpus(visible: Sequence[int], local_rank: int, local_world_size: int | None) -> list[int]:
    """The GPUs (of ``visible``, in CUDA's order) a local rank owns: block ``local_rank`` of ``local_world_size``
    equal blocks; a rank that sees one GPU owns it; a rank beyond the GPUs, or GPUs that do not split evenly
    beyond ``local_rank``, none (its node's other ranks own them)."""
    if len(visible) <= 1:
        return list(visible)
    size = local_world_size or len(visible)
    if size > 0 and len(visible) % size == 0:
        per = len(visible) // size
        return list(visible[local_rank * per : (local_rank + 1) * per])
    return [visible[local_rank]] if local_rank < len(visible) else []
