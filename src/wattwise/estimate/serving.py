"""The physics of serving an LLM: time and accelerator energy per output token and per request, from the hardware's
peaks and the model's size, at a batch size.

Decoding makes one token for each of the ``batch`` requests of a step. A step must read, from each device's memory,
its share of the weights and of the requests' KV caches, and compute ``2 · N_active`` FLOPs per token (plus the
attention over the context); it takes the longer of the two at an achievable fraction of the peaks (a roofline),
plus a fixed latency per layer (kernel launches, and two all-reduces per layer when the model is split over
devices). The serving software's own work on the host CPU (:class:`Engine`) adds to each step, or overlaps it.

* **Weights read per step.** A dense model reads all its weights. A mixture-of-experts model reads the experts its
  batch's tokens are routed to: with a share ``f = N_active / N_total`` of the parameters active per token, a batch
  of ``B`` tokens touches ``1 − (1 − f)^B`` of them (independent routing), so a step reads the active parameters at
  batch 1 and nearly all of them from a batch of about ``3/f`` on: MoE decoding costs like the total parameters at
  small batch and approaches the active ones only once compute dominates, as the ML.ENERGY measurements show.
* **KV cache read per step.** ``batch × mean context × bytes per token``, the mean context being the prompt plus half
  the output. Bytes per token ``= 2 (K and V) × layers × KV width × bytes``; the shape comes from the active
  parameters (``N ≈ 12 · layers · d_model²`` with ``d_model ≈ 128 · layers``, as GPT-3, Llama 2/3 and Mixtral are
  built, within 30 %) and the KV width is ``d_model / 8`` with grouped-query attention (Llama 3, Mistral, Mixtral:
  8 KV heads) or ``d_model`` with multi-head attention (GPT-2/3, OPT, Llama 1/2-7B/13B).
* **Prefill** computes ``2 · N_active`` FLOPs per prompt token plus the causal attention, compute-bound.
* **Power.** While a kernel runs, a device draws its waiting power plus a share of the span to its TDP: all of it
  when compute-bound, :data:`MEMORY_BOUND_POWER` of it when bound by memory; while it waits for the host between
  steps it stays in its highest performance state (:data:`WAIT_POWER`); a deployment with no work idles lower
  (:data:`IDLE_POWER`).

Every constant below is chosen from published hardware figures or stated physical reasoning, never fitted to the
figures it is validated against (``benchmarks/inference_validation.py``); each carries a low-high range that the
estimate's range follows.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from wattwise.errors import ConfigError
from wattwise.estimate.hardware import Hardware

__all__ = [
    "ATTENTIONS",
    "DTYPE_BYTES",
    "ENGINES",
    "Efficiencies",
    "Engine",
    "ModelShape",
    "ServingPhysics",
    "decode_and_prefill",
]

# bytes per weight and the dtype whose peak the arithmetic runs at; int4 is weight-only quantisation (AWQ, GPTQ):
# 4-bit weights, arithmetic in bf16
DTYPE_BYTES: dict[str, tuple[float, str]] = {
    "fp32": (4.0, "fp32"),
    "bf16": (2.0, "bf16"),
    "fp16": (2.0, "fp16"),
    "fp8": (1.0, "fp8"),
    "int8": (1.0, "int8"),
    "int4": (0.5, "bf16"),
}
ATTENTIONS = ("gqa", "mha")
GQA_KV_SHARE = 1 / 8  # 8 KV heads of 64 query heads (Llama 3 70B, Mixtral 8x22B): KV width d_model / 8
D_MODEL_PER_LAYER = 128  # d_model / layers: GPT-3 175B 12288/96, Llama 2 7B 4096/32, Llama 3 70B 8192/80 = 102


@dataclass(frozen=True, slots=True)
class Efficiencies:
    """The achievable shares of the hardware's peaks, and the serving stack's overheads (value, low, high)."""

    # HBM: stream benchmarks reach 80-90 % of the rated bandwidth on A100 and H100 (NVIDIA's and BabelStream's
    # published results); decoding kernels reach less (many small reads per layer): 0.65-0.90
    bandwidth: tuple[float, float, float] = (0.80, 0.65, 0.90)
    # dense GEMMs: cuBLAS sustains 60-80 % of the dense tensor peak on large matrices (NVIDIA's published GEMM
    # throughput); decoding's skinny GEMMs and attention less
    compute: tuple[float, float, float] = (0.60, 0.40, 0.75)
    # paged KV-cache reads (attention at decode): many short, scattered reads per sequence; about half of the rated
    # bandwidth (an ASSUMPTION: paged-attention kernels are well below a stream copy), 0.35-0.80
    kv_bandwidth: tuple[float, float, float] = (0.50, 0.35, 0.80)
    # per layer and step: a few kernel launches with CUDA graphs, ~5 µs each
    layer_latency_s: float = 15e-6
    # per all-reduce when a model is split over devices (tensor parallelism: two per layer): NCCL's latency for small
    # messages over NVLink, plus the activations (batch × d_model × 2 bytes) at the bus bandwidth NCCL reaches on
    # NVLink/NVSwitch nodes (about 200 GB/s for an 8-GPU all-reduce on A100, more on H100: an ASSUMPTION)
    allreduce_latency_s: float = 10e-6
    allreduce_bandwidth_bps: float = 200e9


# A memory-bound kernel at full bandwidth draws about 60 % of an accelerator's span from idle to TDP (HBM and the
# memory system dominate; the tensor cores idle): a stated physical ASSUMPTION, range 0.45-0.75
MEMORY_BOUND_POWER = (0.60, 0.45, 0.75)
# idle draw of a deployment with no requests (the GPU settles into its low-power states): 15 % of TDP (an A100
# 40 GB idles at 50-60 W of 400 W; an H100 SXM at 70-100 W of 700 W: nvidia-smi readings widely published), range
# 0.10-0.20
IDLE_POWER = (0.15, 0.10, 0.20)
# draw while the GPU waits a few milliseconds for the host between steps: it stays in its highest performance state
# (P0: clocks up, HBM active), about a quarter of TDP (an A100 at roughly 90-130 W of 400 W, an H100 SXM 150-200 W
# of 700 W in P0 with no kernel running): an ASSUMPTION from those readings, range 0.15-0.35
WAIT_POWER = (0.25, 0.15, 0.35)


@dataclass(frozen=True, slots=True)
class Engine:
    """The serving software's own time per decode step, on the host CPU, and whether the GPU waits for it.

    Batched servers run the model as CUDA graphs (one launch per step), but schedule, sample and detokenise in
    Python for every sequence of the batch at every step; engines of 2024 and earlier do that between GPU steps
    (the GPU idles meanwhile; vLLM's profile of its v0.5 engine found its GPU busy only 38 % of the time), newer ones
    overlap it with the next step. Eager PyTorch generation (Hugging Face ``generate``) instead pays the framework's
    dispatch for every kernel: about 10-20 µs per operator, some 30 operators per layer."""

    name: str
    step_s: float  # per step: the scheduler's fixed work
    sequence_s: float  # per sequence and step: scheduling, sampling bookkeeping, detokenising, streaming a token
    layer_s: float  # per layer and step: framework dispatch (eager execution)
    overlapped: bool  # the host's work overlaps the GPU's

    def host_s(self, batch: int, layers: float) -> float:
        return self.step_s + batch * self.sequence_s + layers * self.layer_s

    def scaled(self, factor: float) -> Engine:
        """The same engine with its host costs times ``factor`` (the ends of their range: 0.5-1.5, an order of
        magnitude reasoned, not measured)."""
        return Engine(self.name, self.step_s * factor, self.sequence_s * factor, self.layer_s * factor, self.overlapped)


# The host's costs are orders of magnitude from what each piece of Python work takes on a server CPU (a dictionary
# of sequence state updated, an incremental detokenisation of one token, one streamed response chunk: tens to a few
# hundred microseconds each), not fitted: ASSUMPTIONS, stated with every estimate.
ENGINES: dict[str, Engine] = {
    # vLLM up to 0.5 (ML.ENERGY leaderboard v2), TGI, FastChat-style servers: Python work between GPU steps
    "batched": Engine("batched", step_s=2e-3, sequence_s=0.4e-3, layer_s=0.0, overlapped=False),
    # vLLM 0.6+ (multi-step scheduling, async output processing), SGLang, TensorRT-LLM: overlapped
    "overlapped": Engine("overlapped", step_s=1e-3, sequence_s=0.1e-3, layer_s=0.0, overlapped=True),
    # Hugging Face generate, eager PyTorch: ~0.5 ms of dispatch per layer (30 operators × ~15 µs)
    "eager": Engine("eager", step_s=1e-3, sequence_s=0.05e-3, layer_s=0.5e-3, overlapped=False),
}


@dataclass(frozen=True, slots=True)
class ModelShape:
    """What the physics needs of the model: parameters, precision and attention kind."""

    params: float  # all parameters
    active_params: float  # those used per token (= params for a dense model)
    dtype: str
    attention: str = "gqa"

    @property
    def layers(self) -> float:
        """Layers implied by the active parameters (see the module docstring)."""
        return float((self.active_params / (12 * D_MODEL_PER_LAYER**2)) ** (1 / 3))

    @property
    def d_model(self) -> float:
        return D_MODEL_PER_LAYER * self.layers

    @property
    def weight_bytes(self) -> float:
        return DTYPE_BYTES[self.dtype][0]

    @property
    def kv_bytes_per_token(self) -> float:
        """K and V of every layer for one token: 4 bytes for an fp32 model, 1 for fp8, else 2 (int8 and int4 weights
        keep a 16-bit cache)."""
        width = self.d_model * (GQA_KV_SHARE if self.attention == "gqa" else 1.0)
        kv_bytes = {"fp32": 4.0, "fp8": 1.0}.get(self.dtype, 2.0)
        return 2 * self.layers * width * kv_bytes


@dataclass(frozen=True, slots=True)
class ServingPhysics:
    """One case of the physics (one end of each range): per output token and per request, on the accelerators."""

    step_s: float  # wall time of one decode step (all devices)
    kernel_s: float  # of which the accelerators run kernels
    bound: str  # "memory", "compute" or "host" (the serving software): what limits a decode step
    memory_s: float  # the step's reads at the achievable bandwidth
    compute_s: float  # the step's arithmetic at the achievable peak
    host_s: float  # the serving software's own time per step
    weights_read_share: float  # of all the weights, what one step reads (a mixture of experts: by batch)
    decode_j_per_token: float  # accelerators' energy per output token (all devices)
    prefill_j_per_request: float
    prefill_s_per_request: float  # wall time the deployment spends on one request's prompt
    device_power_w: float  # one device's mean draw while decoding
    idle_power_w: float  # one device's idle draw

    def request_s(self, batch: int, output_tokens: float) -> float:
        """Deployment wall time one request costs (its share of the decode steps, and its prefill)."""
        return self.step_s * output_tokens / batch + self.prefill_s_per_request

    def request_j(self, output_tokens: float) -> float:
        return self.decode_j_per_token * output_tokens + self.prefill_j_per_request


def decode_and_prefill(
    hw: Hardware,
    devices: int,
    shape: ModelShape,
    *,
    batch: int,
    prompt_tokens: float,
    output_tokens: float,
    peak_flops: float,
    bandwidth: float,
    kv_bandwidth: float,
    compute: float,
    engine: Engine,
    memory_power: float,
    idle_share: float,
    wait_share: float,
    efficiencies: Efficiencies,
) -> ServingPhysics:
    """The physics for one set of efficiencies (the estimate calls it for the value, low and high ends)."""
    if hw.tdp_w is None:
        raise ConfigError(f"{hw.name} has no published power: give --power-w, the watts per device while serving")
    f = shape.active_params / shape.params
    read_share = 1.0 if f >= 1.0 else 1.0 - (1.0 - f) ** batch
    weights = max(shape.active_params, shape.params * read_share) * shape.weight_bytes
    context = prompt_tokens + output_tokens / 2
    kv = batch * context * shape.kv_bytes_per_token
    device_bps = devices * hw.memory_bandwidth_gbs * 1e9
    memory_s = weights / (device_bps * bandwidth) + kv / (device_bps * kv_bandwidth)
    layers = shape.layers
    flops = batch * (2 * shape.active_params + 4 * layers * context * shape.d_model)
    compute_s = flops / (devices * peak_flops * compute)
    allreduce_s = 0.0
    if devices > 1:  # ring all-reduce: each device sends and receives 2 (n-1)/n of the activations
        payload = batch * shape.d_model * 2 * 2 * (devices - 1) / devices
        allreduce_s = efficiencies.allreduce_latency_s + payload / efficiencies.allreduce_bandwidth_bps
    fixed_s = layers * (efficiencies.layer_latency_s + 2 * allreduce_s)
    kernel_s = max(memory_s, compute_s) + fixed_s
    host_s = engine.host_s(batch, layers)
    step_s = max(kernel_s, host_s) if engine.overlapped else kernel_s + host_s
    idle_w = idle_share * hw.tdp_w
    wait_w = max(idle_w, wait_share * hw.tdp_w)
    span_w = hw.tdp_w - wait_w
    busy_w = wait_w + span_w * max(compute_s / kernel_s, memory_power * memory_s / kernel_s)
    step_j = devices * (busy_w * kernel_s + wait_w * (step_s - kernel_s))
    prefill_flops = 2 * shape.active_params * prompt_tokens + 2 * layers * prompt_tokens**2 * shape.d_model
    prefill_kernel_s = prefill_flops / (devices * peak_flops * compute)
    prefill_s = prefill_kernel_s + (0.0 if engine.overlapped else engine.host_s(1, layers))
    prefill_j = devices * (hw.tdp_w * prefill_kernel_s + wait_w * (prefill_s - prefill_kernel_s))
    if not all(math.isfinite(x) for x in (step_s, step_j, prefill_j)):
        raise ConfigError("the serving estimate is not a finite number: check the parameters and token counts")
    return ServingPhysics(
        step_s=step_s,
        kernel_s=kernel_s,
        bound="host"
        if not engine.overlapped and host_s > kernel_s
        else ("compute" if compute_s > memory_s else "memory"),
        memory_s=memory_s,
        compute_s=compute_s,
        host_s=host_s,
        weights_read_share=weights / (shape.params * shape.weight_bytes),
        decode_j_per_token=step_j / batch,
        prefill_j_per_request=prefill_j,
        prefill_s_per_request=prefill_s,
        device_power_w=step_j / devices / step_s,
        idle_power_w=idle_w,
    )
