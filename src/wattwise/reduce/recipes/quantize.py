"""Int8 quantization on what is maintained: torchao's ``quantize_`` (dynamic) and PT2E (static, calibrated).

* :class:`Int8Dynamic`: ``torchao.quantization.quantize_(model, Int8DynamicActivationInt8WeightConfig())``:
  every ``nn.Linear`` weight becomes an ``Int8Tensor`` with one scale per output channel (``PerRow``), and
  activations are quantized per token at run time. Eager, torchao dequantizes and runs in fp32, which is slower
  than fp32: it is fast on CPU only after ``torch.compile`` with inductor freezing, which lowers the linears to
  oneDNN ``qlinear_pointwise`` int8 kernels (``compile=True``, the default). If torchao fails, the recipe falls
  back to ``torch.ao.quantization.quantize_dynamic`` (per-channel qconfig) and says in the variant's notes that
  this API is deprecated.
* Both also store every ``nn.Embedding`` table in int8 (``quantize_(…, Int8WeightOnlyConfig(), filter_fn=…)``,
  one scale per row; ``embeddings=False`` keeps them fp32): in language models the token table is often the
  largest tensor, so without it int8 saves far less than 4× on disk.
* :class:`Int8Static`: ``torch.export`` (every input dimension ``Dim.AUTO``), ``prepare_pt2e`` with the
  ``X86InductorQuantizer`` (int8 per-channel weights, uint8 per-tensor activations), calibration on
  ``ctx.calibration`` batches, ``convert_pt2e``; then, with ``compile=True``, ``torch.compile`` with freezing so
  that inductor fuses the quantize/dequantize pairs into oneDNN int8 kernels (eager, the q/dq ops only add work).

Compilation happens in ``apply`` on ``ctx.example_inputs``, so its cost never lands in the measured latency.
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, TypeVar

import torch
from torch import nn

from wattwise.reduce.base import (
    Context,
    RecipeNotApplicable,
    add_note,
    copy_module,
    notes_of,
    one_line,
    third_party_warnings,
)

T = TypeVar("T")

# inductor settings for the int8 graphs, in force whenever a compiled variant may compile (never set globally):
# freezing lets inductor treat the weights as constants and pre-pack them for the oneDNN int8 kernels.
_INDUCTOR_OPTIONS: Mapping[str, Any] = {"freezing": True, "force_fuse_int_mm_with_mul": True}


def as_batch(inputs: Any) -> tuple[Any, ...]:
    """A batch as the positional arguments of ``forward``: a tuple, or one tensor wrapped in one."""
    if isinstance(inputs, tuple):
        return inputs
    if isinstance(inputs, list):
        return tuple(inputs)
    return (inputs,)


@contextlib.contextmanager
def _inductor_options() -> Iterator[None]:
    import torch._inductor.config as inductor_config

    with inductor_config.patch(dict(_INDUCTOR_OPTIONS)):
        yield


def _signature(args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[Any, ...]:
    """What decides whether a compiled call may compile again: shape, dtype and inference-ness of the tensors
    (tensors made under ``torch.inference_mode`` fail the guards of a graph compiled for ordinary ones)."""
    parts = [*args, *(kwargs[k] for k in sorted(kwargs))]
    kinds = tuple(
        (tuple(p.shape), p.dtype, p.is_inference()) if isinstance(p, torch.Tensor) else type(p) for p in parts
    )
    return (*kinds, tuple(sorted(kwargs)))


class CompiledModule(nn.Module):
    """An inference-only variant: ``module`` run through ``torch.compile`` with inductor freezing.

    The eager module stays the only registered submodule, so ``state_dict`` (and the size on disk) is the
    quantized model's. Every call runs under ``torch.no_grad()``. A call with input shapes not seen before may
    (re)compile, so it runs under the inductor options above and the known-warnings filter; calls with seen
    shapes skip both (they cost tens of microseconds, as much as a small model's forward).
    """

    def __init__(self, module: nn.Module) -> None:
        super().__init__()
        self.module = module
        with third_party_warnings():
            compiled = torch.compile(module)
        self.__dict__["_compiled"] = compiled  # kept out of the module tree (no duplicate state_dict keys)
        self._seen: set[tuple[Any, ...]] = set()

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        compiled = self.__dict__["_compiled"]
        key = _signature(args, kwargs)
        with torch.no_grad():
            if key in self._seen:
                return compiled(*args, **kwargs)
            with _inductor_options(), third_party_warnings():
                out = compiled(*args, **kwargs)
        self._seen.add(key)
        return out

    def __deepcopy__(self, memo: dict[int, Any]) -> CompiledModule:
        twin = CompiledModule(copy.deepcopy(self.module, memo))  # compiles again on its first call
        for note in notes_of(self):
            add_note(twin, note)
        return twin


def compile_for_inference(model: nn.Module, example_inputs: tuple[Any, ...]) -> CompiledModule:
    """Compile now (one call on the example batch), so a failure is this recipe's and the cost is not timed."""
    wrapped = CompiledModule(model)
    try:
        wrapped(*example_inputs)
    except Exception as exc:
        raise RecipeNotApplicable(
            f"torch.compile failed on this machine ({one_line(exc, 160)}); use the -eager variant"
        ) from exc
    for note in notes_of(model):
        add_note(wrapped, note)
    add_note(wrapped, "torch.compile (inductor, freezing) ran in apply, on the example batch")
    return wrapped


def _count(model: nn.Module, types: tuple[type[nn.Module], ...]) -> int:
    return sum(1 for m in model.modules() if isinstance(m, types))


def _cpu_needs_reduce_range() -> bool:
    """True on CPUs without VNNI, whose u8×s8 int8 kernels saturate with full-range activations (torchao's check)."""
    try:
        from torchao.utils import should_reduce_range

        return bool(should_reduce_range(torch.device("cpu")))
    except ImportError:
        return False


def _torchao_int8_dynamic(model: nn.Module) -> None:
    from torchao.quantization import Int8DynamicActivationInt8WeightConfig, quantize_

    reduce_range = _cpu_needs_reduce_range()
    config = Int8DynamicActivationInt8WeightConfig(set_inductor_config=False, reduce_range=reduce_range)
    with third_party_warnings():
        quantize_(model, config)
    if reduce_range:
        add_note(model, "reduced int8 range (this CPU has no VNNI)")


def _torchao_int8_embeddings(model: nn.Module) -> int:
    """Weight-only int8 (one scale per row) for every nn.Embedding: tables often outweigh the linears."""
    from torchao.quantization import Int8WeightOnlyConfig, quantize_

    count = _count(model, (nn.Embedding,))
    if count:
        with third_party_warnings():
            quantize_(
                model,
                Int8WeightOnlyConfig(set_inductor_config=False),
                filter_fn=lambda module, _: isinstance(module, nn.Embedding),
            )
        add_note(model, f"torchao Int8WeightOnlyConfig on {count} nn.Embedding table(s): int8 per row")
    return count


def _tables_or_not(build: Callable[[bool], T], embeddings: bool) -> tuple[T, str | None]:
    """``build(True)`` (int8 embedding tables); where the tables break the model, ``build(False)`` and a note why."""
    if not embeddings:
        return build(False), None
    try:
        return build(True), None
    except Exception as exc:
        return build(False), f"nn.Embedding tables kept fp32: int8 tables failed here ({one_line(exc, 120)})"


def _legacy_int8_dynamic(model: nn.Module) -> nn.Module:
    from torch.ao.quantization import per_channel_dynamic_qconfig, quantize_dynamic

    with third_party_warnings():
        quantized: nn.Module = quantize_dynamic(  # type: ignore[no-untyped-call]
            model, {nn.Linear: per_channel_dynamic_qconfig}, dtype=torch.qint8
        )
    return quantized


@dataclass(frozen=True)
class Int8Dynamic:
    """nn.Linear: int8 weights (per output channel), activations quantized per token at run time; tables int8."""

    compile: bool = True
    fallback: bool = True  # torch.ao.quantization.quantize_dynamic when torchao fails (deprecated, flagged)
    embeddings: bool = True  # also int8 weight-only nn.Embedding tables (torchao)
    kind: ClassVar[str] = "quantize"

    @property
    def name(self) -> str:
        return "int8-dynamic" if self.compile else "int8-dynamic-eager"

    @property
    def summary(self) -> str:
        return (
            "torchao int8 dynamic"
            + (" + int8 tables" if self.embeddings else "")
            + (", torch.compile" if self.compile else ", eager")
        )

    @property
    def params(self) -> Mapping[str, Any]:
        return {
            "compile": self.compile,
            "fallback": self.fallback,
            "embeddings": self.embeddings,
            "weights": "int8 per channel",
            "activations": "int8 per token, dynamic",
        }

    def apply(self, model: nn.Module, ctx: Context) -> nn.Module:
        if _count(model, (nn.Linear,)) == 0:
            raise RecipeNotApplicable("int8 dynamic quantization needs nn.Linear layers; this model has none")

        def build(tables: bool) -> nn.Module:
            variant = copy_module(model).eval()
            _torchao_int8_dynamic(variant)
            if tables:
                _torchao_int8_embeddings(variant)
            with torch.no_grad(), third_party_warnings():
                variant(*ctx.example_inputs)  # a trial: torchao's tensors must run this model's ops
            return variant

        try:
            variant, why = _tables_or_not(build, self.embeddings)
        except Exception as exc:
            if not self.fallback:
                raise
            variant = _legacy_int8_dynamic(copy_module(model).eval())
            add_note(
                variant,
                f"torchao failed ({one_line(exc, 120)}); fell back to torch.ao.quantization.quantize_dynamic, "
                "which is DEPRECATED and will be removed from torch",
            )
            return variant
        if why:
            add_note(variant, why)
        add_note(variant, "torchao quantize_(Int8DynamicActivationInt8WeightConfig): int8 per-channel weights")
        if not self.compile:
            add_note(variant, "eager torchao int8 dequantizes to fp32: expect it slower than fp32 without compile")
            return variant
        return compile_for_inference(variant, ctx.example_inputs)


def _export(model: nn.Module, example_inputs: tuple[Any, ...]) -> torch.fx.GraphModule:
    from torch.export import Dim

    dynamic = tuple(
        dict.fromkeys(range(x.dim()), Dim.AUTO) if isinstance(x, torch.Tensor) else None for x in example_inputs
    )
    try:
        with third_party_warnings():
            exported = torch.export.export(model, example_inputs, dynamic_shapes=dynamic)
    except Exception as exc:
        raise RecipeNotApplicable(f"torch.export cannot capture this model: {one_line(exc, 200)}") from exc
    module = exported.module()
    assert isinstance(module, torch.fx.GraphModule)
    return module


def _drop_unused_attributes(gm: torch.fx.GraphModule) -> int:
    """convert_pt2e leaves the fp32 weights it replaced by int8 constants registered: remove what no node reads."""
    used = {str(node.target) for node in gm.graph.nodes if node.op == "get_attr"}
    dropped = 0
    for name, _ in list(gm.named_parameters()) + list(gm.named_buffers()):
        if name in used:
            continue
        owner_name, _, attr = name.rpartition(".")
        owner = gm.get_submodule(owner_name) if owner_name else gm
        delattr(owner, attr)
        dropped += 1
    return dropped


@dataclass(frozen=True)
class Int8Static:
    """PT2E static int8: weights per channel, activations per tensor with scales calibrated on real batches."""

    compile: bool = True
    max_batches: int = 32  # calibration batches used at most
    embeddings: bool = True  # also int8 weight-only nn.Embedding tables (torchao, before export)
    kind: ClassVar[str] = "quantize"

    @property
    def name(self) -> str:
        return "int8-static" if self.compile else "int8-static-eager"

    @property
    def summary(self) -> str:
        return (
            "PT2E static int8 (x86 inductor)"
            + (" + int8 tables" if self.embeddings else "")
            + (", torch.compile" if self.compile else ", eager")
        )

    @property
    def params(self) -> Mapping[str, Any]:
        return {
            "compile": self.compile,
            "max_batches": self.max_batches,
            "embeddings": self.embeddings,
            "quantizer": "X86InductorQuantizer",
        }

    def apply(self, model: nn.Module, ctx: Context) -> nn.Module:
        if ctx.calibration is None:
            raise RecipeNotApplicable("static int8 needs calibration batches: pass calibration=<callable>")
        if _count(model, (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)) == 0:
            raise RecipeNotApplicable("static int8 quantizes nn.Linear/nn.Conv layers; this model has none")
        with third_party_warnings():  # the quantizer imports torch._inductor
            from torchao.quantization.pt2e import allow_exported_model_train_eval
            from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e
            from torchao.quantization.pt2e.quantizer.x86_inductor_quantizer import (
                X86InductorQuantizer,
                get_default_x86_inductor_quantization_config,
            )

        def export(tables: bool) -> tuple[nn.Module, torch.fx.GraphModule]:
            source = copy_module(model).eval()
            if tables:
                _torchao_int8_embeddings(source)
            return source, _export(source, ctx.example_inputs)

        (source, graph), why = _tables_or_not(export, self.embeddings)
        reduce_range = _cpu_needs_reduce_range()  # 7-bit activations on CPUs without VNNI, as the quantizer advises
        quantizer = X86InductorQuantizer().set_global(
            get_default_x86_inductor_quantization_config(reduce_range=reduce_range)
        )
        seen = 0
        with third_party_warnings():
            prepared = prepare_pt2e(graph, quantizer)
            with torch.no_grad():
                for batch in ctx.calibration():
                    prepared(*as_batch(batch))
                    seen += 1
                    if seen >= self.max_batches:
                        break
            if seen == 0:
                raise RecipeNotApplicable("static int8: the calibration callable yielded no batches")
            variant: torch.fx.GraphModule = convert_pt2e(prepared)
        dropped = _drop_unused_attributes(variant)
        variant.recompile()
        allow_exported_model_train_eval(variant)  # eval_fns often call model.eval(), which exported graphs refuse
        for note in (*notes_of(source), *([why] if why else [])):
            add_note(variant, note)
        add_note(variant, f"PT2E X86InductorQuantizer, calibrated on {seen} batch(es); {dropped} fp32 copies dropped")
        if reduce_range:
            add_note(variant, "reduced int8 activation range (this CPU has no VNNI)")
        if not self.compile:
            add_note(variant, "eager PT2E runs quantize/dequantize around fp32 ops: slower than fp32 without compile")
            return variant
        return compile_for_inference(variant, ctx.example_inputs)
