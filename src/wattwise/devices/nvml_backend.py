"""The NVML calls wattwise makes, in wattwise's units and exceptions: where NVML's error codes enter.

:class:`NvmlBackend` is the interface (NVML indices, units in names); :class:`PynvmlBackend` implements it
over ``pynvml`` (package nvidia-ml-py), imported only when one is built, so ``import wattwise`` stays fast.
Tests replay traces through ``tests/fakes/nvml.py``, and run this backend against a stand-in ``libnvidia-ml.so.1``
(``tests/fakes/libnvml``). :mod:`wattwise.devices.nvml` re-exports it all.

Every exception the bindings raise stops here and becomes an :class:`NvmlError`: ``NVMLError`` and its code, but
also ``NVMLLibraryMismatchError`` (raised, not as an NVMLError, when an unversioned call meets a driver that has only
its older versions), and anything ctypes raises. Calls that NVML versioned are tried newest first and fall back to
the older ones a driver has (``nvmlDeviceGetComputeRunningProcesses_v3``, ``_v2``, then the unversioned one; and
``nvmlInit_v2`` where ``nvmlInitWithFlags`` is missing); what comes back is checked (some R535 builds list processes
with garbage pids: those are dropped and counted).
"""

from __future__ import annotations

import ctypes
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from wattwise.errors import DeviceError

__all__ = [
    "PID_MAX",
    "EnergyCounterUnsupported",
    "NvmlBackend",
    "NvmlError",
    "NvmlReason",
    "ProcessUtilisation",
    "PynvmlBackend",
    "translate_nvml_error",
]

NvmlReason = Literal[
    "pynvml-missing",
    "library-not-found",
    "driver-not-loaded",
    "no-permission",
    "not-supported",
    "not-found",
    "gpu-lost",
    "failed",
]
PID_MAX = 4_194_304  # Linux's largest pid_max (PID_MAX_LIMIT): a pid above it is garbage
_MAX_PROCESSES = 4096  # contexts on one GPU; a driver's larger count is garbage (the table is sized by it)
_NVML_ERROR_INSUFFICIENT_SIZE = 7
_NVML_FI_DEV_POWER_INSTANT = 186  # nvml.h: instantaneous power in mW (Ampere and newer, recent drivers)


class NvmlError(DeviceError):
    """An NVML call failed. ``reason`` is wattwise's name for NVML's return code, ``code`` the raw code."""

    def __init__(self, message: str, reason: NvmlReason = "failed", code: int | None = None) -> None:
        super().__init__(message)
        self.reason: NvmlReason = reason
        self.code = code


class EnergyCounterUnsupported(NvmlError):
    """The GPU has no total-energy counter (before Volta, some vGPUs): its power is sampled instead."""

    def __init__(self, message: str, code: int | None = None) -> None:
        super().__init__(message, "not-supported", code)


@dataclass(frozen=True, slots=True)
class ProcessUtilisation:
    """NVML's per-process samples newer than ``since_us``: Σ SM % per pid, and the newest sample's time."""

    sm_percent_by_pid: Mapping[int, float]
    last_seen_us: int  # pass back as ``since_us`` next time


class NvmlBackend(Protocol):
    """The NVML calls wattwise makes. Indices are NVML's; failures raise :class:`NvmlError`."""

    def init(self) -> None: ...
    def shutdown(self) -> None: ...
    def device_count(self) -> int: ...
    def name(self, index: int) -> str: ...
    def uuid(self, index: int) -> str: ...
    def mig_uuids(self, index: int) -> tuple[str, ...]:
        """UUIDs (``MIG-…``) of the GPU's MIG instances; empty when MIG is off or unsupported."""
        ...

    def mig_enabled(self, index: int) -> bool:
        """Whether MIG mode is on (False where the GPU has no MIG)."""
        ...

    def total_energy_mj(self, index: int) -> int:
        """Energy since the driver loaded; raises :class:`EnergyCounterUnsupported` where there is none."""
        ...

    def power_mw(self, index: int) -> int:
        """NVML's power reading: on Ampere and newer an average over about a second."""
        ...

    def power_instant_mw(self, index: int) -> int:
        """The instantaneous power field (``NVML_FI_DEV_POWER_INSTANT``); NvmlError not-supported where absent."""
        ...

    def power_limit_mw(self, index: int) -> int:
        """The enforced power limit (the GPU's rating unless someone changed it)."""
        ...

    def running_pids(self, index: int) -> frozenset[int]:
        """Pids with a compute or graphics context on the GPU (implausible pids dropped, see ``dropped_pids``)."""
        ...

    def process_sm_utilisation(self, index: int, since_us: int) -> ProcessUtilisation: ...
    def driver_version(self) -> str: ...
    def bindings_version(self) -> str: ...


