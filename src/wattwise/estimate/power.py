"""How much power an accelerator draws, on average, while it trains: a model better than "TDP × hours".

Two published facts shape it:

1. Accelerators average well under their rating. On an 8-GPU H100 node, computationally intensive training drew
   76 % of the node's 10.2 kW rating (Newkirk et al. 2025, "Empirically-Calibrated H100 Node Power Models",
   arXiv:2506.14551); the highest draw observed was about 8.4 kW, 82 % of it (Latif et al. 2025, IEEE Access 13,
   "Single-Node Power Demand During AI Training", arXiv:2412.08602).
2. Hosts add power on top of the accelerators: CPUs, memory, NICs, fans, power-supply losses. The node rating
   covers them: NVIDIA DGX-1 (8 × V100, 300 W each) 3.5 kW; DGX A100 (8 × A100 SXM4, 400 W) 6.5 kW; DGX H100 and
   DGX H200 (8 × 700 W) 10.2 kW; DGX B200 (8 × 1000 W) 14.3 kW (NVIDIA's DGX datasheets and user guides).

So the system power per accelerator is ``0.76 × node rating ÷ accelerators per node``. For V100 that gives
0.76 × 3500 / 8 = 333 W, against 330 W measured per V100 (system, host included) for GPT-3 by Patterson et al.
2021 — an independent check. Where no DGX rating applies, the node rating is taken as 1.82 × the accelerators'
TDP (the DGX H100 ratio; DGX-1: 1.46, DGX A100: 2.03) — an assumption, stated in every estimate that uses it.
TPUs: Google publishes measured system power per chip, which is used directly (Patterson et al. 2021 Table 3:
TPU v3 283 W, host included, and TPU v2 221 W; PaLM, Chowdhery et al. 2022: TPU v4 378.5 W per chip
including host, as reported by Patterson et al. 2022).

The accelerators' own share (what a GPU-only meter such as NVML reads) is modelled separately, so an estimate can
say how much of the energy is accelerators and how much hosts, and so it can be set beside publications that
report GPU energy only. Two published facts shape it: in LLM training iterations the GPUs' peak draw reaches or
exceeds their TDP, with troughs in the communication phases (Patel et al. 2024, "Characterizing Power Management
Opportunities for LLMs in the Cloud", ASPLOS '24); and training accelerators average 84-89 % of their peak draw
(Google Cloud's measured TPU v3 min/mean/max 123/220/262 W and TPU v4 90/170/192 W). So a GPU averages
``0.85 × TDP`` while training (range 0.70-0.95: 0.95 where it sits at its peak; 0.70, an assumption, for
communication-bound phases), never more than the system power above. Where the catalogue has a published
device-level measured mean (TPU v3, v4: ``avg_power_fraction``), that is used.
"""

from __future__ import annotations

from dataclasses import dataclass

from wattwise.errors import ConfigError
from wattwise.estimate.hardware import Hardware

NODE_DRAW_FRACTION = 0.76  # Newkirk et al. 2025: intensive training at 76 % of the node rating
NODE_DRAW_LOW = 0.60  # ASSUMPTION: lighter, communication-bound phases; stated, not published
NODE_DRAW_HIGH = 0.82  # Latif et al. 2025: 8.4 kW of 10.2 kW, the highest draw observed
DEFAULT_NODE_RATIO = 10_200 / 5_600  # ASSUMPTION: the DGX H100 node rating over its GPUs' TDP
# accelerator-only draw while training, as a fraction of TDP: peak ≈ TDP (Patel et al. 2024) × mean/peak 0.84-0.89
# (Google Cloud TPU v3 220/262 W, TPU v4 170/192 W)
ACCELERATOR_DRAW_FRACTION = 0.85
ACCELERATOR_DRAW_LOW = 0.70  # ASSUMPTION: communication-bound training
ACCELERATOR_DRAW_HIGH = 0.95  # at its peak, which Patel et al. 2024 find at or above TDP

# (node rating in W, accelerators per node, source) by family prefix of the catalogue's canonical name
_NODES: tuple[tuple[str, float, int, str], ...] = (
    ("V100-SXM2", 3_500, 8, "NVIDIA DGX-1 (V100) datasheet: 3,500 W"),
    ("A100-SXM4", 6_500, 8, "NVIDIA DGX A100 user guide: 6,500 W max"),
    ("H100-SXM", 10_200, 8, "NVIDIA DGX H100 user guide: 10.2 kW max"),
    ("H200", 10_200, 8, "NVIDIA DGX H200 user guide: 10.2 kW max"),
    ("B200", 14_300, 8, "NVIDIA DGX B200 datasheet: ~14.3 kW max"),
)

