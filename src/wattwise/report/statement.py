"""A measured run's footprint statement for a paper or a model card, in Markdown or LaTeX.

One paragraph with the figures, a table per component (measured or estimated, with ranges), the epochs in brief,
the equivalents with their sources, and every assumption: the same content as the HTML report, in text.
"""

from __future__ import annotations

import re

from wattwise.report import numbers
from wattwise.report.compare import Comparison
from wattwise.report.run_view import RunView
from wattwise.report.safe import printable
from wattwise.report.tex import tex

__all__ = ["comparison_table", "latex", "markdown", "md"]

_MD_SPECIAL = re.compile(r"([\\`*_\[\]<>|#])")


def md(text: str) -> str:
    """Text that Markdown shows as written: control characters as escapes, and the characters that would start
    emphasis, a link, HTML, a heading or a table cell backslash-escaped."""
    return _MD_SPECIAL.sub(r"\\\1", printable(text))


def _paragraph(view: RunView) -> str:
    r = view.run
    measured = {"measured": "measured", "estimated": "estimated", "mixed": "partly measured, partly estimated"}
    how = measured.get(r.source, "not measured")
    text = (
        f"The run {r.name} ({r.id}, {r.status}) took {numbers.duration_s(r.duration_s)} and used "
        f"{numbers.energy_j(r.energy_j)} of electricity ({how}; "
        f"{'the process tree' if r.attribution == 'process' else 'the whole machine'}). With a PUE of {r.pue:g} "
        f"and a grid intensity of {numbers.intensity(r.intensity_g_per_kwh)} in {r.region} ({r.emissions_method}), "
        f"this corresponds to {numbers.mass_g(r.co2e_g)} CO2e and {numbers.volume_l(r.water_l)} of water."
    )
    if view.predictions:
        first = view.predictions[0]
        text += (
            f" After {first.epochs_seen} epoch(s), the whole run was predicted at "
            f"{numbers.energy_j(first.energy_j.value)} ({numbers.energy_j(first.energy_j.low)}–"
            f"{numbers.energy_j(first.energy_j.high)})."
        )
    return text + " Measured with wattwise; assumptions below."


def _rows(view: RunView) -> list[tuple[str, str, str, str]]:
    rows: list[tuple[str, str, str, str]] = []
    for c in view.run.components:
        rng = "–"
        if c.source == "estimated" and c.low_j is not None and c.high_j is not None:
            rng = f"{numbers.energy_j(c.low_j)}–{numbers.energy_j(c.high_j)}"
        rows.append((f"{c.name} ({c.component})", c.source, numbers.energy_j(c.energy_j), rng))
    total = view.energy_range
    rng = "–" if total is None else f"{numbers.energy_j(total.low)}–{numbers.energy_j(total.high)}"
    rows.append(("total", view.run.source, numbers.energy_j(view.run.energy_j), rng))
    return rows


def _epochs(view: RunView) -> str:
    if not view.epochs:
        return ""
    energies = [w.energy_j for w in view.epochs]
    return (
        f"{len(energies)} epochs: {numbers.energy_j(min(energies))} to {numbers.energy_j(max(energies))} each "
        f"(mean {numbers.energy_j(sum(energies) / len(energies))})."
    )


def _equivalents(view: RunView) -> list[str]:
    return [f"{e['raw']} ≈ {e['text']} ({e['basis']}; {e['source']})" for e in view.equivalents]


def markdown(view: RunView) -> str:
    lines = [md(_paragraph(view)), "", "| component | how | energy | range |", "|---|---|---:|---:|"]
    lines += [f"| {md(a)} | {md(b)} | {md(c)} | {md(d)} |" for a, b, c, d in _rows(view)]
    if epochs := _epochs(view):
        lines += ["", md(epochs)]
    if view.equivalents:
        lines += ["", "For scale:", *[f"- {md(e)}" for e in _equivalents(view)]]
    lines += ["", "Assumptions:", *[f"- {md(topic)}: {md(text)}" for topic, text in view.assumptions]]
    return "\n".join(line.replace("\n", " ") for line in lines) + "\n"


def latex(view: RunView) -> str:
    lines = [
        tex(_paragraph(view)),
        "",
        r"\begin{table}[h]",
        r"\centering",
        r"\begin{tabular}{llrr}",
        r"\hline",
        r"Component & How & Energy & Range \\",
        r"\hline",
    ]
    lines += [f"{tex(a)} & {tex(b)} & {tex(c)} & {tex(d)} \\\\" for a, b, c, d in _rows(view)]
    lines += [
        r"\hline",
        r"\end{tabular}",
        rf"\caption{{Measured energy of {tex(view.run.name)}.}}",
        r"\end{table}",
    ]
    if epochs := _epochs(view):
        lines += ["", tex(epochs)]
    if view.equivalents:
        lines += ["", r"\begin{itemize}", *[rf"\item {tex(e)}" for e in _equivalents(view)], r"\end{itemize}"]
    lines += ["", r"\begin{itemize}"]
    lines += [rf"\item {tex(topic)}: {tex(text)}" for topic, text in view.assumptions]
    lines += [r"\end{itemize}"]
    return "\n".join(line.replace("\n", " ") for line in lines) + "\n"


def comparison_table(cmp: Comparison, *, latex: bool = False) -> str:
    """The comparison's figures (changes against the first run) and what differs, in Markdown or LaTeX."""
    heads = ["", *[f"{run.name} ({run.id})" for run in cmp.runs]]
    rows = [
        [row["label"], *[f"{t} {c}".strip() for t, c in zip(row["text"], row["change_text"], strict=True)]]
        for row in cmp.rows
    ]
    if latex:
        lines = [r"\begin{tabular}{l" + "r" * len(cmp.runs) + "}", r"\hline"]
        lines += [" & ".join(tex(h) for h in heads) + r" \\", r"\hline"]
        lines += [" & ".join(tex(cell) for cell in row) + r" \\" for row in rows]
        lines += [r"\hline", r"\end{tabular}", "", r"\begin{itemize}"]
        lines += [rf"\item {tex(c)}" for c in cmp.callouts] or [r"\item no notable difference"]
        lines += [r"\end{itemize}"]
    else:
        lines = ["| " + " | ".join(md(h) for h in heads) + " |", "|---" + "|---:" * len(cmp.runs) + "|"]
        lines += ["| " + " | ".join(md(cell) for cell in row) + " |" for row in rows]
        lines += ["", "What differs:", *[f"- {md(c)}" for c in cmp.callouts or ["no notable difference"]]]
    return "\n".join(line.replace("\n", " ") for line in lines) + "\n"
