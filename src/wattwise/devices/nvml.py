"""NVIDIA GPUs through NVML: the total-energy counter where a GPU has one, power sampling where it has not.

:func:`visible_gpu_indices` decides which GPUs the job sees, :class:`NvmlSource` meters them through an
:class:`NvmlBackend` (see :mod:`wattwise.devices.nvml_backend`, re-exported here), :func:`probe_nvml` says
what works and why not, :func:`open_nvml` builds the source for a run.

**Energy.** Channel ``gpu:<NVML index>``, always ``measured``. Method ``nvml-energy-counter`` (mJ since
the driver loaded, Volta and newer) where the counter answers at open, else ``nvml-power-sampling``: the
trapezoid of the power readings taken at each ``read``. If the counter ever goes backwards (driver reload,
GPU reset), wattwise neither raises (the run would lose every other figure) nor counts the new raw value
(that could be days of energy): it restarts from the new value, fills that one interval with ``power × Δt``
and records a note.

**Attribution**, per GPU and interval (the processes listed at either end of it; ``attribute_processes=False``
skips the process queries and attributes the whole GPU):

1. no process has a context on the GPU → share 1: the GPU was handed to this job, so its idle energy is the
   job's, and a job that has not created its CUDA context yet must not zero its own GPU;
2. only processes of the measured tree → 1;
3. processes of the tree and others → Σ SM % of the tree's ÷ Σ SM % of all, from NVML's per-process samples;
   where those are missing (MIG, some vGPUs) or all zero, an equal split per process, with a note;
4. only other processes → 0, with a note; but if none of their pids exists in this PID namespace (a
   container: NVML reports host pids), wattwise cannot tell, charges the whole GPU and says so in a note.

Notes (:meth:`NvmlSource.notes`) are one line each, deduplicated, for the tracker to show with the run.
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from wattwise.devices.base import Channel, HostSnapshot, MeterReading, ProbeResult
from wattwise.devices.nvml_backend import (
    EnergyCounterUnsupported,
    NvmlBackend,
    NvmlError,
    NvmlReason,
    ProcessUtilisation,
    PynvmlBackend,
    translate_nvml_error,
)
from wattwise.errors import ConfigError, DeviceError
from wattwise.units import mj_to_j, mw_to_w

__all__ = [
    "SAMPLING_DETAIL",
    "EnergyCounterUnsupported",
    "NvmlBackend",
    "NvmlError",
    "NvmlReason",
    "NvmlSource",
    "ProcessUtilisation",
    "PynvmlBackend",
    "open_nvml",
    "probe_nvml",
    "translate_nvml_error",
    "visible_gpu_indices",
]

_ABSENT: frozenset[str] = frozenset({"library-not-found", "driver-not-loaded"})  # no NVIDIA GPU here: normal
_UNAVAILABLE: frozenset[str] = frozenset({"not-supported", "no-permission"})  # a query this GPU won't answer

SAMPLING_DETAIL = (
    "power sampling: NVML's power reading is an average over a short window, sampled at the tracker "
    "interval; less exact than the energy counter"
)


def _strtoul(text: str) -> int | None:
    """The leading decimal number of ``text``, as C's strtoul reads it; None where there is none or a sign."""
    digits = text[1:] if text.startswith("+") else text
    n = len(digits) - len(digits.lstrip("0123456789"))
    return int(digits[:n]) if n else None


def _unique_prefix(prefix: str, candidates: Sequence[str]) -> int | None:
    hits = [i for i, candidate in enumerate(candidates) if candidate.startswith(prefix)]
    return hits[0] if len(hits) == 1 else None


def visible_gpu_indices(
    backend: NvmlBackend, env_cuda_visible_devices: str | None, explicit: tuple[int, ...] | None
) -> list[int]:
    """NVML indices of the GPUs the job sees, in CUDA's order.

    ``explicit`` (Settings.gpu_indices, NVML indices) wins; an index NVML does not have is a ConfigError.
    Otherwise ``CUDA_VISIBLE_DEVICES`` is read as CUDA reads it (modelled on PyTorch's
    ``torch.cuda._parse_visible_devices``): unset → every GPU; empty → none; the first entry fixes the kind:
    integers (read like strtoul: ``1gpu2`` is 1), ``GPU-<uuid>`` or a unique prefix of one, or one
    ``MIG-<uuid>`` / ``MIG-GPU-<uuid>/<gi>/<ci>`` instance (mapped to its physical GPU). The first invalid,
    out-of-range, ambiguous or other-kind entry ends the list; a GPU named twice makes it empty.
    """
    count = backend.device_count()
    if explicit is not None:
        bad = [i for i in explicit if not 0 <= i < count]
        if bad:
            raise ConfigError(
                f"gpu_indices names GPU {bad[0]}, but NVML sees {count} GPU(s) (indices 0 to {count - 1}); "
                "fix gpu_indices, or unset it to follow CUDA_VISIBLE_DEVICES"
            )
        return list(dict.fromkeys(explicit))
    if env_cuda_visible_devices is None:
        return list(range(count))
    entries = [entry.strip() for entry in env_cuda_visible_devices.split(",")]
    if entries[0].startswith("MIG-"):  # CUDA enumerates a single MIG instance
        parent = _mig_parent(backend, entries[0], count)
        return [] if parent is None else [parent]
    by_uuid = entries[0].startswith("GPU-")
    uuids = [backend.uuid(i) for i in range(count)] if by_uuid else []
    visible: list[int] = []
    for entry in entries:
        if by_uuid:
            found = _unique_prefix(entry, uuids) if entry.startswith("GPU-") else None
        else:
            number = _strtoul(entry)
            found = number if number is not None and number < count else None
        if found is None:
            break
        if found in visible:
            return []
        visible.append(found)
    return visible


