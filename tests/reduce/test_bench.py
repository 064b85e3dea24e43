"""The benchmark (one variant), the Pareto front, and optimize() with bad input: one line per variant."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

from tests.reduce.conftest import make_inputs
from wattwise.config import Settings
from wattwise.errors import ConfigError
from wattwise.reduce.base import Context, VariantResult
from wattwise.reduce.bench import BenchSettings, measure, size_on_disk, stored_values
from wattwise.reduce.optimize import OptimizeReport, optimize
from wattwise.reduce.pareto import dominates, mark_pareto, pareto_front
from wattwise.reduce.recipes import Int8Dynamic, MagnitudePrune, Precision
from wattwise.store import open_store

# -- Pareto front ---------------------------------------------------------------------------------------------


def v(name: str, energy: float | None, metric: float | None, error: str | None = None) -> VariantResult:
    return VariantResult(name=name, recipe=name, energy_j_per_inference=energy, metric=metric, error=error)


def test_front_keeps_the_variants_nothing_beats() -> None:
    variants = [v("fp32", 10.0, 97.0), v("int8", 4.0, 96.5), v("slow", 12.0, 96.0), v("bf16", 6.0, 95.0)]
    assert pareto_front(variants) == [True, True, False, False]
    marked = mark_pareto(variants)
    assert [x.pareto for x in marked] == [True, True, False, False]
    assert not any(x.pareto for x in variants)  # inputs are frozen records, replaced not modified


def test_front_ties_and_missing_values() -> None:
    variants = [
        v("a", 5.0, 90.0),
        v("a-twin", 5.0, 90.0),  # identical points do not dominate each other
        v("same-energy-worse", 5.0, 89.0),
        v("same-metric-costlier", 6.0, 90.0),
        v("no-energy", None, 99.0),
        v("no-metric", 1.0, None),
        v("nan", math.nan, 99.0),
        v("failed", 0.1, 100.0, error="eval: boom"),
    ]
    assert pareto_front(variants) == [True, True, False, False, False, False, False, False]
    assert not dominates(variants[0], variants[1]) and dominates(variants[0], variants[2])
    assert not dominates(variants[7], variants[0])  # an errored variant never dominates
    assert pareto_front([]) == []


# -- one variant ----------------------------------------------------------------------------------------------


def test_measure_reports_positive_latency_and_measured_energy(
    mlp: nn.Sequential, ctx: Context, quick: BenchSettings, settings: Settings
) -> None:
    result = measure(mlp, "fp32", "none", ctx, lambda m: 0.5, bench=quick, tracker_settings=settings)
    assert result.error is None and result.metric == 0.5
    assert result.latency_ms is not None and result.latency_ms > 0
    assert result.latency_ms_p10 is not None and result.latency_ms_p90 is not None
    assert result.latency_ms_p10 <= result.latency_ms <= result.latency_ms_p90
    assert result.energy_j_per_inference is not None and result.energy_j_per_inference > 0
    assert result.energy_source == "estimated"  # no RAPL, no GPU: the CPU and memory models
    assert result.throughput_per_s is not None and result.throughput_per_s > 0
    details = result.details
    assert details["rounds"] >= quick.repeats and details["batch_size"] == len(ctx.example_inputs[0])
    samples = details["rounds"] * quick.batches * details["batch_size"]
    assert result.energy_j_per_inference == pytest.approx(details["window_energy_j"] / samples)
    assert details["window_s"] >= quick.min_time_s
    assert result.parameters == sum(p.numel() for p in mlp.parameters())
    assert result.size_bytes is not None and result.size_bytes > 4 * result.parameters
    assert not (settings.home / "wattwise.db").exists()  # the user's store is left alone


def test_measure_turns_a_failing_eval_into_one_line(
    mlp: nn.Sequential, ctx: Context, quick: BenchSettings, settings: Settings
) -> None:
    def eval_fn(model: nn.Module) -> float:
        raise LookupError("labels\nmore")

    result = measure(mlp, "fp32", "none", ctx, eval_fn, bench=quick, tracker_settings=settings)
    assert result.error == "eval: LookupError: labels"
    assert result.latency_ms is None and result.energy_j_per_inference is None
    nan = measure(mlp, "fp32", "none", ctx, lambda m: math.nan, bench=quick, tracker_settings=settings)
    assert nan.error == "eval: ValueError: eval_fn returned nan"


def test_stored_values_count_zeros_of_pruned_and_quantized_weights(mlp: nn.Sequential, ctx: Context) -> None:
    total = sum(p.numel() for p in mlp.parameters())
    pruned = MagnitudePrune(0.5).apply(mlp, ctx)
    values, nonzero = stored_values(pruned)
    assert values == total and nonzero == pytest.approx(total - 0.5 * (total - 60), abs=2)  # 60 biases
    quantized = Int8Dynamic(compile=False).apply(pruned, ctx)
    values, nonzero = stored_values(quantized)
    assert values == total and nonzero is not None and nonzero <= total - 0.5 * (total - 60) + 2
    size, method = size_on_disk(quantized)
    assert method == "torch.save(state_dict)" and size < size_on_disk(mlp)[0]  # tiny: pickle overhead dominates


def test_size_falls_back_to_tensor_bytes_and_says_so(mlp: nn.Sequential, monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: Any, **kwargs: Any) -> None:
        raise TypeError("cannot pickle 'Thing'")

    monkeypatch.setattr(torch, "save", refuse)
    size, method = size_on_disk(mlp)
    assert size == sum(p.numel() * 4 for p in mlp.parameters())
    assert method.startswith("sum of tensor storage bytes") and "cannot pickle" in method


# -- optimize -------------------------------------------------------------------------------------------------


def accuracy_like(model: nn.Module) -> float:
    with torch.no_grad():
        out: torch.Tensor = model(make_inputs())
    return float(out.sum())


def test_optimize_measures_the_baseline_and_every_recipe(
    mlp: nn.Sequential, quick: BenchSettings, settings: Settings, calibration: Any
) -> None:
    report = optimize(
        mlp,
        accuracy_like,
        make_inputs(),
        ["prune-50", "bf16", "int8-dynamic-eager", "prune-50+int8-dynamic-eager"],
        calibration=calibration,
        bench=quick,
        tracker_settings=settings,
    )
    assert isinstance(report, OptimizeReport)
    assert [x.name for x in report.variants] == [
        "fp32",
        "prune-50",
        "bf16",
        "int8-dynamic-eager",
        "prune-50+int8-dynamic-eager",
    ]
    assert all(x.error is None for x in report.variants), [x.error for x in report.variants]
    assert report.front and all(x.pareto for x in report.front)
    assert (
        report.variants[4].recipe == "L1 unstructured 50% over all layers → torchao int8 dynamic + int8 tables, eager"
    )
    assert report.variants[4].details["params"]["steps"][0]["amount"] == 0.5
    data = json.loads(report.to_json())
    for row in data["variants"]:
        assert {"name", "recipe", "size_bytes", "latency_ms", "energy_j_per_inference", "metric", "pareto"} <= set(row)
    assert data["baseline"] == "fp32" and data["run_id"]


class ConvOnly(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv1d(1, 2, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.conv(x.unsqueeze(1))
        return out.flatten(1)


class NotAModule:
    name = "broken"
    kind = "test"
    params: dict[str, Any] = {}  # noqa: RUF012

    def apply(self, model: nn.Module, ctx: Context) -> Any:
        return "a string"


class Crashes:
    name = "crashes"
    kind = "test"
    params: dict[str, Any] = {}  # noqa: RUF012

    def apply(self, model: nn.Module, ctx: Context) -> nn.Module:
        raise RuntimeError("out of memory\nat line 3")


def test_optimize_reports_each_bad_variant_in_one_line_and_runs_the_rest(
    quick: BenchSettings, settings: Settings
) -> None:
    def eval_fn(model: nn.Module) -> float:
        if any(p.dtype == torch.bfloat16 for p in model.parameters()):
            raise ValueError("bf16 outputs do not match the labels")
        return 1.0

    report = optimize(
        ConvOnly().eval(),
        eval_fn,
        (make_inputs(),),
        [Int8Dynamic(compile=False), NotAModule(), Crashes(), Precision("bf16"), "prune-50"],
        bench=quick,
        tracker_settings=settings,
    )
    errors = {x.name: x.error for x in report.variants}
    assert errors == {
        "fp32": None,
        "int8-dynamic-eager": "int8 dynamic quantization needs nn.Linear layers; this model has none",
        "broken": "recipe returned str, not nn.Module",
        "crashes": "RuntimeError: out of memory",
        "bf16": "eval: ValueError: bf16 outputs do not match the labels",
        "prune-50": None,
    }
    assert report.variants[-1].energy_j_per_inference is not None
    assert [x.pareto for x in report.variants if x.error] == [False] * 4


def test_optimize_rejects_what_is_not_a_model_or_an_eval(settings: Settings) -> None:
    with pytest.raises(ConfigError, match=r"must be a torch\.nn\.Module; got dict"):
        optimize({"weights": 1}, lambda m: 1.0, make_inputs(), tracker_settings=settings)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="eval_fn must be a function"):
        optimize(nn.Linear(2, 2), 0.5, make_inputs(), tracker_settings=settings)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="example_inputs must be a tensor"):
        optimize(nn.Linear(2, 2), lambda m: 1.0, "text", tracker_settings=settings)
    with pytest.raises(ConfigError, match="unknown recipe"):
        optimize(nn.Linear(2, 2), lambda m: 1.0, make_inputs(), ["int3"], tracker_settings=settings)


def test_optimize_stores_its_run_only_where_asked(
    mlp: nn.Sequential, quick: BenchSettings, settings: Settings, tmp_path: Path
) -> None:
    with open_store(str(tmp_path / "runs.db")) as store:
        report = optimize(
            mlp,
            accuracy_like,
            make_inputs(),
            ["prune-50"],
            bench=quick,
            tracker_settings=settings,
            store=store,
            name="my-optimize",
        )
        run = store.get(report.run_id or "")
    assert run.name == "my-optimize"
    assert [w.name for w in run.windows] == ["variant:fp32", "variant:prune-50"]
