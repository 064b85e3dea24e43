"""``optimize``: build a variant of a model per recipe, measure each against the fp32 baseline, mark the front.

    report = optimize(model, eval_fn, example_inputs, ["int8-dynamic", "prune-50+int8-dynamic"],
                      calibration=calibration)
    for v in report.variants:
        print(v.name, v.energy_j_per_inference, v.metric, v.pareto, v.error)

Every variant is measured under one tracker run (one window each), stored in memory unless ``store`` is given.
A recipe that does not apply, fails, or returns something other than an ``nn.Module``, and an ``eval_fn`` that
raises, cost that variant only: it gets one ``error`` line and the others still run.
"""

from __future__ import annotations

import dataclasses
import gc
import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from wattwise.errors import ConfigError
from wattwise.reduce import require_torch
from wattwise.reduce.base import Context, EvalFn, Recipe, TrainFn, VariantResult, one_line
from wattwise.reduce.bench import BenchSettings, measure

if TYPE_CHECKING:
    from torch import nn

    from wattwise.config import Settings
    from wattwise.measure.tracker import Tracker
    from wattwise.store.base import RunStore

__all__ = ["BASELINE", "OptimizeReport", "optimize"]

BASELINE = "fp32"


@dataclass(frozen=True)
class OptimizeReport:
    """The measured variants (baseline first, ``pareto`` marked) and how they were measured."""

    variants: tuple[VariantResult, ...]
    bench: BenchSettings
    run_id: str | None = None  # the tracker run that measured them (in ``store`` when one was given)
    notes: tuple[str, ...] = field(default_factory=tuple)  # the tracker's notes: how energy was measured

    @property
    def baseline(self) -> VariantResult:
        return self.variants[0]

    @property
    def front(self) -> list[VariantResult]:
        return [v for v in self.variants if v.pareto]

    def to_dict(self) -> dict[str, Any]:
        return {
            "baseline": self.baseline.name,
            "run_id": self.run_id,
            "bench": {
                "warmup": self.bench.warmup,
                "repeats": self.bench.repeats,
                "batches": self.bench.batches,
                "min_time_s": self.bench.min_time_s,
            },
            "notes": list(self.notes),
            "variants": [v.to_dict() for v in self.variants],
        }

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent, default=str)


def _resolve(recipes: Iterable[Recipe | str] | None) -> list[Recipe]:
    from wattwise.reduce.recipes import DEFAULT_RECIPES, parse_recipe

    items: list[Recipe | str] = list(DEFAULT_RECIPES) if recipes is None else list(recipes)
    resolved: list[Recipe] = []
    for item in items:
        recipe = parse_recipe(item) if isinstance(item, str) else item
        if not callable(getattr(recipe, "apply", None)):
            raise ConfigError(f"{item!r} is not a recipe (it has no apply(model, ctx) method)")
        resolved.append(recipe)
    return resolved


def _check_inputs(model: Any, eval_fn: Any, example_inputs: Any) -> tuple[Any, ...]:
    import torch
    from torch import nn

    if not isinstance(model, nn.Module):
        raise ConfigError(f"the model must be a torch.nn.Module; got {type(model).__name__}")
    if not callable(eval_fn):
        raise ConfigError(f"eval_fn must be a function model -> metric; got {type(eval_fn).__name__}")
    batch = example_inputs if isinstance(example_inputs, tuple) else (example_inputs,)
    if not any(isinstance(x, torch.Tensor) for x in batch):
        raise ConfigError("example_inputs must be a tensor or a tuple of forward()'s arguments with a tensor")
    return batch


def optimize(
    model: nn.Module,
    eval_fn: EvalFn,
    example_inputs: Any,
    recipes: Sequence[Recipe | str] | None = None,
    *,
    calibration: Callable[[], Iterable[Any]] | None = None,
    train_fn: TrainFn | None = None,
    bench: BenchSettings | None = None,
    tracker_settings: Settings | None = None,
    store: RunStore | None = None,
    name: str = "optimize",
) -> OptimizeReport:
    """Measure ``model`` (the fp32 baseline) and one variant per recipe; see the module docstring.

    ``recipes``: Recipe objects or names (``"prune-50+int8-dynamic"``); None tries :data:`DEFAULT_RECIPES`.
    ``example_inputs``: the batch that is timed (a tensor, or a tuple of ``forward``'s arguments).
    ``calibration``: a callable returning batches, for static int8. ``train_fn``: fine-tunes a model in place
    (pruning uses it). ``model`` is never modified: the baseline and every recipe work on copies.
    """
    require_torch()
    from wattwise.reduce.base import copy_module
    from wattwise.reduce.bench import open_tracker
    from wattwise.reduce.pareto import mark_pareto

    batch = _check_inputs(model, eval_fn, example_inputs)
    chosen = _resolve(recipes)
    bench = bench or BenchSettings()
    ctx = Context(example_inputs=batch, calibration=calibration, train_fn=train_fn, eval_fn=eval_fn)
    results: list[VariantResult] = []
    with open_tracker(tracker_settings, store, name) as tracker:
        baseline = copy_module(model).eval()
        results.append(
            measure(baseline, BASELINE, "none (the model as given)", ctx, eval_fn, bench=bench, tracker=tracker)
        )
        del baseline
        for recipe in chosen:
            results.append(_run_recipe(recipe, model, ctx, eval_fn, bench, tracker))
            gc.collect()  # the variant is gone: free its memory before the next one is built
        run_id = tracker.run_id
    notes = tracker.result.notes if tracker.result is not None else ()
    return OptimizeReport(variants=tuple(mark_pareto(results)), bench=bench, run_id=run_id, notes=tuple(notes))


def _run_recipe(
    recipe: Recipe, model: nn.Module, ctx: Context, eval_fn: EvalFn, bench: BenchSettings, tracker: Tracker
) -> VariantResult:
    """Build and measure one variant; whatever goes wrong becomes its one error line."""
    from torch import nn

    from wattwise.reduce.recipes import describe

    label = describe(recipe)
    try:
        variant = recipe.apply(model, ctx)
    except Exception as exc:
        return VariantResult(name=recipe.name, recipe=label, error=one_line(exc))
    if not isinstance(variant, nn.Module):
        return VariantResult(
            name=recipe.name, recipe=label, error=f"recipe returned {type(variant).__name__}, not nn.Module"
        )
    result = measure(variant, recipe.name, label, ctx, eval_fn, bench=bench, tracker=tracker)
    return _with_params(result, recipe)


def _with_params(result: VariantResult, recipe: Recipe) -> VariantResult:
    return dataclasses.replace(result, details={**result.details, "params": dict(recipe.params)})