def _mig_parent(backend: NvmlBackend, entry: str, count: int) -> int | None:
    if entry.startswith("MIG-GPU-"):  # before driver R470: MIG-GPU-<parent uuid>/<gi>/<ci>
        return _unique_prefix(entry[len("MIG-") :].split("/", maxsplit=1)[0], [backend.uuid(i) for i in range(count)])
    owners = [i for i in range(count) for mig in backend.mig_uuids(i) if mig.startswith(entry)]
    return owners[0] if len(owners) == 1 else None


def _visibility_notes(backend: NvmlBackend, env: Mapping[str, str], explicit: tuple[int, ...] | None) -> list[str]:
    spec = env.get("CUDA_VISIBLE_DEVICES")
    if explicit is not None or not spec:
        return []
    if spec.strip().startswith("MIG-"):
        return [
            "CUDA_VISIBLE_DEVICES names a MIG instance; NVML meters the whole physical GPU, so its energy "
            "includes the other instances' work"
        ]
    count = backend.device_count()
    if spec.strip().startswith("GPU-") or env.get("CUDA_DEVICE_ORDER") == "PCI_BUS_ID" or count < 2:
        return []
    if len({backend.name(i) for i in range(count)}) > 1:
        return [
            "CUDA numbers GPUs fastest first and NVML by PCI bus, so on this machine of mixed GPU models "
            "an integer CUDA_VISIBLE_DEVICES may name other GPUs than wattwise meters: "
            "set CUDA_DEVICE_ORDER=PCI_BUS_ID"
        ]
    return []


def _counter_supported(backend: NvmlBackend, index: int) -> bool:
    try:
        backend.total_energy_mj(index)
    except EnergyCounterUnsupported:
        return False
    return True


def _channel(index: int, name: str, uuid: str, counter: bool, counter_disabled: bool = False) -> Channel:
    if counter:
        method, how = "nvml-energy-counter", "NVML total-energy counter (mJ since the driver loaded)"
    else:
        why = "energy counter not used" if counter_disabled else "no energy counter on this GPU"
        method, how = "nvml-power-sampling", f"{SAMPLING_DETAIL} ({why})"
    return Channel(f"gpu:{index}", "gpu", "measured", method, f"{name} ({uuid}): {how}")


@dataclass(slots=True)
class _Gpu:
    index: int
    channel: Channel
    counter: bool
    last_mj: int | None = None
    last_mw: int | None = None
    counted_mj: int = 0  # counter deltas, exact
    other_j: float = 0.0  # power integration and reset fills
    unattributed_j: float = 0.0  # kept instead of the attributed energy, so share 1 is exact
    pids: frozenset[int] = frozenset()
    util_supported: bool = True
    util_since_us: int = 0


