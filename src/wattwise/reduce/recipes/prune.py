"""Pruning: unstructured magnitude pruning (zeros in place) and structured pruning that shrinks nn.Linear layers.

* :class:`MagnitudePrune`: ``torch.nn.utils.prune`` with L1 magnitude on the ``weight`` of every nn.Linear and
  nn.Conv1d/2d/3d, either over all those weights at once (``global_unstructured``, the smallest ``amount`` of
  them wherever they are) or ``amount`` of each layer (``l1_unstructured``). When ``ctx.train_fn`` is given it
  fine-tunes while the masks are still attached (pruned weights stay zero), then ``prune.remove`` makes the
  zeros permanent. Dense kernels do not skip zeros: size on disk and latency stay as fp32 unless a sparse
  runtime or compression follows; the benchmark reports the non-zero count.
* :class:`StructuredPrune`: removes ``amount`` of the output neurons of every nn.Linear that feeds another
  nn.Linear inside an ``nn.Sequential`` (with only element-wise activations or dropout between them), those with
  the smallest L1 weight-row norm, and the matching input columns of the next Linear: the layers really shrink.
  Any other wiring (residual sums, attention heads, a custom ``forward`` reading the hidden sizes, shared
  modules) cannot be rewired safely from the module tree alone, so the recipe does not apply there.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import torch
from torch import nn
from torch.nn.utils import prune

from wattwise.errors import ConfigError
from wattwise.reduce.base import Context, RecipeNotApplicable, add_note, copy_module

_PRUNABLE = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)
_ELEMENTWISE = (
    nn.ReLU,
    nn.ReLU6,
    nn.LeakyReLU,
    nn.ELU,
    nn.SELU,
    nn.CELU,
    nn.GELU,
    nn.SiLU,
    nn.Mish,
    nn.Sigmoid,
    nn.Tanh,
    nn.Hardtanh,
    nn.Hardswish,
    nn.Hardsigmoid,
    nn.Softplus,
    nn.Softsign,
    nn.Tanhshrink,
    nn.Dropout,
    nn.AlphaDropout,
    nn.Identity,
)


def _check_amount(amount: float) -> None:
    if not 0.0 <= amount < 1.0:
        raise ConfigError(f"pruning amount must be in [0, 1) (got {amount})")


def _plain_float_weight(module: nn.Module) -> bool:
    weight = getattr(module, "weight", None)
    return type(weight) is nn.Parameter and weight.dtype.is_floating_point


def _fine_tune(model: nn.Module, ctx: Context) -> bool:
    if ctx.train_fn is None:
        return False
    model.train()
    ctx.train_fn(model)
    model.eval()
    return True


def sparsity(model: nn.Module) -> float:
    """The fraction of zeros over the weights of nn.Linear/nn.Conv layers (what MagnitudePrune sets)."""
    weights = [m.weight for m in model.modules() if isinstance(m, _PRUNABLE) and _plain_float_weight(m)]
    total = sum(w.numel() for w in weights)
    zeros = sum(int((w == 0).sum()) for w in weights)
    return zeros / total if total else 0.0


@dataclass(frozen=True)
class MagnitudePrune:
    """Zero the ``amount`` of weights with the smallest magnitude, over all layers (global) or per layer."""

    amount: float = 0.5
    scope: Literal["global", "layer"] = "global"
    fine_tune: bool = True  # use ctx.train_fn, when given, with the masks attached
    kind: ClassVar[str] = "prune"

    def __post_init__(self) -> None:
        _check_amount(self.amount)
        if self.scope not in ("global", "layer"):
            raise ConfigError(f"pruning scope must be 'global' or 'layer' (got {self.scope!r})")

    @property
    def name(self) -> str:
        percent = f"{self.amount * 100:g}"
        return f"prune-{percent}" if self.scope == "global" else f"prune-layer-{percent}"

    @property
    def summary(self) -> str:
        where = "over all layers" if self.scope == "global" else "per layer"
        return f"L1 unstructured {self.amount:.0%} {where}"

    @property
    def params(self) -> Mapping[str, Any]:
        return {"amount": self.amount, "scope": self.scope, "fine_tune": self.fine_tune, "norm": "L1"}

    def apply(self, model: nn.Module, ctx: Context) -> nn.Module:
        variant = copy_module(model).eval()
        layers = [m for m in variant.modules() if isinstance(m, _PRUNABLE) and _plain_float_weight(m)]
        if not layers:
            raise RecipeNotApplicable(
                "magnitude pruning needs nn.Linear/nn.Conv layers with float weights (prune before quantizing)"
            )
        targets = [(m, "weight") for m in layers]
        if self.scope == "global":
            prune.global_unstructured(targets, pruning_method=prune.L1Unstructured, amount=self.amount)
        else:
            for layer in layers:
                prune.l1_unstructured(layer, "weight", amount=self.amount)  # type: ignore[no-untyped-call]
        tuned = self.fine_tune and _fine_tune(variant, ctx)
        for layer in layers:
            prune.remove(layer, "weight")  # type: ignore[no-untyped-call]
        add_note(variant, f"{self.scope} L1 pruning: {sparsity(variant):.1%} of {len(layers)} layer weights zero")
        if tuned:
            add_note(variant, "fine-tuned with train_fn while the masks were attached")
        return variant


def _linear_chains(model: nn.Module) -> list[tuple[nn.Sequential, list[int]]]:
    """Runs of nn.Linear in an nn.Sequential, joined only by element-wise modules: (sequential, Linear indices)."""
    counts: dict[int, int] = {}  # a module reachable twice (shared) is left alone
    for _, module in model.named_modules(remove_duplicate=False):
        counts[id(module)] = counts.get(id(module), 0) + 1
    chains: list[tuple[nn.Sequential, list[int]]] = []
    for seq in model.modules():
        if not isinstance(seq, nn.Sequential):
            continue
        run: list[int] = []
        for index, child in enumerate(seq):
            if isinstance(child, nn.Linear) and _plain_float_weight(child) and counts[id(child)] == 1:
                if run and seq[run[-1]].out_features != child.in_features:
                    run = []
                run.append(index)
            elif isinstance(child, _ELEMENTWISE):
                continue
            else:
                if len(run) > 1:
                    chains.append((seq, run))
                run = []
        if len(run) > 1:
            chains.append((seq, run))
    return chains


def _shrink(first: nn.Linear, second: nn.Linear, keep: int) -> tuple[nn.Linear, nn.Linear]:
    """Keep the ``keep`` outputs of ``first`` with the largest L1 row norms, and the matching inputs of ``second``."""
    with torch.no_grad():
        norms = first.weight.abs().sum(dim=1)
        index = torch.topk(norms, keep).indices.sort().values
        new_first = nn.Linear(first.in_features, keep, bias=first.bias is not None, dtype=first.weight.dtype)
        new_first.weight.copy_(first.weight[index])
        if first.bias is not None and new_first.bias is not None:
            new_first.bias.copy_(first.bias[index])
        new_second = nn.Linear(keep, second.out_features, bias=second.bias is not None, dtype=second.weight.dtype)
        new_second.weight.copy_(second.weight[:, index])
        if second.bias is not None and new_second.bias is not None:
            new_second.bias.copy_(second.bias)
    return new_first, new_second


@dataclass(frozen=True)
class StructuredPrune:
    """Remove ``amount`` of the hidden neurons of each Linear→Linear pair in an nn.Sequential (layers shrink)."""

    amount: float = 0.3
    fine_tune: bool = True
    kind: ClassVar[str] = "prune"

    def __post_init__(self) -> None:
        _check_amount(self.amount)

    @property
    def name(self) -> str:
        return f"prune-structured-{self.amount * 100:g}"

    @property
    def summary(self) -> str:
        return f"L1 structured: {self.amount:.0%} of hidden neurons removed"

    @property
    def params(self) -> Mapping[str, Any]:
        return {"amount": self.amount, "fine_tune": self.fine_tune, "criterion": "L1 norm of the neuron's weights"}

    def apply(self, model: nn.Module, ctx: Context) -> nn.Module:
        variant = copy_module(model).eval()
        chains = _linear_chains(variant)
        if not chains:
            raise RecipeNotApplicable(
                "structured pruning rewires nn.Linear→nn.Linear pairs inside an nn.Sequential (only element-wise "
                "modules between them); this model has none, and other wiring (residuals, attention, custom "
                "forward) cannot be rewired safely"
            )
        shrunk: list[str] = []
        for seq, indices in chains:
            for a, b in itertools.pairwise(indices):
                first, second = seq[a], seq[b]
                assert isinstance(first, nn.Linear) and isinstance(second, nn.Linear)
                keep = max(1, first.out_features - round(self.amount * first.out_features))
                if keep == first.out_features:
                    continue
                shrunk.append(f"{first.out_features}→{keep}")
                seq[a], seq[b] = _shrink(first, second, keep)
        if not shrunk:
            raise RecipeNotApplicable(f"structured pruning at {self.amount:.0%} removes no neuron (layers too small)")
        try:
            with torch.no_grad():
                variant(*ctx.example_inputs)
        except Exception as exc:  # a forward that depends on the hidden sizes: do not return a broken model
            raise RecipeNotApplicable(f"the model's forward breaks once its hidden layers shrink: {exc}") from exc
        tuned = self.fine_tune and _fine_tune(variant, ctx)
        add_note(variant, "hidden widths " + ", ".join(shrunk))
        if tuned:
            add_note(variant, "fine-tuned with train_fn after shrinking")
        return variant
