"""Which rank this process is, and what it measures: the launcher's variables, the GPUs a rank owns, the node-wide
sources read on local rank 0 only."""

from __future__ import annotations

import socket
import time
from pathlib import Path

import pytest

from tests.devices.test_nvml import four_gpus
from wattwise.config import Settings
from wattwise.devices import discover
from wattwise.devices.nvml import open_nvml
from wattwise.errors import ConfigError
from wattwise.measure.ranks import Topology, detect, owned_gpus

TORCHRUN = {
    "RANK": "3",
    "WORLD_SIZE": "8",
    "LOCAL_RANK": "1",
    "LOCAL_WORLD_SIZE": "2",
    "MASTER_ADDR": "node-0",
    "MASTER_PORT": "29500",
    "TORCHELASTIC_RUN_ID": "abc",
    "TORCHELASTIC_RESTART_COUNT": "2",
    "TORCHELASTIC_USE_AGENT_STORE": "True",
}


def test_torchrun_variables() -> None:
    t = detect(TORCHRUN, host="h")
    assert t == Topology(3, 8, 1, 2, "h", "abc/2", ("node-0", 29500))
    assert not t.main and not t.node_wide and t.multi_node and t.elastic


@pytest.mark.parametrize(
    "env",
    [{}, {"RANK": "0"}, {"RANK": "0", "WORLD_SIZE": "1", "LOCAL_RANK": "0"}, {"WORLD_SIZE": "4", "LOCAL_RANK": "0"}],
)
def test_a_process_on_its_own(env: dict[str, str]) -> None:
    assert detect(env, host="h") is None


def test_slurm_s_variables_alone_are_no_job() -> None:
    """sbatch --ntasks=4 around one python process sets them too: it must not wait for three ranks that never come."""
    assert detect({"SLURM_PROCID": "0", "SLURM_NTASKS": "4", "SLURM_LOCALID": "0"}, "h") is None


def test_other_launchers_variables() -> None:
    t = detect({"RANK": "5", "WORLD_SIZE": "8", "LOCAL_RANK": "1"}, "h")  # accelerate, mp.spawn with env://
    assert t is not None and (t.rank, t.world_size, t.local_rank, t.local_world_size) == (5, 8, 1, None)
    assert t.scope == "pg" and not t.elastic and t.multi_node


@pytest.mark.parametrize(
    ("env", "said"),
    [
        ({"RANK": "x", "WORLD_SIZE": "2", "LOCAL_RANK": "0"}, "RANK='x' is not a whole number"),
        ({"RANK": "2", "WORLD_SIZE": "2", "LOCAL_RANK": "0"}, "RANK=2 is not below WORLD_SIZE=2"),
        ({"RANK": "1", "WORLD_SIZE": "2"}, "not LOCAL_RANK"),
        ({"RANK": "1", "WORLD_SIZE": "2", "LOCAL_RANK": "3", "LOCAL_WORLD_SIZE": "2"}, "LOCAL_RANK=3 is not below"),
        ({"RANK": "1", "WORLD_SIZE": "-2", "LOCAL_RANK": "0"}, "out of range"),
    ],
)
def test_contradictory_launcher_variables_are_one_clear_error(env: dict[str, str], said: str) -> None:
    with pytest.raises(ConfigError, match=said):
        detect(env, host="h")


@pytest.mark.parametrize(
    ("visible", "local_rank", "local_world", "owned"),
    [
        ([0, 1, 2, 3], 1, 4, [1]),
        ([0, 1, 2, 3], 1, 2, [2, 3]),  # two GPUs per rank
        ([5], 3, 4, [5]),  # each rank sees only its own GPU
        ([2, 0], 1, 2, [0]),  # CUDA's order, not NVML's
        ([0, 1, 2], 1, 2, [1]),  # uneven: one each, the third unowned
        ([0, 1], 2, 3, []),  # more ranks than GPUs
        ([], 0, 2, []),
    ],
)
def test_owned_gpus(visible: list[int], local_rank: int, local_world: int, owned: list[int]) -> None:
    assert owned_gpus(visible, local_rank, local_world) == owned


def test_a_rank_opens_only_its_gpus() -> None:
    source = open_nvml(None, {"CUDA_VISIBLE_DEVICES": "3,2,1,0"}, four_gpus(), proc_root=None, slot=(1, 2))
    assert source is not None
    assert [c.name for c in source.channels()] == ["gpu:1", "gpu:0"]
    assert any("local rank 1 of this node measures gpu:1, gpu:0 of the visible 4" in n for n in source.notes())
    source.close()
    assert open_nvml(None, {}, four_gpus(), proc_root=None, slot=(4, 5)) is None  # a rank beyond the GPUs: none


def test_node_wide_sources_only_on_local_rank_zero(tmp_path: Path) -> None:
    settings = Settings.load({"gpu": False, "rapl_root": str(tmp_path / "none")})
    first = discover(settings, rank=Topology(0, 2, 0, 2, "h", "pg"))
    second = discover(settings, rank=Topology(1, 2, 1, 2, "h", "pg"))
    assert [s.name for s in first.sources] == ["cpu-model", "memory-model", "network-model"]
    assert second.sources == []
    assert second.notes == []


def test_the_job_store_is_torchrun_s_agent_store_or_the_process_group_s() -> None:
    dist = pytest.importorskip("torch.distributed")
    from datetime import timedelta

    from wattwise.measure.rank_exchange import open_exchange, run_prefix

    server = dist.TCPStore("127.0.0.1", 0, is_master=True, timeout=timedelta(seconds=5))
    topology = Topology(1, 2, 1, 2, "h", "job/0", ("127.0.0.1", server.port))
    store, how = open_exchange(topology)
    assert store is not None and how == "torchrun's store"
    first = run_prefix(store, topology, "train")
    assert first.startswith("wattwise/job/0/") and first.endswith("/1/")
    assert run_prefix(store, topology, "train") == first[:-2] + "2/"  # the rank's next "train" pairs with the others'
    assert run_prefix(store, topology, "eval").endswith("/1/")  # runs pair by name: an eval in between changes nothing
    store.set("k", "v")
    assert server.get("k") == b"v"
    alone, why = open_exchange(Topology(1, 2, 1, 2, "h", "pg"))
    assert alone is None and "call wattwise.track() after init_process_group()" in why
    with socket.socket() as closed:  # a port nobody listens on: refused at once, no long retries
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    began = time.monotonic()
    nobody, why = open_exchange(Topology(1, 2, 1, 2, "h", "job/0", ("127.0.0.1", port)))
    assert nobody is None and f"cannot reach torchrun's store at 127.0.0.1:{port}" in why
    assert time.monotonic() - began < 5


def test_torchrun_s_agent_is_found_among_the_ancestors(tmp_path: Path) -> None:
    from wattwise.measure.job import agent_pid

    def process(pid: int, parent: int, command: bytes) -> None:
        folder = tmp_path / str(pid)
        folder.mkdir()
        (folder / "cmdline").write_bytes(command)
        (folder / "stat").write_text(f"{pid} (x y) S {parent} 1 1 0")

    process(40, 1, b"/usr/bin/python3\x00-m\x00torch.distributed.run\x00--standalone\x00wrap.sh")
    process(50, 40, b"/bin/sh\x00wrap.sh")  # a wrapper script between the agent and the worker
    process(60, 1, b"/bin/bash")
    assert agent_pid(tmp_path, start=50) == 40
    assert agent_pid(tmp_path, start=40) == 40
    assert agent_pid(tmp_path, start=60) is None  # a shell under init: no agent
    assert agent_pid(tmp_path, start=99) is None  # gone