class NvmlSource:
    """Meters the GPUs ``indices`` (NVML indices) of an initialised ``backend``, which it owns and shuts down.

    ``read`` returns cumulative joules per GPU since the first ``read`` (which returns zeros). Per GPU and
    read it makes one NVML call for energy (counter or power), plus one for processes when attributing, plus
    one for per-process SM utilisation only while other processes share the GPU. ``proc_root`` tells which
    pids exist in this PID namespace; None assumes all do. ``clock`` times the power trapezoid.
    """

    name = "nvml"

    def __init__(
        self,
        backend: NvmlBackend,
        indices: Sequence[int],
        *,
        attribute_processes: bool = True,
        use_energy_counter: bool = True,
        clock: Callable[[], float] = time.monotonic,
        proc_root: Path | None = Path("/proc"),
        notes: Iterable[str] = (),
    ) -> None:
        self._backend = backend
        self._attribute = attribute_processes
        self._clock = clock
        self._proc_root = proc_root
        self._notes: dict[str, None] = dict.fromkeys(notes)
        self._last_t: float | None = None
        self._closed = False
        self._gpus: list[_Gpu] = []
        try:
            for i in indices:
                counter = use_energy_counter and _counter_supported(backend, i)
                channel = _channel(i, backend.name(i), backend.uuid(i), counter, not use_energy_counter)
                self._gpus.append(_Gpu(i, channel, counter))
        except BaseException:
            self.close()
            raise

    def channels(self) -> tuple[Channel, ...]:
        return tuple(gpu.channel for gpu in self._gpus)

    def notes(self) -> tuple[str, ...]:
        """What the tracker should show with the run: attribution fallbacks, counter resets, caveats."""
        return tuple(self._notes)

    def read(self, snapshot: HostSnapshot) -> tuple[MeterReading, ...]:
        if self._closed:
            raise DeviceError("nvml: read() after close()")
        now = self._clock()
        dt_s = None if self._last_t is None else max(0.0, now - self._last_t)
        readings = []
        for gpu in self._gpus:
            delta_j = self._energy_delta(gpu, dt_s)
            share = self._share(gpu, snapshot.tree_pids) if self._attribute else 1.0
            gpu.unattributed_j += delta_j * (1.0 - share)
            energy_j = mj_to_j(gpu.counted_mj) + gpu.other_j
            readings.append(MeterReading(energy_j, max(0.0, energy_j - gpu.unattributed_j)))
        self._last_t = now
        return tuple(readings)

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._backend.shutdown()

    def _note(self, text: str) -> None:
        self._notes.setdefault(text)

    def _energy_delta(self, gpu: _Gpu, dt_s: float | None) -> float:
        if not gpu.counter:
            power_mw = self._backend.power_mw(gpu.index)
            last_mw, gpu.last_mw = gpu.last_mw, power_mw
            if last_mw is None or dt_s is None:
                return 0.0
            energy_j = mw_to_w((last_mw + power_mw) / 2) * dt_s
            gpu.other_j += energy_j
            return energy_j
        raw_mj = self._backend.total_energy_mj(gpu.index)
        last_mj, gpu.last_mj = gpu.last_mj, raw_mj
        if last_mj is None:
            return 0.0
        if raw_mj >= last_mj:
            gpu.counted_mj += raw_mj - last_mj
            return mj_to_j(raw_mj - last_mj)
        self._note(
            f"gpu:{gpu.index}: the energy counter went backwards (driver reload or GPU reset); wattwise "
            "restarted from the new value and estimated that interval from one power reading"
        )
        fill_j = mw_to_w(self._backend.power_mw(gpu.index)) * (dt_s or 0.0)
        gpu.other_j += fill_j
        return fill_j

    def _share(self, gpu: _Gpu, tree: frozenset[int]) -> float:
        label = f"gpu:{gpu.index}"
        try:
            current = self._backend.running_pids(gpu.index)
        except NvmlError as exc:
            if exc.reason not in _UNAVAILABLE:
                raise
            self._note(f"{label}: NVML cannot list the GPU's processes ({exc.reason}); the whole GPU is attributed")
            return 1.0
        pids, gpu.pids = current | gpu.pids, current
        others = pids - tree
        if not others:
            return 1.0
        if not tree:
            self._note(f"{label}: no measured process tree to attribute to; the whole GPU is attributed")
            return 1.0
        ours = pids & tree
        if not ours:
            if any(self._pid_exists(pid) for pid in others):
                self._note(f"{label}: only other processes used the GPU in some intervals; not attributed")
                return 0.0
            self._note(
                f"{label}: NVML reports pids from another PID namespace (a container?); attribution is "
                "impossible, the whole GPU is attributed"
            )
            return 1.0
        sm = self._sm_percent(gpu)
        total = sum(sm.values()) if sm else 0.0
        if total > 0:
            return min(1.0, sum(v for pid, v in sm.items() if pid in tree) / total)
        self._note(f"{label}: no per-process SM utilisation; energy split equally among the GPU's processes")
        return len(ours) / len(pids)

    def _sm_percent(self, gpu: _Gpu) -> Mapping[int, float]:
        if not gpu.util_supported:
            return {}
        try:
            util = self._backend.process_sm_utilisation(gpu.index, gpu.util_since_us)
        except NvmlError as exc:
            if exc.reason not in _UNAVAILABLE:
                raise
            gpu.util_supported = False
            return {}
        gpu.util_since_us = util.last_seen_us
        return util.sm_percent_by_pid

    def _pid_exists(self, pid: int) -> bool:
        if self._proc_root is None or not self._proc_root.is_dir():
            return True
        return (self._proc_root / str(pid)).exists()


