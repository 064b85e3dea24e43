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
  their producer weight rows go, with the matching consumer columns: the layers really shrink. Convolution
  channels are pruned the same way (conv → BatchNorm/activation/pooling → conv, BatchNorm shrinking with them).
  Attention heads and residual streams are not rewired (their sizes are read by code the graph walk does not
  rewrite), so the recipe leaves those layers alone.
"""

from __future__ import annotations

import copy
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


def _kept(module: nn.Module, index: torch.Tensor, dim: int) -> nn.Module:
    """A copy of a Linear/Conv (``dim`` 0: outputs, 1: inputs) or a BatchNorm (channels) with only ``index``."""
    new = copy.deepcopy(module)
    count = int(index.numel())
    with torch.no_grad():
        for name in ("weight", "bias", "running_mean", "running_var"):
            value = getattr(module, name, None)
            if not isinstance(value, torch.Tensor) or (name == "bias" and dim == 1 and not _is_norm(module)):
                continue  # a consumer keeps its whole bias (its outputs do not change)
            sliced = value.index_select(0 if _is_norm(module) or name == "bias" else dim, index).clone()
            if isinstance(value, nn.Parameter):
                setattr(new, name, nn.Parameter(sliced, requires_grad=value.requires_grad))
            else:
                new.register_buffer(name, sliced)
    if _is_norm(module):
        setattr(new, "num_features", count)  # noqa: B010 - typed as a tensor attribute on nn.Module
    elif isinstance(module, nn.Linear):
        setattr(new, "out_features" if dim == 0 else "in_features", count)
    else:
        setattr(new, "out_channels" if dim == 0 else "in_channels", count)
    return new


def _is_norm(module: nn.Module) -> bool:
    return isinstance(module, nn.BatchNorm1d | nn.BatchNorm2d | nn.BatchNorm3d)


def _shrink_group(model: nn.Module, group: HiddenGroup, keep: int) -> None:
    """Keep the ``keep`` hidden units (channels) with the largest L1 norm summed over the producers' weights for
    that unit: those outputs (and biases) of every producer, the matching channels of any BatchNorm between, and
    the matching inputs of the consumer."""
    producers = [model.get_submodule(path) for path in group.producers]
    weights = [m.weight for m in producers if isinstance(m.weight, torch.Tensor)]
    assert len(weights) == len(producers)
    with torch.no_grad():
        norms = torch.stack([w.detach().abs().flatten(1).sum(dim=1) for w in weights]).sum(dim=0)
        index = torch.topk(norms, keep).indices.sort().values
    for path, old in zip(group.producers, producers, strict=True):
        _replace(model, path, _kept(old, index, 0))
    for path in group.norms:
        _replace(model, path, _kept(model.get_submodule(path), index, 0))
    _replace(model, group.consumer, _kept(model.get_submodule(group.consumer), index, 1))


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
