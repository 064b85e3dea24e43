"""The digits example (issue 5): 50 % unstructured pruning and int8 each keep accuracy within 1 point of fp32."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from wattwise.config import Settings
from wattwise.reduce.base import Context
from wattwise.reduce.bench import BenchSettings
from wattwise.reduce.examples.digits import DigitsExample, build_digits
from wattwise.reduce.optimize import optimize
from wattwise.reduce.recipes import Int8Dynamic, Int8Static, MagnitudePrune
from wattwise.reduce.recipes.prune import sparsity


@pytest.fixture(scope="module")
def digits() -> DigitsExample:
    return build_digits()


def test_the_example_trains_a_good_seeded_model(digits: DigitsExample) -> None:
    model, eval_fn, example_inputs, calibration, _ = digits
    assert isinstance(model, nn.Sequential) and not model.training
    assert eval_fn(model) > 95.0
    assert example_inputs[0].shape == (64, 64)
    assert sum(1 for _ in calibration()) == 8
    again = build_digits()
    assert isinstance(again.model, nn.Sequential)
    first, first_again = model[0], again.model[0]
    assert isinstance(first, nn.Linear) and isinstance(first_again, nn.Linear)
    assert torch.equal(first_again.weight, first.weight)  # seeded: the same model every time


@pytest.mark.parametrize(
    "recipe",
    [MagnitudePrune(0.5), MagnitudePrune(0.5, fine_tune=False), Int8Dynamic(compile=False), Int8Static(compile=False)],
    ids=lambda r: f"{r.name}{'' if getattr(r, 'fine_tune', True) else '-no-fine-tune'}",
)
def test_pruning_and_int8_keep_accuracy_within_one_point(digits: DigitsExample, recipe: object) -> None:
    model, eval_fn, example_inputs, calibration, train_fn = digits
    assert isinstance(recipe, MagnitudePrune | Int8Dynamic | Int8Static)
    ctx = Context(example_inputs, calibration=calibration, train_fn=train_fn)
    baseline = eval_fn(model)
    variant = recipe.apply(model, ctx)
    accuracy = eval_fn(variant)
    print(f"digits {recipe.name}: fp32 {baseline:.2f} % → {accuracy:.2f} %")
    assert abs(accuracy - baseline) <= 1.0
    if isinstance(recipe, MagnitudePrune):
        assert sparsity(variant) == pytest.approx(0.5, abs=1e-3)


def test_optimize_on_digits_reports_every_variant(digits: DigitsExample, settings: Settings) -> None:
    model, eval_fn, example_inputs, calibration, train_fn = digits
    report = optimize(
        model,
        eval_fn,
        example_inputs,
        ["prune-50", "int8-dynamic-eager", "prune-structured-30", "lowrank-90", "bf16"],
        calibration=calibration,
        train_fn=train_fn,
        bench=BenchSettings(warmup=1, repeats=3, batches=2, min_time_s=0.05),
        tracker_settings=settings,
    )
    for variant in report.variants:
        print(f"digits optimize {variant.name}: {variant.metric} {variant.error or ''}")
        assert variant.error is None and variant.metric is not None
        assert variant.energy_j_per_inference is not None and variant.energy_j_per_inference > 0
    by_name = {v.name: v for v in report.variants}
    assert by_name["prune-structured-30"].parameters is not None and by_name["fp32"].parameters is not None
    assert by_name["prune-structured-30"].parameters < 0.75 * by_name["fp32"].parameters
    assert any(v.pareto for v in report.variants)
