"""Knowledge distillation: train a smaller student to match the model's (the teacher's) outputs.

The student comes from ``student`` (a factory returning a fresh ``nn.Module``); or from ``depth``: the model with
only that share of the blocks of its largest stack (an ``nn.ModuleList``/``nn.Sequential`` of two or more blocks of
one type and shape, such as a transformer's layers), evenly spaced and initialised from the teacher's, as
DistilBERT was built from every other layer of BERT (Sanh et al. 2019); or, for MLP-like models (the
``nn.Linear`` layers form one chain, each one's ``out_features`` the next one's ``in_features``, with only
parameter-free layers, ``BatchNorm1d`` or ``LayerNorm`` between them), from ``width``: every hidden width is
multiplied by it. Such a student starts from the teacher's weights for the hidden units with the largest weight
norms (``init="teacher"``) or from scratch (``init="random"``).

Training data, the first that is given:

* ``data``: a callable returning batches, each ``(*forward_args, labels)`` (``labels=True``; class indices, or
  ``None`` for none) or ``forward_args`` alone (``labels=False``). The loss is Hinton et al.'s
  ``alpha · T² · KL(softmax(teacher/T) ‖ softmax(student/T)) + (1 - alpha) · CE(student, labels)`` (``soft="kl"``,
  for logits), or ``alpha · MSE(student, teacher) + (1 - alpha) · CE`` (``soft="mse"``, e.g. for embeddings:
  then labels are not used).
* ``ctx.train_fn``: the user's own fine-tuning function, called on the student wrapped so that the distillation
  term joins whatever loss ``train_fn`` minimises: the wrapper's forward returns the student's outputs unchanged
  and adds ``alpha ×`` the soft term's gradient in the backward pass (a custom autograd function).

With neither, the recipe does not apply. ``soft="auto"`` (the default) takes MSE when the teacher's outputs are
unit-length vectors (normalised embeddings are not logits) and KL otherwise. The result is the student in eval mode
(an ordinary ``nn.Module``).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import torch
import torch.nn.functional as F
from torch import nn

from wattwise.reduce.base import Context, RecipeNotApplicable, add_note, copy_module, one_line

_NORMS = (nn.BatchNorm1d, nn.LayerNorm)


def soft_loss(student: torch.Tensor, teacher: torch.Tensor, kind: str, temperature: float) -> torch.Tensor:
    """The distillation term: KL between softened distributions (scaled by T²), or MSE of the raw outputs."""
    if kind == "mse":
        return F.mse_loss(student, teacher)
    t = temperature
    log_p = F.log_softmax(student / t, dim=-1)
    q = F.softmax(teacher / t, dim=-1)
    return F.kl_div(log_p, q, reduction="batchmean") * (t * t)


def _linear_chain(model: nn.Module) -> list[tuple[nn.Linear, list[nn.Module]]]:
    """The model's nn.Linear layers, in order, each with the norm layers that follow it (before the next one),
    if the layers form one chain and nothing else has parameters."""
    chain: list[tuple[nn.Linear, list[nn.Module]]] = []
    for module in model.modules():
        if isinstance(module, nn.Linear):
            chain.append((module, []))
        elif isinstance(module, _NORMS):
            if chain:
                chain[-1][1].append(module)
        elif any(True for _ in module.parameters(recurse=False)):
            raise RecipeNotApplicable(
                f"width scaling handles MLP-like models only ({type(module).__name__} has weights): pass student="
            )
    if len(chain) < 2:
        raise RecipeNotApplicable("width scaling needs at least two nn.Linear layers (a hidden layer): pass student=")
    for (a, _), (b, _) in itertools.pairwise(chain):
        if a.out_features != b.in_features:
            raise RecipeNotApplicable("the nn.Linear layers do not form a chain; pass student=<factory> instead")
    return chain


def narrow_mlp(model: nn.Module, width: float, init: Literal["teacher", "random"] = "teacher") -> nn.Module:
    """A copy of an MLP-like ``model`` whose hidden widths are ``width`` times the original (at least 1)."""
    if not 0.0 < width < 1.0:
        raise RecipeNotApplicable(f"width must be in (0, 1), got {width}")
    student = copy_module(model)
    chain = _linear_chain(student)
    names = {id(m): n for n, m in student.named_modules()}
    keep: torch.Tensor | None = None  # indices of the previous layer's kept outputs
    for i, (layer, norms) in enumerate(chain):
        weight = layer.weight.detach()
        bias = layer.bias.detach() if layer.bias is not None else None
        if keep is not None:
            weight = weight[:, keep]
        last = i == len(chain) - 1
        rows = torch.arange(weight.shape[0])
        if not last:
            count = max(1, round(layer.out_features * width))
            rows = weight.norm(dim=1).topk(count).indices.sort().values
        new = nn.Linear(weight.shape[1], rows.numel(), bias=bias is not None)
        if init == "teacher":
            with torch.no_grad():
                new.weight.copy_(weight[rows])
                if bias is not None and new.bias is not None:
                    new.bias.copy_(bias[rows])
        student.set_submodule(names[id(layer)], new)
        keep = None if last else rows
        for norm in norms if not last else []:
            if _features(norm) == layer.out_features:
                student.set_submodule(names[id(norm)], _narrow_norm(norm, rows, init))
    return student


def drop_blocks(model: nn.Module, depth: float) -> nn.Module:
    """A copy of ``model`` keeping ``depth`` of the blocks of its largest stack (see the module docstring): the
    first and the last block and evenly spaced ones between, with the teacher's weights."""
    if not 0.0 < depth < 1.0:
        raise RecipeNotApplicable(f"depth must be in (0, 1), got {depth}")
    student = copy_module(model)
    stacks: list[tuple[int, str, nn.ModuleList | nn.Sequential]] = []
    for name, module in student.named_modules():
        if not isinstance(module, nn.ModuleList | nn.Sequential) or len(module) < 2:
            continue
        blocks = list(module)
        shapes = [[tuple(p.shape) for p in b.parameters()] for b in blocks]
        if len({type(b) for b in blocks}) == 1 and all(s == shapes[0] for s in shapes) and shapes[0]:
            stacks.append((sum(p.numel() for p in module.parameters()), name, module))
    if not stacks:
        raise RecipeNotApplicable(
            "depth scaling needs a stack of identical blocks (an nn.ModuleList or nn.Sequential of layers of one "
            "type and shape); pass student=<factory> or width= instead"
        )
    _, name, stack = max(stacks, key=lambda item: item[0])
    count = len(stack)
    keep = max(1, round(depth * count))
    if keep == count:
        raise RecipeNotApplicable(f"depth {depth:.0%} of {count} blocks keeps them all")
    chosen = [0] if keep == 1 else sorted({round(i * (count - 1) / (keep - 1)) for i in range(keep)})
    kept = [stack[i] for i in chosen]
    smaller = nn.ModuleList(kept) if isinstance(stack, nn.ModuleList) else nn.Sequential(*kept)
    if name:
        student.set_submodule(name, smaller)
    else:
        raise RecipeNotApplicable("the model itself is the stack of blocks; pass student=<factory> instead")
    add_note(student, f"student: blocks {chosen} of {count} in {name!r}, initialised from the teacher")
    return student


