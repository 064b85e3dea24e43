"""The ONNX Runtime and distillation recipes on tiny MLPs: the transformation happened and outputs stay close."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("torch")
pytest.importorskip("onnxruntime")

import torch
from torch import nn

from wattwise.reduce.base import Context, RecipeNotApplicable, notes_of
from wattwise.reduce.recipes.distill import Distill, DistillingStudent, drop_blocks, narrow_mlp
from wattwise.reduce.recipes.onnx import OnnxRuntime, OrtModule


def mlp(d_in: int = 32, hidden: int = 256, d_out: int = 10, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Linear(d_in, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(), nn.Linear(hidden, d_out)
    )


def cosine(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(nn.functional.cosine_similarity(a.flatten(1), b.flatten(1), dim=1).mean())


def ort(recipe: OnnxRuntime, model: nn.Module, ctx: Context) -> OrtModule:
    variant = recipe.apply(model, ctx)
    assert isinstance(variant, OrtModule)
    return variant


@pytest.fixture
def model() -> nn.Module:
    return mlp().eval()


@pytest.fixture
def ctx() -> Context:
    gen = torch.Generator().manual_seed(1)
    batches = [torch.randn(16, 32, generator=gen) for _ in range(4)]

    def calibration() -> Iterator[tuple[torch.Tensor]]:
        for batch in batches:
            yield (batch,)

    return Context(example_inputs=(torch.randn(8, 32, generator=gen),), calibration=calibration)


# -- ONNX Runtime --------------------------------------------------------------------------------------------


def test_onnx_fp32_matches_torch_and_takes_other_batch_sizes(model: nn.Module, ctx: Context) -> None:
    before = copy.deepcopy(model.state_dict())
    variant = ort(OnnxRuntime(), model, ctx)
    assert variant.onnx_path.suffix == ".onnx" and variant.onnx_path.is_file()
    assert variant.op_types().get("Gemm", 0) + variant.op_types().get("MatMul", 0) == 3
    for batch in (ctx.example_inputs[0], torch.randn(3, 32)):
        with torch.no_grad():
            expected = model(batch)
        got = variant(batch)
        assert isinstance(got, torch.Tensor) and got.shape == expected.shape
        torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-4)
    assert variant.size_bytes == variant.onnx_path.stat().st_size
    assert variant.parameter_count == sum(p.numel() for p in model.parameters())
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())  # the input model is untouched


def test_onnx_int8_dynamic_is_smaller_and_close(model: nn.Module, ctx: Context) -> None:
    fp32 = ort(OnnxRuntime(), model, ctx)
    int8 = ort(OnnxRuntime("dynamic"), model, ctx)
    assert int8.op_types().get("MatMulInteger", 0) >= 3 or int8.op_types().get("DynamicQuantizeMatMul", 0) >= 3
    assert int8.size_bytes < fp32.size_bytes / 3
    x = ctx.example_inputs[0]
    with torch.no_grad():
        expected = model(x)
    assert cosine(int8(x), expected) > 0.99
    assert float((int8(x) - expected).abs().max()) < 0.05 * float(expected.abs().max())


def test_onnx_int8_static_uses_the_calibration_batches(model: nn.Module, ctx: Context) -> None:
    variant = ort(OnnxRuntime("static"), model, ctx)
    ops = variant.op_types()
    assert ops.get("QuantizeLinear", 0) >= 1 and ops.get("DequantizeLinear", 0) >= 3
    assert variant.size_bytes < ort(OnnxRuntime(), model, ctx).size_bytes / 3
    x = ctx.example_inputs[0]
    with torch.no_grad():
        assert cosine(variant(x), model(x)) > 0.99
    assert OnnxRuntime("auto").name == "onnx-int8" and OnnxRuntime("static").name == "onnx-int8-static"


def test_onnx_static_without_calibration_does_not_apply(model: nn.Module) -> None:
    with pytest.raises(RecipeNotApplicable, match="calibration"):
        OnnxRuntime("static").apply(model, Context(example_inputs=(torch.randn(2, 32),)))


def test_onnx_export_failure_names_the_op() -> None:
    class Cummax(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc = nn.Linear(4, 4)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.cummax(self.fc(x), dim=1).values

    with pytest.raises(RecipeNotApplicable, match=r"aten::cummax") as info:
        OnnxRuntime().apply(Cummax(), Context(example_inputs=(torch.randn(2, 4),)))
    assert "\n" not in str(info.value)


def test_onnx_needs_tensor_inputs(model: nn.Module) -> None:
    with pytest.raises(RecipeNotApplicable, match="tensors"):
        OnnxRuntime().apply(model, Context(example_inputs=([1.0, 2.0],)))


def test_onnx_variant_owns_and_removes_its_folder(model: nn.Module, ctx: Context) -> None:
    variant = ort(OnnxRuntime(), model, ctx)
    twin = copy.deepcopy(variant)
    assert twin.onnx_path != variant.onnx_path and twin.onnx_path.is_file()
    folder = variant.onnx_path.parent
    variant.close()
    assert not folder.exists()
    torch.testing.assert_close(twin(ctx.example_inputs[0]), model(ctx.example_inputs[0]).detach(), atol=1e-5, rtol=1e-4)
    with pytest.raises(RuntimeError, match="closed"):
        variant(ctx.example_inputs[0])
    twin.close()


# -- distillation --------------------------------------------------------------------------------------------


def blobs(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Three Gaussian classes in 10 dimensions, centres fixed, overlapping a little."""
    centres = torch.Generator().manual_seed(123)
    means = torch.randn(3, 10, generator=centres) * 1.5
    gen = torch.Generator().manual_seed(seed)
    y = torch.randint(0, 3, (n,), generator=gen)
    x = means[y] + torch.randn(n, 10, generator=gen)
    return x, y


