"""Serving footprint: energy, emissions and water per output token, per request, per 1,000 requests and per day.

The accelerators' time and energy come from the physics of decoding and prefill (:mod:`wattwise.estimate.serving`):
memory bandwidth and compute at achievable shares of the hardware's peaks, at the batch the deployment runs. The
figures are given on a stated **boundary**:

* ``accelerator``: the accelerators alone (what NVML or the ML.ENERGY leaderboard meters);
* ``server``: plus the hosts' share (CPUs, memory, NICs, fans, power supplies): the node's rating above its
  accelerators' TDP (NVIDIA DGX figures, see :mod:`wattwise.estimate.power`) at :data:`HOST_LOAD` of it;
* ``facility``: the server times the facility's PUE.

Without ``requests_per_day`` the deployment is busy at the given batch all day; with it, the hours it is not busy
count at idle power (accelerators at :data:`~wattwise.estimate.serving.IDLE_POWER` of TDP, hosts at the same share
of their rating), shared among the day's requests. Emissions and water follow the energy on the chosen boundary.
Every figure has a low-high range from the ranges of the physics' constants.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Any

from wattwise import validate
from wattwise.errors import ConfigError
from wattwise.estimate.hardware import Hardware, HardwareCatalogue
from wattwise.estimate.model import DEFAULT_PUE, INTENSITY_SPREAD
from wattwise.estimate.serving import (
    ATTENTIONS,
    DTYPE_BYTES,
    ENGINES,
    IDLE_POWER,
    MEMORY_BOUND_POWER,
    WAIT_POWER,
    Efficiencies,
    ModelShape,
    ServingPhysics,
    decode_and_prefill,
)
from wattwise.records import Range

__all__ = ["BOUNDARIES", "InferenceEstimate", "InferenceInputs", "estimate_inference"]

BOUNDARIES = ("accelerator", "server", "facility")
HOST_LOAD = (0.40, 0.25, 0.60)  # ASSUMPTION: a serving host's draw as a share of its rating (CPUs lightly loaded)
MEMORY_HEADROOM = 0.90  # weights and KV cache may fill this share of the devices' memory (activations, fragments)
SECONDS_PER_DAY = 86_400.0


@dataclass(frozen=True, slots=True)
class InferenceInputs:
    hardware: str
    params: float
    tokens_per_request: float  # output tokens per request
    batch: int = 1
    prompt_tokens: float = 0.0
    active_params: float | None = None
    devices: int = 1
    requests_per_day: float | None = None  # None: busy at ``batch`` all day
    dtype: str = "bf16"
    attention: str = "gqa"
    engine: str = "batched"
    boundary: str = "facility"
    power_w: float | None = None  # the device's maximum draw (its TDP), where the catalogue has none or to override it
    peak_tflops: float | None = None  # the device's dense peak in the arithmetic's dtype, to override the catalogue
    memory_bandwidth_gbs: float | None = None  # the device's memory bandwidth, to override the catalogue
    pue: float | None = None
    region: str | None = None
    intensity_g_per_kwh: float | None = None

    def validate(self) -> None:
        """Every value in its plausible range (:mod:`wattwise.validate`), and the inputs consistent."""
        for name, bounds in (
            ("params", validate.PARAMS),
            ("tokens_per_request", validate.TOKENS_PER_REQUEST),
            ("requests_per_day", validate.REQUESTS_PER_DAY),
            ("prompt_tokens", validate.PROMPT_TOKENS),
            ("active_params", validate.PARAMS),
            ("power_w", validate.POWER_W),
            ("peak_tflops", validate.PEAK_TFLOPS),
            ("memory_bandwidth_gbs", validate.MEMORY_BANDWIDTH_GBS),
            ("pue", validate.PUE),
            ("intensity_g_per_kwh", validate.INTENSITY),
        ):
            value = getattr(self, name)
            if value is not None and not bounds.contains(value):
                raise ConfigError(validate.renamed(bounds, name).message(value))
        validate.BATCH.check_int(self.batch)
        validate.DEVICES.check_int(self.devices)
        if self.active_params is not None and self.active_params > self.params:
            raise ConfigError(
                f"active_params ({self.active_params:g}) cannot exceed params ({self.params:g}): the active "
                "parameters of a mixture of experts are a subset of all of them"
            )
        for name, allowed in (
            ("dtype", tuple(DTYPE_BYTES)),
            ("attention", ATTENTIONS),
            ("engine", tuple(ENGINES)),
            ("boundary", BOUNDARIES),
        ):
            if getattr(self, name) not in allowed:
                raise ConfigError(f"{name} must be one of {', '.join(allowed)} (got {getattr(self, name)!r})")


@dataclass(frozen=True, slots=True)
class InferenceEstimate:
    """Per output token, per request, per 1,000 requests and per day, on ``boundary``; each with its range."""

    boundary: str
    j_per_output_token: Range
    wh_per_request: Range
    wh_per_1k_requests: Range
    kwh_per_day: Range
    co2e_g_per_request: Range
    co2e_g_per_1k_requests: Range
    co2e_kg_per_day: Range
    water_ml_per_request: Range
    water_l_per_day: Range
    requests_per_day: float
    busy_share: float  # of the day the deployment is serving
    bound: str  # what limits a decode step: memory or compute
    step_ms: float
    device_power_w: float
    memory_needed_gb: float
    pue: float
    intensity_g_per_kwh: float
    region: str
    assumptions: tuple[str, ...]
    inputs: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        names = (
            "j_per_output_token",
            "wh_per_request",
            "wh_per_1k_requests",
            "kwh_per_day",
            "co2e_g_per_request",
            "co2e_g_per_1k_requests",
            "co2e_kg_per_day",
            "water_ml_per_request",
            "water_l_per_day",
        )
        data: dict[str, Any] = {"boundary": self.boundary}
        data.update({n: getattr(self, n).value for n in names})
        data["low"] = {n: getattr(self, n).low for n in names}
        data["high"] = {n: getattr(self, n).high for n in names}
        per_1k_tokens = 1000 / self.inputs["tokens_per_request"]
        data.update(  # the names saved estimates had before, read by the dashboard's pages
            energy_wh_per_request=self.wh_per_request.value,
            energy_wh_per_1k_tokens=self.wh_per_request.value * per_1k_tokens,
            co2e_g_per_1k_tokens=self.co2e_g_per_request.value * per_1k_tokens,
            energy_kwh_per_day=self.kwh_per_day.value,
            water_l_per_day=self.water_l_per_day.value,
            requests_per_day=self.requests_per_day,
            busy_share=self.busy_share,
            bound=self.bound,
            step_ms=self.step_ms,
            device_power_w=self.device_power_w,
            memory_needed_gb=self.memory_needed_gb,
            pue=self.pue,
            intensity_g_per_kwh=self.intensity_g_per_kwh,
            region=self.region,
            assumptions=list(self.assumptions),
            inputs=self.inputs,
        )
        return data


def _memory_check(hw: Hardware, inputs: InferenceInputs, shape: ModelShape, notes: list[str]) -> float:
    """The memory the deployment needs (GB): the weights, and the batch's KV caches at the mean context (a batch
    holds requests at every stage). ConfigError when the weights do not fit; a note when the KV caches do not fit
    beside them (an engine then runs a smaller batch than asked, and the estimate is for the batch as given)."""
    weights_gb = inputs.params * shape.weight_bytes / 1e9
    context = inputs.prompt_tokens + inputs.tokens_per_request / 2
    kv_gb = inputs.batch * context * shape.kv_bytes_per_token / 1e9
    needed = weights_gb + kv_gb
    if hw.memory_gb is not None:
        have = inputs.devices * hw.memory_gb * MEMORY_HEADROOM
        if weights_gb > have:
            raise ConfigError(
                f"the model does not fit: its weights need {weights_gb:,.0f} GB in {inputs.dtype}, and "
                f"{inputs.devices} × {hw.name} hold {have:,.0f} GB usable ({MEMORY_HEADROOM:.0%} of {hw.memory_gb:g} "
                "GB each); add devices or use a smaller dtype (int8, int4)"
            )
        if needed > have:
            fits = max(0, int((have - weights_gb) * 1e9 / (context * shape.kv_bytes_per_token)))
            if fits == 0:
                raise ConfigError(
                    f"not even one request fits: its KV cache needs {context * shape.kv_bytes_per_token / 1e9:,.0f} GB "
                    f"at the mean context beside {weights_gb:,.0f} GB of weights, and {inputs.devices} × {hw.name} "
                    f"hold {have:,.0f} GB usable; shorten the prompt or add devices"
                )
            notes.append(
                f"the KV caches of {inputs.batch} requests ({kv_gb:,.0f} GB at the mean context, by the implied shape) "
                f"do not fit beside the weights ({weights_gb:,.0f} GB of {have:,.0f} GB usable): about {fits} would; "
                "an engine would run fewer at once"
            )
    return needed


def _physics(
    hw: Hardware, inputs: InferenceInputs, shape: ModelShape, peak: float
) -> tuple[ServingPhysics, ServingPhysics, ServingPhysics]:
    """The physics at the middle of every range, and at the ends that give the least and the most energy."""
    e = Efficiencies()
    engine = ENGINES[inputs.engine]
    cases = []
    for i, j, host in ((0, 0, 1.0), (2, 1, 0.5), (1, 2, 1.5)):  # (value), (efficient: high shares, low powers...)
        cases.append(
            decode_and_prefill(
                hw,
                inputs.devices,
                shape,
                batch=inputs.batch,
                prompt_tokens=inputs.prompt_tokens,
                output_tokens=inputs.tokens_per_request,
                peak_flops=peak,
                bandwidth=e.bandwidth[i],
                kv_bandwidth=e.kv_bandwidth[i],
                compute=e.compute[i],
                engine=engine.scaled(host),
                memory_power=MEMORY_BOUND_POWER[j],
                idle_share=IDLE_POWER[j],
                wait_share=WAIT_POWER[j],
                efficiencies=e,
            )
        )
    return cases[0], cases[1], cases[2]


def _overridden(hw: Hardware, inputs: InferenceInputs, arithmetic: str) -> Hardware:
    """The catalogue's device with the figures the user gave instead (a device it lacks, a slice of a CPU)."""
    from dataclasses import replace
    from types import MappingProxyType

    if inputs.power_w is not None:
        hw = replace(hw, tdp_w=inputs.power_w)
    if inputs.peak_tflops is not None:
        hw = replace(hw, peak_tflops=MappingProxyType({**hw.peak_tflops, arithmetic: inputs.peak_tflops}))
    if inputs.memory_bandwidth_gbs is not None:
        hw = replace(hw, memory_bandwidth_gbs=inputs.memory_bandwidth_gbs, bandwidth_source="as given")
    return hw


