"""Validate the training estimate against published training runs.

For every row of ``benchmarks/data/published_training_runs.csv`` (sources in ``benchmarks/data/SOURCES.md``):

a. **From published inputs**: the publication's own accelerator-hours, per-device power, PUE and grid intensity go
   into ``estimate_training`` (``host_overhead=0``: the published power is taken as everything the publication
   counted) and the energy and operational CO2e that come out are compared with the published figures, each on the
   publication's own scope (IT energy before PUE, or facility energy after it).
b. **From parameters, tokens and hardware alone**: only hardware, devices, parameters (active parameters for
   mixture-of-experts) and tokens go in; where a publication gives no token count but gives total FLOPs, the FLOPs
   go in instead (marked ``F``). The published PUE and intensity are passed as well, so that the comparison is
   about energy; the estimate's own power model, MFU and goodput do the rest. Energy is compared with the published
   energy, or, for runs with measured power but no published energy (PaLM), with accelerator-hours x measured
   power, on the publication's scope: where it counted GPUs only (AI2's OLMo runs), with the estimate's
   accelerator part; elsewhere with the whole system (hosts included). Estimated accelerator-hours are compared
   with the published ones.

An ablation at the end prints the headline again with each modelling choice undone (no goodput; GPU-only
publications set against the whole system) and with the accelerator's own draw at the ends of its range, so
that no single assumption hides behind the headline.

Errors are ``(estimate - published) / published``. The script prints a table, then the median and worst absolute
error of each mode; for mode b also over the runs whose power was measured. It is a benchmark: it always exits 0
unless the CSV cannot be read.

    python benchmarks/estimate_validation.py [--csv PATH]
"""

from __future__ import annotations

import argparse
import csv
import statistics
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

DEFAULT_CSV = Path(__file__).resolve().parent / "data" / "published_training_runs.csv"

_IMPORT_ERROR: str | None
try:
    from wattwise.estimate.model import Estimate, TrainingInputs, estimate_training
except ImportError as exc:  # the estimate module is still being written, or is broken
    _IMPORT_ERROR = f"{type(exc).__name__}: {exc}"
else:
    _IMPORT_ERROR = None


@dataclass(frozen=True, slots=True)
class Run:
    """One published training run, as recorded in the CSV."""

    run: str
    source: str
    hardware: str
    devices: int | None
    hours: float | None
    accelerator_hours: float | None
    power_w: float | None
    host_included: bool
    power_measured: bool
    pue_published: float | None
    intensity_published: float | None
    pue_implied: float | None
    intensity_implied: float | None
    energy_mwh: float | None
    energy_scope: str
    co2e_t: float | None
    co2e_scope: str
    params: float | None
    active_params: float | None
    tokens: float | None
    flops: float | None

    @property
    def published_accelerator_hours(self) -> float | None:
        if self.accelerator_hours is not None:
            return self.accelerator_hours
        if self.devices is not None and self.hours is not None:
            return self.devices * self.hours
        return None

    @property
    def pue(self) -> float | None:
        """The PUE in the publication's arithmetic: stated, else implied by it (see the CSV's notes)."""
        return self.pue_published if self.pue_published is not None else self.pue_implied

    @property
    def intensity(self) -> float | None:
        return self.intensity_published if self.intensity_published is not None else self.intensity_implied

    @property
    def uses_implied(self) -> bool:
        return (self.pue_published is None and self.pue_implied is not None) or (
            self.intensity_published is None and self.intensity_implied is not None
        )


def _float(row: dict[str, str], key: str) -> float | None:
    text = row.get(key, "").strip()
    return float(text) if text else None


def _int(row: dict[str, str], key: str) -> int | None:
    value = _float(row, key)
    return None if value is None else round(value)


def _yes(row: dict[str, str], key: str) -> bool:
    return row.get(key, "").strip().lower() == "yes"


def load_runs(path: Path) -> list[Run]:
    """Read the CSV with the csv module; numbers are plain floats (``1.3e6``), blanks are unknown."""
    with path.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    return [
        Run(
            run=row["run"],
            source=row["source"],
            hardware=row["hardware"],
            devices=_int(row, "devices"),
            hours=_float(row, "hours"),
            accelerator_hours=_float(row, "accelerator_hours"),
            power_w=_float(row, "power_w_published"),
            host_included=_yes(row, "host_included"),
            power_measured=_yes(row, "power_measured"),
            pue_published=_float(row, "pue_published"),
            intensity_published=_float(row, "intensity_g_per_kwh_published"),
            pue_implied=_float(row, "pue_implied"),
            intensity_implied=_float(row, "intensity_implied_g_per_kwh"),
            energy_mwh=_float(row, "energy_mwh_published"),
            energy_scope=row["energy_scope"].strip(),
            co2e_t=_float(row, "co2e_t_published"),
            co2e_scope=row["co2e_scope"].strip(),
            params=_float(row, "params"),
            active_params=_float(row, "active_params"),
            tokens=_float(row, "tokens"),
            flops=_float(row, "flops_published"),
        )
        for row in rows
    ]


