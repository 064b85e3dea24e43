"""The contract every recipe and the benchmark share: a Recipe turns a model into a variant; a VariantResult
says what the variant measured. Imports torch only for type checking (recipes import it when applied).

Helpers the recipes share (torch-free here): :func:`copy_module` (recipes never modify their input),
:func:`add_note`/:func:`notes_of` (lines a recipe attaches to its variant, reported in ``details["notes"]``),
:func:`third_party_warnings` (silences exactly the known torch/torchao warnings), :func:`one_line` (the error line
of a failed variant)."""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    import torch
    from torch import nn

EvalFn = Callable[["nn.Module"], float]  # model -> metric (higher is better)
TrainFn = Callable[["nn.Module"], None]  # fine-tunes the model in place (optional, for pruning and distillation)


class RecipeNotApplicable(Exception):
    """A recipe that does not fit the model (e.g. low-rank with no nn.Linear): one line saying why."""


@dataclass(frozen=True)
class Context:
    """What a recipe may need besides the model."""

    example_inputs: tuple[Any, ...]  # one batch of inputs, as the model's forward takes them
    calibration: Callable[[], Any] | None = None  # yields batches (tuples) for static quantization
    train_fn: TrainFn | None = None  # short fine-tuning after pruning / for distillation
    device: str = "cpu"
    eval_fn: EvalFn | None = None  # the user's metric, for recipes that hold an accuracy budget


@runtime_checkable
class Recipe(Protocol):
    """One transformation with its parameters. ``apply`` must not modify ``model``: it returns a new module."""

    # read-only members, so frozen dataclasses (with properties or class variables) and plain classes both fit
    @property
    def name(self) -> str:  # e.g. "int8-dynamic", "prune-50%-global", "lowrank-r0.5", "bf16", "onnx-int8"
        ...

    @property
    def kind(self) -> str:  # "quantize" | "prune" | "lowrank" | "distill" | "precision" | "export" | "chain"
        ...

    @property
    def params(self) -> Mapping[str, Any]: ...

    def apply(self, model: nn.Module, ctx: Context) -> nn.Module: ...


@dataclass(frozen=True)
class VariantResult:
    """One measured variant. ``error`` is set (and the numbers are None) when the recipe failed or did not apply."""

    name: str
    recipe: str
    size_bytes: int | None = None
    parameters: int | None = None
    latency_ms: float | None = None  # median over repeated batches
    latency_ms_p10: float | None = None
    latency_ms_p90: float | None = None
    throughput_per_s: float | None = None  # inferences (samples) per second
    energy_j_per_inference: float | None = None  # measured with the wattwise tracker
    energy_source: str = ""  # "measured" / "estimated", from the tracker's components
    metric: float | None = None
    pareto: bool = False
    error: str | None = None
    details: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "recipe": self.recipe,
            "size_bytes": self.size_bytes,
            "parameters": self.parameters,
            "latency_ms": self.latency_ms,
            "latency_ms_p10": self.latency_ms_p10,
            "latency_ms_p90": self.latency_ms_p90,
            "throughput_per_s": self.throughput_per_s,
            "energy_j_per_inference": self.energy_j_per_inference,
            "energy_source": self.energy_source,
            "metric": self.metric,
            "pareto": self.pareto,
            "error": self.error,
            "details": dict(self.details),
        }


Batch = tuple["torch.Tensor", ...]


# -- helpers shared by the recipes (extensions of the contract; torch is imported only when they run) -------------

_NOTES_ATTR = "_wattwise_notes"

# Warnings that torch 2.13 / torchao 0.18 raise from their own code paths the recipes use, matched by message:
# each one is about the library's internals, not about the user's model, and pytest runs with warnings as errors.
_THIRD_PARTY_WARNINGS: tuple[tuple[type[Warning], str], ...] = (
    (DeprecationWarning, r"`torch\.jit\.script_method` is deprecated"),  # importing torch._inductor
    (UserWarning, r".* does not implement _stable_hash_for_caching"),  # torch.compile of torchao tensor subclasses
    (FutureWarning, r"`isinstance\(treespec, LeafSpec\)` is deprecated"),  # deepcopy of an exported GraphModule
    (UserWarning, r"To copy construct from a tensor, it is recommended"),  # inductor freezing of PT2E graphs
    (DeprecationWarning, r"torch\.ao\.quantization is deprecated"),  # the flagged legacy fallback only
    (UserWarning, r"torch\.quantize_per_tensor, torch\.quantize_per_channel .* are deprecated"),  # same fallback
)


@contextlib.contextmanager
def third_party_warnings() -> Iterator[None]:
    """Silence exactly the known warnings above (nothing else) around a call into torch/torchao."""
    with warnings.catch_warnings():
        for category, message in _THIRD_PARTY_WARNINGS:
            warnings.filterwarnings("ignore", message=message, category=category)
        yield


def copy_module(model: nn.Module) -> nn.Module:
    """A deep copy of ``model`` (recipes never modify their input), with its notes."""
    import copy

    with third_party_warnings():
        return copy.deepcopy(model)


def add_note(model: nn.Module, text: str) -> None:
    """Attach a line to a variant that the benchmark copies into ``VariantResult.details["notes"]``."""
    model.__dict__[_NOTES_ATTR] = (*notes_of(model), text)


def notes_of(model: nn.Module) -> tuple[str, ...]:
    """The lines recipes attached to this variant (survive ``copy_module``, so a Chain keeps every step's)."""
    notes = model.__dict__.get(_NOTES_ATTR, ())
    return tuple(notes) if isinstance(notes, tuple) else ()


def one_line(exc: BaseException, limit: int = 300) -> str:
    """What a failed variant reports: the message's first line (prefixed by the exception type, except for
    RecipeNotApplicable, whose message already says why), at most ``limit`` characters."""
    lines = str(exc).strip().splitlines()
    text = lines[0].strip() if lines else ""
    if not isinstance(exc, RecipeNotApplicable) or not text:
        text = f"{type(exc).__name__}: {text}" if text else type(exc).__name__
    return text if len(text) <= limit else text[: limit - 1] + "…"