def _host_w(hw: Hardware, load: float) -> float:
    """One accelerator's share of its host's draw: the node rating above the accelerators' TDP, at ``load``."""
    if hw.kind == "cpu" or hw.tdp_w is None:
        return 0.0
    from wattwise.estimate.power import DEFAULT_NODE_RATIO, node_rating

    rating = node_rating(hw)
    per_device = rating[0] / rating[1] if rating is not None else DEFAULT_NODE_RATIO * hw.tdp_w
    return max(0.0, per_device - hw.tdp_w) * load


def _normalised(inputs: InferenceInputs) -> InferenceInputs:
    """Words compared as the CLI shows them: ``BF16``, ``Server`` and ``GQA`` are the same choices."""
    from dataclasses import replace

    def word(value: str) -> str:
        return str(value).strip().lower()

    return replace(
        inputs,
        dtype=word(inputs.dtype),
        attention=word(inputs.attention),
        engine=word(inputs.engine),
        boundary=word(inputs.boundary),
    )


def _peak(catalogue: HardwareCatalogue, hw: Hardware, arithmetic: str) -> float:
    try:
        return catalogue.peak_flops(hw, arithmetic)
    except ConfigError:
        have = ", ".join(d for d in ("fp32", "bf16", "fp16", "fp8", "int8") if d in hw.peak_tflops) or "none"
        hint = (
            "give --peak-tflops (peak_tflops), its peak in the model's arithmetic"
            if not hw.peak_tflops
            else "serve in one of those, or int4 (4-bit weights, 16-bit arithmetic)"
        )
        raise ConfigError(f"{hw.name} has no {arithmetic} arithmetic (published peaks: {have}); {hint}") from None


