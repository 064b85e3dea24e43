"""The recipes, their CLI names, and :class:`Chain` to compose them (``prune-50+int8-dynamic``).

Names with a number take any percentage: ``prune-N`` (global L1, N % of the weights), ``prune-layer-N`` (N % of
each layer), ``prune-structured-N`` (N % of the hidden neurons), ``lowrank-N`` (keep N % of each layer's
spectral energy), ``lowrank-rN`` (N % of the full rank), ``lowrank-pN`` (N % of the layers' weights, allocated
across layers: a compute budget), ``lowrank-dropX`` (the smallest factorization whose metric falls at most X
points), ``distill-wN`` / ``distill-dN`` (a student with N % of the hidden width / of the blocks).
:data:`RECIPES` lists the ready-made names; :func:`parse_recipes` reads a comma-separated list where ``+`` chains steps.

Importing this package needs torch (it says what to install otherwise).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from wattwise.reduce import require_torch

require_torch()

from torch import nn  # noqa: E402

from wattwise.errors import ConfigError  # noqa: E402
from wattwise.reduce.base import Context, Recipe, RecipeNotApplicable  # noqa: E402
from wattwise.reduce.recipes.lowrank import FactorizedLinear, LowRank  # noqa: E402
from wattwise.reduce.recipes.precision import LowPrecision, Precision  # noqa: E402
from wattwise.reduce.recipes.prune import MagnitudePrune, StructuredPrune  # noqa: E402
from wattwise.reduce.recipes.quantize import CompiledModule, Int8Dynamic, Int8Static  # noqa: E402

__all__ = [
    "DEFAULT_RECIPES",
    "RECIPES",
    "Chain",
    "CompiledModule",
    "FactorizedLinear",
    "Int8Dynamic",
    "Int8Static",
    "LowPrecision",
    "LowRank",
    "MagnitudePrune",
    "Precision",
    "StructuredPrune",
    "describe",
    "parse_recipe",
    "parse_recipes",
]


@dataclass(frozen=True)
class Chain:
    """Recipes applied one after the other (each on the previous one's output), e.g. prune then quantize."""

    steps: tuple[Recipe, ...]
    kind: ClassVar[str] = "chain"

    def __post_init__(self) -> None:
        if not self.steps:
            raise ConfigError("a chain needs at least one recipe")

    @property
    def name(self) -> str:
        return "+".join(step.name for step in self.steps)

    @property
    def params(self) -> Mapping[str, Any]:
        return {"steps": [{"name": s.name, "kind": s.kind, **s.params} for s in self.steps]}

    def apply(self, model: nn.Module, ctx: Context) -> nn.Module:
        for step in self.steps:
            try:
                model = step.apply(model, ctx)
            except RecipeNotApplicable as exc:
                raise RecipeNotApplicable(f"{step.name}: {exc}") from exc
        return model


def describe(recipe: Recipe) -> str:
    """A short line for tables: the recipe's ``summary`` when it has one (``L1 unstructured 50 % over all
    layers``), else its kind and parameters; a chain joins its steps with →."""
    if isinstance(recipe, Chain):
        return " → ".join(describe(step) for step in recipe.steps)
    summary = getattr(recipe, "summary", None)
    if isinstance(summary, str) and summary:
        return summary
    params = ", ".join(f"{key}={value}" for key, value in recipe.params.items())
    return f"{recipe.kind}({params})"


def _onnx(quantize: str) -> Recipe:
    from wattwise.reduce.recipes.onnx import OnnxRuntime  # onnxruntime is imported only when asked for

    return OnnxRuntime(quantize=quantize)  # type: ignore[arg-type]


def _distill(width: float | None = None, depth: float | None = None) -> Recipe:
    from wattwise.reduce.recipes.distill import Distill

    return Distill(width=width or 0.5, depth=depth)


RECIPES: Mapping[str, Callable[[], Recipe]] = {
    "int8-dynamic": lambda: Int8Dynamic(compile=True),
    "int8-dynamic-eager": lambda: Int8Dynamic(compile=False),
    "int8-static": lambda: Int8Static(compile=True),
    "int8-static-eager": lambda: Int8Static(compile=False),
    "prune-50": lambda: MagnitudePrune(0.5),
    "prune-layer-50": lambda: MagnitudePrune(0.5, scope="layer"),
    "prune-structured-30": lambda: StructuredPrune(0.3),
    "lowrank-90": lambda: LowRank(energy=0.9),
    "lowrank-r50": lambda: LowRank(rank_ratio=0.5),
    "lowrank-p50": lambda: LowRank(params_budget=0.5),
    "lowrank-drop1": lambda: LowRank(max_drop=1.0),
    "bf16": lambda: Precision("bf16"),
    "fp16": lambda: Precision("fp16"),
    "bf16-autocast": lambda: Precision("bf16", autocast=True),
    "fp16-autocast": lambda: Precision("fp16", autocast=True),
    "onnx-fp32": lambda: _onnx("none"),
    "onnx-int8-dynamic": lambda: _onnx("dynamic"),
    "onnx-int8-static": lambda: _onnx("static"),
    "distill-w50": lambda: _distill(width=0.5),
    "distill-d50": lambda: _distill(depth=0.5),
}
"""Ready-made names → factories (numbered names accept any percentage, see the module docstring)."""

DEFAULT_RECIPES: tuple[str, ...] = (
    "int8-dynamic",
    "int8-static",
    "prune-50",
    "prune-structured-30",
    "lowrank-90",
    "bf16",
    "fp16",
    "prune-50+int8-dynamic",
    "onnx-fp32",
    "onnx-int8-dynamic",
)
"""What :func:`~wattwise.reduce.optimize.optimize` tries when no recipes are given."""

_NUMBERED: tuple[tuple[re.Pattern[str], Callable[[float], Recipe]], ...] = (
    (re.compile(r"prune-(\d+(?:\.\d+)?)"), MagnitudePrune),
    (re.compile(r"prune-layer-(\d+(?:\.\d+)?)"), lambda f: MagnitudePrune(f, scope="layer")),
    (re.compile(r"prune-structured-(\d+(?:\.\d+)?)"), StructuredPrune),
    (re.compile(r"lowrank-(\d+(?:\.\d+)?)"), lambda f: LowRank(energy=f)),
    (re.compile(r"lowrank-r(\d+(?:\.\d+)?)"), lambda f: LowRank(rank_ratio=f)),
    (re.compile(r"lowrank-p(\d+(?:\.\d+)?)"), lambda f: LowRank(params_budget=f)),
    (re.compile(r"distill-w(\d+(?:\.\d+)?)"), lambda f: _distill(width=f)),
    (re.compile(r"distill-d(\d+(?:\.\d+)?)"), lambda f: _distill(depth=f)),
)


def parse_recipe(text: str) -> Recipe:
    """One recipe from its name; ``a+b`` is a :class:`Chain`. ConfigError names the known ones otherwise."""
    parts = [part.strip() for part in text.split("+")]
    if len(parts) > 1:
        return Chain(tuple(parse_recipe(part) for part in parts))
    name = parts[0].lower()
    factory = RECIPES.get(name)
    if factory is not None:
        return factory()
    drop = re.fullmatch(r"lowrank-drop(\d+(?:\.\d+)?)", name)
    if drop:  # a metric difference, not a percentage
        return LowRank(max_drop=float(drop.group(1)))
    for pattern, build in _NUMBERED:
        match = pattern.fullmatch(name)
        if match:
            return build(float(match.group(1)) / 100.0)
    known = ", ".join(sorted(RECIPES))
    raise ConfigError(
        f"unknown recipe {text.strip()!r}; known: {known} (numbers are percentages: prune-N, prune-layer-N, "
        "prune-structured-N, lowrank-N, lowrank-rN, lowrank-pN; lowrank-dropX in metric points; join steps with '+')"
    )


def parse_recipes(text: str | Sequence[str]) -> list[Recipe]:
    """``"int8-dynamic,prune-50+int8-dynamic"`` (or a list of such names) → recipes, in order."""
    items = text.split(",") if isinstance(text, str) else list(text)
    names = [item.strip() for item in items if item.strip()]
    if not names:
        raise ConfigError("no recipe named; `wattwise optimize --list-recipes` shows them")
    return [parse_recipe(name) for name in names]
