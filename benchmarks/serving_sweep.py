"""Energy per output token against batch size, measured while a small decoder-only transformer serves on this CPU.

A decoder-only transformer with random weights (nothing downloaded; by default 4 layers, d_model 512, 8 heads, a
vocabulary of 8,192) reads a ``--prompt-tokens`` prompt and generates ``--tokens`` output tokens per request with a
KV cache (greedy), ``batch`` requests at a time. Each batch size is one wattwise run: generations repeat until it
has run ``--min-seconds``, and every generation is counted with ``Tracker.count(tokens=..., requests=...,
prompt_tokens=...)``, so the run's record gives energy per output token and per request. The table shows, per batch
size, J per output token with its label (``measured`` where a counter exists; on a VM without RAPL the CPU is
modelled, so ``estimated``, and the footer says by what), tokens per second, and what the serving estimator
(``wattwise.estimate.inference``, on ``wattwise.estimate.serving``) predicts for the same model on the same
processor, where it can. The shape to see:
J per output token falls as the batch grows, because every decoding step reads all the weights once whatever the
batch, and a larger batch shares that cost among more tokens.

    python benchmarks/serving_sweep.py [--batches 1,2,4,8,16,32,64] [--tokens 64] [--prompt-tokens 32]
        [--layers 4] [--d-model 512] [--heads 8] [--vocab 8192] [--dtype fp32|bf16] [--min-seconds 3]
        [--threads N] [--device cpu|cuda] [--hardware NAME] [--db URL]

Runs go to an in-memory store unless ``--db`` names one. The default sweep takes about 1 to 2 minutes on 2 CPUs.
On this machine's CPU the estimator is told its vCPUs' figures (see :func:`this_cpu`); with ``--device cuda`` it is
given ``--hardware`` (``H100-SXM``...), and the J per output token column is then the GPU's own channels (the
estimate's accelerator boundary), while J per request stays the whole run's.
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch
    from torch import nn

    from wattwise.config import Settings
    from wattwise.records import Run
    from wattwise.store.base import RunStore


@dataclass(frozen=True, slots=True)
class Row:
    batch: int
    run: Run  # the batch size's run: its energy, the work it counted, and how the energy was got
    estimated_j_per_token: float | None  # what the serving estimator predicts, where it is available

    @property
    def tokens_per_s(self) -> float:
        assert self.run.work is not None
        return self.run.work.output_tokens / self.run.duration_s if self.run.duration_s > 0 else 0.0


def this_machine(device: str) -> str:
    """The processor the sweep runs on, as the system names it (``AMD EPYC ...``, ``NVIDIA H200``)."""
    if device == "cuda":
        import torch

        return str(torch.cuda.get_device_name())
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


@dataclass(frozen=True, slots=True)
class Processor:
    """What the estimator is told of the processor: a catalogue name, and figures that override its row."""

    hardware: str
    peak_tflops: float | None = None
    memory_bandwidth_gbs: float | None = None
    power_w: float | None = None

    def describe(self) -> str:
        given = [
            f"{label} {value:g} {unit}"
            for label, value, unit in (
                ("peak", self.peak_tflops, "TFLOP/s"),
                ("bandwidth", self.memory_bandwidth_gbs, "GB/s"),
                ("max power", self.power_w, "W"),
            )
            if value is not None
        ]
        return self.hardware + (f" with {', '.join(given)}" if given else "")


# This VM's vCPUs, for the estimator (ASSUMPTIONS, stated in the output): fp32 FLOPs per cycle per vCPU (AVX2: two
# 8-lane FMA units per core, two hardware threads per core), stream bandwidth one thread reaches on a server core,
# and the most a vCPU draws in the tracker's own CPU model (Cloud Carbon Footprint's AWS average, 3.5 W per vCPU), so
# the estimate and the measurement share their boundary
FLOPS_PER_CYCLE_PER_VCPU = 16
BANDWIDTH_GBS_PER_VCPU = 10.0
MAX_W_PER_VCPU = 3.5


def this_cpu(threads: int) -> Processor:
    """The estimator's figures for ``threads`` vCPUs of this machine (catalogue row EPYC-7763 as the base)."""
    mhz = 0.0
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("cpu MHz"):
                mhz = float(line.split(":", 1)[1])
                break
    except (OSError, ValueError):
        mhz = 0.0
    ghz = mhz / 1000 if mhz > 0 else 2.5
    return Processor(
        "EPYC-7763",
        peak_tflops=threads * ghz * FLOPS_PER_CYCLE_PER_VCPU / 1000,
        memory_bandwidth_gbs=threads * BANDWIDTH_GBS_PER_VCPU,
        power_w=threads * MAX_W_PER_VCPU,
    )


