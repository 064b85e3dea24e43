"""NVIDIA GPUs through NVML: which GPUs the job sees, what each can give, and what ``doctor`` says of them.

:func:`visible_gpu_indices` decides which GPUs the job sees (CUDA_VISIBLE_DEVICES read as CUDA reads it, UUIDs
matched to NVML's indices), :func:`open_nvml` asks each of them what it can give (:func:`probe_gpu`) and builds the
:class:`~wattwise.devices.nvml_source.NvmlSource` that meters them (see that module for energy, errors and
attribution), :func:`probe_nvml` says, per GPU, what works and why not. The backend is re-exported from
:mod:`wattwise.devices.nvml_backend`.

A GPU this user may not open (no permission on its device node, lost) is skipped with a note instead of
disabling NVML; a GPU that gives neither energy nor power is listed as not measured, never as a measured zero.
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TypeVar

from wattwise.devices.base import ProbeResult
from wattwise.devices.nvml_backend import (
    EnergyCounterUnsupported,
    NvmlBackend,
    NvmlError,
    NvmlReason,
    ProcessUtilisation,
    PynvmlBackend,
    translate_nvml_error,
)
from wattwise.devices.nvml_source import GpuCapabilities, NvmlSource, probe_gpu
from wattwise.devices.pidns import pid_namespace
from wattwise.errors import ConfigError

_T = TypeVar("_T")

__all__ = [
    "EnergyCounterUnsupported",
    "GpuCapabilities",
    "NvmlBackend",
    "NvmlError",
    "NvmlReason",
    "NvmlSource",
    "ProcessUtilisation",
    "PynvmlBackend",
    "open_gpus",
    "open_nvml",
    "probe_gpu",
    "probe_nvml",
    "translate_nvml_error",
    "visible_gpu_indices",
]

_ABSENT: frozenset[str] = frozenset({"library-not-found", "driver-not-loaded"})  # no NVIDIA GPU here: normal
_UNAVAILABLE: frozenset[str] = frozenset({"not-supported", "no-permission"})  # a query this GPU won't answer


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
    uuids = _uuids(backend, count) if by_uuid else []
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


def _uuids(backend: NvmlBackend, count: int) -> list[str]:
    """Every GPU's UUID; a GPU that cannot be asked (no permission, lost) gets "" and so matches nothing."""
    return [_or_default(backend.uuid, i, "") for i in range(count)]


def _or_default(call: Callable[[int], _T], index: int, default: _T) -> _T:
    """``call(index)``, or ``default`` where NVML fails for that one GPU: one GPU must not hide the others."""
    try:
        return call(index)
    except NvmlError:
        return default


def _mig_parent(backend: NvmlBackend, entry: str, count: int) -> int | None:
    if entry.startswith("MIG-GPU-"):  # before driver R470: MIG-GPU-<parent uuid>/<gi>/<ci>
        return _unique_prefix(entry[len("MIG-") :].split("/", maxsplit=1)[0], _uuids(backend, count))
    none: tuple[str, ...] = ()
    migs = [_or_default(backend.mig_uuids, i, none) for i in range(count)]
    owners = [i for i in range(count) for mig in migs[i] if mig.startswith(entry)]
    return owners[0] if len(owners) == 1 else None


def _visibility_notes(backend: NvmlBackend, env: Mapping[str, str], explicit: tuple[int, ...] | None) -> list[str]:
    spec = env.get("CUDA_VISIBLE_DEVICES")
    if explicit is not None or not spec:
        return []
    if spec.strip().startswith("MIG-"):
        return []  # the GPU's own MIG note says that the whole physical GPU is metered
    count = backend.device_count()
    if spec.strip().startswith("GPU-") or env.get("CUDA_DEVICE_ORDER") == "PCI_BUS_ID" or count < 2:
        return []
    names = {_or_default(backend.name, i, "") for i in range(count)} - {""}
    if len(names) > 1:
        return [
            "CUDA numbers GPUs fastest first and NVML by PCI bus, so on this machine of mixed GPU models "
            "an integer CUDA_VISIBLE_DEVICES may name other GPUs than wattwise meters: "
            "set CUDA_DEVICE_ORDER=PCI_BUS_ID"
        ]
    return []


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


def open_gpus(
    backend: NvmlBackend, indices: list[int], *, use_energy_counter: bool = True
) -> tuple[list[GpuCapabilities], dict[int, NvmlError]]:
    """Each GPU's capabilities, and the GPUs that cannot be opened (no permission, lost) with why: skipped."""
    gpus: list[GpuCapabilities] = []
    skipped: dict[int, NvmlError] = {}
    for index in indices:
        try:
            gpus.append(probe_gpu(backend, index, use_energy_counter=use_energy_counter))
        except NvmlError as exc:
            skipped[index] = exc
    return gpus, skipped


def _skipped_notes(skipped: Mapping[int, NvmlError]) -> list[str]:
    return [f"gpu:{i} is not measured: it cannot be opened ({exc})" for i, exc in skipped.items()]


