"""A footprint statement a paper or model card can include: one paragraph and one table, every assumption stated."""

from __future__ import annotations

import re

from wattwise.estimate.model import Estimate
from wattwise.records import Range


def _fmt(r: Range, digits: int = 1) -> tuple[str, str]:
    return f"{r.value:,.{digits}f}", f"{r.low:,.{digits}f}–{r.high:,.{digits}f}"


def _rows(e: Estimate) -> list[tuple[str, str, str]]:
    rows = [
        ("Accelerator-hours", *_fmt(e.accelerator_hours, 0)),
        ("Energy (kWh, facility)", *_fmt(e.energy_kwh, 0)),
        ("of which accelerators, before PUE (kWh)", *_fmt(e.accelerator_energy_kwh, 0)),
        ("of which hosts, before PUE (kWh)", *_fmt(e.host_energy_kwh, 0)),
        ("Operational emissions (kg CO2e)", *_fmt(e.operational_co2e_kg)),
        ("Embodied emissions (kg CO2e)", *_fmt(e.embodied_co2e_kg)),
        ("Total emissions (kg CO2e)", *_fmt(e.total_co2e_kg)),
        ("Water, on-site (L)", *_fmt(e.water_onsite_l, 0)),
        ("Water, off-site: electricity generation (L)", *_fmt(e.water_offsite_l, 0)),
    ]
    if e.cost_usd is not None:
        rows.append(("Cost (USD)", *_fmt(e.cost_usd, 0)))
    return rows


def _paragraph(e: Estimate, name: str) -> str:
    return (
        f"Training {name} used an estimated {e.accelerator_hours.value:,.0f} accelerator-hours and "
        f"{e.energy_kwh.value / 1000:,.1f} MWh of electricity (range {e.energy_kwh.low / 1000:,.1f}–"
        f"{e.energy_kwh.high / 1000:,.1f} MWh), including a PUE of {e.pue:g}. At a grid carbon intensity of "
        f"{e.intensity_g_per_kwh:,.0f} gCO2e/kWh ({e.region}) this corresponds to "
        f"{e.operational_co2e_kg.value / 1000:,.2f} t CO2e of operational emissions, plus "
        f"{e.embodied_co2e_kg.value / 1000:,.2f} t CO2e of amortised embodied emissions "
        f"(total {e.total_co2e_kg.value / 1000:,.2f} t, range {e.total_co2e_kg.low / 1000:,.2f}–"
        f"{e.total_co2e_kg.high / 1000:,.2f} t). Estimated with wattwise; assumptions below."
    )


def markdown(e: Estimate, name: str = "the model") -> str:
    lines = [_paragraph(e, name), "", "| quantity | estimate | range |", "|---|---:|---:|"]
    lines += [f"| {q} | {v} | {r} |" for q, v, r in _rows(e)]
    lines += ["", "Assumptions:", *[f"- {a}" for a in e.assumptions]]
    return "\n".join(lines) + "\n"


_TEX = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\^{}",
    "×": r"$\times$",
    "–": "--",
    "÷": r"$\div$",
    "±": r"$\pm$",
    "·": r"$\cdot$",
}
_TEX_RE = re.compile("|".join(re.escape(k) for k in _TEX))


def _tex(text: str) -> str:
    """LaTeX-safe text, escaped in one pass (so the braces of one replacement are never escaped again)."""
    return _TEX_RE.sub(lambda m: _TEX[m.group(0)], text).replace("CO2e", r"CO$_2$e")


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