def _batch_for_load(hw: Hardware, inputs: InferenceInputs, shape: ModelShape, peak: float) -> int:
    """The batch a load can fill: by Little's law, requests in flight = requests per second × a request's latency
    (its decode steps and its prefill), at most ``inputs.batch``. A light load never fills a large batch."""
    assert inputs.requests_per_day is not None
    from dataclasses import replace

    batch = inputs.batch
    for _ in range(64):
        mid = _physics(hw, replace(inputs, batch=batch), shape, peak)[0]
        latency_s = mid.step_s * inputs.tokens_per_request + mid.prefill_s_per_request
        in_flight = inputs.requests_per_day / SECONDS_PER_DAY * latency_s
        fitting = min(inputs.batch, max(1, math.ceil(in_flight)))
        if fitting >= batch:
            return batch
        batch = fitting
    return batch


def _notes(
    hw: Hardware, inputs: InferenceInputs, shape: ModelShape, peak: float, phys: tuple[ServingPhysics, ...]
) -> list[str]:
    """Every assumption of the estimate, with its figure and where it comes from."""
    mid, low, high = phys
    e, engine = Efficiencies(), ENGINES[inputs.engine]
    arithmetic = DTYPE_BYTES[inputs.dtype][1]
    return [
        f"hardware: {inputs.devices} × {hw.name}: {hw.memory_bandwidth_gbs:,.0f} GB/s ({hw.bandwidth_source}); "
        f"dense {arithmetic} peak {peak / 1e12:,.4g} TFLOP/s; TDP {hw.tdp_w:g} W ({hw.sources})",
        f"model: {inputs.params:.3g} parameters ({shape.active_params:.3g} active) in {inputs.dtype} "
        f"({shape.weight_bytes:g} bytes each); shape implied by the active parameters (N = 12 layers d_model^2, "
        f"d_model = 128 layers: GPT-3, Llama 2/3, Mixtral): {shape.layers:.0f} layers, d_model {shape.d_model:,.0f}, "
        f"{inputs.attention.upper()} KV cache {shape.kv_bytes_per_token / 1e3:,.0f} kB per token",
        f"decode step at batch {inputs.batch}: {mid.step_s * 1e3:,.1f} ms ({mid.bound}-bound: reads "
        f"{mid.memory_s * 1e3:,.1f} ms, arithmetic {mid.compute_s * 1e3:,.1f} ms, host software "
        f"{mid.host_s * 1e3:,.1f} ms; range {low.step_s * 1e3:,.1f}-{high.step_s * 1e3:,.1f} ms), "
        f"{mid.device_power_w:,.0f} W per device; a step reads {mid.weights_read_share:.0%} of the weights"
        + (" (the experts this batch is routed to)" if shape.active_params < shape.params else ""),
        f"achievable shares (ASSUMPTIONS): weights bandwidth {e.bandwidth[0]:.0%} ({e.bandwidth[1]:.0%}-"
        f"{e.bandwidth[2]:.0%}: stream benchmarks reach 80-90 % of HBM's rating), paged KV reads "
        f"{e.kv_bandwidth[0]:.0%} "
        f"({e.kv_bandwidth[1]:.0%}-{e.kv_bandwidth[2]:.0%}), dense arithmetic {e.compute[0]:.0%} ({e.compute[1]:.0%}-"
        f"{e.compute[2]:.0%}: cuBLAS on large GEMMs sustains 60-80 % of the dense peak)",
        f"fixed latencies (ASSUMPTIONS): {e.layer_latency_s * 1e6:g} µs per layer and step (kernel launches with CUDA "
        f"graphs)"
        + (
            f"; two all-reduces per layer across {inputs.devices} devices, {e.allreduce_latency_s * 1e6:g} µs each "
            f"plus the activations at {e.allreduce_bandwidth_bps / 1e9:g} GB/s (NCCL on NVLink)"
            if inputs.devices > 1
            else ""
        ),
        f"host software (ASSUMPTION, engine {inputs.engine}): {engine.step_s * 1e3:g} ms per step, "
        f"{engine.sequence_s * 1e3:g} ms per sequence and step, {engine.layer_s * 1e3:g} ms per layer and step "
        f"(x0.5-1.5), {'overlapped with' if engine.overlapped else 'added to'} the GPU's time: vLLM's profile of "
        "its "
        "0.5 engine found the GPU busy 38 % of the time (vLLM blog, Sept 2024)",
        f"power (ASSUMPTIONS): waiting for the host {WAIT_POWER[0]:.0%} of TDP "
        f"({WAIT_POWER[1]:.0%}-{WAIT_POWER[2]:.0%}: "
        f"P0 with no kernel), memory-bound kernels {MEMORY_BOUND_POWER[0]:.0%} of the span to TDP "
        f"({MEMORY_BOUND_POWER[1]:.0%}-{MEMORY_BOUND_POWER[2]:.0%}), compute-bound kernels and prefill at TDP, idle "
        f"{IDLE_POWER[0]:.0%} of TDP ({IDLE_POWER[1]:.0%}-{IDLE_POWER[2]:.0%}: nvidia-smi readings of idle A100/H100)",
    ]


