"""Every recipe on a tiny model: the transformation really happened, outputs stay close, misfits say why."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from torch import nn
from torch.nn.utils import prune

from tests.reduce.conftest import HIDDEN, IN, MID, OUT
from wattwise.errors import ConfigError
from wattwise.reduce.base import Context, Recipe, RecipeNotApplicable, notes_of
from wattwise.reduce.recipes import (
    RECIPES,
    Chain,
    CompiledModule,
    FactorizedLinear,
    Int8Dynamic,
    Int8Static,
    LowPrecision,
    LowRank,
    MagnitudePrune,
    Precision,
    StructuredPrune,
    parse_recipe,
    parse_recipes,
)
from wattwise.reduce.recipes import quantize as quantize_module
from wattwise.reduce.recipes.lowrank import allocate_ranks, choose_rank
from wattwise.reduce.recipes.prune import sparsity


def run(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        out: torch.Tensor = model(x)
    assert isinstance(out, torch.Tensor)
    return out


def close(a: torch.Tensor, b: torch.Tensor, rel: float) -> bool:
    """Max abs difference within ``rel`` of the reference's largest magnitude."""
    return float((a.float() - b.float()).abs().max()) <= rel * float(b.abs().max())


def at(model: nn.Module, index: int) -> nn.Linear:
    """The nn.Linear at ``index`` of a Sequential (typed, for the checks below)."""
    assert isinstance(model, nn.Sequential)
    found = model[index]
    assert isinstance(found, nn.Linear)
    return found


def pair_at(model: nn.Module, index: int) -> FactorizedLinear:
    assert isinstance(model, nn.Sequential)
    found = model[index]
    assert isinstance(found, FactorizedLinear)
    return found


