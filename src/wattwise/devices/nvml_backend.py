"""The NVML calls wattwise makes, in wattwise's units and exceptions: where NVML's error codes enter.

:class:`NvmlBackend` is the interface (NVML indices, units in names); :class:`PynvmlBackend` implements it
over ``pynvml`` (package nvidia-ml-py), imported only when one is built, so ``import wattwise`` stays fast.
Tests replay traces through ``tests/fakes/nvml.py`` instead. :mod:`wattwise.devices.nvml` re-exports it all.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from wattwise.errors import DeviceError

__all__ = [
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

    def total_energy_mj(self, index: int) -> int:
        """Energy since the driver loaded; raises :class:`EnergyCounterUnsupported` where there is none."""
        ...

    def power_mw(self, index: int) -> int: ...
    def running_pids(self, index: int) -> frozenset[int]:
        """Pids with a compute or graphics context on the GPU."""
        ...

    def process_sm_utilisation(self, index: int, since_us: int) -> ProcessUtilisation: ...


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

    def _call(self, what: str, fn: Callable[..., Any], *args: Any) -> Any:
        try:
            return fn(*args)
        except self._nvml.NVMLError as exc:
            raise translate_nvml_error(self._nvml, exc, what) from exc

    def _handle(self, index: int) -> Any:
        if index not in self._handles:
            self._handles[index] = self._call(f"handle of GPU {index}", self._nvml.nvmlDeviceGetHandleByIndex, index)
        return self._handles[index]

    def init(self) -> None:
        if not self._initialised:
            self._call("init", self._nvml.nvmlInit)
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

    def mig_uuids(self, index: int) -> tuple[str, ...]:
        nvml, handle = self._nvml, self._handle(index)
        try:
            current, _pending = self._call(f"MIG mode of GPU {index}", nvml.nvmlDeviceGetMigMode, handle)
        except NvmlError as exc:
            if exc.reason in ("not-supported", "no-permission"):
                return ()
            raise
        if current != nvml.NVML_DEVICE_MIG_ENABLE:
            return ()
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

    def running_pids(self, index: int) -> frozenset[int]:
        nvml, handle = self._nvml, self._handle(index)
        pids: set[int] = set()
        answered = False
        for fn in (nvml.nvmlDeviceGetComputeRunningProcesses, nvml.nvmlDeviceGetGraphicsRunningProcesses):
            try:
                pids.update(int(p.pid) for p in self._call(f"processes on GPU {index}", fn, handle))
                answered = True
            except NvmlError as exc:
                if exc.reason != "not-supported":
                    raise
        if not answered:
            raise NvmlError(f"nvml: GPU {index} cannot list its processes", "not-supported")
        return frozenset(pids)

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
            if int(sample.timeStamp) > since_us:
                sm[int(sample.pid)] = sm.get(int(sample.pid), 0.0) + min(100.0, float(sample.smUtil))
                last = max(last, int(sample.timeStamp))
        return ProcessUtilisation(sm, last)