def translate_nvml_error(nvml: Any, exc: BaseException, what: str) -> NvmlError:
    """Map a ``pynvml.NVMLError`` (``nvml`` is the pynvml module) to wattwise's :class:`NvmlError`."""
    code = getattr(exc, "value", None)
    reasons: dict[int, NvmlReason] = {
        nvml.NVML_ERROR_NOT_SUPPORTED: "not-supported",
        nvml.NVML_ERROR_FUNCTION_NOT_FOUND: "not-supported",  # a driver too old to have the call
        nvml.NVML_ERROR_LIBRARY_NOT_FOUND: "library-not-found",
        nvml.NVML_ERROR_DRIVER_NOT_LOADED: "driver-not-loaded",
        nvml.NVML_ERROR_NO_PERMISSION: "no-permission",
        nvml.NVML_ERROR_NOT_FOUND: "not-found",
        nvml.NVML_ERROR_GPU_IS_LOST: "gpu-lost",
    }
    reason = reasons.get(code, "failed") if isinstance(code, int) else "failed"
    return NvmlError(f"nvml: {what} failed: {exc} (NVML error {code})", reason, code)


class _ProcessInfoV1(ctypes.Structure):
    """``nvmlProcessInfo_v1_t``: what the unversioned process calls of drivers before R470 fill."""

    _fields_ = [("pid", ctypes.c_uint), ("usedGpuMemory", ctypes.c_ulonglong)]