def snapshot(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


class NoLinear(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(x)


QUICK: list[Recipe] = [
    Int8Dynamic(compile=False),
    Int8Static(compile=False),
    MagnitudePrune(0.5),
    MagnitudePrune(0.5, scope="layer"),
    StructuredPrune(0.3),
    LowRank(energy=None, rank_ratio=0.25),
    Precision("bf16"),
    Precision("fp16", autocast=True),
    Chain((MagnitudePrune(0.5), Int8Dynamic(compile=False))),
]


@pytest.mark.parametrize("recipe", QUICK, ids=lambda r: r.name)
def test_apply_never_modifies_the_input_model(recipe: Recipe, mlp: nn.Sequential, ctx: Context) -> None:
    before = snapshot(mlp)
    variant = recipe.apply(mlp, ctx)
    assert variant is not mlp
    after = mlp.state_dict()
    assert before.keys() == after.keys()
    assert all(type(after[k]) is torch.Tensor and torch.equal(before[k], after[k]) for k in before)
    assert not prune.is_pruned(mlp) and isinstance(recipe, Recipe)


@pytest.mark.parametrize("recipe", QUICK[:-1], ids=lambda r: r.name)
def test_no_linear_layer_is_not_applicable_in_one_line(recipe: Recipe, inputs: torch.Tensor) -> None:
    with pytest.raises(RecipeNotApplicable) as info:
        recipe.apply(NoLinear(), Context((inputs,), calibration=lambda: iter([(inputs,)])))
    assert "\n" not in str(info.value) and str(info.value)


# -- quantization --------------------------------------------------------------------------------------------


def test_int8_dynamic_puts_int8_per_channel_weights_in_every_linear(
    mlp: nn.Sequential, ctx: Context, inputs: torch.Tensor
) -> None:
    from torchao.quantization import Int8Tensor

    variant = Int8Dynamic(compile=False).apply(mlp, ctx)
    linears = [m for m in variant.modules() if isinstance(m, nn.Linear)]
    assert len(linears) == 3
    for layer in linears:
        assert isinstance(layer.weight, Int8Tensor)
        assert layer.weight.qdata.dtype == torch.int8
        assert layer.weight.scale.numel() == layer.out_features  # one scale per output channel
    assert close(run(variant, inputs), run(mlp, inputs), 0.03)


def test_int8_dynamic_falls_back_to_the_deprecated_api_and_says_so(
    mlp: nn.Sequential, ctx: Context, inputs: torch.Tensor, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(model: nn.Module) -> None:
        raise RuntimeError("no kernel here\nsecond line")

    monkeypatch.setattr(quantize_module, "_torchao_int8_dynamic", broken)
    variant = Int8Dynamic(compile=False).apply(mlp, ctx)
    assert sum(type(m).__module__ == "torch.ao.nn.quantized.dynamic.modules.linear" for m in variant.modules()) == 3
    assert any("DEPRECATED" in note and "no kernel here" in note for note in notes_of(variant))
    assert close(run(variant, inputs), run(mlp, inputs), 0.05)
    with pytest.raises(RuntimeError, match="no kernel"):
        Int8Dynamic(compile=False, fallback=False).apply(mlp, ctx)


def test_int8_static_calibrates_and_stores_int8_weights_only(
    mlp: nn.Sequential, ctx: Context, inputs: torch.Tensor
) -> None:
    variant = Int8Static(compile=False).apply(mlp, ctx)
    assert isinstance(variant, torch.fx.GraphModule)
    targets = {str(n.target) for n in variant.graph.nodes if n.op == "call_function"}
    assert any("quantize_per_tensor" in t for t in targets)  # activations: static, calibrated scales
    assert any("dequantize_per_channel" in t for t in targets)  # weights: per channel
    state = variant.state_dict()
    assert sum(1 for v in state.values() if v.dtype == torch.int8) == 3
    assert not any(v.dtype == torch.float32 and v.dim() == 2 for v in state.values())  # fp32 copies dropped
    variant.eval()  # eval functions call it; exported graphs refuse it unless allowed
    assert close(run(variant, inputs), run(mlp, inputs), 0.05)
    assert run(variant, inputs[:3]).shape == (3, OUT)  # batch size is dynamic
    assert any("calibrated on 4 batch" in note for note in notes_of(variant))


class Bag(nn.Module):
    """Token ids → mean embedding → linear: a model whose size is mostly its embedding table."""

    def __init__(self) -> None:
        super().__init__()
        self.table = nn.Embedding(2000, IN)
        self.head = nn.Linear(IN, OUT)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.head(self.table(ids).mean(dim=1))
        return out


@pytest.mark.parametrize("recipe", [Int8Dynamic(compile=False), Int8Static(compile=False)], ids=lambda r: r.name)
def test_int8_recipes_also_quantize_embedding_tables(recipe: Recipe) -> None:
    from torchao.quantization import Int8Tensor

    from wattwise.reduce.bench import size_on_disk

    model = Bag().eval()
    ids = torch.randint(0, 2000, (6, 9), generator=torch.Generator().manual_seed(5))
    ctx = Context((ids,), calibration=lambda: iter([(ids,)]))
    variant = recipe.apply(model, ctx)
    assert close(run(variant, ids), run(model, ids), 0.05)
    assert run(variant, ids[:2, :4]).shape == (2, OUT)
    assert size_on_disk(variant)[0] < 0.4 * size_on_disk(model)[0]
    assert any("nn.Embedding" in note for note in notes_of(variant))
    if isinstance(recipe, Int8Dynamic):
        assert isinstance(variant.get_submodule("table").weight, Int8Tensor)
        plain = Int8Dynamic(compile=False, embeddings=False).apply(model, ctx)
        assert type(plain.get_submodule("table").weight) is nn.Parameter


class BagByWeight(Bag):
    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        rows = self.table.weight[ids] * 2.0  # reads the table itself: int8 torchao tables do not support that
        out: torch.Tensor = self.head(rows.mean(dim=1))
        return out


@pytest.mark.parametrize("recipe", [Int8Dynamic(compile=False), Int8Static(compile=False)], ids=lambda r: r.name)
def test_int8_keeps_tables_fp32_where_int8_tables_break_the_model(recipe: Recipe) -> None:
    model = BagByWeight().eval()
    ids = torch.randint(0, 2000, (6, 9), generator=torch.Generator().manual_seed(5))
    variant = recipe.apply(model, Context((ids,), calibration=lambda: iter([(ids,)])))
    assert any(note.startswith("nn.Embedding tables kept fp32") for note in notes_of(variant)), notes_of(variant)
    assert close(run(variant, ids), run(model, ids), 0.05)


def test_int8_static_needs_calibration(mlp: nn.Sequential, inputs: torch.Tensor) -> None:
    with pytest.raises(RecipeNotApplicable, match="calibration"):
        Int8Static().apply(mlp, Context((inputs,)))
    with pytest.raises(RecipeNotApplicable, match="no batches"):
        Int8Static(compile=False).apply(mlp, Context((inputs,), calibration=lambda: iter([])))


def test_compiled_int8_variants_run_close_to_fp32(mlp: nn.Sequential, ctx: Context, inputs: torch.Tensor) -> None:
    reference = run(mlp, inputs)
    for recipe in (Int8Dynamic(), Int8Static()):
        variant = recipe.apply(mlp, ctx)
        assert isinstance(variant, CompiledModule)
        assert close(run(variant, inputs), reference, 0.05), recipe.name
        assert close(run(variant, inputs[:5]), reference[:5], 0.05), recipe.name  # a new shape recompiles
        with torch.inference_mode():  # inference tensors fail the guards: one more compile, still filtered
            assert close(variant(inputs.clone()), reference, 0.05), recipe.name
        assert set(variant.state_dict()) == {f"module.{k}" for k in variant.module.state_dict()}


# -- pruning --------------------------------------------------------------------------------------------------


def test_global_pruning_zeroes_the_smallest_weights_over_all_layers(mlp: nn.Sequential, ctx: Context) -> None:
    variant = MagnitudePrune(0.5).apply(mlp, ctx)
    assert not prune.is_pruned(variant)  # made permanent: plain weights, no masks or hooks
    assert sparsity(variant) == pytest.approx(0.5, abs=1e-3)
    original = torch.cat([m.weight.detach().abs().flatten() for m in mlp.modules() if isinstance(m, nn.Linear)])
    pruned = torch.cat([m.weight.detach().flatten() for m in variant.modules() if isinstance(m, nn.Linear)])
    assert float(original[pruned != 0].min()) >= float(original[pruned == 0].max())
    per_layer = [float((m.weight == 0).float().mean()) for m in variant.modules() if isinstance(m, nn.Linear)]
    assert max(per_layer) - min(per_layer) > 0.01  # one threshold for all, so layers differ


def test_layer_pruning_zeroes_the_amount_of_each_layer(mlp: nn.Sequential, ctx: Context) -> None:
    variant = MagnitudePrune(0.25, scope="layer").apply(mlp, ctx)
    for layer in (m for m in variant.modules() if isinstance(m, nn.Linear)):
        assert float((layer.weight == 0).float().mean()) == pytest.approx(0.25, abs=0.01)
    assert at(variant, 0).bias is not None and bool((at(variant, 0).bias != 0).all())  # biases untouched


def test_pruning_fine_tunes_with_the_masks_attached(mlp: nn.Sequential, inputs: torch.Tensor) -> None:
    calls: list[bool] = []

    def train_fn(model: nn.Module) -> None:
        calls.append(prune.is_pruned(model))
        optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
        for _ in range(3):
            optimizer.zero_grad()
            model(inputs).pow(2).sum().backward()
            optimizer.step()

    variant = MagnitudePrune(0.5).apply(mlp, Context((inputs,), train_fn=train_fn))
    assert calls == [True]
    assert sparsity(variant) == pytest.approx(0.5, abs=1e-3)  # pruned weights did not grow back
    assert not torch.equal(at(variant, 0).bias, at(mlp, 0).bias)  # but training happened
    assert any("fine-tuned" in note for note in notes_of(variant))
    untuned = MagnitudePrune(0.5, fine_tune=False).apply(mlp, Context((inputs,), train_fn=train_fn))
    assert len(calls) == 1 and sparsity(untuned) == pytest.approx(0.5, abs=1e-3)


def test_structured_pruning_shrinks_the_layers(mlp: nn.Sequential, ctx: Context, inputs: torch.Tensor) -> None:
    variant = StructuredPrune(0.25).apply(mlp, ctx)
    assert isinstance(variant, nn.Sequential)
    shapes = [(m.in_features, m.out_features) for m in variant.modules() if isinstance(m, nn.Linear)]
    assert shapes == [(IN, HIDDEN - 8), (HIDDEN - 8, MID - 6), (MID - 6, OUT)]
    assert run(variant, inputs).shape == (len(inputs), OUT)


def test_structured_pruning_removes_the_weakest_neurons(mlp: nn.Sequential, inputs: torch.Tensor) -> None:
    with torch.no_grad():  # every 4th hidden neuron made weak: those 8 go
        at(mlp, 0).weight[::4] *= 0.01
    variant = StructuredPrune(0.25).apply(mlp, Context((inputs,)))
    keep = [i for i in range(HIDDEN) if i % 4]
    assert torch.equal(at(variant, 0).weight, at(mlp, 0).weight[keep])
    assert torch.equal(at(variant, 0).bias, at(mlp, 0).bias[keep])
    columns = at(mlp, 2).weight[:, keep]  # the next layer lost the matching inputs, then its own weakest outputs
    rows = columns.abs().sum(dim=1).topk(MID - 6).indices.sort().values
    assert torch.equal(at(variant, 2).weight, columns[rows])
    assert torch.equal(at(variant, 4).weight, at(mlp, 4).weight[:, rows])


def test_structured_pruning_keeps_outputs_when_only_dead_neurons_go(inputs: torch.Tensor) -> None:
    model = nn.Sequential(nn.Linear(IN, 8), nn.ReLU(), nn.Dropout(0.1), nn.Linear(8, OUT)).eval()
    with torch.no_grad():
        at(model, 0).weight[:2] = 0.0
        at(model, 0).bias[:2] = -1.0  # ReLU(-1) = 0: these two neurons never fire
    variant = StructuredPrune(0.25).apply(model, Context((inputs,)))
    assert at(variant, 0).out_features == 6 and at(variant, 3).in_features == 6
    assert torch.allclose(run(variant, inputs), run(model, inputs), atol=1e-6)


class Residual(nn.Module):
    """``x + b(relu(a(x)))``: a's hidden units feed only b, so they can go; the residual stream is left alone."""

    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Linear(IN, 16)
        self.b = nn.Linear(16, IN)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        update: torch.Tensor = self.b(torch.relu(self.a(x)))
        return x + update


class Gated(nn.Module):
    """A SwiGLU feed-forward block: ``down(silu(gate(x)) * up(x))``; gate and up lose the same units."""

    def __init__(self) -> None:
        super().__init__()
        self.gate, self.up, self.down = nn.Linear(IN, 16), nn.Linear(IN, 16), nn.Linear(16, OUT)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.down(nn.functional.silu(self.gate(x)) * self.up(x))
        return out


class HiddenReused(nn.Module):
    """The hidden value also leaves the block: removing a unit would change the output's width."""

    def __init__(self) -> None:
        super().__init__()
        self.a, self.b = nn.Linear(IN, IN), nn.Linear(IN, IN)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.a(x))
        out: torch.Tensor = self.b(h) + h
        return out


class DataDependent(nn.Module):
    """Python control flow on a tensor's value: torch.export refuses it, the module tree is read instead."""

    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Linear(IN, 16), nn.ReLU(), nn.Linear(16, OUT))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.body(x) if float(x.sum()) > -1e9 else self.body(-x)
        return out


def test_structured_pruning_shrinks_a_hidden_block_beside_a_residual(inputs: torch.Tensor) -> None:
    model = Residual().eval()
    with torch.no_grad():
        model.a.weight[:4] = 0.0
        model.a.bias[:4] = -1.0  # four dead units: exactly those go, and the output does not change
    variant = StructuredPrune(0.25).apply(model, Context((inputs,)))
    assert isinstance(variant, Residual)
    assert (variant.a.out_features, variant.b.in_features, variant.b.out_features) == (12, 12, IN)
    assert torch.allclose(run(variant, inputs), run(model, inputs), atol=1e-6)
    assert any("(graph)" in note for note in notes_of(variant))


def test_structured_pruning_shrinks_gate_and_up_together(inputs: torch.Tensor) -> None:
    model = Gated().eval()
    with torch.no_grad():
        model.up.weight[::4] = 0.0
        model.up.bias[::4] = 0.0  # up(x) is 0 for these units, so silu(gate) * up contributes nothing
    variant = StructuredPrune(0.25).apply(model, Context((inputs,)))
    assert isinstance(variant, Gated)
    assert variant.gate.out_features == variant.up.out_features == variant.down.in_features == 12
    assert torch.allclose(run(variant, inputs), run(model, inputs), atol=1e-5)


def test_structured_pruning_falls_back_to_the_module_tree(inputs: torch.Tensor) -> None:
    variant = StructuredPrune(0.25).apply(DataDependent().eval(), Context((inputs,)))
    assert isinstance(variant, DataDependent)
    first = variant.body[0]
    assert isinstance(first, nn.Linear) and first.out_features == 12
    assert any("(module tree)" in note for note in notes_of(variant))


def conv_net() -> nn.Sequential:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        return nn.Sequential(
            nn.Conv2d(3, 8, 3, padding=1),
            nn.BatchNorm2d(8),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(8, 4, 3),
            nn.Flatten(),
            nn.Linear(4 * 2 * 2, OUT),
        ).eval()


def test_structured_pruning_removes_conv_channels_with_their_batchnorm() -> None:
    model = conv_net()
    with torch.no_grad():  # channels 1 and 5 never fire: zero filters, then BatchNorm maps 0 to -1, ReLU to 0
        conv, norm = model[0], model[1]
        assert isinstance(conv, nn.Conv2d) and isinstance(norm, nn.BatchNorm2d) and conv.bias is not None
        conv.weight[[1, 5]] = 0.0
        conv.bias[[1, 5]] = 0.0
        assert norm.running_mean is not None and norm.running_var is not None
        norm.running_mean.zero_()
        norm.running_var.fill_(1.0)
        norm.bias[[1, 5]] = -1.0
    x = torch.randn(4, 3, 8, 8, generator=torch.Generator().manual_seed(2))
    variant = StructuredPrune(0.25).apply(model, Context((x,)))
    assert isinstance(variant, nn.Sequential)
    first, kept_norm, second = variant[0], variant[1], variant[4]
    assert isinstance(first, nn.Conv2d) and isinstance(kept_norm, nn.BatchNorm2d) and isinstance(second, nn.Conv2d)
    assert (first.out_channels, kept_norm.num_features, second.in_channels) == (6, 6, 6)
    assert first.weight.shape == (6, 3, 3, 3) and second.weight.shape == (4, 6, 3, 3)
    assert kept_norm.running_mean is not None and kept_norm.running_mean.shape == (6,)
    assert second.out_channels == 4  # flatten ends the next group
    assert torch.allclose(run(variant, x), run(model, x), atol=1e-6)
    assert run(model, x).shape == (4, OUT)


def test_structured_pruning_leaves_grouped_convolutions_alone() -> None:
    depthwise = nn.Sequential(nn.Conv2d(4, 4, 3, groups=4), nn.ReLU(), nn.Conv2d(4, 2, 1)).eval()
    with pytest.raises(RecipeNotApplicable, match="none that can be rewired safely"):
        StructuredPrune(0.5).apply(depthwise, Context((torch.randn(1, 4, 6, 6),)))


@pytest.mark.parametrize(
    "model",
    [HiddenReused(), nn.Sequential(nn.Linear(IN, 8), nn.BatchNorm1d(8), nn.Linear(8, OUT)), nn.Linear(IN, OUT)],
    ids=["hidden-reused", "batchnorm-between", "single-linear"],
)
def test_structured_pruning_refuses_what_it_cannot_rewire(model: nn.Module, inputs: torch.Tensor) -> None:
    with pytest.raises(RecipeNotApplicable, match="none that can be rewired safely"):
        StructuredPrune(0.3).apply(model.eval(), Context((inputs,)))


# -- low rank -------------------------------------------------------------------------------------------------


def test_choose_rank_by_energy_and_ratio() -> None:
    s = torch.tensor([3.0, 2.0, 1.0, 0.0])  # squares 9, 4, 1: cumulative 9/14, 13/14, 1
    assert choose_rank(s, 0.5, None) == 1
    assert choose_rank(s, 0.9, None) == 2
    assert choose_rank(s, 0.95, None) == 3
    assert choose_rank(s, 1.0, None) == 3
    assert choose_rank(s, None, 0.5) == 2
    assert choose_rank(torch.zeros(3), 0.9, None) == 1


def test_lowrank_replaces_linears_by_pairs_with_the_expected_ranks(inputs: torch.Tensor) -> None:
    generator = torch.Generator().manual_seed(3)
    model = nn.Sequential(nn.Linear(IN, HIDDEN), nn.ReLU(), nn.Linear(HIDDEN, OUT)).eval()
    with torch.no_grad():  # the first layer has rank 3 exactly
        at(model, 0).weight.copy_(torch.randn(HIDDEN, 3, generator=generator) @ torch.randn(3, IN, generator=generator))
    variant = LowRank(energy=0.999).apply(model, Context((inputs,)))
    pair = pair_at(variant, 0)
    assert pair.rank == 3
    assert (at(pair, 0).in_features, at(pair, 0).out_features) == (IN, 3) and at(pair, 0).bias is None
    assert (at(pair, 1).in_features, at(pair, 1).out_features) == (3, HIDDEN)
    assert at(variant, 2).out_features == OUT  # 32→4 stays a Linear: a pair would not be smaller
    assert torch.allclose(run(variant, inputs), run(model, inputs), atol=1e-4)
    by_ratio = LowRank(energy=None, rank_ratio=0.25).apply(model, Context((inputs,)))
    assert pair_at(by_ratio, 0).rank == 4  # ceil(0.25 × min(32, 16))


def test_lowrank_keeps_outputs_close_at_high_energy(inputs: torch.Tensor) -> None:
    generator = torch.Generator().manual_seed(4)
    u, _ = torch.linalg.qr(torch.randn(64, 64, generator=generator))
    v, _ = torch.linalg.qr(torch.randn(IN, IN, generator=generator))
    spectrum = 0.5 ** torch.arange(IN, dtype=torch.float32)  # a decaying spectrum, as trained layers have
    model = nn.Sequential(nn.Linear(IN, 64), nn.Tanh(), nn.Linear(64, OUT)).eval()
    with torch.no_grad():
        at(model, 0).weight.copy_(u[:, :IN] @ torch.diag(spectrum) @ v.T)
    variant = LowRank(energy=0.999).apply(model, Context((inputs,)))
    assert pair_at(variant, 0).rank < IN // 2
    assert close(run(variant, inputs), run(model, inputs), 0.05)


def test_lowrank_is_not_applicable_when_nothing_gets_smaller(mlp: nn.Sequential, inputs: torch.Tensor) -> None:
    with pytest.raises(RecipeNotApplicable, match=r"no nn\.Linear gets fewer parameters"):
        LowRank(energy=None, rank_ratio=1.0).apply(mlp, Context((inputs,)))


def test_allocate_ranks_spends_the_budget_where_the_spectrum_is() -> None:
    flat = torch.ones(8)  # every singular value equal: each rank keeps 1/8 of the layer
    steep = torch.tensor([10.0, 1.0, 0.5, 0.1, 0.1, 0.1, 0.1, 0.1])  # almost all in the first
    layers = [(flat, 10, 8), (steep, 10, 8)]
    ranks = allocate_ranks(layers, budget_params=60)  # 6 ranks of 10 weights: 1 + 1 to start, 4 more
    assert ranks == [5, 1]  # the flat layer gains more per weight from every extra rank
    assert allocate_ranks(layers, budget_params=20) == [1, 1]
    assert allocate_ranks([(flat, 10, 3)], budget_params=1e9) == [3]  # never beyond the layer's max rank
    cheap, dear = (torch.tensor([1.0, 1.0]), 5, 2), (torch.tensor([1.0, 1.0]), 50, 2)
    assert allocate_ranks([cheap, dear], budget_params=60) == [2, 1]  # same gain: the cheaper rank first


def spectral_mlp(seed: int) -> nn.Sequential:
    """An MLP whose two hidden layers have decaying spectra of different steepness."""
    generator = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng(devices=[]):  # seeded initial biases and last layer, whatever ran before
        torch.manual_seed(seed)
        model = nn.Sequential(nn.Linear(64, 64), nn.Tanh(), nn.Linear(64, 64), nn.Tanh(), nn.Linear(64, 1)).eval()
    with torch.no_grad():
        for index, decay in ((0, 0.9), (2, 0.6)):
            u, _ = torch.linalg.qr(torch.randn(64, 64, generator=generator))
            v, _ = torch.linalg.qr(torch.randn(64, 64, generator=generator))
            at(model, index).weight.copy_(u @ torch.diag(decay ** torch.arange(64.0)) @ v.T)
    return model


def test_lowrank_params_budget_keeps_that_share_of_the_weights() -> None:
    model = spectral_mlp(5)
    x = torch.randn(16, 64, generator=torch.Generator().manual_seed(6))
    variant = LowRank(params_budget=0.25).apply(model, Context((x,)))
    first, second = pair_at(variant, 0), pair_at(variant, 2)
    kept = (first.rank + second.rank) * 128
    assert kept <= 0.25 * 2 * 64 * 64 and kept > 0.25 * 2 * 64 * 64 - 2 * 128  # spent up to the last rank
    assert first.rank > second.rank  # the slower-decaying spectrum needs more rank
    assert isinstance(variant, nn.Sequential)
    assert isinstance(variant[4], nn.Linear)  # 64→1 is smaller than any pair: kept dense, outside the budget
    uniform = LowRank(rank_ratio=0.125).apply(model, Context((x,)))  # rank 8 + 8: the same number of weights
    assert pair_at(uniform, 0).rank + pair_at(uniform, 2).rank == first.rank + second.rank

    def kept_energy(ranks: tuple[int, int]) -> float:  # Σ over layers of the share of Σ S² kept: what is maximised
        shares = []
        for index, rank in zip((0, 2), ranks, strict=True):
            s = torch.linalg.svdvals(at(model, index).weight.detach().double()) ** 2
            shares.append(float(s[:rank].sum() / s.sum()))
        return sum(shares)

    assert kept_energy((first.rank, second.rank)) > kept_energy((8, 8))
    assert parse_recipe("lowrank-p25") == LowRank(params_budget=0.25)


def test_lowrank_accuracy_budget_finds_the_smallest_ranks_within_it() -> None:
    model = spectral_mlp(7)
    x = torch.randn(64, 64, generator=torch.Generator().manual_seed(8))
    reference = run(model, x)
    calls: list[int] = []

    def metric(m: nn.Module) -> float:  # 100 × (1 - relative error to the model's own outputs)
        calls.append(1)
        error = float((run(m, x) - reference).norm() / reference.norm())
        return 100.0 * (1.0 - error)

    variant = LowRank(max_drop=2.0).apply(model, Context((x,), eval_fn=metric))
    assert metric(variant) >= 100.0 - 2.0
    ranks = pair_at(variant, 0).rank + pair_at(variant, 2).rank
    loose = LowRank(max_drop=20.0).apply(model, Context((x,), eval_fn=metric))
    assert pair_at(loose, 0).rank + pair_at(loose, 2).rank < ranks  # a looser budget buys smaller layers
    assert len(calls) == 8 + 1 + 8  # per search: the baseline, the largest factorization, six bisection steps
    assert any("accuracy budget" in note for note in notes_of(variant))
    assert parse_recipe("lowrank-drop0.5") == LowRank(max_drop=0.5)


def test_lowrank_accuracy_budget_needs_the_metric_and_says_when_it_cannot_hold(inputs: torch.Tensor) -> None:
    model = spectral_mlp(9)
    x = torch.randn(16, 64, generator=torch.Generator().manual_seed(10))
    with pytest.raises(RecipeNotApplicable, match="needs the evaluation function"):
        LowRank(max_drop=1.0).apply(model, Context((x,)))
    scores = iter([90.0, 10.0])  # the model scores 90, its largest factorization 10
    with pytest.raises(RecipeNotApplicable, match=r"even the largest factorization scores 10"):
        LowRank(max_drop=1.0).apply(model, Context((x,), eval_fn=lambda m: next(scores)))
    with pytest.raises(ConfigError, match="exactly one of"):
        LowRank(params_budget=0.5, max_drop=1.0)
    with pytest.raises(ConfigError, match="max_drop"):
        LowRank(max_drop=-1.0)


# -- precision ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "dtype"), [("bf16", torch.bfloat16), ("fp16", torch.float16)])
def test_precision_casts_the_weights_and_keeps_fp32_outside(
    name: Any, dtype: torch.dtype, mlp: nn.Sequential, inputs: torch.Tensor
) -> None:
    variant = Precision(name).apply(mlp, Context((inputs,)))
    assert isinstance(variant, LowPrecision)
    assert {p.dtype for p in variant.parameters()} == {dtype}
    out = run(variant, inputs)
    assert out.dtype == torch.float32 and close(out, run(mlp, inputs), 0.05)
    auto = Precision(name, autocast=True).apply(mlp, Context((inputs,)))
    assert {p.dtype for p in auto.parameters()} == {torch.float32}
    assert close(run(auto, inputs), run(mlp, inputs), 0.05)


class Fp32Only(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(IN, OUT)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.linear.weight.dtype != torch.float32:
            raise RuntimeError("\"some_kernel\" not implemented for 'BFloat16'")
        out: torch.Tensor = self.linear(x)
        return out


class Huge(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(IN, OUT)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.linear(x)
        return out * 1e6  # beyond fp16's 65504


def test_precision_not_applicable_where_the_trial_forward_fails(inputs: torch.Tensor) -> None:
    with pytest.raises(RecipeNotApplicable, match="does not run on this CPU/op set"):
        Precision("bf16").apply(Fp32Only().eval(), Context((inputs,)))
    with pytest.raises(RecipeNotApplicable, match="overflow"):
        Precision("fp16").apply(Huge().eval(), Context((inputs,)))
    assert run(Precision("bf16").apply(Huge().eval(), Context((inputs,))), inputs).isfinite().all()


# -- chains and names -----------------------------------------------------------------------------------------


def test_chain_prunes_then_quantizes(mlp: nn.Sequential, ctx: Context, inputs: torch.Tensor) -> None:
    chain = Chain((MagnitudePrune(0.5), Int8Dynamic(compile=False)))
    assert chain.name == "prune-50+int8-dynamic-eager" and chain.kind == "chain"
    variant = chain.apply(mlp, ctx)
    qdata = [getattr(m.weight, "qdata") for m in variant.modules() if isinstance(m, nn.Linear)]  # noqa: B009
    zeros = sum(int((q == 0).sum()) for q in qdata) / sum(q.numel() for q in qdata)
    assert zeros >= 0.5  # the pruned zeros survive quantization
    assert len(notes_of(variant)) >= 2  # both steps' notes
    pruned = MagnitudePrune(0.5).apply(mlp, ctx)
    assert close(run(variant, inputs), run(pruned, inputs), 0.05)


def test_chain_names_the_step_that_does_not_apply(mlp: nn.Sequential, ctx: Context) -> None:
    with pytest.raises(RecipeNotApplicable, match=r"^prune-50: .*prune before quantizing"):
        Chain((Int8Dynamic(compile=False), MagnitudePrune(0.5))).apply(mlp, ctx)


def test_parse_recipes_reads_names_numbers_and_chains() -> None:
    recipes = parse_recipes("int8-dynamic, prune-50+int8-dynamic,prune-layer-20,prune-structured-40,lowrank-80")
    assert [r.name for r in recipes] == [
        "int8-dynamic",
        "prune-50+int8-dynamic",
        "prune-layer-20",
        "prune-structured-40",
        "lowrank-80",
    ]
    assert isinstance(recipes[1], Chain) and recipes[1].steps == (MagnitudePrune(0.5), Int8Dynamic())
    assert parse_recipe("lowrank-r25") == LowRank(energy=None, rank_ratio=0.25)
    assert parse_recipe("BF16") == Precision("bf16")
    for name, factory in RECIPES.items():
        assert factory().name == name
    with pytest.raises(ConfigError, match=r"unknown recipe 'int4'.*known: bf16"):
        parse_recipes("int8-dynamic,int4")
    with pytest.raises(ConfigError, match="no recipe named"):
        parse_recipes(" , ")


@pytest.mark.parametrize(
    "build",
    [lambda: MagnitudePrune(1.0), lambda: StructuredPrune(-0.1), lambda: LowRank(energy=0.9, rank_ratio=0.5)],
)
def test_bad_parameters_fail_when_the_recipe_is_built(build: Any) -> None:
    with pytest.raises(ConfigError):
        build()