def estimator_j_per_token(
    params: float, batch: int, prompt_tokens: int, output_tokens: int, dtype: str, processor: Processor | str
) -> tuple[float | None, str]:
    """What wattwise's serving estimator predicts per output token for this model at ``batch`` on ``hardware`` (a
    name of ``wattwise hardware list``), or (None, why not). The one place that knows the estimator's entry point.

    The inputs match the sweep: eager PyTorch generation (``engine="eager"``), the processor's own energy
    (``boundary="accelerator"``: what the sweep's run charges to its process), no facility overhead.
    """
    try:
        from wattwise.estimate.inference import InferenceInputs, estimate_inference
    except ImportError:
        return None, "estimator not available"
    from wattwise.errors import WattwiseError

    chosen = processor if isinstance(processor, Processor) else Processor(processor)
    hardware = chosen.hardware
    inputs = InferenceInputs(
        hardware=hardware,
        peak_tflops=chosen.peak_tflops,
        memory_bandwidth_gbs=chosen.memory_bandwidth_gbs,
        power_w=chosen.power_w,
        params=params,
        tokens_per_request=output_tokens,
        batch=batch,
        prompt_tokens=prompt_tokens,
        dtype=dtype,
        engine="eager",
        boundary="accelerator",
        pue=1.0,
        intensity_g_per_kwh=0.0,
    )
    try:
        estimate = estimate_inference(inputs)
    except WattwiseError as exc:
        return None, f"estimator not available for {hardware!r}: {exc}"
    return estimate.j_per_output_token.value, f"wattwise.estimate.inference for {chosen.describe()}, eager engine"


