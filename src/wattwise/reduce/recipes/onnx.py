"""Export to ONNX and run with ONNX Runtime on the CPU, in fp32 or int8, as an ``nn.Module`` the benchmark can time.

* **Exporter.** ``torch.onnx.export(..., dynamo=False)``, the TorchScript-based exporter, is the default: in
  torch 2.13 it still ships (deprecated; its DeprecationWarning is silenced here, nothing else) and needs nothing
  beyond ``onnx``, whereas the new ``dynamo=True`` exporter (torch's default since 2.9) needs ``onnxscript``, which
  the reduce extra does not install. ``exporter="dynamo"`` uses it where ``onnxscript`` is present. Every
  dimension of every tensor input is exported as dynamic, so the variant takes any batch size and length.
* **int8.** ``quantize="dynamic"``: ``onnxruntime.quantization.quantize_dynamic`` with int8 weights, one scale per
  output channel (``per_channel=True``; QInt8, i.e. the u8×s8 kernels that VNNI/AMX CPUs run fastest), on
  ``MatMul``/``Gemm``/``Gather`` (so embedding tables shrink too); activations are quantized to uint8 at run time.
  ``quantize="static"``: ``quantize_static`` in QDQ format (uint8 activations, int8 per-channel weights) with
  MinMax scales calibrated on ``ctx.calibration`` batches. ``quantize="auto"``: static when calibration batches
  are given, else dynamic. The graph goes through ``quant_pre_process`` (shape inference) first, as ORT advises.
* **Run.** :class:`OrtModule` owns a temporary folder with the ``.onnx`` file (removed when the module is closed or
  collected) and an ``InferenceSession`` on ``CPUExecutionProvider``; ``forward`` turns tensors into numpy arrays
  and back. Its ``size_bytes`` is the size of the ``.onnx`` file (with any external-data files), its
  ``parameter_count`` the number of elements of the graph's initializers (it has no torch parameters). Sessions
  set ``session.set_denormal_as_zero``: an attention mask's large negative logits make softmax underflow into
  denormals, which cost up to 10× on x86 (measured on MiniLM).
"""

from __future__ import annotations

import re
import shutil
import tempfile
import warnings
import weakref
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal

import torch
from torch import nn

from wattwise.reduce.base import Context, RecipeNotApplicable, add_note, notes_of, one_line, third_party_warnings

if TYPE_CHECKING:
    import onnxruntime

Quantize = Literal["none", "dynamic", "static", "auto"]
Exporter = Literal["torchscript", "dynamo"]
# The TorchScript exporter's own deprecation notices (torch 2.13), matched by message and by the warning module:
_EXPORT_WARNINGS = (
    ("You are using the legacy TorchScript-based ONNX export", ""),
    ("The feature will be removed", r"torch\.onnx\._internal\.torchscript_exporter"),
)
# Static int8 quantizes the inputs of these ops only: quantizing every activation (ORT's default) also hits
# additive attention masks (-3.4e38) and residual sums, which wrecks transformers (MiniLM: cosine 0.30).
_STATIC_OPS = ("MatMul", "Gemm", "Conv", "Gather")
_OP_PATTERN = re.compile(r"(aten::[\w.]+|aten\.[\w.]+|prim::[\w.]+|torchvision::[\w.]+)")


def _session(path: Path, threads: int | None) -> onnxruntime.InferenceSession:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.add_session_config_entry("session.set_denormal_as_zero", "1")
    if threads is not None:
        options.intra_op_num_threads = threads
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def _model_files(path: Path) -> list[Path]:
    """The ``.onnx`` file and the external-data files its initializers name (beside it, as ONNX requires)."""
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    names = {
        entry.value
        for tensor in model.graph.initializer
        if tensor.data_location == onnx.TensorProto.EXTERNAL
        for entry in tensor.external_data
        if entry.key == "location"
    }
    return [path, *(path.parent / name for name in sorted(names))]