def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    with torch.no_grad():
        return float((model.eval()(x).argmax(dim=1) == y).float().mean())


@pytest.fixture(scope="module")
def teacher() -> nn.Module:
    torch.manual_seed(0)
    net = nn.Sequential(
        nn.Linear(10, 128), nn.BatchNorm1d(128), nn.ReLU(), nn.Linear(128, 128), nn.ReLU(), nn.Linear(128, 3)
    )
    x, y = blobs(1024, seed=1)
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    net.train()
    for _ in range(60):
        for i in range(0, 1024, 128):
            loss = nn.functional.cross_entropy(net(x[i : i + 128]), y[i : i + 128])
            opt.zero_grad()
            loss.backward()  # type: ignore[no-untyped-call]
            opt.step()
    return net.eval()


def batches() -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    x, y = blobs(1024, seed=1)
    for i in range(0, 1024, 128):
        yield x[i : i + 128], y[i : i + 128]


def params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def test_distillation_gives_a_smaller_student_that_keeps_accuracy(teacher: nn.Module) -> None:
    x_test, y_test = blobs(2000, seed=2)
    teacher_acc = accuracy(teacher, x_test, y_test)
    assert teacher_acc > 0.85
    recipe = Distill(width=0.25, data=batches, epochs=15, lr=3e-3)
    student = recipe.apply(teacher, Context(example_inputs=(x_test[:8],)))
    widths = [m.out_features for m in student.modules() if isinstance(m, nn.Linear)]
    assert widths == [32, 32, 3]
    assert [m.num_features for m in student.modules() if isinstance(m, nn.BatchNorm1d)] == [32]
    assert params(student) < params(teacher) / 8
    assert accuracy(student, x_test, y_test) >= teacher_acc - 0.03
    assert recipe.name == "distill-w25" and recipe.kind == "distill"
    assert [m.out_features for m in teacher.modules() if isinstance(m, nn.Linear)] == [128, 128, 3]  # untouched


def test_distillation_through_train_fn_injects_the_soft_term(teacher: nn.Module) -> None:
    x_test, _ = blobs(512, seed=3)
    seen: list[nn.Module] = []

    def train_fn(model: nn.Module) -> None:  # a loss that ignores the outputs: only the injected term teaches
        seen.append(model)
        opt = torch.optim.Adam(model.parameters(), lr=3e-3)
        model.train()
        for _ in range(10):
            for x, _y in batches():
                loss = 0.0 * model(x).sum()
                opt.zero_grad()
                loss.backward()
                opt.step()

    untrained = Distill(width=0.25, init="random", epochs=0, data=lambda: iter([(x_test[:4], None)]), labels=True)
    with pytest.raises(RecipeNotApplicable, match="no batches"):
        untrained.apply(teacher, Context(example_inputs=(x_test[:8],)))
    student = Distill(width=0.25, init="random", alpha=1.0).apply(
        teacher, Context(example_inputs=(x_test[:8],), train_fn=train_fn)
    )
    assert isinstance(seen[0], DistillingStudent)
    with torch.no_grad():
        agree = float((student(x_test).argmax(1) == teacher(x_test).argmax(1)).float().mean())
    assert agree > 0.9


