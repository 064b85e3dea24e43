"""A run's served work and its energy per output token and per request, as the terminal and the HTML page show it.

The figures are :attr:`Run.per_work <wattwise.records.Run.per_work>` (the run's energy divided by the work counted),
labelled with how the energy was got: a figure per token is as good as the energy it divides.
"""

from __future__ import annotations

from wattwise.records import Run
from wattwise.report import numbers

__all__ = ["SOURCE_LABEL", "work_rows"]

SOURCE_LABEL = {  # as the run's energy line says it
    "measured": "measured",
    "estimated": "ESTIMATED: no counters",
    "mixed": "measured + estimated",
    "none": "no energy recorded",
}


def _count(value: float, what: str) -> str:
    return f"{numbers.sig(value)} {what}"


def work_rows(run: Run) -> list[tuple[str, str]]:
    """(topic, text) rows: the work counted, then energy per output token, per request and per 1,000 requests (each
    where that work was counted), each with what the energy rests on. Empty when the run counted no work."""
    per = run.per_work
    if run.work is None or per is None:
        return []
    work = run.work
    counted = [_count(work.output_tokens, "output tokens"), _count(work.requests, "requests")]
    if work.prompt_tokens > 0:
        counted.append(_count(work.prompt_tokens, "prompt tokens"))
    label = f"  ({SOURCE_LABEL.get(per.source, per.source)})"
    rows = [("work", ", ".join(counted))]
    if per.j_per_output_token is not None:
        rows.append(("per output token", numbers.energy_j(per.j_per_output_token) + label))
    if per.j_per_request is not None:
        rows.append(("per request", numbers.energy_j(per.j_per_request) + label))
        per_1000 = numbers.energy_j(per.j_per_request * 1000)
        if per.co2e_g_per_request is not None:
            per_1000 += f", {numbers.mass_g(per.co2e_g_per_request * 1000)} CO2e"
        rows.append(("per 1,000 requests", per_1000 + label))
    if len(rows) == 1:
        rows.append(("per work", "none: no output tokens or requests counted"))
    return rows