_WHY: dict[str, tuple[str, str]] = {
    "pynvml-missing": ("the NVML bindings (nvidia-ml-py) are not installed", "pip install nvidia-ml-py"),
    "library-not-found": (
        "no NVIDIA driver (libnvidia-ml.so not found)",
        "install the NVIDIA driver, or ignore on machines without NVIDIA GPUs",
    ),
    "driver-not-loaded": (
        "the NVIDIA driver is installed but not loaded",
        "load it (sudo modprobe nvidia, or reboot after installing it); in a container, start it with the "
        "NVIDIA container toolkit (--gpus all); or ignore on machines without NVIDIA GPUs",
    ),
    "no-permission": (
        "no permission to use NVML",
        "give this user access to /dev/nvidia* (often the 'video' group), or ask the administrator",
    ),
}


def _unavailable(exc: NvmlError) -> ProbeResult:
    summary, fix = _WHY.get(exc.reason, (str(exc), "run nvidia-smi; if it fails too, reinstall the NVIDIA driver"))
    return ProbeResult("nvml", False, summary, fix)


def probe_nvml(
    backend_factory: Callable[[], NvmlBackend] = PynvmlBackend,
    env: Mapping[str, str] = os.environ,
    gpu_indices: tuple[int, ...] | None = None,
) -> ProbeResult:
    """What ``wattwise doctor`` says about NVIDIA GPUs: which are metered, and how, or why none are."""
    try:
        backend = backend_factory()
        backend.init()
    except NvmlError as exc:
        return _unavailable(exc)
    try:
        count = backend.device_count()
        if count == 0:
            return ProbeResult("nvml", False, "the NVIDIA driver is loaded but NVML sees no GPU", None)
        spec = env.get("CUDA_VISIBLE_DEVICES")
        indices = visible_gpu_indices(backend, spec, gpu_indices)
        if not indices:
            fix = "unset CUDA_VISIBLE_DEVICES, or list the GPUs to measure (indices or GPU-<uuid>)"
            return ProbeResult("nvml", False, f"CUDA_VISIBLE_DEVICES={spec!r} hides all {count} GPU(s)", fix)
        gpus = [(i, backend.name(i), backend.uuid(i), _counter_supported(backend, i)) for i in indices]
        notes = _visibility_notes(backend, env, gpu_indices)
    except NvmlError as exc:
        return _unavailable(exc)
    except ConfigError as exc:
        return ProbeResult("nvml", False, str(exc), "fix gpu_indices")
    finally:
        with contextlib.suppress(NvmlError):  # the answer above stands whether or not shutdown succeeds
            backend.shutdown()
    channels = tuple(_channel(i, name, uuid, counter) for i, name, uuid, counter in gpus)
    how = {True: "energy counter", False: "power sampling: no energy counter"}
    summary = "; ".join(f"gpu:{i} {name} ({how[counter]})" for i, name, _uuid, counter in gpus)
    return ProbeResult("nvml", True, f"{len(gpus)} GPU(s): {summary}", " ".join(notes) or None, channels)


def _driver_library_present() -> bool:
    import ctypes

    try:
        ctypes.CDLL("nvml.dll" if sys.platform == "win32" else "libnvidia-ml.so.1")
    except OSError:
        return False
    return True


def open_nvml(
    settings_gpu_indices: tuple[int, ...] | None,
    env: Mapping[str, str] = os.environ,
    backend: NvmlBackend | None = None,
    *,
    attribute_processes: bool = True,
    clock: Callable[[], float] = time.monotonic,
    proc_root: Path | None = Path("/proc"),
) -> NvmlSource | None:
    """The GPU source for a run, or None where there is no NVIDIA driver or no visible GPU (a normal case).

    Raises NvmlError (a DeviceError) when NVML is there but fails (no permission, a lost GPU), ConfigError
    when ``settings_gpu_indices`` names a GPU NVML does not have.
    """
    if backend is None:
        try:
            backend = PynvmlBackend()
        except NvmlError as exc:
            if not _driver_library_present():
                return None
            message = "nvml: an NVIDIA driver is installed but not its Python bindings: pip install nvidia-ml-py"
            raise NvmlError(f"{message} (or set gpu = false)", exc.reason) from exc
    try:
        backend.init()
    except NvmlError as exc:
        if exc.reason in _ABSENT:
            return None
        raise
    try:
        indices = visible_gpu_indices(backend, env.get("CUDA_VISIBLE_DEVICES"), settings_gpu_indices)
        notes = _visibility_notes(backend, env, settings_gpu_indices) if indices else []
    except BaseException:
        backend.shutdown()
        raise
    if not indices:
        backend.shutdown()
        return None
    return NvmlSource(
        backend,
        indices,
        attribute_processes=attribute_processes,
        clock=clock,
        proc_root=proc_root,
        notes=notes,
    )