def error_pct(estimate: float, published: float) -> float:
    return (estimate - published) / published * 100.0


@dataclass(frozen=True, slots=True)
class ModeA:
    energy_mwh: float | None  # on the publication's scope
    energy_err: float | None
    co2e_t: float | None
    co2e_err: float | None


@dataclass(frozen=True, slots=True)
class ModeB:
    basis: str  # "N,D" (parameters and tokens) or "F" (published FLOPs)
    hours_err: float | None
    energy_mwh: float | None  # on the reference's scope
    reference_mwh: float | None
    reference_kind: str  # "published", "derived" or ""
    energy_err: float | None
    system_err: float | None  # the whole system (hosts included) against the reference, whatever its scope
    accelerator_only: bool  # the reference counted accelerators only, and so does energy_mwh
    draw_low: float  # the accelerator's own draw, low and high, over its central value
    draw_high: float


EstimateFn = Callable[["TrainingInputs"], "Estimate"]


def _scoped(facility: float, pue: float, scope: str) -> float:
    return facility / pue if scope == "it" else facility


def mode_a(run: Run, estimate: EstimateFn) -> ModeA | str:
    """Reproduce the published figures from the published inputs; a string says why it cannot."""
    hours = run.published_accelerator_hours
    if hours is None:
        return "no accelerator-hours published"
    if run.power_w is None:
        return "no per-device power published"
    pue = run.pue
    want_energy = run.energy_mwh is not None and (run.energy_scope == "it" or pue is not None)
    want_co2e = run.co2e_t is not None and run.intensity is not None and (run.co2e_scope == "it" or pue is not None)
    if not (want_energy or want_co2e):
        return "nothing to compare: no published energy, and no CO2e with a published (or implied) PUE and intensity"
    used_pue = pue if pue is not None else 1.0
    both = run.devices is not None and run.hours is not None
    result = estimate(
        TrainingInputs(
            hardware=run.hardware,
            devices=run.devices if both else None,
            hours=run.hours if both else None,
            accelerator_hours=None if both else hours,
            power_w=run.power_w,
            host_overhead=0.0,
            pue=used_pue,
            intensity_g_per_kwh=run.intensity,
        )
    )
    facility_mwh = result.energy_kwh.value / 1000.0
    facility_t = result.operational_co2e_kg.value / 1000.0
    energy = co2e = energy_err = co2e_err = None
    if want_energy and run.energy_mwh is not None:
        energy = _scoped(facility_mwh, used_pue, run.energy_scope)
        energy_err = error_pct(energy, run.energy_mwh)
    if want_co2e and run.co2e_t is not None:
        co2e = _scoped(facility_t, used_pue, run.co2e_scope)
        co2e_err = error_pct(co2e, run.co2e_t)
    return ModeA(energy, energy_err, co2e, co2e_err)


def mode_b(run: Run, estimate: EstimateFn, goodput: float | None = None, dense_only: bool = False) -> ModeB | str:
    """Estimate from hardware, devices, parameters and tokens (or published FLOPs); a string says why it cannot."""
    n = run.active_params if run.active_params is not None else run.params
    if run.tokens is not None and n is not None:
        basis = "N,D"
    elif run.flops is not None:
        basis = "F"
    else:
        return "no parameters and tokens (or FLOPs) published"
    reference: float | None = run.energy_mwh
    scope, kind = run.energy_scope, "published"
    hours = run.published_accelerator_hours
    if reference is None and run.power_measured and hours is not None and run.power_w is not None:
        reference, scope, kind = hours * run.power_w / 1e6, "it", "derived"
    if reference is None and hours is None:
        return "nothing to compare: no energy and no accelerator-hours published"
    used_pue = run.pue if run.pue is not None else 1.0  # no PUE published: compare IT energy
    flops = run.flops if basis == "F" else None
    if dense_only and basis == "N,D" and n is not None and run.tokens is not None:  # ablation: 6·N·D, no attention
        basis, flops = "F", 6.0 * n * run.tokens
    result = estimate(
        TrainingInputs(
            hardware=run.hardware,
            devices=run.devices,
            params=run.params if basis == "N,D" else None,
            active_params=run.active_params if basis == "N,D" else None,
            tokens=run.tokens if basis == "N,D" else None,
            flops=flops,
            goodput=goodput,
            pue=used_pue,
            intensity_g_per_kwh=run.intensity,
        )
    )
    hours_err = None if hours is None else error_pct(result.accelerator_hours.value, hours)
    accelerator_only = not run.host_included
    energy = energy_err = system_err = None
    if reference is not None:
        system = _scoped(result.energy_kwh.value / 1000.0, used_pue, scope)
        system_err = error_pct(system, reference)
        energy, energy_err = system, system_err
        if accelerator_only:
            energy = _scoped(result.accelerator_energy_kwh.value * used_pue / 1000.0, used_pue, scope)
            energy_err = error_pct(energy, reference)
    draw = result.accelerator_power_w
    return ModeB(
        basis,
        hours_err,
        energy,
        reference,
        kind if reference is not None else "",
        energy_err,
        system_err,
        accelerator_only,
        draw.low / draw.value,
        draw.high / draw.value,
    )