class PynvmlBackend:
    """The real backend over ``pynvml`` (package nvidia-ml-py), imported when this object is built."""

    def __init__(self) -> None:
        try:
            import pynvml
        except ImportError as exc:
            raise NvmlError("nvml: the NVML bindings are not installed", "pynvml-missing") from exc
        self._nvml: Any = pynvml
        self._handles: dict[int, Any] = {}
        self._initialised = False
        self._process_versions: dict[str, str] = {}  # "Compute"/"Graphics" → the call's version that works
        self.dropped_pids: set[int] = set()  # implausible pids NVML listed and wattwise ignored

    def _call(self, what: str, fn: Callable[..., Any], *args: Any) -> Any:
        """``fn(*args)``, every error of the bindings turned into an NvmlError (see the module docstring)."""
        nvml = self._nvml
        try:
            return fn(*args)
        except nvml.NVMLError as exc:
            raise translate_nvml_error(nvml, exc, what) from exc
        except getattr(nvml, "NVMLLibraryMismatchError", ()) as exc:
            raise NvmlError(f"nvml: {what}: the driver lacks this call's version ({exc})", "not-supported") from exc
        except Exception as exc:  # the bindings are ctypes: anything, MemoryError included, is possible
            raise NvmlError(f"nvml: {what} failed in the bindings: {type(exc).__name__}: {exc}", "failed") from exc

    def _raw(self, symbol: str) -> Any:
        """A C function of the driver's library (for versions the bindings do not wrap)."""
        return self._call(f"looking up {symbol}", self._nvml._nvmlGetFunctionPointer, symbol)

    def _check(self, what: str, ret: int) -> None:
        self._call(what, self._nvml._nvmlCheckReturn, ret)

    def _handle(self, index: int) -> Any:
        if index not in self._handles:
            self._handles[index] = self._call(f"handle of GPU {index}", self._nvml.nvmlDeviceGetHandleByIndex, index)
        return self._handles[index]

    def init(self) -> None:
        if self._initialised:
            return
        try:
            self._call("init", self._nvml.nvmlInit)
        except NvmlError as exc:
            if exc.reason != "not-supported":  # only a missing nvmlInitWithFlags falls back to nvmlInit_v2
                raise
            self._check("init (nvmlInit_v2)", self._raw("nvmlInit_v2")())
        self._initialised = True

    def shutdown(self) -> None:
        if self._initialised:
            self._initialised = False
            self._handles.clear()
            self._call("shutdown", self._nvml.nvmlShutdown)

    def device_count(self) -> int:
        return int(self._call("device count", self._nvml.nvmlDeviceGetCount))

    def name(self, index: int) -> str:
        return str(self._call(f"name of GPU {index}", self._nvml.nvmlDeviceGetName, self._handle(index)))

    def uuid(self, index: int) -> str:
        return str(self._call(f"UUID of GPU {index}", self._nvml.nvmlDeviceGetUUID, self._handle(index)))

    def mig_enabled(self, index: int) -> bool:
        nvml, handle = self._nvml, self._handle(index)
        try:
            current, _pending = self._call(f"MIG mode of GPU {index}", nvml.nvmlDeviceGetMigMode, handle)
        except NvmlError as exc:
            if exc.reason in ("not-supported", "no-permission"):
                return False
            raise
        return bool(current == nvml.NVML_DEVICE_MIG_ENABLE)

    def mig_uuids(self, index: int) -> tuple[str, ...]:
        if not self.mig_enabled(index):
            return ()
        nvml, handle = self._nvml, self._handle(index)
        uuids: list[str] = []
        for slot in range(int(self._call("MIG slots", nvml.nvmlDeviceGetMaxMigDeviceCount, handle))):
            try:
                mig = self._call("MIG device", nvml.nvmlDeviceGetMigDeviceHandleByIndex, handle, slot)
            except NvmlError:  # an empty slot answers NOT_FOUND or INVALID_ARGUMENT
                continue
            uuids.append(str(self._call("MIG UUID", nvml.nvmlDeviceGetUUID, mig)))
        return tuple(uuids)

    def total_energy_mj(self, index: int) -> int:
        fn = self._nvml.nvmlDeviceGetTotalEnergyConsumption
        try:
            return int(self._call(f"energy counter of GPU {index}", fn, self._handle(index)))
        except NvmlError as exc:
            if exc.reason == "not-supported":
                raise EnergyCounterUnsupported(str(exc), exc.code) from exc
            raise

    def power_mw(self, index: int) -> int:
        return int(self._call(f"power of GPU {index}", self._nvml.nvmlDeviceGetPowerUsage, self._handle(index)))

    def power_instant_mw(self, index: int) -> int:
        fn = self._nvml.nvmlDeviceGetFieldValues
        values = self._call(f"instant power of GPU {index}", fn, self._handle(index), [_NVML_FI_DEV_POWER_INSTANT])
        field = values[0]
        if int(field.nvmlReturn) != 0:
            raise NvmlError(
                f"nvml: GPU {index} has no instantaneous power field", "not-supported", int(field.nvmlReturn)
            )
        return int(field.value.uiVal)

    def power_limit_mw(self, index: int) -> int:
        fn = self._nvml.nvmlDeviceGetEnforcedPowerLimit
        return int(self._call(f"power limit of GPU {index}", fn, self._handle(index)))

    def running_pids(self, index: int) -> frozenset[int]:
        handle = self._handle(index)
        pids: list[int] = []
        answered = False
        for kind in ("Compute", "Graphics"):
            try:
                pids.extend(self._processes(kind, handle, index))
                answered = True
            except NvmlError as exc:
                if exc.reason != "not-supported":
                    raise
        if not answered:
            raise NvmlError(f"nvml: GPU {index} cannot list its processes", "not-supported")
        plausible = {pid for pid in pids if 0 < pid <= PID_MAX}
        self.dropped_pids.update(set(pids) - plausible)
        return frozenset(plausible)

    def _processes(self, kind: str, handle: Any, index: int) -> list[int]:
        """Pids of one kind of context, through the newest version of the call this driver has (remembered)."""
        remembered = self._process_versions.get(kind)
        if remembered is not None:
            return self._process_call(kind, remembered, handle, index)
        last: NvmlError | None = None
        for version in ("_v3", "_v2", ""):
            try:
                found = self._process_call(kind, version, handle, index)
            except NvmlError as exc:
                if exc.reason != "not-supported":
                    raise
                last = exc
                continue
            self._process_versions[kind] = version
            return found
        assert last is not None
        raise last

    def _process_call(self, kind: str, version: str, handle: Any, index: int) -> list[int]:
        name = f"nvmlDeviceGet{kind}RunningProcesses{version}"
        what = f"{name} of GPU {index}"
        if version:
            wrapped = getattr(self._nvml, name, None)
            if wrapped is None:
                raise NvmlError(f"nvml: the bindings have no {name}", "not-supported")
            return [int(p.pid) for p in self._call(what, wrapped, handle)]
        # drivers before R470: the first version's struct, which the bindings no longer wrap
        fn = self._raw(name)
        count = ctypes.c_uint(0)
        ret = self._call(what, fn, handle, ctypes.byref(count), None)
        if ret == 0:
            return []
        if ret != _NVML_ERROR_INSUFFICIENT_SIZE:
            self._check(what, ret)
        count.value = min(count.value * 2 + 5, _MAX_PROCESSES)  # a garbage count must not allocate gigabytes
        infos = (_ProcessInfoV1 * count.value)()
        self._check(what, self._call(what, fn, handle, ctypes.byref(count), infos))
        return [int(infos[i].pid) for i in range(min(count.value, _MAX_PROCESSES))]

    def process_sm_utilisation(self, index: int, since_us: int) -> ProcessUtilisation:
        fn = self._nvml.nvmlDeviceGetProcessUtilization
        try:
            samples = self._call(f"process utilisation of GPU {index}", fn, self._handle(index), since_us)
        except NvmlError as exc:
            # NOT_FOUND: no sample newer than since_us; code 0: pynvml raises on an empty success as well.
            if exc.reason == "not-found" or exc.code == 0:
                return ProcessUtilisation({}, since_us)
            raise
        sm: dict[int, float] = {}
        last = since_us
        for sample in samples:
            pid = int(sample.pid)
            if int(sample.timeStamp) > since_us and 0 < pid <= PID_MAX:
                sm[pid] = sm.get(pid, 0.0) + min(100.0, float(sample.smUtil))
                last = max(last, int(sample.timeStamp))
        return ProcessUtilisation(sm, last)

    def driver_version(self) -> str:
        return str(self._call("driver version", self._nvml.nvmlSystemGetDriverVersion))

    def bindings_version(self) -> str:
        from importlib import metadata

        try:
            return f"nvidia-ml-py {metadata.version('nvidia-ml-py')}"
        except metadata.PackageNotFoundError:
            return "pynvml (version unknown)"