def _features(norm: nn.Module) -> int | None:
    if isinstance(norm, nn.BatchNorm1d):
        return norm.num_features
    if isinstance(norm, nn.LayerNorm) and len(norm.normalized_shape) == 1:
        return int(norm.normalized_shape[0])
    return None


def _narrow_norm(norm: nn.Module, keep: torch.Tensor, init: str) -> nn.Module:
    """``norm`` (BatchNorm1d or 1-d LayerNorm) over the ``keep`` features only."""
    new: nn.BatchNorm1d | nn.LayerNorm
    if isinstance(norm, nn.BatchNorm1d):
        new = nn.BatchNorm1d(keep.numel(), eps=norm.eps, momentum=norm.momentum, affine=norm.affine)
        pairs = [(new.running_mean, norm.running_mean), (new.running_var, norm.running_var)]
    else:
        assert isinstance(norm, nn.LayerNorm)
        new = nn.LayerNorm(keep.numel(), eps=norm.eps, elementwise_affine=norm.elementwise_affine)
        pairs = []
    pairs += [(new.weight, norm.weight), (new.bias, norm.bias)]
    if init == "teacher":
        with torch.no_grad():
            for target, source in pairs:
                if isinstance(target, torch.Tensor) and isinstance(source, torch.Tensor):
                    target.copy_(source[keep])
    return new


