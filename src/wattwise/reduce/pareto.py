"""The Pareto front over (energy per inference: lower is better, metric: higher is better).

A variant is on the front when no other variant is at least as good on both and strictly better on one.
Identical points do not dominate each other, so all of them are on the front. A variant with an error, or
without a finite energy or metric, is never on the front and never dominates. Pure functions, no torch.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence

from wattwise.reduce.base import VariantResult

__all__ = ["dominates", "mark_pareto", "pareto_front"]


def _point(v: VariantResult) -> tuple[float, float] | None:
    energy, metric = v.energy_j_per_inference, v.metric
    if v.error is not None or energy is None or metric is None:
        return None
    if not (math.isfinite(energy) and math.isfinite(metric)):
        return None
    return energy, metric


def dominates(a: VariantResult, b: VariantResult) -> bool:
    """Whether ``a`` uses no more energy, scores no lower, and is strictly better on one of the two."""
    pa, pb = _point(a), _point(b)
    if pa is None or pb is None:
        return False
    return pa[0] <= pb[0] and pa[1] >= pb[1] and (pa[0] < pb[0] or pa[1] > pb[1])


def pareto_front(variants: Sequence[VariantResult]) -> list[bool]:
    """For each variant, whether it is on the front (same order)."""
    return [
        _point(v) is not None and not any(dominates(other, v) for other in variants if other is not v) for v in variants
    ]


def mark_pareto(variants: Sequence[VariantResult]) -> list[VariantResult]:
    """Copies of ``variants`` with ``pareto`` set (frozen records are replaced, not modified)."""
    return [dataclasses.replace(v, pareto=on) for v, on in zip(variants, pareto_front(variants), strict=True)]