def _fmt(value: float | None, digits: int = 4) -> str:
    if value is None:
        return "-"
    return f"{value:.{digits}g}" if abs(value) < 1e4 else f"{value:,.0f}"


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:+.1f}%"


def _summary(label: str, errors: Sequence[tuple[str, float]]) -> str:
    if not errors:
        return f"  {label}: no comparisons"
    absolute = [abs(err) for _, err in errors]
    worst_run, worst = max(errors, key=lambda item: abs(item[1]))
    return (
        f"  {label}: n={len(errors)}, median |error| {statistics.median(absolute):.1f} %, "
        f"worst {abs(worst):.1f} % ({worst_run})"
    )


def _ablation(runs: Sequence[Run], estimate: EstimateFn, strict_names: set[str]) -> None:
    """The headline again with each modelling choice undone, and with the accelerator draw at its range's ends."""
    keys = ("shipped", "nogoodput", "dense", "system", "low", "high")
    variants: dict[str, list[tuple[str, float]]] = {k: [] for k in keys}
    for run in runs:
        if run.run not in strict_names:
            continue
        shipped = _run_safely(mode_b, run, estimate)
        plain = _run_safely(lambda r, e: mode_b(r, e, goodput=1.0), run, estimate)
        dense = _run_safely(lambda r, e: mode_b(r, e, dense_only=True), run, estimate)
        if not (isinstance(shipped, ModeB) and isinstance(plain, ModeB) and isinstance(dense, ModeB)):
            continue
        if None in (shipped.energy_err, shipped.system_err, plain.energy_err, dense.energy_err):
            continue
        assert shipped.energy_err is not None and shipped.system_err is not None
        assert plain.energy_err is not None and dense.energy_err is not None
        variants["dense"].append((run.run, dense.energy_err))
        variants["shipped"].append((run.run, shipped.energy_err))
        variants["nogoodput"].append((run.run, plain.energy_err))
        variants["system"].append((run.run, shipped.system_err))
        for key, factor in (("low", shipped.draw_low), ("high", shipped.draw_high)):
            ratio = 1 + shipped.energy_err / 100.0
            variants[key].append(
                (run.run, (ratio * factor - 1) * 100.0 if shipped.accelerator_only else (ratio - 1) * 100.0)
            )
    print()
    print("Ablation of the headline (same runs; each line changes one thing):")
    print(_summary("as shipped", variants["shipped"]))
    print(_summary("without goodput (MFU alone turns FLOPs into hours)", variants["nogoodput"]))
    print(_summary("without attention FLOPs (6 N D alone)", variants["dense"]))
    print(_summary("GPU-only publications set against the whole system, hosts included", variants["system"]))
    print(_summary("accelerator draw at the low end of its range (GPU-only rows)", variants["low"]))
    print(_summary("accelerator draw at the high end of its range (GPU-only rows)", variants["high"]))