class _InjectSoftGradient(torch.autograd.Function):
    """Identity forward; backward adds ``alpha × d(soft term)/d(student)`` to the incoming gradient."""

    @staticmethod
    def forward(ctx: Any, student: torch.Tensor, extra_grad: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(extra_grad)
        return student.view_as(student)

    @staticmethod
    def backward(ctx: Any, *grads: torch.Tensor) -> tuple[torch.Tensor, None]:
        (extra,) = ctx.saved_tensors
        return grads[0] + extra, None


class DistillingStudent(nn.Module):
    """What ``ctx.train_fn`` trains: the student, whose backward also carries the distillation term's gradient."""

    def __init__(self, student: nn.Module, teacher: nn.Module, soft: str, temperature: float, alpha: float) -> None:
        super().__init__()
        self.student = student
        self.__dict__["_teacher"] = teacher  # outside the module tree: train_fn's optimizer sees the student only
        self.soft, self.temperature, self.alpha = soft, temperature, alpha

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        out = self.student(*args, **kwargs)
        if not (torch.is_grad_enabled() and isinstance(out, torch.Tensor) and out.requires_grad):
            return out
        with torch.no_grad():
            target = self.__dict__["_teacher"](*args, **kwargs)
        with torch.enable_grad():
            probe = out.detach().requires_grad_(True)
            loss = self.alpha * soft_loss(probe, target, self.soft, self.temperature)
            (grad,) = torch.autograd.grad(loss, probe)
        result: torch.Tensor = _InjectSoftGradient.apply(out, grad)  # type: ignore[no-untyped-call]
        return result


def _auto_soft(outputs: Any) -> str:
    """``"mse"`` for unit-length output vectors (normalised embeddings), ``"kl"`` for anything else (logits)."""
    if isinstance(outputs, torch.Tensor) and outputs.is_floating_point() and outputs.dim() >= 2:
        norms = outputs.detach().float().norm(dim=-1)
        if norms.numel() and bool(torch.allclose(norms, torch.ones_like(norms), atol=1e-3)):
            return "mse"
    return "kl"


def _split(batch: Any, labels: bool) -> tuple[tuple[Any, ...], torch.Tensor | None]:
    items = tuple(batch) if isinstance(batch, tuple | list) else (batch,)
    if not labels:
        return items, None
    if len(items) < 2:
        raise RecipeNotApplicable("distillation batches with labels=True must be (*inputs, labels)")
    return items[:-1], items[-1]


@dataclass(frozen=True)
class Distill:
    """Knowledge distillation into a smaller student (see the module docstring)."""

    width: float = 0.5
    depth: float | None = None  # when given: the student keeps this share of the blocks (width is not used)
    student: Callable[[], nn.Module] | None = None
    data: Callable[[], Iterable[Any]] | None = None
    labels: bool = True
    soft: Literal["auto", "kl", "mse"] = "auto"
    temperature: float = 4.0
    alpha: float = 0.7
    epochs: int = 20
    lr: float = 1e-3
    init: Literal["teacher", "random"] = "teacher"
    kind: ClassVar[str] = "distill"

    @property
    def name(self) -> str:
        if self.student is not None:
            return "distill-student"
        if self.depth is not None:
            return f"distill-d{round(self.depth * 100)}"
        return f"distill-w{round(self.width * 100)}"

    @property
    def params(self) -> Mapping[str, Any]:
        return {
            "student": "factory"
            if self.student is not None
            else (f"depth x{self.depth}" if self.depth is not None else f"width x{self.width}"),
            "soft": self.soft,
            "temperature": self.temperature,
            "alpha": self.alpha,
            "epochs": self.epochs,
            "lr": self.lr,
            "init": self.init,
        }

    def _make_student(self, teacher: nn.Module, ctx: Context) -> nn.Module:
        if self.student is None and self.depth is not None:
            return drop_blocks(teacher, self.depth)
        if self.student is None:
            return narrow_mlp(teacher, self.width, self.init)
        student = self.student()
        if not isinstance(student, nn.Module):
            raise RecipeNotApplicable(f"the student factory returned {type(student).__name__}, not an nn.Module")
        return student

    def apply(self, model: nn.Module, ctx: Context) -> nn.Module:
        if self.data is None and ctx.train_fn is None:
            raise RecipeNotApplicable("distillation needs training data: pass data=<batches> or a train_fn")
        teacher = copy_module(model).eval()
        student = self._make_student(teacher, ctx)
        try:
            with torch.no_grad():
                student_out, teacher_out = student.eval()(*ctx.example_inputs), teacher(*ctx.example_inputs)
        except Exception as exc:
            raise RecipeNotApplicable(f"the student cannot run the example inputs: {one_line(exc, 160)}") from exc
        if getattr(student_out, "shape", None) != getattr(teacher_out, "shape", None):
            raise RecipeNotApplicable("the student's outputs do not have the teacher's shape")
        soft = self.soft if self.soft != "auto" else _auto_soft(teacher_out)
        if self.data is not None:
            steps = self._train(student, teacher, soft)
            add_note(student, f"distilled for {self.epochs} epoch(s), {steps} step(s), {soft}, T={self.temperature}")
        else:
            assert ctx.train_fn is not None
            wrapper = DistillingStudent(student, teacher, soft, self.temperature, self.alpha).train()
            ctx.train_fn(wrapper)
            add_note(student, f"distilled through train_fn with the soft term (alpha={self.alpha}) injected")
        return student.eval()

    def _train(self, student: nn.Module, teacher: nn.Module, soft: str) -> int:
        assert self.data is not None
        optimizer = torch.optim.Adam(student.parameters(), lr=self.lr)
        steps = 0
        student.train()
        for _ in range(self.epochs):
            for batch in self.data():
                inputs, labels = _split(batch, self.labels)
                with torch.no_grad():
                    target = teacher(*inputs)
                out = student(*inputs)
                loss = self.alpha * soft_loss(out, target, soft, self.temperature)
                if labels is not None and soft == "kl":
                    loss = loss + (1.0 - self.alpha) * F.cross_entropy(out, labels)
                optimizer.zero_grad()
                loss.backward()  # type: ignore[no-untyped-call]
                optimizer.step()
                steps += 1
        if steps == 0:
            raise RecipeNotApplicable("distillation: the data callable yielded no batches")
        return steps


__all__ = ["Distill", "DistillingStudent", "drop_blocks", "narrow_mlp", "soft_loss"]
