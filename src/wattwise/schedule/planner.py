"""The planner: given hourly intensities ahead (forecast or known), when should a job run?

Pure functions of arrays; nothing here fetches data. Index 0 is the hour the job is submitted in.

Window semantics are explicit everywhere:

- ``start``: the job may *start* up to ``window_h`` hours after submission (delay ≤ W); it needs W + D hours of
  outlook. This is the semantics of Let's Wait Awhile and of Table A in the shared benchmarks.
- ``deadline``: the job must *finish* within ``window_h`` hours of submission (the Carbon Aware SDK's window);
  a window shorter than the job is refused.

An interruptible job runs in the cheapest whole hours that end by its latest finish (the D cheapest of them),
grouped into slices of consecutive hours; where too few whole hours fit, it runs in one piece. A duration that is
not a whole number of hours weighs its last hour by the fraction used.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np

from wattwise.errors import ConfigError
from wattwise.validate import JOB_HOURS, WINDOW_HOURS

Semantics = Literal["start", "deadline"]
SEMANTICS: tuple[Semantics, ...] = ("start", "deadline")


@dataclass(frozen=True, slots=True)
class Job:
    """What a plan is for: how long the job runs, the window and its meaning, and whether it may pause."""

    duration_h: float
    window_h: float
    semantics: Semantics = "start"
    interruptible: bool = False

    def __post_init__(self) -> None:
        check_job(self.duration_h, self.window_h, self.semantics)


@dataclass(frozen=True, slots=True)
class Slice:
    """``hours`` of running from ``offset_h`` hours after submission."""

    offset_h: int
    hours: float


@dataclass(frozen=True, slots=True)
class Decision:
    """What the planner chose and what it expects, on the outlook it was given.

    ``expected_g_per_kwh`` and ``now_g_per_kwh`` are the job's energy-weighted mean intensity when run as planned
    and when started at submission; ``expected_savings_pct`` compares them (0 when nothing can be shifted).
    """

    semantics: Semantics
    duration_h: float
    window_h: float
    interruptible: bool
    slices: tuple[Slice, ...]
    expected_g_per_kwh: float
    now_g_per_kwh: float

    @property
    def start_offset_h(self) -> int:
        return self.slices[0].offset_h

    @property
    def expected_savings_pct(self) -> float:
        if self.now_g_per_kwh <= 0:
            return 0.0
        return 100.0 * (1.0 - self.expected_g_per_kwh / self.now_g_per_kwh)


def check_job(duration_h: float, window_h: float, semantics: str, where: str = "") -> None:
    """One line for each impossible job: durations and windows out of range, a deadline shorter than the job."""
    if semantics not in SEMANTICS:
        raise ConfigError(f"semantics must be start or deadline (got {semantics!r})")
    JOB_HOURS.check(duration_h, where)
    WINDOW_HOURS.check(window_h, where)
    if semantics == "deadline" and window_h < duration_h:
        origin = f"{where}: " if where else ""
        raise ConfigError(
            f"{origin}a deadline {window_h:g} h away is shorter than the job ({duration_h:g} h): give a longer "
            "window (the deadline) or a shorter duration"
        )


def kernel(duration_h: float) -> np.ndarray:
    """Weights of the hours a job of ``duration_h`` occupies from its start: 1 for each whole hour, the fraction
    for a last partial hour."""
    whole = math.floor(duration_h + 1e-9)
    frac = duration_h - whole
    weights = [1.0] * whole + ([frac] if frac > 1e-9 else [])
    return np.array(weights)


def last_start(duration_h: float, window_h: float, semantics: Semantics) -> int:
    """The latest start offset (whole hours) the semantics allow."""
    if semantics == "start":
        return math.floor(window_h + 1e-9)
    return math.floor(window_h - duration_h + 1e-9)


def horizon_h(duration_h: float, window_h: float, semantics: Semantics) -> int:
    """How many hours of outlook a plan needs."""
    return last_start(duration_h, window_h, semantics) + len(kernel(duration_h))


def start_costs(values: np.ndarray, duration_h: float) -> np.ndarray:
    """``out[s]`` = the job's intensity-hours when it starts at hour ``s`` (NaN when it would touch a gap), along
    the last axis; works on one series or on a matrix of forecasts (one per row)."""
    w = kernel(duration_h)
    n = values.shape[-1] - len(w) + 1
    if n <= 0:
        return np.full((*values.shape[:-1], 0), np.nan)
    out = np.zeros((*values.shape[:-1], n))
    for k, weight in enumerate(w):
        out += weight * values[..., k : k + n]
    return out


def plan(
    outlook: np.ndarray, duration_h: float, window_h: float, semantics: Semantics, *, interruptible: bool = False
) -> Decision:
    """The best start (or slices) for one job on ``outlook`` (hourly g/kWh, index 0 = now)."""
    check_job(duration_h, window_h, semantics)
    need = horizon_h(duration_h, window_h, semantics)
    if len(outlook) < need:
        raise ConfigError(
            f"the outlook covers {len(outlook)} h, and a {duration_h:g} h job in a {window_h:g} h window "
            f"({semantics} semantics) needs {need} h: shorten the window or give a longer forecast or trace"
        )
    values = np.asarray(outlook[:need], dtype=float)
    w = kernel(duration_h)
    energy = float(w.sum())
    now = start_costs(values, duration_h)[0]
    if math.isnan(now):
        raise ConfigError("the outlook has a gap in the job's first hours: nothing to compare against")
    # an interruptible job may use only whole hours that end by its latest finish (W, or W + D for start semantics)
    finish_h = window_h if semantics == "deadline" else window_h + duration_h
    usable = min(math.floor(finish_h + 1e-9), len(values))
    if interruptible and usable >= len(kernel(duration_h)):
        slices, chosen = _cheapest_hours(values[:usable], duration_h)
    else:
        costs = start_costs(values, duration_h)[: last_start(duration_h, window_h, semantics) + 1]
        best = int(np.nanargmin(costs))
        slices, chosen = (Slice(best, duration_h),), float(costs[best])
    return Decision(
        semantics=semantics,
        duration_h=duration_h,
        window_h=window_h,
        interruptible=interruptible,
        slices=slices,
        expected_g_per_kwh=chosen / energy,
        now_g_per_kwh=float(now) / energy,
    )


def _cheapest_hours(values: np.ndarray, duration_h: float) -> tuple[tuple[Slice, ...], float]:
    """The cheapest hours summing to the duration (the partial hour placed in the cheapest hour left), as slices
    of consecutive hours, and their intensity-hours. Ties go to the earliest hour."""
    w = kernel(duration_h)
    whole = int(np.sum(w >= 1.0))
    frac = float(w[-1]) if len(w) and w[-1] < 1.0 else 0.0
    order = np.argsort(np.where(np.isnan(values), np.inf, values), kind="stable")
    used = {int(h): 1.0 for h in order[:whole]}
    if frac:
        used[int(order[whole])] = frac
    cost = sum(values[h] * share for h, share in used.items())
    slices: list[Slice] = []
    for h in sorted(used):
        if (
            slices
            and slices[-1].offset_h + math.ceil(slices[-1].hours) == h
            and slices[-1].hours == int(slices[-1].hours)
        ):
            slices[-1] = Slice(slices[-1].offset_h, slices[-1].hours + used[h])
        else:
            slices.append(Slice(h, used[h]))
    return tuple(slices), float(cost)
