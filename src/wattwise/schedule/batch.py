"""Many jobs planned together under a capacity limit: an exact MILP (HiGHS through scipy) and a fast greedy.

Each job has a duration, a power (kW), a number of capacity units it holds while running (jobs or GPUs), a
release (earliest start) and a deadline (latest finish), all in hours from the batch's start. The intensity is
one hourly outlook (index 0 = the batch's start). A job runs in one piece, from a whole hour.

MILP: one binary per job and feasible start, ``x[j, s]``; minimise Σ power_j · cost_j(s) · x[j, s], where
cost_j(s) is the intensity-hours of running job j from s; each job starts once; in every hour the units of the
jobs running then are at most the capacity. The greedy places the jobs in order of energy (largest first; ties:
the tighter window first) at the cheapest start that still fits. Both are scored against a plain queue: the jobs
in the given order, each at the earliest start that fits.

An impossible batch is one line naming a job: its window is shorter than it, it needs more units than there are,
or it cannot finish by its deadline beside the jobs due before it (the first job that placing them
earliest-deadline-first cannot fit, when the solver confirms that no plan exists).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import numpy as np

from wattwise.errors import ConfigError
from wattwise.schedule.planner import kernel, start_costs

MILP_TIME_LIMIT_S = 60.0


@dataclass(frozen=True, slots=True)
class BatchJob:
    name: str
    duration_h: float
    deadline_h: float  # latest finish, hours from the batch start
    power_kw: float = 1.0
    units: int = 1
    release_h: float = 0.0

    @property
    def span(self) -> int:
        """Whole hours the job occupies capacity for."""
        return len(kernel(self.duration_h))

    def starts(self) -> range:
        """Feasible start hours."""
        first = math.ceil(self.release_h - 1e-9)
        last = math.floor(self.deadline_h - self.duration_h + 1e-9)
        return range(first, last + 1)


@dataclass
class BatchPlan:
    method: str  # "milp (optimal)", "milp (time limit)", "greedy"
    starts: dict[str, int]
    emissions_g: float
    queue_emissions_g: float
    seconds: float
    gap_to_optimum_pct: float | None = None  # greedy against the MILP, where both ran
    notes: list[str] = field(default_factory=list)

    @property
    def savings_pct(self) -> float:
        if self.queue_emissions_g <= 0:
            return 0.0
        return 100.0 * (1 - self.emissions_g / self.queue_emissions_g)


def check_batch(jobs: list[BatchJob], capacity: int, horizon: int) -> None:
    names = set()
    for job in jobs:
        if job.name in names:
            raise ConfigError(f"job {job.name!r} appears twice: give each job its own name")
        names.add(job.name)
        if job.units > capacity:
            raise ConfigError(f"job {job.name!r} needs {job.units} units and the capacity is {capacity}")
        if not job.starts():
            raise ConfigError(
                f"job {job.name!r} cannot run: {job.duration_h:g} h do not fit between its release "
                f"({job.release_h:g} h) and its deadline ({job.deadline_h:g} h)"
            )
        if job.starts()[-1] + job.span > horizon:
            raise ConfigError(
                f"job {job.name!r} has a deadline {job.deadline_h:g} h away and the outlook covers {horizon} h: "
                "shorten the deadline or give a longer forecast or trace"
            )


def _job_costs(job: BatchJob, outlook: np.ndarray, cache: dict[float, np.ndarray] | None = None) -> np.ndarray:
    """Emissions (g) of running ``job`` from each of its feasible starts."""
    if cache is None:
        costs = start_costs(outlook, job.duration_h)
    else:
        if job.duration_h not in cache:
            cache[job.duration_h] = start_costs(outlook, job.duration_h)
        costs = cache[job.duration_h]
    s = job.starts()
    out: np.ndarray = job.power_kw * costs[s.start : s.stop]
    return out


def _fits(load: np.ndarray, job: BatchJob, capacity: int) -> np.ndarray:
    """For each feasible start, whether the job fits beside ``load`` (units in use per hour)."""
    s = job.starts()
    part = load[s.start : s.stop + job.span - 1]
    windows = np.lib.stride_tricks.sliding_window_view(part, job.span)
    out: np.ndarray = windows.max(axis=1) + job.units <= capacity
    return out


def _place(order: list[BatchJob], outlook: np.ndarray, capacity: int, *, cheapest: bool) -> dict[str, int] | str:
    """Place jobs one by one (cheapest fitting start, or the earliest); the name of the first that cannot fit."""
    load = np.zeros(len(outlook) + 1, dtype=np.int64)
    placed: dict[str, int] = {}
    cache: dict[float, np.ndarray] = {}
    for job in order:
        ok = _fits(load, job, capacity)
        if not ok.any():
            return job.name
        if cheapest:
            costs = np.where(ok, _job_costs(job, outlook, cache), np.inf)
            costs = np.where(np.isnan(costs), np.inf, costs)
            pick = int(np.argmin(costs)) if np.isfinite(costs).any() else int(np.argmax(ok))
        else:
            pick = int(np.argmax(ok))
        start = job.starts()[pick]
        load[start : start + job.span] += job.units
        placed[job.name] = start
    return placed


def emissions(jobs: list[BatchJob], starts: dict[str, int], outlook: np.ndarray) -> float:
    total = 0.0
    for job in jobs:
        start = starts[job.name]
        total += job.power_kw * float(np.dot(outlook[start : start + job.span], kernel(job.duration_h)))
    return total


def queue(jobs: list[BatchJob], outlook: np.ndarray, capacity: int, *, exact: bool = True) -> dict[str, int]:
    """What a plain queue does: the jobs in the given order, each at the earliest start that fits; where that
    misses a deadline, earliest deadline (then least slack, then release) first; where those do too, the feasible
    plan with the least total delay, from the MILP. No feasible plan at all is one line naming the job that could
    not be placed. (``exact`` is kept for callers; the MILP is always asked before a batch is called impossible.)"""
    placed = _place(jobs, outlook, capacity, cheapest=False)
    orders = (
        lambda j: j.deadline_h,  # earliest deadline first
        lambda j: j.deadline_h - j.release_h - j.duration_h,  # least slack first
        lambda j: (j.release_h, j.deadline_h),
    )
    for key in orders:
        if not isinstance(placed, str):
            return placed
        placed = _place(sorted(jobs, key=key), outlook, capacity, cheapest=False)
    if isinstance(placed, str):
        try:
            earliest = milp(jobs, outlook, capacity, MILP_TIME_LIMIT_S, delay=True)[0]
        except ImportError:
            earliest, exact = None, False
        if earliest is None:
            if exact:
                raise ConfigError(_infeasible(placed, capacity))
            raise ConfigError(
                f"the greedy could not place job {placed!r} with a capacity of {capacity}, and the MILP that would "
                "settle whether any plan exists needs scipy: pip install 'wattwise[schedule]'"
            )
        return earliest
    return placed


def _infeasible(name: str, capacity: int) -> str:
    return (
        f"job {name!r} cannot finish by its deadline beside the jobs due before it with a capacity of {capacity}: "
        "give it (or them) a later deadline, or more capacity"
    )


def greedy(
    jobs: list[BatchJob], outlook: np.ndarray, capacity: int, *, passes: int = 3, exact: bool = False
) -> dict[str, int]:
    """Largest jobs first at their cheapest fitting start (or, when that strands a job, the queue's plan), then
    passes that take each job out and put it back at its cheapest fitting start: always a feasible plan."""
    order = sorted(jobs, key=lambda j: (-j.power_kw * j.duration_h, j.deadline_h - j.release_h))
    placed = _place(order, outlook, capacity, cheapest=True)
    if isinstance(placed, str):
        placed = queue(jobs, outlook, capacity, exact=exact)
    load = np.zeros(len(outlook) + 1, dtype=np.int64)
    for job in jobs:
        load[placed[job.name] : placed[job.name] + job.span] += job.units
    cache: dict[float, np.ndarray] = {}
    costs = {job.name: np.where(np.isnan(c := _job_costs(job, outlook, cache)), np.inf, c) for job in jobs}
    for _ in range(passes):
        moved = 0
        for job in order:
            start = placed[job.name]
            load[start : start + job.span] -= job.units
            ok = _fits(load, job, capacity)
            options = np.where(ok, costs[job.name], np.inf)
            best = int(np.argmin(options))
            current = start - job.starts().start
            if options[best] < options[current] - 1e-9:
                start = job.starts()[best]
                moved += 1
            load[start : start + job.span] += job.units
            placed[job.name] = start
        if not moved:
            break
    return placed


def milp(
    jobs: list[BatchJob], outlook: np.ndarray, capacity: int, time_limit_s: float, *, delay: bool = False
) -> tuple[dict[str, int] | None, str]:
    """The optimal starts (None when infeasible) and how the solver ended; ``delay`` minimises the total delay
    from each job's release instead of emissions."""
    try:
        from scipy.optimize import Bounds, LinearConstraint
        from scipy.optimize import milp as solve
        from scipy.sparse import coo_matrix
    except ImportError:
        raise ImportError("the exact batch plan needs scipy: pip install 'wattwise[schedule]'") from None

    costs, job_rows, hour_rows, hour_cols, hour_vals = [], [], [], [], []
    index: list[tuple[int, int]] = []
    for j, job in enumerate(jobs):
        c = np.arange(len(job.starts()), dtype=float) if delay else _job_costs(job, outlook)
        for k, s in enumerate(job.starts()):
            col = len(index)
            index.append((j, s))
            costs.append(c[k] if np.isfinite(c[k]) else 1e12)
            job_rows.append(j)
            for h in range(s, s + job.span):
                hour_rows.append(h)
                hour_cols.append(col)
                hour_vals.append(job.units)
    n = len(index)
    assign = coo_matrix((np.ones(n), (job_rows, np.arange(n))), shape=(len(jobs), n))
    hours = len(outlook) + 1
    load = coo_matrix((hour_vals, (hour_rows, hour_cols)), shape=(hours, n))
    constraints = [
        LinearConstraint(assign.tocsr(), 1, 1),
        LinearConstraint(load.tocsr(), -np.inf, capacity),
    ]
    result = solve(
        np.array(costs),
        constraints=constraints,
        integrality=np.ones(n),
        bounds=Bounds(0, 1),
        options={"time_limit": time_limit_s, "disp": False},
    )
    if result.x is None:
        return None, "infeasible" if result.status == 2 else f"no solution ({result.message})"
    chosen = np.nonzero(result.x > 0.5)[0]
    starts = {jobs[index[c][0]].name: index[c][1] for c in chosen}
    return starts, "optimal" if result.status == 0 else "time limit"


def _has_scipy() -> bool:
    import importlib.util

    return importlib.util.find_spec("scipy") is not None


def plan_batch(
    jobs: list[BatchJob],
    outlook: np.ndarray,
    capacity: int,
    *,
    method: str = "auto",
    milp_max_jobs: int = 1000,
    time_limit_s: float = MILP_TIME_LIMIT_S,
) -> BatchPlan:
    """Plan ``jobs`` on ``outlook`` (hourly g/kWh from the batch start). ``method``: ``milp``, ``greedy`` or
    ``auto`` (the MILP up to ``milp_max_jobs`` jobs, then the greedy); when the MILP runs, the greedy runs too and
    its gap to the optimum is reported."""
    if method not in ("auto", "milp", "greedy"):
        raise ConfigError(f"method must be auto, milp or greedy (got {method!r})")
    check_batch(jobs, capacity, len(outlook))
    use_milp = method == "milp" or (method == "auto" and len(jobs) <= milp_max_jobs)
    notes: list[str] = []
    if use_milp and not _has_scipy():
        if method == "milp":
            raise ConfigError("--method milp needs scipy (HiGHS): pip install 'wattwise[schedule]'")
        use_milp = False
        notes.append("scipy is not installed: planned with the greedy (pip install 'wattwise[schedule]' for the MILP)")
    base = queue(jobs, outlook, capacity, exact=use_milp)
    queue_g = emissions(jobs, base, outlook)
    t0 = time.perf_counter()
    fast = greedy(jobs, outlook, capacity, exact=use_milp)
    greedy_s = time.perf_counter() - t0
    if not use_milp:
        return BatchPlan("greedy", fast, emissions(jobs, fast, outlook), queue_g, greedy_s, notes=notes)
    t0 = time.perf_counter()
    exact, status = milp(jobs, outlook, capacity, time_limit_s)
    milp_s = time.perf_counter() - t0
    if exact is None:  # the queue's placement is a feasible plan, so this is the solver giving up
        raise ConfigError(f"the MILP solver found no plan ({status}): use --method greedy")
    exact_g = emissions(jobs, exact, outlook)
    plan = BatchPlan(f"milp ({status})", exact, exact_g, queue_g, milp_s)
    greedy_g = emissions(jobs, fast, outlook)
    plan.gap_to_optimum_pct = 100.0 * (greedy_g - exact_g) / exact_g if exact_g > 0 else 0.0
    plan.notes.append(f"greedy: {greedy_g:,.0f} g in {greedy_s:.3f} s")
    return plan
