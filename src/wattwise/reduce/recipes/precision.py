"""Mixed precision: bf16 or fp16 weights (``module.to(dtype)``), or fp32 weights run under ``torch.autocast``.

Either way the variant takes and returns what the original does: floating-point inputs are cast to the low
precision on the way in and floating-point outputs back to float32 on the way out, so an ``eval_fn`` written for
the fp32 model works unchanged. Whether the CPU (and this torch build's kernels) can run the model in that
precision is decided by a trial forward on ``ctx.example_inputs``: an op without a kernel, or outputs that turn
to inf/NaN where fp32's are finite (fp16 overflow), make the recipe not applicable. bf16 is fast on CPUs with
AVX512-BF16 or AMX; elsewhere it is emulated and can be slower than fp32, which the measurement shows.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import torch
from torch import nn

from wattwise.errors import ConfigError
from wattwise.reduce.base import Context, RecipeNotApplicable, add_note, copy_module, one_line

_DTYPES: Mapping[str, torch.dtype] = {"bf16": torch.bfloat16, "fp16": torch.float16}


def _cast(value: Any, dtype: torch.dtype) -> Any:
    """Floating-point tensors in ``value`` (nested in tuples, lists, dicts) cast to ``dtype``; the rest unchanged."""
    if isinstance(value, torch.Tensor):
        return value.to(dtype) if value.is_floating_point() else value
    if isinstance(value, tuple):
        items = [_cast(v, dtype) for v in value]
        return type(value)(*items) if hasattr(value, "_fields") else tuple(items)  # named tuples keep their type
    if isinstance(value, list):
        return [_cast(v, dtype) for v in value]
    if isinstance(value, dict):
        return {k: _cast(v, dtype) for k, v in value.items()}
    return value


class LowPrecision(nn.Module):
    """Runs ``module`` with low-precision weights (``autocast=False``) or under CPU autocast, fp32 outside."""

    def __init__(self, module: nn.Module, dtype: torch.dtype, autocast: bool) -> None:
        super().__init__()
        self.module = module
        self.dtype = dtype
        self.autocast = autocast

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        if self.autocast:
            with torch.autocast("cpu", dtype=self.dtype):
                out = self.module(*args, **kwargs)
        else:
            out = self.module(*_cast(args, self.dtype), **_cast(kwargs, self.dtype))
        return _cast(out, torch.float32)


def _all_finite(value: Any) -> bool:
    if isinstance(value, torch.Tensor):
        return not value.is_floating_point() or bool(torch.isfinite(value).all())
    if isinstance(value, tuple | list):
        return all(_all_finite(v) for v in value)
    if isinstance(value, dict):
        return all(_all_finite(v) for v in value.values())
    return True


def _reference(model: nn.Module, ctx: Context) -> Any:
    """fp32 outputs on the example batch, from an eval-mode copy (the input model is never touched)."""
    with torch.no_grad():
        return copy_module(model).eval()(*ctx.example_inputs)


@dataclass(frozen=True)
class Precision:
    """bf16/fp16: weights cast (half the size), or ``autocast=True`` (fp32 weights, low-precision compute)."""

    dtype: Literal["bf16", "fp16"] = "bf16"
    autocast: bool = False
    kind: ClassVar[str] = "precision"

    def __post_init__(self) -> None:
        if self.dtype not in _DTYPES:
            raise ConfigError(f"precision dtype must be one of {sorted(_DTYPES)} (got {self.dtype!r})")

    @property
    def name(self) -> str:
        return f"{self.dtype}-autocast" if self.autocast else self.dtype

    @property
    def summary(self) -> str:
        return f"{self.dtype} autocast (fp32 weights)" if self.autocast else f"{self.dtype} weights"

    @property
    def params(self) -> Mapping[str, Any]:
        return {"dtype": self.dtype, "mode": "autocast" if self.autocast else "weights cast"}

    def apply(self, model: nn.Module, ctx: Context) -> nn.Module:
        dtype = _DTYPES[self.dtype]
        if not any(p.is_floating_point() for p in model.parameters()):
            raise RecipeNotApplicable(f"{self.name}: the model has no floating-point parameters to run in {dtype}")
        inner = copy_module(model).eval()
        if not self.autocast:
            inner = inner.to(dtype)
        variant = LowPrecision(inner, dtype, self.autocast)
        try:
            with torch.no_grad():
                out = variant(*ctx.example_inputs)
        except Exception as exc:
            raise RecipeNotApplicable(f"{self.name} does not run on this CPU/op set: {one_line(exc, 200)}") from exc
        if not _all_finite(out) and _all_finite(_reference(model, ctx)):
            raise RecipeNotApplicable(f"{self.name}: outputs overflow to inf/NaN in {dtype} where fp32's are finite")
        capability = torch.backends.cpu.get_cpu_capability()
        add_note(variant, f"{self.params['mode']} to {dtype}; CPU capability {capability}")
        return variant
