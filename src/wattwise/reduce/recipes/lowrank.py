"""Low-rank factorization: each nn.Linear ``W`` (out × in) becomes two Linears through a rank-``r`` bottleneck.

``torch.linalg.svd(W) = U S Vᴴ``; the first layer gets ``diag(√S_r) Vᴴ_r`` (r × in, no bias), the second
``U_r diag(√S_r)`` (out × r, with the original bias), so their product is the best rank-``r`` approximation of
``W`` (Eckart–Young). ``r`` is chosen per layer (see :class:`LowRank`): by the share of ``Σ S²`` kept (the layer's
squared Frobenius norm), by a share of the full rank, by a budget of weights allocated across layers (a compute and
energy budget), or by an accuracy budget checked with the evaluation function. A layer is left as it is when
``r × (in + out) ≥ in × out``: the pair would not have fewer parameters.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import nn

from wattwise.errors import ConfigError
from wattwise.reduce.base import Context, RecipeNotApplicable, add_note, copy_module


class FactorizedLinear(nn.Sequential):
    """``Linear(in, rank, bias=False)`` then ``Linear(rank, out)``: what :class:`LowRank` puts in place of a Linear."""

    def __init__(self, first: nn.Linear, second: nn.Linear) -> None:
        super().__init__(first, second)

    @property
    def rank(self) -> int:
        first = self[0]
        assert isinstance(first, nn.Linear)
        return first.out_features


def choose_rank(singular_values: torch.Tensor, energy: float | None, rank_ratio: float | None) -> int:
    """The rank that keeps ``energy`` of Σ S² (smallest such), or ``ceil(rank_ratio × len(S))``; at least 1."""
    full = singular_values.numel()
    if rank_ratio is not None:
        return max(1, min(full, math.ceil(rank_ratio * full)))
    assert energy is not None
    squares = singular_values.double() ** 2
    total = float(squares.sum())
    if total == 0.0:
        return 1
    kept = torch.cumsum(squares, 0) / total
    return max(1, min(full, int(torch.searchsorted(kept, torch.tensor(energy, dtype=kept.dtype)).item()) + 1))


def factorize(linear: nn.Linear, rank: int) -> FactorizedLinear:
    """The rank-``rank`` truncated-SVD pair of ``linear`` (same dtype)."""
    u, s, vh = torch.linalg.svd(linear.weight.detach().double(), full_matrices=False)
    return _pair(_Layer("", linear, u, s, vh), rank)


@dataclass(frozen=True, slots=True)
class _Layer:
    """One nn.Linear to factorize, with its SVD (double precision) computed once."""

    path: str
    linear: nn.Linear
    u: torch.Tensor
    s: torch.Tensor
    vh: torch.Tensor

    @property
    def dense_params(self) -> int:
        return self.linear.in_features * self.linear.out_features

    @property
    def params_per_rank(self) -> int:
        return self.linear.in_features + self.linear.out_features

    @property
    def max_rank(self) -> int:
        """The largest rank at which the pair still has fewer weights than the dense layer (0: none)."""
        return min(self.s.numel(), (self.dense_params - 1) // self.params_per_rank)


def allocate_ranks(layers: list[tuple[torch.Tensor, int, int]], budget_params: float) -> list[int]:
    """Ranks per layer whose factorized weights fit ``budget_params``: every layer starts at rank 1, then the
    budget goes, one rank at a time, to the layer whose next singular value keeps the largest share of that
    layer's Σ S² per weight it costs (``in + out``), up to each layer's ``max_rank`` (the rank at which the pair
    stops being smaller than the dense layer). ``layers``: (singular values, in + out, max rank)."""
    import heapq

    ranks = [1] * len(layers)
    spent = float(sum(cost for _, cost, _ in layers))
    totals = [float((s.double() ** 2).sum()) or 1.0 for s, _, _ in layers]
    heap: list[tuple[float, int]] = []
    for index, (s, cost, top) in enumerate(layers):
        if top > 1:
            heapq.heappush(heap, (-float(s[1].double() ** 2) / totals[index] / cost, index))
    while heap:
        _, index = heapq.heappop(heap)
        s, cost, top = layers[index]
        if spent + cost > budget_params:
            continue  # this layer's next rank does not fit; a cheaper layer's might
        spent += cost
        ranks[index] += 1
        if ranks[index] < top:
            heapq.heappush(heap, (-float(s[ranks[index]].double() ** 2) / totals[index] / cost, index))
    return ranks


@dataclass(frozen=True)
class LowRank:
    """Truncated-SVD factorization of every nn.Linear where it saves parameters, the rank chosen per layer by one
    of (exactly one is given; none means ``energy=0.9``):

    * ``energy``: the smallest rank keeping this share of the layer's Σ S² (spectral energy), layer by layer;
    * ``rank_ratio``: this share of each layer's full rank;
    * ``params_budget``: a compute budget: the factorized layers keep at most this share of their weights (and so
      of their multiply-adds and weight traffic, what inference energy follows), the ranks allocated across
      layers by :func:`allocate_ranks`;
    * ``max_drop``: an accuracy budget: the smallest ``params_budget`` (bisection, six evaluations after the
      first) whose metric, from ``ctx.eval_fn``, is no more than ``max_drop`` below the model's own.
    """

    energy: float | None = None
    rank_ratio: float | None = None
    params_budget: float | None = None
    max_drop: float | None = None
    kind: ClassVar[str] = "lowrank"

    def __post_init__(self) -> None:
        given = [v for v in (self.energy, self.rank_ratio, self.params_budget, self.max_drop) if v is not None]
        if not given:
            object.__setattr__(self, "energy", 0.9)
        elif len(given) > 1:
            raise ConfigError("low-rank takes exactly one of energy=, rank_ratio=, params_budget= or max_drop=")
        for label, value in (
            ("energy", self.energy),
            ("rank_ratio", self.rank_ratio),
            ("params_budget", self.params_budget),
        ):
            if value is not None and not 0.0 < value <= 1.0:
                raise ConfigError(f"low-rank {label} must be in (0, 1] (got {value})")
        if self.max_drop is not None and not (math.isfinite(self.max_drop) and self.max_drop >= 0.0):
            raise ConfigError(f"low-rank max_drop is a metric difference: 0 or more (got {self.max_drop})")

    @property
    def name(self) -> str:
        if self.rank_ratio is not None:
            return f"lowrank-r{self.rank_ratio * 100:g}"
        if self.params_budget is not None:
            return f"lowrank-p{self.params_budget * 100:g}"
        if self.max_drop is not None:
            return f"lowrank-drop{self.max_drop:g}"
        assert self.energy is not None
        return f"lowrank-{self.energy * 100:g}"

    @property
    def summary(self) -> str:
        if self.rank_ratio is not None:
            return f"truncated SVD at {self.rank_ratio:.0%} of full rank"
        if self.params_budget is not None:
            return f"truncated SVD, {self.params_budget:.0%} of the weights allocated across layers"
        if self.max_drop is not None:
            return f"truncated SVD, smallest ranks losing at most {self.max_drop:g} metric points"
        return f"truncated SVD keeping {self.energy:.0%} energy"

    @property
    def params(self) -> Mapping[str, Any]:
        return {
            "energy": self.energy,
            "rank_ratio": self.rank_ratio,
            "params_budget": self.params_budget,
            "max_drop": self.max_drop,
        }

    def apply(self, model: nn.Module, ctx: Context) -> nn.Module:
        variant = copy_module(model).eval()
        layers = [
            _Layer(name, m, *torch.linalg.svd(m.weight.detach().double(), full_matrices=False))
            for name, m in variant.named_modules()
            if isinstance(m, nn.Linear) and type(m.weight) is nn.Parameter and m.weight.dtype.is_floating_point
        ]
        if not layers:
            raise RecipeNotApplicable("low-rank factorization needs nn.Linear layers with float weights; none here")
        if self.max_drop is not None:
            return self._within_drop(model, variant, layers, ctx)
        if self.params_budget is not None:
            return _build(variant, layers, self._budget_ranks(layers, self.params_budget), self.name)
        ranks = [choose_rank(layer.s, self.energy, self.rank_ratio) for layer in layers]
        return _build(variant, layers, ranks, self.name)

    @staticmethod
    def _budget_ranks(layers: list[_Layer], share: float) -> list[int]:
        usable = [layer for layer in layers if layer.max_rank >= 1]
        budget = share * sum(layer.dense_params for layer in usable)
        chosen = iter(allocate_ranks([(lay.s, lay.params_per_rank, lay.max_rank) for lay in usable], budget))
        return [next(chosen) if layer.max_rank >= 1 else layer.s.numel() for layer in layers]

    def _within_drop(self, model: nn.Module, variant: nn.Module, layers: list[_Layer], ctx: Context) -> nn.Module:
        assert self.max_drop is not None
        if ctx.eval_fn is None:
            raise RecipeNotApplicable(f"{self.name} needs the evaluation function to hold its accuracy budget")
        baseline = float(ctx.eval_fn(copy_module(model).eval()))
        floor = baseline - self.max_drop
        best: tuple[float, float, nn.Module] | None = None
        low, high = 0.0, 1.0
        tried: list[str] = []
        for step in range(7):
            share = high if step == 0 else (low + high) / 2
            candidate = _build(copy_module(variant), layers, self._budget_ranks(layers, share), self.name)
            metric = float(ctx.eval_fn(candidate))
            tried.append(f"{share:.0%}: {metric:.4g}")
            if metric >= floor:
                best, high = (share, metric, candidate), share
            elif step == 0:
                raise RecipeNotApplicable(
                    f"{self.name}: even the largest factorization scores {metric:.4g}, more than {self.max_drop:g} "
                    f"below the model's {baseline:.4g}"
                )
            else:
                low = share
        assert best is not None
        share, metric, chosen = best
        add_note(
            chosen,
            f"accuracy budget: metric {metric:.4g} vs {baseline:.4g} at {share:.0%} of the weights "
            f"(tried {'; '.join(tried)})",
        )
        return chosen


def _build(variant: nn.Module, layers: list[_Layer], ranks: list[int], name: str) -> nn.Module:
    """Replace each layer of ``variant`` (found by path) by its rank-``r`` pair where that has fewer weights."""
    described: list[str] = []
    skipped = 0
    for layer, rank in zip(layers, ranks, strict=True):
        if rank * layer.params_per_rank >= layer.dense_params:
            skipped += 1
            continue
        described.append(f"{layer.path or 'model'}: {rank}/{layer.s.numel()}")
        pair = _pair(layer, rank)
        if not layer.path:  # the model is one nn.Linear
            variant = pair
            break
        parent_name, _, child = layer.path.rpartition(".")
        setattr(variant.get_submodule(parent_name), child, pair)
    if not described:
        raise RecipeNotApplicable(
            f"{name}: no nn.Linear gets fewer parameters at the rank it needs ({skipped} layer(s) checked)"
        )
    add_note(variant, "ranks " + ", ".join(described) + (f"; {skipped} layer(s) kept dense" if skipped else ""))
    return variant


def _pair(layer: _Layer, rank: int) -> FactorizedLinear:
    linear, dtype = layer.linear, layer.linear.weight.dtype
    root = layer.s[:rank].sqrt()
    first = nn.Linear(linear.in_features, rank, bias=False, dtype=dtype)
    second = nn.Linear(rank, linear.out_features, bias=linear.bias is not None, dtype=dtype)
    with torch.no_grad():
        first.weight.copy_((root[:, None] * layer.vh[:rank]).to(dtype))
        second.weight.copy_((layer.u[:, :rank] * root[None, :]).to(dtype))
        if linear.bias is not None and second.bias is not None:
            second.bias.copy_(linear.bias.detach())
    return FactorizedLinear(first, second)
