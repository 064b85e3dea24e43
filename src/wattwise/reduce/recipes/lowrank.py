"""Low-rank factorization: each nn.Linear ``W`` (out × in) becomes two Linears through a rank-``r`` bottleneck.

``torch.linalg.svd(W) = U S Vᴴ``; the first layer gets ``diag(√S_r) Vᴴ_r`` (r × in, no bias), the second
``U_r diag(√S_r)`` (out × r, with the original bias), so their product is the best rank-``r`` approximation of
``W`` (Eckart–Young). ``r`` is chosen per layer: the smallest rank keeping ``energy`` of ``Σ S²`` (the share of the
layer's squared Frobenius norm), or ``ceil(rank_ratio × min(out, in))``. A layer is left as it is when
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
    weight = linear.weight.detach()
    u, s, vh = torch.linalg.svd(weight.double(), full_matrices=False)
    root = s[:rank].sqrt()
    first = nn.Linear(linear.in_features, rank, bias=False, dtype=weight.dtype)
    second = nn.Linear(rank, linear.out_features, bias=linear.bias is not None, dtype=weight.dtype)
    with torch.no_grad():
        first.weight.copy_((root[:, None] * vh[:rank]).to(weight.dtype))
        second.weight.copy_((u[:, :rank] * root[None, :]).to(weight.dtype))
        if linear.bias is not None and second.bias is not None:
            second.bias.copy_(linear.bias.detach())
    return FactorizedLinear(first, second)


@dataclass(frozen=True)
class LowRank:
    """Truncated-SVD factorization of every nn.Linear where it saves parameters; rank per layer by energy or ratio."""

    energy: float | None = 0.9  # share of Σ S² kept per layer
    rank_ratio: float | None = None  # or: this share of the full rank (then ``energy`` must be None)
    kind: ClassVar[str] = "lowrank"

    def __post_init__(self) -> None:
        if (self.energy is None) == (self.rank_ratio is None):
            raise ConfigError("low-rank takes exactly one of energy= or rank_ratio=")
        value = self.energy if self.energy is not None else self.rank_ratio
        assert value is not None
        if not 0.0 < value <= 1.0:
            raise ConfigError(f"low-rank energy/rank_ratio must be in (0, 1] (got {value})")

    @property
    def name(self) -> str:
        if self.energy is not None:
            return f"lowrank-{self.energy * 100:g}"
        assert self.rank_ratio is not None
        return f"lowrank-r{self.rank_ratio * 100:g}"

    @property
    def summary(self) -> str:
        if self.energy is not None:
            return f"truncated SVD keeping {self.energy:.0%} energy"
        return f"truncated SVD at {self.rank_ratio:.0%} of full rank"

    @property
    def params(self) -> Mapping[str, Any]:
        return {"energy": self.energy, "rank_ratio": self.rank_ratio}

    def apply(self, model: nn.Module, ctx: Context) -> nn.Module:
        variant = copy_module(model).eval()
        linears = [
            (name, m)
            for name, m in variant.named_modules()
            if isinstance(m, nn.Linear) and type(m.weight) is nn.Parameter and m.weight.dtype.is_floating_point
        ]
        if not linears:
            raise RecipeNotApplicable("low-rank factorization needs nn.Linear layers with float weights; none here")
        ranks: list[str] = []
        skipped = 0
        for name, linear in linears:
            s = torch.linalg.svdvals(linear.weight.detach().double())
            rank = choose_rank(s, self.energy, self.rank_ratio)
            if rank * (linear.in_features + linear.out_features) >= linear.in_features * linear.out_features:
                skipped += 1
                continue
            ranks.append(f"{name or 'model'}: {rank}/{s.numel()}")
            if not name:  # the model is one nn.Linear
                variant = factorize(linear, rank)
                break
            parent_name, _, child = name.rpartition(".")
            setattr(variant.get_submodule(parent_name), child, factorize(linear, rank))
        if not ranks:
            raise RecipeNotApplicable(
                f"{self.name}: no nn.Linear gets fewer parameters at the rank it needs ({skipped} layer(s) checked)"
            )
        add_note(variant, "ranks " + ", ".join(ranks) + (f"; {skipped} layer(s) kept dense" if skipped else ""))
        return variant
