"""Training footprint before the run: FLOPs → accelerator-hours → energy → emissions, embodied carbon, water, cost.

- FLOPs: given, or ``6 · N · D`` (Kaplan et al. 2020; N = active parameters for mixture-of-experts, D = tokens)
  plus the attention's ``12 · L · d · T · D`` (Chowdhery et al. 2022, PaLM, App. B: L layers, width d, context T).
  The MFU figures below count attention FLOPs this way, so hours from ``6 · N · D`` alone would come out short,
  most for small models with long contexts. L and d come from N at the aspect ratio d / L = 128 of the common
  decoder families (GPT-3 175B: 12288 / 96; Llama 2 7B and 3 8B: 4096 / 32; Llama 3 405B: 16384 / 126), with
  N ≈ 12 · L · d²; the context defaults to 4,096 tokens (an assumption, range 2,048-8,192; ``seq_len`` sets it).
- Accelerator-hours: given (devices × hours, or accelerator_hours), or FLOPs ÷ (dense peak FLOP/s × MFU × goodput).
  MFU, the share of peak a large training run sustains while it runs, defaults by hardware generation from
  published runs (see ``_MFU``); ``--mfu`` overrides it. Goodput is the share of the accelerator time a job holds
  that advances training: the rest goes to failures and restarts, repeated steps after a rollback, checkpointing and
  evaluation, which published accelerator-hours include and a throughput MFU does not. Llama 3's pre-training kept
  "higher than 90 % effective training time" (Dubey et al. 2024, Sec. 3.3.4), so the default is 0.9 (range 0.8-0.95,
  an assumption). An MFU computed from a whole run's time (GPT-3 on V100) already has it inside; a given ``--mfu``
  is taken as a throughput figure, as training logs report it.
- Energy: accelerator-hours × average system power per accelerator (``wattwise.estimate.power``: measured
  draw is well under TDP, and hosts add power) × PUE, reported both whole and split into the accelerators' own
  draw (what NVML reads) and the hosts'. ``power_w`` overrides the power model: it is then taken as
  everything per device (all of it the accelerator's) unless ``host_overhead`` adds a share for hosts.
- Operational emissions: facility energy × grid intensity (given, or the region's annual figure).
- Embodied: each accelerator's and its share of the server's manufacturing emissions, amortised over the
  hardware's life, for the hours the job holds it.
- Water: on-site (IT energy × WUE) + off-site (facility energy × the grid's litres per kWh).
- Ranges: every total carries low and high values from the spread of its inputs (MFU, power draw, PUE, intensity,
  hardware life); inputs the user gives are taken as exact.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from wattwise import validate
from wattwise.errors import ConfigError
from wattwise.estimate.hardware import Hardware, HardwareCatalogue
from wattwise.estimate.power import accelerator_power, system_power
from wattwise.records import Range

HOURS_PER_YEAR = 8760.0

# MFU by hardware family: (default, low, high, source). Published model-FLOPs utilisation of large runs, while
# they run (throughput), except where the source is a whole run's time (_WHOLE_RUN_MFU), which has downtime inside.
_MFU: tuple[tuple[str, float, float, float, str], ...] = (
    ("P100", 0.21, 0.15, 0.30, "assumed as V100 (no published large-scale P100 MFU)"),
    (
        "V100",
        0.21,
        0.15,
        0.35,
        "GPT-3 on V100: 21.3 % MFU (Chowdhery et al. 2022, PaLM, Table 3), from the whole run's time (14.8 days on "
        "10,000 V100s, Patterson et al. 2021)",
    ),
    ("TPUV2", 0.325, 0.2, 0.45, "assumed as TPU v3"),
    ("TPUV3", 0.325, 0.2, 0.45, "Gopher on TPU v3: 32.5 % MFU (Chowdhery et al. 2022, Table 3)"),
    ("TPUV4", 0.462, 0.35, 0.55, "PaLM on TPU v4: 46.2 % MFU (Chowdhery et al. 2022)"),
    ("TPUV5", 0.462, 0.35, 0.6, "assumed as TPU v4 (PaLM 46.2 %)"),
    (
        "A100",
        0.40,
        0.30,
        0.50,
        "MT-NLG 30.2 % (Chowdhery et al. 2022 Table 3); LLaMA-65B ~47 % (380 tokens/s/GPU, Touvron et al. 2023)",
    ),
    ("H100", 0.40, 0.30, 0.50, "Llama 3 405B: 38-43 % BF16 MFU on H100 (Dubey et al. 2024, Table 4)"),
    ("H200", 0.40, 0.30, 0.50, "assumed as H100"),
)
_MFU_DEFAULT = (0.35, 0.25, 0.50, "ASSUMPTION: no published large-scale MFU for this hardware")
SEQ_LEN = (4096, 2048, 8192, "ASSUMPTION: the common pre-training context of 2023-2025 decoders")
ASPECT_RATIO = 128.0  # d_model / n_layers of GPT-3, Llama 2/3 (see the module docstring)
_WHOLE_RUN_MFU = ("P100", "V100")  # families whose default MFU already includes a run's downtime
GOODPUT = (
    0.90,
    0.80,
    0.95,
    "Llama 3 pre-training: higher than 90 % effective training time (Dubey et al. 2024, Sec. 3.3.4); range assumed",
)

# Embodied carbon when the catalogue has none (kg CO2e), and server share per accelerator
_GPU_EMBODIED_KG = (150.0, "Luccioni et al. 2022 (BLOOM) estimate for an A100 GPU")
_SERVER_EMBODIED_KG = (2500.0 / 8, "Luccioni et al. 2022: 2,500 kg per 8-GPU HPE Apollo 6500 server, ÷ 8")
_LIFETIME_YEARS = (5.0, 4.0, 6.0, "4 years (Morrison et al. 2025) to 6 years (Luccioni et al. 2022)")

DEFAULT_PUE = (
    1.2,
    1.1,
    1.58,
    "1.2: between hyperscale fleets (~1.1: Google, Meta) and the Uptime Institute 2023 average (1.58)",
)
INTENSITY_SPREAD = 0.10  # ASSUMPTION: an annual average stands for a grid whose year-to-year figure moves ±10 %


@dataclass(frozen=True, slots=True)
class TrainingInputs:
    """What a user knows before training; see the module docstring for how each is used."""

    hardware: str
    devices: int | None = None
    hours: float | None = None
    accelerator_hours: float | None = None
    params: float | None = None
    active_params: float | None = None
    tokens: float | None = None
    flops: float | None = None
    mfu: float | None = None
    goodput: float | None = None
    seq_len: int | None = None
    dtype: str = "bf16"
    power_w: float | None = None
    host_overhead: float | None = None
    pue: float | None = None
    region: str | None = None
    intensity_g_per_kwh: float | None = None
    price_usd_per_kwh: float | None = None
    price_usd_per_device_hour: float | None = None

    def validate(self) -> None:
        """Every value in its plausible range (:mod:`wattwise.validate`), and the inputs consistent."""
        for name, bounds in (
            ("devices", validate.DEVICES),
            ("hours", validate.HOURS),
            ("accelerator_hours", validate.ACCELERATOR_HOURS),
            ("params", validate.PARAMS),
            ("active_params", validate.PARAMS),
            ("tokens", validate.TOKENS),
            ("flops", validate.FLOPS),
            ("mfu", validate.MFU),
            ("goodput", validate.GOODPUT),
            ("seq_len", validate.SEQ_LEN),
            ("power_w", validate.POWER_W),
            ("host_overhead", validate.HOST_OVERHEAD),
            ("pue", validate.PUE),
            ("intensity_g_per_kwh", validate.INTENSITY),
            ("price_usd_per_kwh", validate.PRICE_USD_PER_KWH),
            ("price_usd_per_device_hour", validate.PRICE_USD_PER_DEVICE_HOUR),
        ):
            value = getattr(self, name)
            if value is not None and not bounds.contains(value):
                raise ConfigError(validate.renamed(bounds, name).message(value))
        if self.active_params is not None and self.params is not None and self.active_params > self.params:
            raise ConfigError("active_params cannot exceed params (active parameters are a subset of all of them)")
        if self.accelerator_hours is not None and (self.devices is not None and self.hours is not None):
            raise ConfigError("give accelerator_hours or devices × hours, not both")
        if self.accelerator_hours is not None and self.hours is not None:
            raise ConfigError("give accelerator_hours or hours (with devices), not both")
        if self.flops is not None and self.tokens is not None:
            raise ConfigError("give flops or params × tokens, not both")
        if self.hours is not None and self.devices is None and self.accelerator_hours is None:
            raise ConfigError("hours needs devices (accelerator-hours = devices × hours), or give accelerator_hours")
        no_time = self.accelerator_hours is None and (self.devices is None or self.hours is None)
        no_model = self.tokens is None or (self.params is None and self.active_params is None)
        if no_time and self.flops is None and no_model:
            raise ConfigError("say how much compute: devices and hours, accelerator_hours, flops, or params and tokens")


@dataclass(frozen=True, slots=True)
class Estimate:
    """A footprint with its range and every assumption it rests on."""

    energy_kwh: Range
    it_energy_kwh: Range
    accelerator_energy_kwh: Range
    host_energy_kwh: Range
    operational_co2e_kg: Range
    embodied_co2e_kg: Range
    total_co2e_kg: Range
    water_l: Range
    water_onsite_l: Range
    water_offsite_l: Range
    accelerator_hours: Range
    cost_usd: Range | None
    flops: float | None
    power_w_per_device: Range
    accelerator_power_w: Range
    goodput: float | None
    pue: float
    intensity_g_per_kwh: float
    region: str
    assumptions: tuple[str, ...]
    inputs: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        totals = (
            "energy_kwh",
            "it_energy_kwh",
            "accelerator_energy_kwh",
            "host_energy_kwh",
            "operational_co2e_kg",
            "embodied_co2e_kg",
            "total_co2e_kg",
            "water_l",
            "water_onsite_l",
            "water_offsite_l",
            "accelerator_hours",
        )
        data: dict[str, Any] = {name: getattr(self, name).value for name in totals}
        data["cost_usd"] = None if self.cost_usd is None else self.cost_usd.value
        data["low"] = {name: getattr(self, name).low for name in totals}
        data["high"] = {name: getattr(self, name).high for name in totals}
        if self.cost_usd is not None:
            data["low"]["cost_usd"], data["high"]["cost_usd"] = self.cost_usd.low, self.cost_usd.high
        data.update(
            flops=self.flops,
            power_w_per_device=self.power_w_per_device.to_dict(),
            accelerator_power_w=self.accelerator_power_w.to_dict(),
            goodput=self.goodput,
            pue=self.pue,
            intensity_g_per_kwh=self.intensity_g_per_kwh,
            region=self.region,
            assumptions=list(self.assumptions),
            inputs=dict(self.inputs),
        )
        return data


def _family(hw: Hardware, table: tuple[tuple[str, float, float, float, str], ...]) -> tuple[float, float, float, str]:
    key = hw.name.upper().replace("-", "").replace(" ", "")
    for prefix, value, low, high, source in table:
        if key.startswith(prefix):
            return value, low, high, source
    return _MFU_DEFAULT


def estimate_training(inputs: TrainingInputs, *, catalogue: HardwareCatalogue | None = None) -> Estimate:
    """The footprint of a training run (see the module docstring)."""
    inputs.validate()
    hw = (catalogue or HardwareCatalogue()).get(inputs.hardware)
    notes: list[str] = [f"hardware: {hw.name} ({hw.sources})"]

    # -- compute: FLOPs and accelerator-hours --------------------------------------------------------------
    flops = inputs.flops
    flops_range = (flops, flops)
    if flops is None and inputs.tokens is not None and (inputs.active_params or inputs.params):
        n = inputs.active_params or inputs.params
        assert n is not None
        kind = "active parameters" if inputs.active_params else "parameters"
        dense = 6.0 * n * inputs.tokens
        width = (ASPECT_RATIO * n / 12.0) ** (1 / 3)  # N = 12 · L · d² and L = d / ASPECT_RATIO
        layers = width / ASPECT_RATIO
        seq, seq_low, seq_high = (inputs.seq_len,) * 3 if inputs.seq_len else SEQ_LEN[:3]
        attention = 12.0 * layers * width * seq * inputs.tokens
        flops = dense + attention
        flops_range = (dense + attention * seq_low / seq, dense + attention * seq_high / seq)
        notes.append(
            f"FLOPs = 6 × {n:.3g} {kind} × {inputs.tokens:.3g} tokens (Kaplan et al. 2020) + attention 12 × "
            f"{layers:.0f} layers × width {width:,.0f} × context {seq:,} × tokens (PaLM App. B; shape from the "
            f"parameters at d/L = {ASPECT_RATIO:g}) = {flops:.3g}"
            + (
                ""
                if inputs.seq_len
                else f"; context {SEQ_LEN[0]:,} (range {SEQ_LEN[1]:,}-{SEQ_LEN[2]:,}): {SEQ_LEN[3]}"
            )
        )
    used_goodput: float | None = None  # only where FLOPs had to become hours
    if inputs.accelerator_hours is not None:
        hours = Range(inputs.accelerator_hours, inputs.accelerator_hours, inputs.accelerator_hours)
        notes.append(f"accelerator-hours as given: {inputs.accelerator_hours:,.0f}")
    elif inputs.devices is not None and inputs.hours is not None:
        value = inputs.devices * inputs.hours
        hours = Range(value, value, value)
        notes.append(f"accelerator-hours = {inputs.devices} devices × {inputs.hours:g} h")
    else:
        assert flops is not None
        peak = (catalogue or HardwareCatalogue()).peak_flops(hw, inputs.dtype)
        whole_run = False
        if inputs.mfu is not None:
            mfu = Range(inputs.mfu, inputs.mfu, inputs.mfu)
            notes.append(f"MFU {inputs.mfu:.0%} as given (taken as a throughput figure, as training logs report it)")
        else:
            value, low, high, source = _family(hw, _MFU)
            mfu = Range(value, low, high)
            notes.append(f"MFU {value:.1%} (range {low:.0%}-{high:.0%}): {source}")
            whole_run = hw.name.upper().startswith(_WHOLE_RUN_MFU)
        if inputs.goodput is not None:
            goodput = Range(inputs.goodput, inputs.goodput, inputs.goodput)
            notes.append(f"goodput {inputs.goodput:.0%} as given")
        elif whole_run:
            goodput = Range(1.0, 1.0, 1.0)
            notes.append("goodput: already inside the MFU, which comes from a whole run's time")
        else:
            goodput = Range(*GOODPUT[:3])
            notes.append(
                f"goodput {GOODPUT[0]:.0%} (range {GOODPUT[1]:.0%}-{GOODPUT[2]:.0%}) of the held accelerator time "
                f"advances training: {GOODPUT[3]}"
            )
        rate = peak * 3600.0 * mfu.value * goodput.value
        fast = peak * 3600.0 * mfu.high * goodput.high
        slow = peak * 3600.0 * mfu.low * goodput.low
        low_flops, high_flops = flops_range
        assert low_flops is not None and high_flops is not None
        hours = Range(flops / rate, low_flops / fast, high_flops / slow)
        used_goodput = goodput.value
        notes.append(f"accelerator-hours = FLOPs ÷ ({peak / 1e12:,.0f} TFLOP/s dense {inputs.dtype} × MFU × goodput)")

    # -- power per accelerator ----------------------------------------------------------------------------
    if inputs.power_w is not None:
        overhead = inputs.host_overhead or 0.0
        watts = inputs.power_w * (1 + overhead)
        power = Range(watts, watts, watts)
        device = Range(inputs.power_w, inputs.power_w, inputs.power_w)
        notes.append(
            f"power {inputs.power_w:g} W per device as given"
            + (f", + {overhead:.0%} for hosts" if overhead else " (taken as everything per device)")
        )
    else:
        model = system_power(hw)
        own = accelerator_power(hw)
        if inputs.host_overhead is not None:
            notes.append(f"host_overhead {inputs.host_overhead:.0%} ignored: the power model already includes hosts")
        power = Range(model.watts, model.low, model.high)
        device = Range(own.watts, own.low, own.high)
        notes.append(
            f"power {model.watts:,.0f} W per accelerator, hosts included ({model.low:,.0f}-{model.high:,.0f}"
            f" W): {model.basis}"
        )
        notes.append(
            f"of which the accelerator itself {own.watts:,.0f} W ({own.low:,.0f}-{own.high:,.0f} W): {own.basis}"
        )

    # -- facility and grid -----------------------------------------------------------------------------------
    from wattwise.carbon.service import IntensityService
    from wattwise.config import Settings

    service = IntensityService(Settings(region=inputs.region))
    region = service.region
    facility = service.facility()
    if inputs.pue is not None:
        pue = Range(inputs.pue, inputs.pue, inputs.pue)
        notes.append(f"PUE {inputs.pue:g} as given")
    elif region.pue is not None:
        pue = Range(region.pue, region.pue, region.pue)
        notes.append(f"PUE {region.pue:g}: {facility.pue_source}")
    else:
        pue = Range(*DEFAULT_PUE[:3])
        notes.append(f"PUE {DEFAULT_PUE[0]:g} (range {DEFAULT_PUE[1]:g}-{DEFAULT_PUE[2]:g}): {DEFAULT_PUE[3]}")
    if inputs.intensity_g_per_kwh is not None:
        g = inputs.intensity_g_per_kwh
        intensity = Range(g, g, g)
        notes.append(f"grid intensity {g:g} g/kWh as given")
    else:
        g = region.intensity.intensity_g_per_kwh
        intensity = Range(g, g * (1 - INTENSITY_SPREAD), g * (1 + INTENSITY_SPREAD))
        notes.append(
            f"grid intensity {g:,.0f} g/kWh ±{INTENSITY_SPREAD:.0%}: {region.intensity.source} "
            f"({region.code}){'; ' + region.note if region.note else ''}"
        )

    it_kwh = Range(hours.value * power.value / 1000, hours.low * power.low / 1000, hours.high * power.high / 1000)
    device_kwh = Range(
        hours.value * device.value / 1000, hours.low * device.low / 1000, hours.high * device.high / 1000
    )
    host_kwh = Range(it_kwh.value - device_kwh.value, it_kwh.low - device_kwh.low, it_kwh.high - device_kwh.high)
    energy = Range(it_kwh.value * pue.value, it_kwh.low * pue.low, it_kwh.high * pue.high)
    operational = Range(
        energy.value * intensity.value / 1000, energy.low * intensity.low / 1000, energy.high * intensity.high / 1000
    )

    # -- embodied ------------------------------------------------------------------------------------------
    device_kg, device_source = (hw.embodied_kgco2e, hw.embodied_source) if hw.embodied_kgco2e else _GPU_EMBODIED_KG
    if not hw.embodied_kgco2e:
        device_source = f"no published figure for {hw.name}: {device_source}"
    server_kg, server_source = _SERVER_EMBODIED_KG
    if hw.embodied_kgco2e and hw.embodied_includes_server:
        server_kg, server_source = 0.0, "already in the per-device figure"
    life, life_low, life_high, life_source = _LIFETIME_YEARS
    per_hour = (device_kg + server_kg) / HOURS_PER_YEAR
    embodied = Range(hours.value * per_hour / life, hours.low * per_hour / life_high, hours.high * per_hour / life_low)
    notes.append(
        f"embodied {device_kg:g} kg per accelerator ({device_source}) + {server_kg:g} kg server share "
        f"({server_source}), over {life:g} years ({life_source})"
    )
    total = Range(operational.value + embodied.value, operational.low + embodied.low, operational.high + embodied.high)

    # -- water and cost ------------------------------------------------------------------------------------
    wue, offsite = facility.wue_l_per_kwh, facility.offsite_water_l_per_kwh
    onsite_l = Range(it_kwh.value * wue, it_kwh.low * wue, it_kwh.high * wue)
    offsite_l = Range(energy.value * offsite, energy.low * offsite, energy.high * offsite)
    water = Range(onsite_l.value + offsite_l.value, onsite_l.low + offsite_l.low, onsite_l.high + offsite_l.high)
    notes.append(
        f"water: on-site {wue:g} L/kWh ({facility.wue_source}); off-site {offsite:g} L/kWh "
        f"({facility.offsite_water_source})"
    )
    cost = _cost(inputs, energy, hours, notes)
    time_given = inputs.accelerator_hours is not None or (inputs.devices is not None and inputs.hours is not None)
    if inputs.mfu is not None and time_given:
        notes.append("mfu ignored: the accelerator time was given, so no FLOPs had to be converted into hours")
    if inputs.goodput is not None and time_given:
        notes.append("goodput ignored: the accelerator time was given, downtime included")
    for name, r in (("energy", energy), ("emissions", total), ("water", water)):
        if not all(math.isfinite(x) for x in (r.value, r.low, r.high)):
            raise ConfigError(f"the {name} estimate overflows: check the inputs' orders of magnitude")

    return Estimate(
        energy_kwh=energy,
        it_energy_kwh=it_kwh,
        accelerator_energy_kwh=device_kwh,
        host_energy_kwh=host_kwh,
        operational_co2e_kg=operational,
        embodied_co2e_kg=embodied,
        total_co2e_kg=total,
        water_l=water,
        water_onsite_l=onsite_l,
        water_offsite_l=offsite_l,
        accelerator_hours=hours,
        cost_usd=cost,
        flops=flops,
        power_w_per_device=power,
        accelerator_power_w=device,
        goodput=used_goodput,
        pue=pue.value,
        intensity_g_per_kwh=intensity.value,
        region=region.code,
        assumptions=tuple(notes),
        inputs={f.name: getattr(inputs, f.name) for f in fields(inputs) if getattr(inputs, f.name) is not None},
    )


def _cost(inputs: TrainingInputs, energy: Range, hours: Range, notes: list[str]) -> Range | None:
    if inputs.price_usd_per_kwh is None and inputs.price_usd_per_device_hour is None:
        return None
    kwh_price = inputs.price_usd_per_kwh or 0.0
    hour_price = inputs.price_usd_per_device_hour or 0.0
    if kwh_price:
        notes.append(f"electricity ${kwh_price:g}/kWh of facility energy")
    if hour_price:
        notes.append(f"accelerators ${hour_price:g} per device-hour")
    return Range(
        energy.value * kwh_price + hours.value * hour_price,
        energy.low * kwh_price + hours.low * hour_price,
        energy.high * kwh_price + hours.high * hour_price,
    )


__all__ = ["Estimate", "TrainingInputs", "estimate_training"]
