"""Serving footprint: energy and emissions per request, per 1,000 tokens and per day for a deployment.

A request costs ``2 · N · (prompt + output tokens)`` FLOPs (a forward pass; Kaplan et al. 2020; N = active
parameters). Serving sustains a much smaller share of peak than training — decoding is bound by memory
bandwidth and batches are small — so accelerator time per request = FLOPs ÷ (dense peak × serving utilisation),
with serving utilisation 15 % by default and a range of 5–40 % (an ASSUMPTION, stated in every estimate; give
``--utilisation`` when you have measured it). Power per busy accelerator comes from the same model as training.
A deployment of a fixed number of devices also draws power while idle: its daily energy is the busy energy plus
the idle draw of the device-hours left over, idle taken as 30 % of their average training power (an ASSUMPTION).
PUE and grid intensity carry the same ranges as for training.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

from wattwise import validate
from wattwise.errors import ConfigError
from wattwise.estimate.hardware import HardwareCatalogue
from wattwise.estimate.model import DEFAULT_PUE, INTENSITY_SPREAD
from wattwise.estimate.power import DevicePower, system_power
from wattwise.records import Range

SERVING_UTILISATION = (0.15, 0.05, 0.40)  # ASSUMPTION, see the module docstring
IDLE_FRACTION = 0.30  # ASSUMPTION: idle draw as a share of the average training draw


@dataclass(frozen=True, slots=True)
class InferenceInputs:
    hardware: str
    params: float
    tokens_per_request: float
    requests_per_day: float
    prompt_tokens: float = 0.0
    active_params: float | None = None
    devices: int | None = None  # a fixed deployment; None: only the busy time counts
    utilisation: float | None = None
    dtype: str = "bf16"
    power_w: float | None = None  # average power per busy accelerator, hosts included; None: the power model
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
            ("devices", validate.DEVICES),
            ("utilisation", validate.UTILISATION),
            ("power_w", validate.POWER_W),
            ("pue", validate.PUE),
            ("intensity_g_per_kwh", validate.INTENSITY),
        ):
            value = getattr(self, name)
            if value is not None and not bounds.contains(value):
                raise ConfigError(validate.renamed(bounds, name).message(value))
        if self.active_params is not None and self.active_params > self.params:
            raise ConfigError("active_params cannot exceed params (active parameters are a subset of all of them)")


@dataclass(frozen=True, slots=True)
class InferenceEstimate:
    energy_wh_per_request: Range
    energy_wh_per_1k_tokens: Range
    co2e_g_per_request: Range
    co2e_g_per_1k_tokens: Range
    energy_kwh_per_day: Range
    co2e_kg_per_day: Range
    water_l_per_day: Range
    pue: float
    intensity_g_per_kwh: float
    region: str
    assumptions: tuple[str, ...]
    inputs: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        names = (
            "energy_wh_per_request",
            "energy_wh_per_1k_tokens",
            "co2e_g_per_request",
            "co2e_g_per_1k_tokens",
            "energy_kwh_per_day",
            "co2e_kg_per_day",
            "water_l_per_day",
        )
        data: dict[str, Any] = {n: getattr(self, n).value for n in names}
        data["low"] = {n: getattr(self, n).low for n in names}
        data["high"] = {n: getattr(self, n).high for n in names}
        data.update(
            pue=self.pue,
            intensity_g_per_kwh=self.intensity_g_per_kwh,
            region=self.region,
            assumptions=list(self.assumptions),
            inputs=self.inputs,
        )
        return data


def _scale(r: Range, k: float) -> Range:
    return Range(r.value * k, r.low * k, r.high * k)


def _times(a: Range, b: Range, k: float = 1.0) -> Range:
    """The product of two non-negative ranges (lows together, highs together), times ``k``."""
    return Range(a.value * b.value * k, a.low * b.low * k, a.high * b.high * k)


def estimate_inference(inputs: InferenceInputs, *, catalogue: HardwareCatalogue | None = None) -> InferenceEstimate:
    inputs.validate()
    catalogue = catalogue or HardwareCatalogue()
    hw = catalogue.get(inputs.hardware)
    n = inputs.active_params if inputs.active_params is not None else inputs.params
    tokens = inputs.prompt_tokens + inputs.tokens_per_request
    flops = 2.0 * n * tokens
    peak = catalogue.peak_flops(hw, inputs.dtype)
    u = (inputs.utilisation,) * 3 if inputs.utilisation is not None else SERVING_UTILISATION
    seconds = Range(flops / (peak * u[0]), flops / (peak * u[2]), flops / (peak * u[1]))
    if inputs.power_w is not None:
        power = DevicePower(inputs.power_w, inputs.power_w, inputs.power_w, f"{inputs.power_w:g} W as given")
    else:
        power = system_power(hw)
    notes = [
        f"hardware: {hw.name} ({hw.sources})",
        f"FLOPs per request = 2 × {n:.3g} × {tokens:g} tokens = {flops:.3g} (forward pass; Kaplan et al. 2020)",
        f"serving utilisation {u[0]:.0%} of dense {inputs.dtype} peak ({peak / 1e12:,.0f} TFLOP/s)"
        + (" as given" if inputs.utilisation is not None else f", range {u[1]:.0%}-{u[2]:.0%} (ASSUMPTION)"),
        f"power {power.watts:,.0f} W per busy accelerator, hosts included: {power.basis}",
    ]
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
        f"PUE {pue.value:g} ({pue.low:g}-{pue.high:g}); grid {grid.value:,.0f} g/kWh "
        f"({grid.low:,.0f}-{grid.high:,.0f}, {service.region.code})"
    )
    it_wh = Range(seconds.value * power.watts / 3600, seconds.low * power.low / 3600, seconds.high * power.high / 3600)
    wh = _times(it_wh, pue)
    per_1k = _scale(wh, 1000 / inputs.tokens_per_request)
    day = _scale(wh, inputs.requests_per_day / 1000)
    if inputs.devices is not None:
        capacity_h = inputs.devices * 24.0
        busy_h = Range(
            seconds.value * inputs.requests_per_day / 3600,
            seconds.low * inputs.requests_per_day / 3600,
            seconds.high * inputs.requests_per_day / 3600,
        )
        if busy_h.value > capacity_h:
            notes.append(
                f"{busy_h.value:,.0f} busy accelerator-hours a day exceed {inputs.devices} devices × 24 h: "
                "the deployment cannot serve this load at this utilisation"
            )
        idle_w = (power.watts * IDLE_FRACTION, power.low * IDLE_FRACTION, power.high * IDLE_FRACTION)
        idle_kwh = Range(
            *(
                max(0.0, capacity_h - h) * w / 1000
                for h, w in zip((busy_h.value, busy_h.high, busy_h.low), idle_w, strict=True)
            )
        )
        day = Range(
            day.value + idle_kwh.value * pue.value,
            day.low + idle_kwh.low * pue.low,
            day.high + idle_kwh.high * pue.high,
        )
        notes.append(
            f"plus idle draw for the hours {inputs.devices} devices are not busy, at {IDLE_FRACTION:.0%} of "
            "their average draw (ASSUMPTION)"
        )
    water_per_kwh = facility.wue_l_per_kwh / pue.value + facility.offsite_water_l_per_kwh
    return InferenceEstimate(
        energy_wh_per_request=wh,
        energy_wh_per_1k_tokens=per_1k,
        co2e_g_per_request=_times(wh, grid, 1 / 1000),
        co2e_g_per_1k_tokens=_times(per_1k, grid, 1 / 1000),
        energy_kwh_per_day=day,
        co2e_kg_per_day=_times(day, grid, 1 / 1000),
        water_l_per_day=_scale(day, water_per_kwh),
        pue=pue.value,
        intensity_g_per_kwh=grid.value,
        region=service.region.code,
        assumptions=tuple(notes),
        inputs={f.name: getattr(inputs, f.name) for f in fields(inputs) if getattr(inputs, f.name) is not None},
    )