def estimate_inference(inputs: InferenceInputs, *, catalogue: HardwareCatalogue | None = None) -> InferenceEstimate:
    from dataclasses import replace

    inputs = _normalised(inputs)
    inputs.validate()
    catalogue = catalogue or HardwareCatalogue()
    listed = catalogue.get(inputs.hardware)
    arithmetic = DTYPE_BYTES[inputs.dtype][1]
    hw = _overridden(listed, inputs, arithmetic)
    active = inputs.active_params if inputs.active_params is not None else inputs.params
    shape = ModelShape(inputs.params, active, inputs.dtype, inputs.attention)
    peak = _peak(catalogue, hw, arithmetic)
    notes: list[str] = []
    memory_gb = _memory_check(hw, inputs, shape, notes)
    asked = inputs
    if inputs.requests_per_day is not None:
        full = _physics(hw, inputs, shape, peak)[0]
        capacity = SECONDS_PER_DAY / full.request_s(inputs.batch, inputs.tokens_per_request)
        if inputs.requests_per_day > capacity:
            raise ConfigError(
                f"{inputs.devices} × {hw.name} at batch {inputs.batch} serve at most {capacity:,.0f} requests a day "
                f"({SECONDS_PER_DAY / capacity:.3g} s of the deployment each); {inputs.requests_per_day:,.0f} need "
                "more devices or a larger batch"
            )
        inputs = replace(inputs, batch=_batch_for_load(hw, inputs, shape, peak))
    phys = _physics(hw, inputs, shape, peak)
    mid, low, high = phys
    notes[:0] = _notes(hw, inputs, shape, peak, phys)
    if inputs.batch < asked.batch:
        notes.append(
            f"{asked.requests_per_day:,.0f} requests a day keep about {inputs.batch} in flight (Little's law: arrivals "
            f"× latency), so the estimate runs at batch {inputs.batch}, not {asked.batch}: a light load never fills "
            "large batches"
        )
    tokens = inputs.tokens_per_request
    notes.append(f"memory needed: {memory_gb:,.0f} GB (weights and the batch's KV caches at the mean context)")
    busy = Range(
        mid.request_s(inputs.batch, tokens), low.request_s(inputs.batch, tokens), high.request_s(inputs.batch, tokens)
    )
    accel_j = Range(mid.request_j(tokens), low.request_j(tokens), high.request_j(tokens))
    host_w = Range(*(_host_w(listed, load) for load in HOST_LOAD))  # the catalogue's device: a power cap is the GPU's
    server = inputs.boundary != "accelerator"
    request_j = Range(
        accel_j.value + (host_w.value * inputs.devices * busy.value if server else 0.0),
        accel_j.low + (host_w.low * inputs.devices * busy.low if server else 0.0),
        accel_j.high + (host_w.high * inputs.devices * busy.high if server else 0.0),
    )
    if server and host_w.value > 0:
        notes.append(
            f"hosts: {host_w.value:,.0f} W per accelerator while serving ({HOST_LOAD[0]:.0%} of the node rating above "
            f"the accelerators' TDP, range {HOST_LOAD[1]:.0%}-{HOST_LOAD[2]:.0%}; ASSUMPTION; NVIDIA DGX ratings)"
        )
    if inputs.requests_per_day is None:
        per_day = SECONDS_PER_DAY / busy.value
        busy_share = 1.0
        notes.append(f"busy all day at batch {inputs.batch}: {per_day:,.0f} requests a day")
    else:
        per_day = inputs.requests_per_day
        busy_share = min(1.0, per_day * busy.value / SECONDS_PER_DAY)
        idle_s = SECONDS_PER_DAY * (1 - busy_share)
        assert hw.tdp_w is not None
        idle_w = Range(*(share * hw.tdp_w for share in IDLE_POWER))
        extra = Range(
            *(
                inputs.devices * idle_s * (w + (h * IDLE_POWER[0] / HOST_LOAD[0] if server else 0.0)) / per_day
                for w, h in zip(
                    (idle_w.value, idle_w.low, idle_w.high), (host_w.value, host_w.low, host_w.high), strict=True
                )
            )
        )
        request_j = Range(request_j.value + extra.value, request_j.low + extra.low, request_j.high + extra.high)
        notes.append(
            f"{per_day:,.0f} requests a day keep the deployment busy {busy_share:.1%} of the day; the rest at idle "
            f"power ({IDLE_POWER[0]:.0%} of TDP per accelerator), shared among the requests"
        )
    pue, grid, region, water_per_kwh = _facility(inputs, notes)
    if inputs.boundary == "facility":
        request_j = Range(request_j.value * pue.value, request_j.low * pue.low, request_j.high * pue.high)
    if not all(math.isfinite(x) for x in (request_j.value, request_j.low, request_j.high)):
        raise ConfigError(
            "the estimate per request is not a finite number: the load is too small to share the day's idle power "
            "among (give a larger --requests-per-day, or none: busy all day)"
        )
    request_wh = Range(request_j.value / 3600, request_j.low / 3600, request_j.high / 3600)
    day_kwh = Range(*(x * per_day / 1000 for x in (request_wh.value, request_wh.low, request_wh.high)))
    return InferenceEstimate(
        boundary=inputs.boundary,
        j_per_output_token=Range(request_j.value / tokens, request_j.low / tokens, request_j.high / tokens),
        wh_per_request=request_wh,
        wh_per_1k_requests=_scale(request_wh, 1000),
        kwh_per_day=day_kwh,
        co2e_g_per_request=_times(request_wh, grid, 1 / 1000),
        co2e_g_per_1k_requests=_times(request_wh, grid, 1.0),
        co2e_kg_per_day=_times(day_kwh, grid, 1 / 1000),
        water_ml_per_request=_scale(request_wh, water_per_kwh),
        water_l_per_day=_scale(day_kwh, water_per_kwh),
        requests_per_day=per_day,
        busy_share=busy_share,
        bound=mid.bound,
        step_ms=mid.step_s * 1e3,
        device_power_w=mid.device_power_w,
        memory_needed_gb=memory_gb,
        pue=pue.value if inputs.boundary == "facility" else 1.0,
        intensity_g_per_kwh=grid.value,
        region=region,
        assumptions=tuple(notes),
        inputs={f.name: getattr(asked, f.name) for f in fields(asked) if getattr(asked, f.name) is not None},
    )