def test_distillation_with_a_student_factory_and_bad_inputs(teacher: nn.Module) -> None:
    x = torch.randn(4, 10)
    with pytest.raises(RecipeNotApplicable, match="training data"):
        Distill().apply(teacher, Context(example_inputs=(x,)))
    with pytest.raises(RecipeNotApplicable, match=r"not an nn\.Module"):
        Distill(student=lambda: "nope", data=batches).apply(teacher, Context(example_inputs=(x,)))  # type: ignore[arg-type,return-value]
    with pytest.raises(RecipeNotApplicable, match="shape"):
        Distill(student=lambda: nn.Linear(10, 5), data=batches).apply(teacher, Context(example_inputs=(x,)))
    conv = nn.Sequential(nn.Conv1d(1, 4, 3), nn.Flatten(), nn.Linear(32, 3))
    with pytest.raises(RecipeNotApplicable, match="MLP-like"):
        narrow_mlp(conv, 0.5)
    student = Distill(
        student=lambda: nn.Sequential(nn.Linear(10, 8), nn.ReLU(), nn.Linear(8, 3)), data=batches, epochs=3
    )
    out = student.apply(teacher, Context(example_inputs=(x,)))
    assert params(out) < params(teacher) and student.name == "distill-student"


class Stack(nn.Module):
    """An embedding-like model: a stack of four residual blocks, then unit-length outputs (as MiniLM's)."""

    def __init__(self, width: int = 16, seed: int = 0) -> None:
        super().__init__()
        torch.manual_seed(seed)
        self.inp = nn.Linear(10, width)
        self.blocks = nn.ModuleList(nn.Sequential(nn.Linear(width, width), nn.Tanh()) for _ in range(4))
        self.out = nn.Linear(width, 8)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.inp(x)
        for block in self.blocks:
            h = h + block(h)
        return nn.functional.normalize(self.out(h), dim=-1)


def test_depth_student_keeps_evenly_spaced_blocks_and_learns_the_embeddings() -> None:
    teacher = Stack().eval()
    x = torch.randn(256, 10, generator=torch.Generator().manual_seed(4))

    def data() -> Iterator[tuple[torch.Tensor]]:
        for start in range(0, 256, 32):
            yield (x[start : start + 32],)

    untrained = drop_blocks(teacher, 0.5)
    assert isinstance(untrained, Stack) and len(untrained.blocks) == 2
    for kept, original in zip(untrained.blocks, (teacher.blocks[0], teacher.blocks[3]), strict=True):
        assert all(torch.equal(a, b) for a, b in zip(kept.parameters(), original.parameters(), strict=True))
    recipe = Distill(depth=0.5, data=data, labels=False, epochs=30, lr=3e-3)
    student = recipe.apply(teacher, Context(example_inputs=(x[:8],)))
    assert isinstance(student, Stack) and recipe.name == "distill-d50"
    assert len(student.blocks) == 2 and len(teacher.blocks) == 4
    assert any("mse" in note for note in notes_of(student))  # unit-length outputs: MSE, not KL on logits
    with torch.no_grad():
        before = cosine(untrained(x), teacher(x))
        after = cosine(student(x), teacher(x))
    assert after > before and after > 0.95


def test_depth_student_needs_a_stack_of_identical_blocks() -> None:
    with pytest.raises(RecipeNotApplicable, match="stack of identical blocks"):
        drop_blocks(nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2)), 0.5)
    with pytest.raises(RecipeNotApplicable, match="keeps them all"):
        drop_blocks(Stack(), 0.9)


def test_onnx_dynamo_exporter_where_onnxscript_is_installed(model: nn.Module, ctx: Context) -> None:
    import importlib.util

    recipe = OnnxRuntime(exporter="dynamo")
    if importlib.util.find_spec("onnxscript") is None:
        with pytest.raises(RecipeNotApplicable, match="pip install onnxscript"):
            recipe.apply(model, ctx)
        return
    variant = ort(recipe, model, ctx)
    x = torch.randn(5, 32)  # another batch size than the example's
    with torch.no_grad():
        torch.testing.assert_close(variant(x), model(x), atol=1e-5, rtol=1e-4)


def test_reduce_range_follows_the_cpu_flags(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import platform

    from wattwise.reduce.recipes.onnx import _needs_reduce_range

    monkeypatch.setattr(platform, "machine", lambda: "x86_64")
    avx2 = tmp_path / "avx2"
    avx2.write_text("processor\t: 0\nflags\t\t: fpu sse2 avx avx2 fma\n")
    vnni = tmp_path / "vnni"
    vnni.write_text("processor\t: 0\nflags\t\t: fpu sse2 avx avx2 avx512f avx512_vnni\n")
    assert _needs_reduce_range(avx2) is True
    assert _needs_reduce_range(vnni) is False
    assert _needs_reduce_range(tmp_path / "missing") is False
    monkeypatch.setattr(platform, "machine", lambda: "aarch64")
    assert _needs_reduce_range(avx2) is False