def build_model(layers: int, d_model: int, heads: int, vocab: int, max_len: int, dtype: torch.dtype) -> nn.Module:
    """A GPT-style decoder (pre-norm blocks, GELU MLP, tied embeddings) with random weights."""
    import torch
    from torch import nn
    from torch.nn import functional

    class Block(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.ln1, self.ln2 = nn.LayerNorm(d_model), nn.LayerNorm(d_model)
            self.qkv = nn.Linear(d_model, 3 * d_model, bias=False)
            self.proj = nn.Linear(d_model, d_model, bias=False)
            self.up = nn.Linear(d_model, 4 * d_model, bias=False)
            self.down = nn.Linear(4 * d_model, d_model, bias=False)

        def forward(self, x: torch.Tensor, keys: torch.Tensor, values: torch.Tensor, pos: int) -> torch.Tensor:
            b, t, _ = x.shape
            q, k, v = self.qkv(self.ln1(x)).view(b, t, 3, heads, d_model // heads).permute(2, 0, 3, 1, 4)
            keys[:, :, pos : pos + t] = k  # the KV cache: each step adds its tokens' keys and values
            values[:, :, pos : pos + t] = v
            attended = functional.scaled_dot_product_attention(
                q, keys[:, :, : pos + t], values[:, :, : pos + t], is_causal=t > 1
            )
            x = x + self.proj(attended.transpose(1, 2).reshape(b, t, d_model))
            out: torch.Tensor = x + self.down(functional.gelu(self.up(self.ln2(x))))
            return out

    class Decoder(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.embed = nn.Embedding(vocab, d_model)
            self.position = nn.Embedding(max_len, d_model)
            self.blocks = nn.ModuleList(Block() for _ in range(layers))
            self.ln = nn.LayerNorm(d_model)

        def forward(self, ids: torch.Tensor, cache: list[tuple[torch.Tensor, torch.Tensor]], pos: int) -> torch.Tensor:
            places = torch.arange(pos, pos + ids.shape[1], device=ids.device)
            x = self.embed(ids) + self.position(places)
            for block, (keys, values) in zip(self.blocks, cache, strict=True):
                x = block(x, keys, values, pos)
            logits: torch.Tensor = self.ln(x[:, -1]) @ self.embed.weight.T  # the next token's (tied output head)
            return logits

    return Decoder().to(dtype).eval()


def generate(model: nn.Module, batch: int, spec: argparse.Namespace) -> None:
    """One batch of requests: prefill the prompts, then decode ``spec.tokens`` tokens each (greedy, KV cache)."""
    import torch

    head = spec.d_model // spec.heads
    shape = (batch, spec.heads, spec.prompt_tokens + spec.tokens, head)
    weight = next(model.parameters())
    cache = [(weight.new_empty(shape), weight.new_empty(shape)) for _ in range(spec.layers)]
    ids = torch.randint(0, spec.vocab, (batch, spec.prompt_tokens), device=weight.device)
    with torch.inference_mode():
        token = model(ids, cache, 0).argmax(-1, keepdim=True)  # the prefill gives the first output token
        for step in range(spec.tokens - 1):
            token = model(token, cache, spec.prompt_tokens + step).argmax(-1, keepdim=True)
    if weight.is_cuda:
        torch.cuda.synchronize()  # the batch is served when its last token exists, not when it is queued


def measure_batch(model: nn.Module, batch: int, spec: argparse.Namespace, settings: Settings, store: RunStore) -> Run:
    """One wattwise run of generations at ``batch``, at least ``spec.min_seconds`` long, every one counted."""
    from wattwise.measure.tracker import Tracker

    generate(model, batch, spec)  # warm-up, not measured
    tracker = Tracker(f"serving-sweep batch {batch}", settings=settings, store=store)
    with tracker:
        started = time.perf_counter()
        while True:
            generate(model, batch, spec)
            tracker.count(tokens=batch * spec.tokens, requests=batch, prompt_tokens=batch * spec.prompt_tokens)
            if time.perf_counter() - started >= spec.min_seconds:
                break
    assert tracker.result is not None
    return tracker.result


def _parse_batches(text: str) -> list[int]:
    try:
        batches = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise SystemExit(f"--batches takes whole numbers separated by commas, such as 1,2,4 (got {text!r})") from None
    if not batches or min(batches) < 1:
        raise SystemExit(f"--batches takes positive whole numbers (got {text!r})")
    return batches


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument("--batches", type=_parse_batches, default=_parse_batches("1,2,4,8,16,32,64"))
    p.add_argument("--tokens", type=int, default=64, help="output tokens per request (default 64)")
    p.add_argument("--prompt-tokens", type=int, default=32, help="prompt tokens per request (default 32)")
    p.add_argument("--layers", type=int, default=4)
    p.add_argument("--d-model", type=int, default=512)
    p.add_argument("--heads", type=int, default=8)
    p.add_argument("--vocab", type=int, default=8192)
    p.add_argument("--dtype", choices=["fp32", "bf16"], default="fp32")
    p.add_argument("--device", choices=["cpu", "cuda"], default="cpu", help="where the model runs (default cpu)")
    p.add_argument(
        "--hardware",
        help="the estimator's name for this processor (`wattwise hardware list`; default: as the system "
        "names it, which the catalogue may not know)",
    )
    p.add_argument("--min-seconds", type=float, default=3.0, help="measure each batch size at least this long")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's own choice)")
    p.add_argument("--db", help="store the runs here (default: an in-memory store)")
    args = p.parse_args(argv)
    for name in ("tokens", "prompt_tokens", "layers", "d_model", "heads", "vocab"):
        if getattr(args, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be at least 1")
    if args.d_model % args.heads:
        p.error(f"--d-model ({args.d_model}) must be a multiple of --heads ({args.heads})")
    if not math.isfinite(args.min_seconds) or args.min_seconds < 0:
        p.error("--min-seconds must be a non-negative number")
    return args


def _energy(joules: float | None) -> str:
    from wattwise.report.numbers import energy_j

    return "-" if joules is None else energy_j(joules)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    import torch

    from wattwise.config import Settings
    from wattwise.store import open_store

    if args.threads is not None:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    dtype = {"fp32": torch.float32, "bf16": torch.bfloat16}[args.dtype]
    model = build_model(args.layers, args.d_model, args.heads, args.vocab, args.prompt_tokens + args.tokens, dtype)
    model = model.to(args.device)
    params = float(sum(p.numel() for p in model.parameters()))
    machine = this_machine(args.device)
    hardware: Processor | str = args.hardware or machine
    if args.hardware is None and args.device == "cpu":
        hardware = this_cpu(torch.get_num_threads())
    # the GPU is measured only where the model runs on it; CUDA work is waited for at the run's edges
    settings = Settings.load({"gpu": args.device == "cuda", "cuda_sync": args.device == "cuda"})
    print(
        f"decoder-only transformer, random weights: {args.layers} layers, d_model {args.d_model}, {args.heads} heads, "
        f"vocabulary {args.vocab:,}: {params / 1e6:.1f} M parameters, {args.dtype}; {args.prompt_tokens} prompt + "
        f"{args.tokens} output tokens per request, KV cache, greedy; {machine}"
        + (f", {torch.get_num_threads()} torch threads" if args.device == "cpu" else ""),
        flush=True,
    )
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0
    if load > 0.5 * (os.cpu_count() or 1):
        print(
            f"the machine is busy before the sweep starts (load {load:.1f} on {os.cpu_count()} CPUs): other processes "
            "compete for the CPUs, so tokens/s and J per token will be noisy",
            flush=True,
        )
    header = (
        f"{'batch':>5}  {'J/output token':>14}  {'energy is':<9}  {'tokens/s':>9}  {'J/request':>9}  {'estimator':>10}"
    )
    print(header)
    print("-" * len(header), flush=True)
    rows: list[Row] = []
    why = ""
    with open_store(args.db or ":memory:") as store:
        for batch in args.batches:
            run = measure_batch(model, batch, args, settings, store)
            predicted, why = estimator_j_per_token(params, batch, args.prompt_tokens, args.tokens, args.dtype, hardware)
            row = Row(batch, run, predicted)
            rows.append(row)
            per = run.per_work
            assert per is not None and run.work is not None
            measured = per.j_per_output_token
            if args.device == "cuda":  # the estimate is the accelerator's: set the GPU's own channels beside it
                gpu_j = sum(c.energy_j for c in run.components if c.component == "gpu" and c.in_total)
                measured = gpu_j / run.work.output_tokens if run.work.output_tokens else None
            print(
                f"{batch:>5}  {_energy(measured):>14}  {run.source:<9}  {row.tokens_per_s:>9,.0f}  "
                f"{_energy(per.j_per_request):>9}  {_energy(predicted):>10}",
                flush=True,
            )
    modelled = {
        (c.name, c.method, c.detail)
        for row in rows
        for c in row.run.components
        if c.source == "estimated" and c.in_total and c.energy_j > 0  # what the totals hold
    }
    for name, method, detail in sorted(modelled):
        print(f"{name} is modelled, not measured ({method}: {detail})" if detail else f"{name} is modelled ({method})")
    if not modelled:
        print("every component was measured (energy counters)")
    print(f"estimator: {why}" if why else "estimator: -")
    first, last = rows[0].run.per_work, rows[-1].run.per_work
    if (
        len(rows) > 1
        and first is not None
        and last is not None
        and first.j_per_output_token
        and last.j_per_output_token
    ):
        ratio = first.j_per_output_token / last.j_per_output_token
        print(f"J per output token at batch {rows[0].batch} is {ratio:.1f}x that at batch {rows[-1].batch}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