def _facility(inputs: InferenceInputs, notes: list[str]) -> tuple[Range, Range, str, float]:
    """PUE, grid intensity (g/kWh), region and water (L per kWh on the chosen boundary) for the estimate."""
    from wattwise.carbon.service import IntensityService
    from wattwise.config import Settings

    service = IntensityService(Settings(region=inputs.region))
    facility = service.facility()
    if inputs.pue is not None:
        pue = Range(inputs.pue, inputs.pue, inputs.pue)
    elif service.region.pue is not None:
        pue = Range(service.region.pue, service.region.pue, service.region.pue)
    else:
        pue = Range(*DEFAULT_PUE[:3])
    if inputs.intensity_g_per_kwh is not None:
        g = inputs.intensity_g_per_kwh
        grid = Range(g, g, g)
    else:
        g = service.region.intensity.intensity_g_per_kwh
        grid = Range(g, g * (1 - INTENSITY_SPREAD), g * (1 + INTENSITY_SPREAD))
    notes.append(
        f"boundary {inputs.boundary}"
        + (f": PUE {pue.value:g} ({pue.low:g}-{pue.high:g})" if inputs.boundary == "facility" else " (no PUE)")
        + f"; grid {grid.value:,.0f} g/kWh ({grid.low:,.0f}-{grid.high:,.0f}, {service.region.code})"
    )
    # water follows the energy on the boundary: the grid's water for every kWh counted; the facility's cooling water
    # (WUE per kWh of IT energy) only on the facility boundary, as PUE is
    if inputs.boundary == "facility":
        water = facility.wue_l_per_kwh / pue.value + facility.offsite_water_l_per_kwh
    else:
        water = facility.offsite_water_l_per_kwh
    return pue, grid, service.region.code, water


def _scale(r: Range, k: float) -> Range:
    return Range(r.value * k, r.low * k, r.high * k)


def _times(a: Range, b: Range, k: float = 1.0) -> Range:
    """The product of two non-negative ranges (lows together, highs together), times ``k``."""
    return Range(a.value * b.value * k, a.low * b.low * k, a.high * b.high * k)
