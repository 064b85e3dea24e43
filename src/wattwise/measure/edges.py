"""The edges of a run and of its windows: how the run ended, CUDA synchronisation, the sampling interval."""

from __future__ import annotations

import sys
from collections.abc import Sequence

from wattwise.devices.base import PowerSource
from wattwise.measure.notes import clip
from wattwise.records import RunStatus

__all__ = ["CudaSync", "outcome", "sampling_interval", "sync_cuda"]


def outcome(exc: BaseException | None, signals: Sequence[str]) -> tuple[RunStatus, str | None]:
    """(status, error) of a run whose ``with`` block ended with ``exc``, after ``signals`` the program handled.

    No exception: complete. KeyboardInterrupt: incomplete. ``sys.exit(0)``: complete, another code: failed. Any other
    exception: failed. After a signal the program's own handler took, anything but a normal end is incomplete.
    """
    names = ", ".join(dict.fromkeys(signals))
    after = f" after {names}" if names else ""
    if exc is None:
        return "complete", None
    if isinstance(exc, KeyboardInterrupt):
        return "incomplete", f"interrupted (KeyboardInterrupt{', ' + names if names else ''})"
    if isinstance(exc, SystemExit):
        code = exc.code
        if names:
            return "incomplete", clip(f"the program exited (code {code!r}){after}", 500)
        if code in (None, 0):
            return "complete", None
        return "failed", clip(f"the program exited with code {code!r}", 500)
    text = f"{type(exc).__name__}: {exc}".splitlines()[0] if str(exc) else type(exc).__name__
    return ("incomplete" if names else "failed"), clip(text + after, 500)


def sync_cuda(enabled: bool, notes: list[str]) -> bool:
    """With ``cuda_sync``: wait for the GPU work this process queued, so a window edge is where its work ends
    (CUDA runs asynchronously: without it, a window can close before its kernels ran). torch is not imported for
    this: only a process that already uses it and has a CUDA context waits. True if it waited."""
    if not enabled:
        return False
    torch = sys.modules.get("torch")
    if torch is None:
        return False
    try:
        if torch.cuda.is_available() and torch.cuda.is_initialized():
            torch.cuda.synchronize()
            return True
    except Exception as exc:  # a broken CUDA state must not end the measurement
        notes.append(f"cuda_sync: torch.cuda.synchronize() failed ({type(exc).__name__}: {exc})")
    return False


class CudaSync:
    """``cuda_sync`` over one run: waits at each edge, and says so where it never could (so the setting is not
    silently without effect). ``command``: the run measures a command, whose CUDA work is in other processes."""

    def __init__(self, enabled: bool, *, command: bool = False) -> None:
        self.enabled = enabled
        self.command = command
        self.waited = 0

    def __call__(self, notes: list[str]) -> None:
        if self.enabled and not self.command and sync_cuda(True, notes):
            self.waited += 1

    def closing_note(self) -> str | None:
        if not self.enabled or self.waited:
            return None
        if self.command:
            return (
                "cuda_sync has no effect on a measured command: its CUDA work runs in other processes (use it with "
                "the Python API, in the training process)"
            )
        return (
            "cuda_sync is on, but this process never had a CUDA context through torch to wait for: window edges "
            "did not wait for queued GPU work"
        )


def sampling_interval(interval_s: float, sources: Sequence[PowerSource], notes: list[str]) -> float:
    """``interval_s``, or the floor a source sets (NVML: 0.1 s), with a note saying why it was raised."""
    interval = interval_s
    for source in sources:
        floor = getattr(source, "min_interval_s", None)
        if isinstance(floor, float) and interval < floor:
            interval = floor
            reason = getattr(source, "min_interval_reason", "")
            notes.append(f"sampling interval raised from {interval_s:g} s to {floor:g} s: {reason}")
    return interval