def _to_numpy(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        return value.detach().cpu().contiguous().numpy()
    return value


class OrtModule(nn.Module):
    """An ONNX Runtime session behind ``nn.Module.forward``; owns the temporary folder with its ``.onnx`` file."""

    def __init__(self, onnx_path: Path, *, threads: int | None = None, single_output: bool = True) -> None:
        super().__init__()
        self.folder = Path(tempfile.mkdtemp(prefix="wattwise-onnx-"))
        # removed by close(), or when the module is garbage-collected, or at interpreter exit, whichever is first
        self._cleanup = weakref.finalize(self, shutil.rmtree, self.folder, ignore_errors=True)
        self.onnx_path = self.folder / onnx_path.name
        for item in _model_files(onnx_path):
            target = self.folder / item.relative_to(onnx_path.parent)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(item, target)
        self.threads = threads
        self.single_output = single_output
        self._session: onnxruntime.InferenceSession | None = _session(self.onnx_path, threads)
        self.input_names = [i.name for i in self._session.get_inputs()]

    @property
    def size_bytes(self) -> int:
        """Bytes on disk: the ``.onnx`` file and any external-data files exported with it."""
        return sum(p.stat().st_size for p in self.folder.rglob("*") if p.is_file())

    @property
    def parameter_count(self) -> int:
        """Elements in the graph's initializers (weights, scales, zero points)."""
        import math

        import onnx

        model = onnx.load(str(self.onnx_path))
        return sum(math.prod(t.dims) for t in model.graph.initializer)

    def op_types(self) -> dict[str, int]:
        """How many nodes of each type the graph has (e.g. ``MatMulInteger`` after int8 quantization)."""
        import onnx

        counts: dict[str, int] = {}
        for node in onnx.load(str(self.onnx_path)).graph.node:
            counts[node.op_type] = counts.get(node.op_type, 0) + 1
        return counts

    def forward(self, *args: Any) -> Any:
        if self._session is None:
            raise RuntimeError("this ONNX Runtime variant was closed")
        if len(args) != len(self.input_names):
            raise TypeError(f"the exported graph takes {len(self.input_names)} inputs, got {len(args)}")
        outputs = self._session.run(None, {n: _to_numpy(a) for n, a in zip(self.input_names, args, strict=True)})
        tensors = tuple(torch.from_numpy(o) for o in outputs)
        return tensors[0] if self.single_output and len(tensors) == 1 else tensors

    def close(self) -> None:
        """Drop the session and delete the temporary folder (also done when the module is garbage-collected)."""
        self._session = None
        self._cleanup()

    def __deepcopy__(self, memo: dict[int, Any]) -> OrtModule:
        twin = OrtModule(self.onnx_path, threads=self.threads, single_output=self.single_output)
        for note in notes_of(self):
            add_note(twin, note)
        return twin


def _export(model: nn.Module, inputs: tuple[Any, ...], path: Path, exporter: Exporter, opset: int | None) -> int:
    """Write ``model`` to ``path``; returns the number of outputs. Raises RecipeNotApplicable naming the op."""
    if not inputs or not all(isinstance(x, torch.Tensor) for x in inputs):
        raise RecipeNotApplicable("ONNX export needs example inputs that are all tensors")
    names = [f"input_{i}" for i in range(len(inputs))]
    with torch.no_grad():
        out = model(*inputs)
    outputs = out if isinstance(out, tuple | list) else (out,)
    if not all(isinstance(o, torch.Tensor) for o in outputs):
        raise RecipeNotApplicable("ONNX export needs a model that returns a tensor or a tuple of tensors")
    options: dict[str, Any] = {"input_names": names, "output_names": [f"output_{i}" for i in range(len(outputs))]}
    if exporter == "dynamo":
        import importlib.util

        if importlib.util.find_spec("onnxscript") is None:
            raise RecipeNotApplicable("the dynamo ONNX exporter needs onnxscript: pip install onnxscript")
        from torch.export import Dim

        options["dynamic_shapes"] = tuple(dict.fromkeys(range(x.dim()), Dim.AUTO) for x in inputs)
        options["opset_version"] = opset  # None: the exporter's own (18 in torch 2.13)
        options["verbose"] = False
    else:
        options["dynamic_axes"] = {
            n: {d: f"{n}_dim{d}" for d in range(x.dim())} for n, x in zip(names, inputs, strict=True)
        }
        options["opset_version"] = opset or 17
    try:
        with warnings.catch_warnings(), third_party_warnings():
            for message, module in _EXPORT_WARNINGS:
                warnings.filterwarnings("ignore", message, DeprecationWarning, module)
            torch.onnx.export(model, inputs, str(path), dynamo=exporter == "dynamo", **options)
    except Exception as exc:
        op = _OP_PATTERN.search(str(exc))
        where = f" at {op.group(1)}" if op else ""
        raise RecipeNotApplicable(f"ONNX export ({exporter}) failed{where}: {one_line(exc, 200)}") from exc
    return len(outputs)


class _Calibration:
    """ORT's CalibrationDataReader over ``ctx.calibration`` batches (at most ``limit``)."""

    def __init__(self, batches: Callable[[], Any], names: list[str], limit: int) -> None:
        self._iter: Iterator[dict[str, Any]] = self._feeds(batches, names, limit)
        self.count = 0

    def _feeds(self, batches: Callable[[], Any], names: list[str], limit: int) -> Iterator[dict[str, Any]]:
        for batch in batches():
            if self.count >= limit:
                return
            items = batch if isinstance(batch, tuple | list) else (batch,)
            self.count += 1
            yield {n: _to_numpy(x) for n, x in zip(names, items, strict=True)}

    def get_next(self) -> dict[str, Any] | None:
        return next(self._iter, None)

    def rewind(self) -> None:  # part of ORT's reader interface; one pass is all MinMax calibration needs
        pass


def _list(items: tuple[str, ...] | None) -> list[str] | None:
    return None if items is None else list(items)


def _preprocess(src: Path, dst: Path) -> Path:
    """ORT's ``quant_pre_process`` (shape inference, graph clean-up); the input unchanged if it cannot run."""
    from onnxruntime.quantization.shape_inference import quant_pre_process

    try:
        quant_pre_process(str(src), str(dst), skip_symbolic_shape=True)
    except Exception:
        return src
    return dst


@dataclass(frozen=True)
class OnnxRuntime:
    """Export with ``torch.onnx`` and run with ONNX Runtime (CPU), fp32 or int8 (see the module docstring)."""

    quantize: Quantize = "none"
    per_channel: bool = True
    reduce_range: bool | None = None  # None: 7-bit weights on x86 CPUs without VNNI (see _needs_reduce_range)
    weight_type: Literal["qint8", "quint8"] = "qint8"
    exporter: Exporter = "torchscript"
    opset: int | None = None  # None: 17 for torchscript, the exporter's default for dynamo
    threads: int | None = None  # ORT intra-op threads; None: ORT's default (one per physical core)
    exclude: tuple[str, ...] = ()  # node names kept in fp32 when quantizing
    op_types: tuple[str, ...] | None = None  # None: ORT's defaults (dynamic), _STATIC_OPS (static)
    max_calibration_batches: int = 32
    kind: ClassVar[str] = "export"

    @property
    def name(self) -> str:
        names = {"none": "onnx-fp32", "auto": "onnx-int8"}
        return names.get(self.quantize, f"onnx-int8-{self.quantize}")

    @property
    def params(self) -> Mapping[str, Any]:
        return {
            "quantize": self.quantize,
            "per_channel": self.per_channel,
            "reduce_range": self.reduce_range,
            "weight_type": self.weight_type,
            "exporter": self.exporter,
            "opset": self.opset,
            "threads": self.threads,
            "exclude": list(self.exclude),
            "op_types": None if self.op_types is None else list(self.op_types),
        }

    def apply(self, model: nn.Module, ctx: Context) -> nn.Module:
        if ctx.device != "cpu":
            raise RecipeNotApplicable(f"the ONNX Runtime recipe runs on the CPU provider, not {ctx.device}")
        mode = self.quantize
        if mode == "auto":
            mode = "static" if ctx.calibration is not None else "dynamic"
        if mode == "static" and ctx.calibration is None:
            raise RecipeNotApplicable("ONNX static int8 needs calibration batches: pass calibration=<callable>")
        was_training = model.training
        model.eval()
        with tempfile.TemporaryDirectory(prefix="wattwise-export-") as tmp:
            folder = Path(tmp)
            fp32 = folder / "fp32" / "model.onnx"
            fp32.parent.mkdir()
            try:
                n_outputs = _export(model, tuple(ctx.example_inputs), fp32, self.exporter, self.opset)
            finally:
                model.train(was_training)
            final = fp32
            if mode != "none":
                final = folder / "int8" / "model.onnx"
                final.parent.mkdir()
                seen = self._quantize(_preprocess(fp32, folder / "pre.onnx"), final, mode, ctx)
            variant = OrtModule(final, threads=self.threads, single_output=n_outputs == 1)
        opset = "default" if self.opset is None else self.opset
        add_note(variant, f"exported with the {self.exporter} ONNX exporter (opset {opset}); ONNX Runtime CPU")
        if mode == "dynamic":
            add_note(
                variant,
                f"ORT quantize_dynamic: {self.weight_type} weights, per_channel={self.per_channel}, "
                f"reduce_range={_needs_reduce_range() if self.reduce_range is None else self.reduce_range}",
            )
        elif mode == "static":
            add_note(variant, f"ORT quantize_static (QDQ, MinMax) calibrated on {seen} batch(es)")
        return variant

    def _quantize(self, src: Path, dst: Path, mode: str, ctx: Context) -> int:
        import onnx
        from onnxruntime.quantization import QuantFormat, QuantType, quantize_dynamic, quantize_static

        weights = QuantType.QInt8 if self.weight_type == "qint8" else QuantType.QUInt8
        extra = {"DefaultTensorType": onnx.TensorProto.FLOAT}  # for nodes ORT's shape inference leaves untyped
        reduce_range = _needs_reduce_range() if self.reduce_range is None else self.reduce_range
        common: dict[str, Any] = {
            "per_channel": self.per_channel,
            "reduce_range": reduce_range,
            "weight_type": weights,
            "nodes_to_exclude": list(self.exclude),
            "extra_options": extra,
        }
        if mode == "dynamic":
            quantize_dynamic(src, dst, op_types_to_quantize=_list(self.op_types), **common)
            return 0
        assert ctx.calibration is not None
        names = [i.name for i in onnx.load(str(src)).graph.input]
        reader = _Calibration(ctx.calibration, names, self.max_calibration_batches)
        ops = _list(self.op_types) or list(_STATIC_OPS)
        quantize_static(
            src,
            dst,
            reader,
            quant_format=QuantFormat.QDQ,
            activation_type=QuantType.QUInt8,
            op_types_to_quantize=ops,
            **common,
        )
        if reader.count == 0:
            raise RecipeNotApplicable("ONNX static int8: the calibration callable yielded no batches")
        return reader.count


def _needs_reduce_range(cpuinfo: Path = Path("/proc/cpuinfo")) -> bool:
    """Whether int8 weights should use 7 bits here: on x86 CPUs without VNNI, ORT's u8×s8 kernels (vpmaddubsw)
    add pairs of products into 16 bits, which saturates with full-range weights; ORT's quantization docs advise
    ``reduce_range`` there. Measured on an AVX2-only EPYC: cosine to fp32 0.983 (8-bit) against 0.9999 (7-bit)
    on the tests' MLP. CPUs with VNNI (avx512_vnni, avx_vnni, AMX) and non-x86 CPUs keep the full 8 bits."""
    import platform

    if platform.machine().lower() not in ("x86_64", "amd64", "i386", "i686"):
        return False
    try:
        text = cpuinfo.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return False  # not Linux: ORT's default
    flags = next((line.split(":", 1)[1].split() for line in text.splitlines() if line.startswith("flags")), [])
    return not any(flag in flags for flag in ("avx512_vnni", "avx_vnni", "amx_int8"))


__all__ = ["OnnxRuntime", "OrtModule"]
