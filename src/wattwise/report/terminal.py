"""Terminal summaries of runs (rich), used by ``wattwise run`` and ``wattwise runs show|list``."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from wattwise.measure.observers import RunObserver
from wattwise.records import Run
from wattwise.report import numbers
from wattwise.report.safe import plain, printable

if TYPE_CHECKING:
    from rich.console import Console, RenderableType
    from rich.live import Live

    from wattwise.measure.live import LiveStatus

_STATUS_STYLE = {"complete": "green", "running": "cyan", "incomplete": "yellow", "failed": "red"}


# every number is formatted by wattwise.report.numbers; these names are kept for the callers that use them
fmt_energy = numbers.energy_j
fmt_mass_g = numbers.mass_g
fmt_volume_l = numbers.volume_l
fmt_duration = numbers.duration_s


def run_summary(run: Run, *, details: bool = True) -> RenderableType:
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    style = _STATUS_STYLE.get(run.status, "white")
    head = Text.assemble(
        ("run ", "bold"),
        (printable(run.id), "bold"),
        f"  {printable(run.name)}  ",
        (run.status, f"bold {style}"),
        f"  {fmt_duration(run.duration_s)}",
    )
    totals = Table.grid(padding=(0, 2))
    totals.add_column(style="bold")
    totals.add_column()
    label = {"measured": "measured", "estimated": "ESTIMATED (no counters)", "mixed": "measured + estimated"}
    source = label.get(run.source, "no energy recorded")
    totals.add_row("energy", plain(f"{fmt_energy(run.energy_j)}  ({source}; attribution: {run.attribution})"))
    if run.attribution == "process" and abs(run.machine_energy_j - run.energy_j) > 1e-9:
        totals.add_row("machine", f"{fmt_energy(run.machine_energy_j)} drawn by the whole machine")
    network = [c for c in run.components if c.component == "network" and c.energy_j == 0 and c.machine_energy_j > 0]
    if run.attribution == "process" and network:
        totals.add_row(
            "network",
            plain(
                f"{fmt_energy(sum(c.machine_energy_j for c in network))} for the machine's traffic, not in the total "
                "(no per-process byte counters; --attribution machine counts it)"
            ),
        )
    emissions = plain(
        f"{fmt_mass_g(run.co2e_g)} CO2e  = energy × PUE {run.pue:g} × {run.intensity_g_per_kwh:,.1f} g/kWh "
        f"{run.signal} ({run.region}: {run.intensity_source})"
    )
    if run.intensity_fallback:
        emissions.append(" (provider failed: packaged annual figure)", style="yellow")
    totals.add_row("emissions", emissions)
    totals.add_row("method", plain(run.emissions_method))
    if run.water_l > 0 or run.water_source:
        totals.add_row(
            "water",
            f"{fmt_volume_l(run.water_l)}  (on-site {fmt_volume_l(run.water_onsite_l)}, "
            f"off-site {fmt_volume_l(run.water_offsite_l)})",
        )
    from wattwise.report.work import work_rows

    for topic, text in work_rows(run):  # served work: energy per output token and per request
        totals.add_row(topic, plain(text))
    parts: list[RenderableType] = [head, totals]
    if run.components:
        table = Table(title=None, box=None, header_style="bold", pad_edge=False)
        for col, justify in (
            ("component", "left"),
            ("energy", "right"),
            ("range", "right"),
            ("machine", "right"),
            ("source", "left"),
            ("method", "left"),
        ):
            table.add_column(col, justify=justify, no_wrap=True)  # type: ignore[arg-type]
        for c in run.components:
            span = ""
            if c.source == "estimated" and c.low_j is not None and c.high_j is not None and c.high_j > c.low_j:
                span = f"{fmt_energy(c.low_j)}–{fmt_energy(c.high_j)}"
            name = c.name if c.in_total else f"{c.name} (inside another)"
            table.add_row(
                plain(name), fmt_energy(c.energy_j), span, fmt_energy(c.machine_energy_j), c.source, plain(c.method)
            )
        parts.append(table)
        if details:
            parts.extend(plain(f"  {c.name}: {c.detail}", style="dim") for c in run.components if c.detail)
    if run.windows:
        wt = Table(box=None, header_style="bold", pad_edge=False)
        for col in ("window", "duration", "energy", "CO2e"):
            wt.add_column(col, justify="left" if col == "window" else "right")
        shown = list(run.windows)
        hidden = 0
        if len(shown) > 12:  # long trainings: the first epochs and the last ones
            hidden = len(shown) - 11
            shown = shown[:6] + shown[-5:]
        for i, w in enumerate(shown):
            if hidden and i == 6:
                wt.add_row(f"… {hidden} more (--json shows all)", "", "", "")
            name = f"{w.parent} / {w.name}" if w.parent else w.name
            wt.add_row(plain(name), fmt_duration(w.duration_s), fmt_energy(w.energy_j), fmt_mass_g(w.co2e_g))
        parts.append(wt)
    from wattwise.report.terminal_cluster import cluster_parts

    parts.extend(cluster_parts(run, details=details))
    if run.prediction is not None:
        p = run.prediction
        parts.append(
            Text(
                f"predicted for {p.epochs_planned} epochs (from {p.epochs_done}): "
                f"{fmt_energy(p.energy_j.value)} ({fmt_energy(p.energy_j.low)}–{fmt_energy(p.energy_j.high)}), "
                f"{fmt_duration(p.duration_s.value)}, {fmt_mass_g(p.co2e_g.value)} CO2e "
                f"({fmt_mass_g(p.co2e_g.low)}–{fmt_mass_g(p.co2e_g.high)})"
            )
        )
    if run.command:
        parts.append(plain(f"command: {' '.join(run.command)}  exit code: {run.exit_code}", style="dim"))
    if run.error:
        parts.append(plain(f"error: {run.error}", style="red"))
    parts.extend(plain(f"note: {note}", style="yellow") for note in run.notes)
    return Group(*parts)


def runs_table(runs: Sequence[Run]) -> RenderableType:
    from rich.table import Table

    table = Table(box=None, header_style="bold", pad_edge=False)
    table.add_column("id", no_wrap=True, min_width=22)
    for col, justify in (
        ("name", "left"),
        ("status", "left"),
        ("started (UTC)", "left"),
        ("duration", "right"),
        ("energy", "right"),
        ("CO2e", "right"),
        ("source", "left"),
        ("region", "left"),
    ):
        table.add_column(col, justify=justify)  # type: ignore[arg-type]
    for run in runs:
        style = _STATUS_STYLE.get(run.status, "white")
        table.add_row(
            plain(run.id),
            plain(run.name),
            plain(run.status, style=style),
            run.started_at.strftime("%Y-%m-%d %H:%M:%S"),
            fmt_duration(run.duration_s),
            fmt_energy(run.energy_j),
            fmt_mass_g(run.co2e_g),
            run.source,
            plain(run.region),
        )
    return table


def live_panel(name: str, run_id: str, status: LiveStatus) -> RenderableType:
    from rich.panel import Panel
    from rich.table import Table

    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold")
    grid.add_column(justify="right")
    grid.add_row("elapsed", fmt_duration(status.elapsed_s))
    for component, watts in sorted(status.power_w.items()):
        grid.add_row(f"{component} power", f"{watts:,.1f} W")
    grid.add_row("energy so far", f"{fmt_energy(status.energy_j)} ({status.source})")
    grid.add_row("CO2e so far", fmt_mass_g(status.co2e_g))
    p = status.prediction
    if p is not None:
        grid.add_row(
            f"predicted ({p.epochs_planned} epochs)",
            f"{fmt_energy(p.energy_j.value)}, {fmt_mass_g(p.co2e_g.value)} "
            f"[{fmt_mass_g(p.co2e_g.low)}–{fmt_mass_g(p.co2e_g.high)}]",
        )
    for source, message in status.failures.items():
        grid.add_row(plain(f"{source} failed", style="red"), plain(message[:60]))
    return Panel(grid, title=plain(f"wattwise · {name} · {run_id}"), expand=False)


def print_run(run: Run, console: Console) -> None:
    console.print(run_summary(run))


class LivePanel(RunObserver):
    """``wattwise run``'s live panel: an observer that redraws a rich ``Live`` display with the tracker's status
    after each reading (the display is attached once it is open)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.display: Live | None = None
        self.updates = 0

    def live(self, run_id: str, status: LiveStatus) -> None:
        display = self.display
        if display is not None:
            display.update(live_panel(self.name, run_id, status), refresh=True)
            self.updates += 1
