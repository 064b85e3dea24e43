"""Power sources and their discovery: which sources measure this machine, and what ``doctor`` says of each.

Rules that keep totals honest:
- a hardware counter beats a model: RAPL package energy replaces the CPU model, RAPL DRAM the memory model;
- a source that is absent is not an error (most machines have no NVIDIA GPU); a source the user asked for
  explicitly (``gpu_indices``) that cannot be opened is;
- every fallback leaves a note in the run record, so an estimate is never mistaken for a measurement.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from wattwise.config import Settings
from wattwise.devices.base import PowerSource, ProbeResult
from wattwise.errors import ConfigError, DeviceError

if TYPE_CHECKING:
    from wattwise.measure.ranks import Topology


@dataclass
class Discovery:
    sources: list[PowerSource] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def discover(settings: Settings, env: Mapping[str, str] | None = None, rank: Topology | None = None) -> Discovery:
    """Open every power source that works here, preferring counters over models.

    ``rank`` (a process of a distributed job): only the GPUs that rank owns, and the node-wide sources (CPU,
    memory, network) only on the node's local rank 0, so each is read once per node."""
    from wattwise.devices.cpu_model import CpuModelSource
    from wattwise.devices.memory_model import MemoryModelSource
    from wattwise.devices.network import NetworkSource

    env = os.environ if env is None else env
    found = Discovery()
    if settings.gpu and (settings.gpu_indices is not None or nvidia_driver_may_be_present()):
        from wattwise.devices.nvml import open_nvml

        try:
            gpu = open_nvml(
                settings.gpu_indices,
                env,
                attribute_processes=settings.attribution == "process",
                proc_root=settings.proc_root,
                slot=None if rank is None else (rank.local_rank, rank.local_world_size),
            )
        except DeviceError as exc:
            if settings.gpu_indices is not None:
                raise ConfigError(f"gpu_indices={list(settings.gpu_indices)} was set but {exc}") from exc
            found.notes.append(f"GPU not measured: {exc}")
            gpu = None
        if gpu is not None:
            found.sources.append(gpu)
        elif settings.gpu_indices:
            raise ConfigError(
                f"gpu_indices={list(settings.gpu_indices)} was set but no NVIDIA GPU is visible; run `wattwise doctor`"
            )

    if rank is not None and not rank.node_wide:  # local rank 0 of its node reads the node-wide sources
        return found
    rapl: PowerSource | None = None
    reason = f"RAPL: {settings.rapl_root} does not exist: a VM, a container without the host's powercap, or no RAPL"
    if settings.rapl_root.is_dir():  # the module is imported only where RAPL may be (start-up cost)
        from wattwise.devices.rapl import RaplSource

        try:
            rapl = RaplSource.open(settings.rapl_root)
        except DeviceError as exc:
            reason = str(exc).split(";")[0]
    if rapl is None:
        found.notes.append(f"CPU energy estimated from a model ({reason}); `wattwise doctor` says how to measure it")
    components = {ch.component for ch in rapl.channels()} if rapl is not None else set()
    if rapl is not None:
        found.sources.append(rapl)
    if any(getattr(source, "covers_host", False) for source in found.sources):
        # a Grace Hopper module's counter includes its Grace CPU and memory: a CPU or memory model on top
        # would count them twice
        found.notes.append(
            "the GPU module's energy counter includes its CPU and memory (Grace Hopper): no CPU or memory model is "
            "added on top"
        )
        components |= {"cpu", "dram"}
    if "cpu" not in components:
        found.sources.append(CpuModelSource.open(settings.proc_root, tdp_w=settings.cpu_tdp_w))
    if "dram" not in components:
        found.sources.append(MemoryModelSource(settings.memory_w_per_gb))
    if settings.network:
        found.sources.append(NetworkSource(settings.network_kwh_per_gb, attributed=settings.attribution == "machine"))
    return found


def nvidia_driver_may_be_present() -> bool:
    """False only where we can tell cheaply that no NVIDIA driver is loaded, so NVML is not even imported.

    Linux: the driver creates /proc/driver/nvidia and /dev/nvidiactl; macOS has had no NVIDIA driver since
    10.14. Elsewhere (Windows) we cannot tell without asking NVML, so we ask.
    """
    if sys.platform.startswith("linux"):
        if Path("/proc/driver/nvidia").exists() or Path("/dev/nvidiactl").exists():
            return True
        # a driver library put on the loader's path by hand (a container image, a stand-in for tests)
        folders = [f for f in os.environ.get("LD_LIBRARY_PATH", "").split(":") if f]
        return any((Path(folder) / "libnvidia-ml.so.1").exists() for folder in folders)
    return sys.platform != "darwin"


def probe_all(settings: Settings, env: Mapping[str, str] | None = None) -> list[ProbeResult]:
    """What ``wattwise doctor`` reports: each source, whether it works here, and how to fix it if not."""
    from wattwise.devices.cpu_model import probe_cpu_model
    from wattwise.devices.memory_model import probe_memory_model
    from wattwise.devices.network import probe_network
    from wattwise.devices.nvml import probe_nvml
    from wattwise.devices.rapl import probe_rapl

    env = os.environ if env is None else env
    return [
        probe_nvml(
            env=env,
            gpu_indices=settings.gpu_indices,
            proc_root=settings.proc_root,
            enabled=settings.gpu,
            attribute_processes=settings.attribution == "process",
        ),
        probe_rapl(settings.rapl_root),
        probe_cpu_model(settings.proc_root, tdp_w=settings.cpu_tdp_w),
        probe_memory_model(settings.memory_w_per_gb),
        probe_network(settings.network_kwh_per_gb),
    ]
