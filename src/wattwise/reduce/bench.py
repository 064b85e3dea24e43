"""Measure one variant: size on disk, stored values, latency spread, throughput, energy per inference, metric.

Energy is *measured* with the wattwise tracker, never derived from latency: the timed batches run inside one
tracker window, and the window's energy (counters read at its two edges, so exact however short) divided by the
samples processed is the energy per inference. ``energy_source`` says whether the tracker's components were
counters (``measured``), models (``estimated``) or both. Timing keeps going until both ``repeats`` rounds and
``min_time_s`` have passed, so that the window is long against the meters' resolution (CPU time is counted in
10 ms ticks). Any failure of the variant becomes ``VariantResult.error`` (one line); nothing is raised.
"""

from __future__ import annotations

import contextlib
import io
import math
import statistics
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from wattwise.reduce import require_torch
from wattwise.reduce.base import Context, EvalFn, VariantResult, notes_of, one_line

if TYPE_CHECKING:
    import torch
    from torch import nn

    from wattwise.config import Settings
    from wattwise.measure.tracker import Tracker
    from wattwise.store.base import RunStore


@dataclass(frozen=True)
class BenchSettings:
    """How long to time each variant. A round is ``batches`` calls on the example batch; its time / ``batches``
    is one latency sample (per batch)."""

    warmup: int = 3  # untimed calls first (caches, lazy init, compiled graphs)
    repeats: int = 20  # timed rounds at least
    batches: int = 5  # calls per round
    min_time_s: float = 1.0  # and keep timing at least this long
    max_rounds: int = 10_000


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    position = (len(ordered) - 1) * q
    low, high = math.floor(position), math.ceil(position)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def batch_size(example_inputs: tuple[Any, ...]) -> int:
    """Samples in the example batch: the first dimension of its first tensor (1 for a scalar input)."""
    import torch

    for value in example_inputs:
        if isinstance(value, torch.Tensor):
            return int(value.shape[0]) if value.dim() > 0 else 1
    return 1


def _inner_tensors(value: torch.Tensor) -> list[torch.Tensor]:
    """The plain tensors that hold a tensor subclass's data (torchao's qdata and scales), or the tensor itself."""
    if not hasattr(value, "__tensor_flatten__"):
        return [value]
    names, _ = value.__tensor_flatten__()
    return [t for name in names for t in _inner_tensors(getattr(value, name))]


def _tensors(value: Any) -> Iterator[torch.Tensor]:
    import torch

    if isinstance(value, torch.Tensor):
        yield value
    elif isinstance(value, tuple | list):  # packed parameters of torch.ao quantized modules
        for item in value:
            yield from _tensors(item)


def _storage_bytes(state: dict[str, Any]) -> int:
    seen: set[tuple[int, int]] = set()
    total = 0
    for value in state.values():
        for tensor in _tensors(value):
            for inner in _inner_tensors(tensor):
                key = (inner.untyped_storage().data_ptr(), inner.untyped_storage().nbytes())
                if key not in seen:
                    seen.add(key)
                    total += key[1]
    return total


def size_on_disk(model: nn.Module) -> tuple[int, str]:
    """Bytes of ``torch.save(model.state_dict())``; if that fails, the summed storage of its tensors (said so).
    A module that serves an exported file (ONNX Runtime) reports that file's size itself."""
    import torch

    exported = getattr(model, "size_bytes", None)
    if isinstance(exported, int):
        return exported, "size of the exported model file"
    state = model.state_dict()
    try:
        buffer = io.BytesIO()
        torch.save(state, buffer)
        return buffer.getbuffer().nbytes, "torch.save(state_dict)"
    except Exception as exc:
        return _storage_bytes(state), f"sum of tensor storage bytes (torch.save failed: {one_line(exc, 120)})"


def _values(tensor: torch.Tensor) -> torch.Tensor:
    """The stored integers of a quantized tensor (torch.ao qint8, torchao ``qdata``), else the tensor."""
    import torch

    if tensor.is_quantized:
        return tensor.int_repr()
    qdata = getattr(tensor, "qdata", None)
    return qdata if isinstance(qdata, torch.Tensor) else tensor