# measured average system power per chip, host included, in W
_MEASURED_SYSTEM_W: tuple[tuple[str, float, str], ...] = (
    ("TPUv2", 221.0, "Patterson et al. 2021 Table 3: measured average 221 W"),
    ("TPUv3", 283.0, "Patterson et al. 2021 Table 3: measured system power 283 W per chip, host included"),
    ("TPUv4", 378.5, "PaLM (Chowdhery et al. 2022) via Patterson et al. 2022: 378.5 W per chip incl. host"),
)


@dataclass(frozen=True, slots=True)
class DevicePower:
    """Average system power per accelerator during training (host share included), with its range and basis."""

    watts: float
    low: float
    high: float
    basis: str


def system_power(hw: Hardware) -> DevicePower:
    """The model above, for one catalogue entry."""
    for prefix, watts, source in _MEASURED_SYSTEM_W:
        if hw.name.upper().startswith(prefix.upper()):
            return DevicePower(watts, watts * 0.9, watts * 1.1, f"{source} (±10 %: run-to-run spread, assumed)")
    for prefix, rating_w, per_node, source in _NODES:
        if hw.name.upper().startswith(prefix.upper()):
            share = rating_w / per_node
            return DevicePower(
                NODE_DRAW_FRACTION * share,
                NODE_DRAW_LOW * share,
                NODE_DRAW_HIGH * share,
                f"{NODE_DRAW_FRACTION:.0%} of the node rating per accelerator ({source}; Newkirk et al. 2025)",
            )
    if hw.tdp_w is None:
        raise ConfigError(
            f"{hw.name} has no published power figure (TDP or measured): give the average power per device with "
            "--power-w (power_w in Python)"
        )
    share = DEFAULT_NODE_RATIO * hw.tdp_w
    return DevicePower(
        NODE_DRAW_FRACTION * share,
        NODE_DRAW_LOW * share,
        NODE_DRAW_HIGH * share,
        f"{NODE_DRAW_FRACTION:.0%} of an assumed node rating of {DEFAULT_NODE_RATIO:.2f} × TDP ({hw.tdp_w:g} W) per "
        "accelerator (no published node rating for this device; Newkirk et al. 2025 for the 76 %)",
    )


def accelerator_power(hw: Hardware) -> DevicePower:
    """The accelerator's own average draw while training (no host share), never above :func:`system_power`."""
    system = system_power(hw)
    if hw.avg_power_fraction is not None and hw.tdp_w is not None:  # a published device-level measured mean
        watts = min(hw.avg_power_fraction * hw.tdp_w, system.watts)
        return DevicePower(watts, watts * 0.9, min(watts * 1.1, system.high), f"{hw.avg_power_source} (±10 %, assumed)")
    if hw.tdp_w is None:
        return DevicePower(
            system.watts, system.low, system.high, f"no TDP published for {hw.name}: the whole system power"
        )
    tdp = hw.tdp_w
    capped = ACCELERATOR_DRAW_FRACTION * tdp > system.watts
    return DevicePower(
        min(ACCELERATOR_DRAW_FRACTION * tdp, system.watts),
        min(ACCELERATOR_DRAW_LOW * tdp, system.low),
        min(ACCELERATOR_DRAW_HIGH * tdp, system.high),
        f"{ACCELERATOR_DRAW_FRACTION:.0%} of its {tdp:g} W TDP (range {ACCELERATOR_DRAW_LOW:.0%}-"
        f"{ACCELERATOR_DRAW_HIGH:.0%}): training peaks reach TDP (Patel et al. 2024) and average 84-89 % of the "
        "peak (Google Cloud TPU v3/v4 measured mean/max)"
        + (", capped at the measured system power, which it cannot exceed" if capped else ""),
    )


def node_rating(hw: Hardware) -> tuple[float, int] | None:
    """The published rating (W) of the node this accelerator is sold in and its accelerators per node (NVIDIA DGX
    datasheets), or None where none is published."""
    for prefix, rating_w, per_node, _ in _NODES:
        if hw.name.upper().startswith(prefix.upper()):
            return rating_w, per_node
    return None
