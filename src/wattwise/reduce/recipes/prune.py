"""Pruning: unstructured magnitude pruning (zeros in place) and structured pruning that shrinks nn.Linear layers.

* :class:`MagnitudePrune`: ``torch.nn.utils.prune`` with L1 magnitude on the ``weight`` of every nn.Linear and
  nn.Conv1d/2d/3d, either over all those weights at once (``global_unstructured``, the smallest ``amount`` of
  them wherever they are) or ``amount`` of each layer (``l1_unstructured``). When ``ctx.train_fn`` is given it
  fine-tunes while the masks are still attached (pruned weights stay zero), then ``prune.remove`` makes the
  zeros permanent. Dense kernels do not skip zeros: size on disk and latency stay as fp32 unless a sparse
  runtime or compression follows; the benchmark reports the non-zero count.
* :class:`StructuredPrune`: removes ``amount`` of the hidden units of every *hidden group* (``recipes.graph``):
  producer nn.Linear layers whose outputs feed one consumer nn.Linear through element-wise operations only,
  found in the model's exported dataflow graph (a transformer's feed-forward block, a gated MLP, an MLP's
  layers), or from ``nn.Sequential`` runs when the model does not export. The units with the smallest L1 norm of
  their producer weight rows go, with the matching consumer columns: the layers really shrink. Attention heads,
  residual streams and convolution channels are not rewired (their sizes are read by code the module tree does
  not show), so the recipe leaves those layers alone.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import torch
from torch import nn
from torch.nn.utils import prune

from wattwise.errors import ConfigError
from wattwise.reduce.base import Context, RecipeNotApplicable, add_note, copy_module
from wattwise.reduce.recipes.graph import HiddenGroup, hidden_groups

_PRUNABLE = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)


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


def _replace(model: nn.Module, path: str, module: nn.Module) -> None:
    parent, _, child = path.rpartition(".")
    setattr(model.get_submodule(parent), child, module)


def _shrink_group(model: nn.Module, group: HiddenGroup, keep: int) -> None:
    """Keep the ``keep`` hidden units with the largest L1 norm summed over the producers' weight rows: those rows
    (and biases) of every producer, the matching input columns of the consumer."""
    producers: list[nn.Linear] = []
    for path in group.producers:
        module = model.get_submodule(path)
        assert isinstance(module, nn.Linear)
        producers.append(module)
    consumer = model.get_submodule(group.consumer)
    assert isinstance(consumer, nn.Linear)
    with torch.no_grad():
        norms = torch.stack([p.weight.abs().sum(dim=1) for p in producers]).sum(dim=0)
        index = torch.topk(norms, keep).indices.sort().values
        for path, old in zip(group.producers, producers, strict=True):
            new = nn.Linear(old.in_features, keep, bias=old.bias is not None, dtype=old.weight.dtype)
            new.weight.copy_(old.weight[index])
            if old.bias is not None and new.bias is not None:
                new.bias.copy_(old.bias[index])
            _replace(model, path, new)
        shrunk = nn.Linear(keep, consumer.out_features, bias=consumer.bias is not None, dtype=consumer.weight.dtype)
        shrunk.weight.copy_(consumer.weight[:, index])
        if consumer.bias is not None and shrunk.bias is not None:
            shrunk.bias.copy_(consumer.bias)
        _replace(model, group.consumer, shrunk)


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
        groups, found_by = hidden_groups(variant, ctx.example_inputs)
        if not groups:
            raise RecipeNotApplicable(
                "structured pruning needs nn.Linear layers feeding another nn.Linear through element-wise operations "
                "only (an MLP, a transformer feed-forward block); this model has none that can be rewired safely"
            )
        shrunk: list[str] = []
        for group in groups:
            keep = max(1, group.width - round(self.amount * group.width))
            if keep == group.width:
                continue
            shrunk.append(f"{group.consumer} {group.width}→{keep}")
            _shrink_group(variant, group, keep)
        if not shrunk:
            raise RecipeNotApplicable(f"structured pruning at {self.amount:.0%} removes no neuron (layers too small)")
        try:
            with torch.no_grad():
                variant(*ctx.example_inputs)
        except Exception as exc:  # a forward that depends on the hidden sizes: do not return a broken model
            raise RecipeNotApplicable(f"the model's forward breaks once its hidden layers shrink: {exc}") from exc
        tuned = self.fine_tune and _fine_tune(variant, ctx)
        add_note(variant, f"hidden widths ({found_by}): " + ", ".join(shrunk))
        if tuned:
            add_note(variant, "fine-tuned with train_fn after shrinking")
        return variant