def stored_values(model: nn.Module) -> tuple[int, int | None]:
    """(values stored in the state_dict, of which non-zero); a subclass whose zeros cannot be counted gives None."""
    import torch

    exported = getattr(model, "parameter_count", None)
    if isinstance(exported, int):
        return exported, None  # an exported model: its initializers, zeros not counted

    total = 0
    nonzero: int | None = 0
    seen: set[int] = set()
    for value in model.state_dict().values():
        for tensor in _tensors(value):
            if id(tensor) in seen:
                continue
            seen.add(id(tensor))
            total += tensor.numel()
            try:
                count = int(torch.count_nonzero(_values(tensor)))
            except Exception:
                nonzero = None
                continue
            if nonzero is not None:
                nonzero += count
    return total, nonzero


@contextlib.contextmanager
def open_tracker(settings: Settings | None, store: RunStore | None, name: str) -> Iterator[Tracker]:
    """A tracker for one benchmark; runs go to an in-memory store unless ``store`` is given."""
    from wattwise.config import Settings
    from wattwise.measure.tracker import Tracker
    from wattwise.store import open_store

    with contextlib.ExitStack() as stack:
        if store is None:
            store = stack.enter_context(open_store(":memory:"))
        tracker = Tracker(name, settings=settings or Settings.load(), store=store)
        with tracker:
            yield tracker


def measure(
    model: nn.Module,
    name: str,
    recipe_name: str,
    ctx: Context,
    eval_fn: EvalFn,
    *,
    bench: BenchSettings | None = None,
    tracker: Tracker | None = None,
    tracker_settings: Settings | None = None,
    store: RunStore | None = None,
) -> VariantResult:
    """Measure ``model`` on ``ctx.example_inputs``. Uses ``tracker`` when given (running), else a tracker of its
    own over an in-memory store (or ``store``). Never raises for the variant's faults: they become ``error``."""
    require_torch()
    if tracker is None:
        with open_tracker(tracker_settings, store, f"measure-{name}") as own:
            return measure(model, name, recipe_name, ctx, eval_fn, bench=bench, tracker=own)
    import torch

    bench = bench or BenchSettings()
    details: dict[str, Any] = {"notes": list(notes_of(model))}
    stage = "size"
    try:
        size, method = size_on_disk(model)
        values, nonzero = stored_values(model)
        details.update(size_method=method, parameters_nonzero=nonzero)
        stage = "eval"
        metric = float(eval_fn(model))
        if not math.isfinite(metric):
            raise ValueError(f"eval_fn returned {metric}")
        stage = "benchmark"
        inputs = ctx.example_inputs
        with torch.no_grad():
            for _ in range(bench.warmup):
                model(*inputs)
            window = f"variant:{name}"
            latencies: list[float] = []
            tracker.begin_window(window)
            started = time.perf_counter()
            try:
                while len(latencies) < bench.max_rounds and (
                    len(latencies) < bench.repeats or time.perf_counter() - started < bench.min_time_s
                ):
                    t0 = time.perf_counter()
                    for _ in range(bench.batches):
                        model(*inputs)
                    latencies.append((time.perf_counter() - t0) / bench.batches)
            finally:
                record = tracker.end_window(window)
        source = tracker.live_status().source
    except Exception as exc:
        return VariantResult(name=name, recipe=recipe_name, error=f"{stage}: {one_line(exc)}", details=details)
    per_batch = batch_size(inputs)
    samples = len(latencies) * bench.batches * per_batch
    elapsed = sum(latencies) * bench.batches
    details.update(
        batch_size=per_batch,
        rounds=len(latencies),
        calls_per_round=bench.batches,
        window_s=record.duration_s,
        window_energy_j=record.energy_j,
        mean_power_w=record.energy_j / record.duration_s if record.duration_s > 0 else None,
        energy_components_j=dict(record.components),
        energy_j_per_batch=record.energy_j / (len(latencies) * bench.batches),
        attribution=tracker.attribution,
        latency_ms_mean=statistics.fmean(latencies) * 1000,
    )
    return VariantResult(
        name=name,
        recipe=recipe_name,
        size_bytes=size,
        parameters=values,
        latency_ms=statistics.median(latencies) * 1000,
        latency_ms_p10=_percentile(latencies, 0.10) * 1000,
        latency_ms_p90=_percentile(latencies, 0.90) * 1000,
        throughput_per_s=samples / elapsed if elapsed > 0 else None,
        energy_j_per_inference=record.energy_j / samples,
        energy_source=source,
        metric=metric,
        details=details,
    )
