"""A footprint statement a paper or model card can include: one paragraph and one table, every assumption stated."""

from __future__ import annotations

from collections.abc import Callable

from wattwise.estimate.model import Estimate
from wattwise.records import Range
from wattwise.report import numbers
from wattwise.report.numbers import sig
from wattwise.report.tex import tex as _tex


def _rows(e: Estimate) -> list[tuple[str, str, str]]:
    """(quantity, estimate, range): each row in the unit its value calls for, so small jobs never read 0."""

    def row(label: str, r: Range, fmt: Callable[[float, float, float], str]) -> tuple[str, str, str]:
        text = fmt(r.value, r.low, r.high)  # "1.2 MWh (0.9–1.6 MWh)"
        value, _, rng = text.partition(" (")
        return label, value, rng.rstrip(")")

    rows = [
        row("Accelerator-hours", e.accelerator_hours, lambda v, lo, hi: f"{sig(v)} ({sig(lo)}–{sig(hi)})"),
        row("Energy, facility", e.energy_kwh, numbers.energy_kwh_range),
        row("of which accelerators, before PUE", e.accelerator_energy_kwh, numbers.energy_kwh_range),
        row("of which hosts, before PUE", e.host_energy_kwh, numbers.energy_kwh_range),
        row("Operational emissions (CO2e)", e.operational_co2e_kg, numbers.mass_kg_range),
        row("Embodied emissions (CO2e)", e.embodied_co2e_kg, numbers.mass_kg_range),
        row("Total emissions (CO2e)", e.total_co2e_kg, numbers.mass_kg_range),
        row("Water, on-site", e.water_onsite_l, numbers.volume_l_range),
        row("Water, off-site: electricity generation", e.water_offsite_l, numbers.volume_l_range),
    ]
    if e.cost_usd is not None:
        rows.append(row("Cost (USD)", e.cost_usd, lambda v, lo, hi: f"{sig(v)} ({sig(lo)}–{sig(hi)})"))
    return rows


def _paragraph(e: Estimate, name: str) -> str:
    energy = e.energy_kwh
    total = e.total_co2e_kg
    electricity = numbers.energy_kwh_range(energy.value, energy.low, energy.high).replace(
        " (", " of electricity (range "
    )
    return (
        f"Training {name} used an estimated {sig(e.accelerator_hours.value)} accelerator-hours and {electricity}, "
        f"including a PUE of {e.pue:g}. At a grid carbon intensity of {e.intensity_g_per_kwh:,.0f} gCO2e/kWh "
        f"({e.region}) this corresponds to {numbers.mass_kg(e.operational_co2e_kg.value)} CO2e of operational "
        f"emissions, plus {numbers.mass_kg(e.embodied_co2e_kg.value)} CO2e of amortised embodied emissions (total "
        f"{numbers.mass_kg_range(total.value, total.low, total.high).replace(' (', ', range ', 1).rstrip(')')}). "
        "Estimated with wattwise; assumptions below."
    )


def markdown(e: Estimate, name: str = "the model") -> str:
    lines = [_paragraph(e, name), "", "| quantity | estimate | range |", "|---|---:|---:|"]
    lines += [f"| {q} | {v} | {r} |" for q, v, r in _rows(e)]
    lines += ["", "Assumptions:", *[f"- {a}" for a in e.assumptions]]
    return "\n".join(lines) + "\n"


def latex(e: Estimate, name: str = "the model") -> str:
    lines = [
        _tex(_paragraph(e, name)),
        "",
        r"\begin{table}[h]",
        r"\centering",
        r"\begin{tabular}{lrr}",
        r"\hline",
        r"Quantity & Estimate & Range \\",
        r"\hline",
    ]
    lines += [f"{_tex(q)} & {_tex(v)} & {_tex(r)} \\\\" for q, v, r in _rows(e)]
    lines += [
        r"\hline",
        r"\end{tabular}",
        rf"\caption{{Estimated footprint of training {_tex(name)}.}}",
        r"\end{table}",
        "",
        r"\begin{itemize}",
    ]
    lines += [rf"\item {_tex(a)}" for a in e.assumptions]
    lines += [r"\end{itemize}"]
    return "\n".join(lines) + "\n"