def probe_nvml(
    backend_factory: Callable[[], NvmlBackend] = PynvmlBackend,
    env: Mapping[str, str] = os.environ,
    gpu_indices: tuple[int, ...] | None = None,
    proc_root: Path = Path("/proc"),
    *,
    enabled: bool = True,
    attribute_processes: bool = True,
) -> ProbeResult:
    """What ``wattwise doctor`` says about NVIDIA GPUs: per GPU what it can give (counter, instant power, averaged
    power, nothing), MIG, whether attribution works here, and the driver and bindings versions. ``enabled`` and
    ``attribute_processes`` are the settings ``gpu`` and ``attribution == "process"``."""
    if not enabled:
        return ProbeResult("nvml", False, "turned off by the settings (gpu = false)", "set gpu = true to measure GPUs")
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
        gpus, skipped = open_gpus(backend, indices)
        fixes = _visibility_notes(backend, env, gpu_indices)
        versions = {"driver": _version(backend.driver_version), "bindings": _version(backend.bindings_version)}
    except NvmlError as exc:
        return _unavailable(exc)
    except ConfigError as exc:
        return ProbeResult("nvml", False, str(exc), "fix gpu_indices")
    finally:
        with contextlib.suppress(NvmlError):  # the answer above stands whether or not shutdown succeeds
            backend.shutdown()
    from wattwise.devices.nvml_source import _channel

    namespace, attribution = pid_namespace(proc_root)
    if not attribute_processes:
        attribution = "off (attribution = machine): each GPU is charged whole"
    elif namespace == "host" or attribution is None:
        attribution = "per process: NVML's pids are this namespace's"
    rows: list[dict[str, object]] = [
        {
            "index": g.index,
            "name": g.name,
            "uuid": g.uuid,
            "measures": g.describe(),
            "mig": g.mig,
            "power_limit_w": g.power_limit_w,
            "process_list": g.processes,
            "module_includes_cpu": g.module,
        }
        for g in gpus
    ]
    rows += [{"index": i, "measures": f"cannot be opened: {exc}"} for i, exc in skipped.items()]
    rows.sort(key=lambda row: indices.index(int(str(row["index"]))))
    details = {**versions, "attribution": attribution, "gpus": rows}
    measured = [g for g in gpus if g.mode != "none"]
    parts = [
        f"gpu:{g.index} {g.name}: {g.describe()}"
        + (", MIG on (whole GPU metered)" if g.mig else "")
        + ("" if g.processes else ", no process list (no attribution)")
        for g in gpus
    ]
    parts += [f"gpu:{i}: cannot be opened ({exc.reason})" for i, exc in skipped.items()]
    summary = f"{len(indices)} GPU(s), driver {versions['driver']}, {versions['bindings']}: {'; '.join(parts)}"
    channels = tuple(_channel(g) for g in measured)
    return ProbeResult("nvml", bool(measured), summary, " ".join(fixes) or None, channels, details)


def _version(call: Callable[[], str]) -> str:
    try:
        return call()
    except NvmlError:
        return "unknown"


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
    use_energy_counter: bool = True,
    clock: Callable[[], float] = time.monotonic,
    proc_root: Path | None = Path("/proc"),
    slot: tuple[int, int | None] | None = None,
) -> NvmlSource | None:
    """The GPU source for a run, or None where there is no NVIDIA driver or no visible GPU (a normal case).

    ``slot`` (local rank, local world size) keeps only the GPUs that rank of a distributed job owns
    (:func:`wattwise.measure.ranks.owned_gpus`); they are charged to it from the start.

    GPUs named for the job (``CUDA_VISIBLE_DEVICES`` set, or ``settings_gpu_indices``) are charged to it from the
    start; with every GPU visible, each only once the run uses it. Raises NvmlError (a DeviceError) when NVML is
    there but fails as a whole, ConfigError when ``settings_gpu_indices`` names a GPU NVML does not have.
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
        if slot is not None and indices:
            from wattwise.measure.ranks import owned_gpus

            seen = indices
            indices = owned_gpus(seen, *slot)
            owned = ", ".join(f"gpu:{i}" for i in indices) or "none"
            notes.append(f"local rank {slot[0]} of this node measures {owned} of the visible {len(seen)} GPU(s)")
        gpus, skipped = open_gpus(backend, indices, use_energy_counter=use_energy_counter)
    except BaseException:
        backend.shutdown()
        raise
    if not gpus:
        backend.shutdown()
        if skipped:
            why = "; ".join(f"gpu:{i}: {exc}" for i, exc in skipped.items())
            raise NvmlError(
                f"nvml: none of the visible GPUs can be opened ({why})", next(iter(skipped.values())).reason
            )
        return None
    handed = settings_gpu_indices is not None or bool(env.get("CUDA_VISIBLE_DEVICES")) or slot is not None
    matchable = True
    if proc_root is not None and attribute_processes:
        namespace, note = pid_namespace(proc_root)
        matchable = namespace != "unmappable"
        if note is not None and namespace != "mapped":
            notes.append(note)
    return NvmlSource(
        backend,
        gpus,
        attribute_processes=attribute_processes and matchable,
        handed=handed,
        clock=clock,
        proc_root=proc_root,
        notes=[*notes, *_skipped_notes(skipped)],
    )