def _run_safely(fn: Callable[[Run, EstimateFn], ModeA | ModeB | str], run: Run, estimate: EstimateFn) -> object:
    try:
        return fn(run, estimate)
    except Exception as exc:  # a benchmark reports every row, whatever one of them raises
        return f"estimate failed: {type(exc).__name__}: {exc}"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--csv", type=Path, default=DEFAULT_CSV, help="published runs (default: %(default)s)")
    args = parser.parse_args(argv)
    try:
        runs = load_runs(args.csv)
    except (OSError, KeyError, ValueError) as exc:
        print(f"cannot read {args.csv}: {exc}", file=sys.stderr)
        return 2

    print(f"{len(runs)} published runs from {args.csv}")
    if _IMPORT_ERROR is not None:
        print(f"wattwise.estimate.model is not available ({_IMPORT_ERROR}); nothing can be estimated:")
        for run in runs:
            print(f"  {run.run}: skipped, estimate module missing")
        return 0
    estimate: EstimateFn = estimate_training

    header = (
        f"{'run':34} {'meas':4} {'pub MWh':>9} {'scope':8} | {'A MWh':>9} {'A err':>7} {'A tCO2e':>9} "
        f"{'A err':>7} | {'B in':4} {'B acc-h':>8} {'B MWh':>9} {'B err':>7} {'ref':7} | flags"
    )
    print()
    print(header)
    print("-" * len(header))
    a_energy: list[tuple[str, float]] = []
    a_co2e: list[tuple[str, float]] = []
    b_energy: list[tuple[str, float, Run]] = []
    b_hours: list[tuple[str, float]] = []
    problems: list[str] = []
    for run in runs:
        a = _run_safely(mode_a, run, estimate)
        b = _run_safely(mode_b, run, estimate)
        flags: list[str] = []
        if run.uses_implied:
            flags.append("implied PUE/intensity")
        if not run.host_included and run.power_measured:
            flags.append("GPU-only: compared with the estimate's accelerator part")
        cells_a = ["-", "-", "-", "-"]
        if isinstance(a, ModeA):
            cells_a = [_fmt(a.energy_mwh), _pct(a.energy_err), _fmt(a.co2e_t), _pct(a.co2e_err)]
            if a.energy_err is not None:
                a_energy.append((run.run, a.energy_err))
            if a.co2e_err is not None:
                a_co2e.append((run.run, a.co2e_err))
        else:
            problems.append(f"  {run.run}: mode a: {a}")
        cells_b = ["-", "-", "-", "-", ""]
        if isinstance(b, ModeB):
            cells_b = [b.basis, _pct(b.hours_err), _fmt(b.energy_mwh), _pct(b.energy_err), b.reference_kind]
            if b.energy_err is not None:
                b_energy.append((run.run, b.energy_err, run))
            if b.hours_err is not None:
                b_hours.append((run.run, b.hours_err))
        else:
            problems.append(f"  {run.run}: mode b: {b}")
        published = run.energy_mwh
        print(
            f"{run.run[:34]:34} {'yes' if run.power_measured else 'no':4} {_fmt(published):>9} "
            f"{run.energy_scope or '-':8} | {cells_a[0]:>9} {cells_a[1]:>7} {cells_a[2]:>9} {cells_a[3]:>7} | "
            f"{cells_b[0]:4} {cells_b[1]:>8} {cells_b[2]:>9} {cells_b[3]:>7} {cells_b[4]:7} | {'; '.join(flags)}"
        )

    print()
    print("Rows a mode could not run (why):")
    print("\n".join(problems) if problems else "  none")
    print()
    print("Mode a, from published inputs (target: median <= 3 %, worst <= 5 %):")
    print(_summary("energy", a_energy))
    print(_summary("operational CO2e", a_co2e))
    print(_summary("energy and CO2e together", a_energy + a_co2e))
    print()
    print(
        "Mode b, from parameters, tokens and hardware (published PUE and intensity passed; target: median <= 25 %"
        " on runs whose power was measured):"
    )
    strict = [
        (name, err)
        for name, err, r in b_energy
        if r.power_measured and r.tokens is not None and (r.params or r.active_params)
    ]
    print(_summary("HEADLINE: energy, measured-power runs, from parameters and tokens only", strict))
    print(
        _summary(
            "energy, measured-power runs, incl. those from published FLOPs",
            [(name, err) for name, err, r in b_energy if r.power_measured],
        )
    )
    print(
        _summary(
            "energy, measured-power runs, host included",
            [(name, err) for name, err, r in b_energy if r.power_measured and r.host_included],
        )
    )
    print(_summary("energy, all runs with a reference", [(name, err) for name, err, _ in b_energy]))
    print(_summary("accelerator-hours, all runs that publish them", b_hours))
    if b_hours:
        signed = statistics.median(err for _, err in b_hours)
        print(f"  accelerator-hours, median signed error {signed:+.1f} % (negative: the estimate is short)")
    _ablation(runs, estimate, strict_names={name for name, _ in strict})
    print()
    print(
        "Notes: 'scope' is the publication's: 'it' = before PUE, 'facility' = after. 'B in' = N,D (parameters and "
        "tokens) or F (published total FLOPs). 'ref' = the mode b energy reference: published, or derived as "
        "accelerator-hours x measured power. Runs flagged 'GPU-only' published GPU energy only: mode b sets the "
        "estimate's accelerator part against them, not the whole system. TDP-based publications (power_measured "
        "= no) test arithmetic in mode a, not the power model."
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
