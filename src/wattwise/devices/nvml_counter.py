"""NVML's total-energy counter, read between its steps.

The counter moves in steps, about every 100 ms (``STEP_S``): read at time ``t`` it holds the energy up to its
last step, some time before ``t``. Read raw, a window shorter than a step is often 0 J and a window of a few steps is
off by up to a step at each edge. :class:`CounterSmoother` keeps the counted energy and adds the energy since the
counter's last step, ``power × (t − t_step)``, where ``t_step`` is estimated from when the counter was seen to move
(the middle of the interval in which it moved, and at most a step before the reading). The counter moves with a
steady period, so each interval in which it was seen to move also bounds when later steps happen: the intervals
are intersected, shifted by whole steps, and a few readings pin the step's phase down to milliseconds (where they
disagree, because the period differs or jitters, the intersection starts again). The same lag at the
run's first reading is subtracted, so the two edges are treated alike: half a step at first, corrected when the
counter is first seen to move within a step of it (the previous step was then about one step earlier).

At the run's last reading the total is the counter's exact delta where the run lasted ``EXACT_AFTER_S`` (half a
second, about five steps) or more and the counter moved: the counter, integrated by the GPU itself at a rate no
sampler matches, is then the better figure, and an edge's error is at most one step. A shorter run, or one in which
the counter never moved, keeps the estimate, and ``estimated_final`` says so.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from wattwise.units import mj_to_j

__all__ = ["EXACT_AFTER_S", "STEP_S", "CounterSmoother"]

STEP_S = 0.1  # NVML's energy counter moves about every 100 ms (Volta to Hopper; benchmarks/gpu_accuracy.py measures it)
EXACT_AFTER_S = 5 * STEP_S


@dataclass(slots=True)
class CounterSmoother:
    """A cumulative energy (J since the first reading) from a counter that moves in steps, and power readings."""

    counted_mj: int = 0
    extra_j: float = 0.0  # fills for intervals where the counter went backwards (driver reload, GPU reset)
    reported_j: float = 0.0
    last_raw_mj: int | None = None
    last_t_s: float = 0.0
    first_t_s: float = 0.0
    step_t_s: float = 0.0  # when the counter last moved (estimated)
    phase: tuple[float, float] | None = None  # the last step lies in (lo, hi]: the intersected intervals
    phase_kept: int = 0  # intervals that agreed with the intersection, and that did not
    phase_broken: int = 0
    start_lag_j: float = 0.0  # the energy since the counter's last step at the first reading
    start_power_w: float = 0.0
    power_w: float | None = None  # the last power reading
    steps: int = 0
    resets: int = 0
    unfilled: int = 0  # resets whose interval could not be filled (no power reading)
    estimated_final: bool = False

    def update(self, raw_mj: int, t_s: float, power_w: Callable[[], float | None], *, final: bool = False) -> float:
        """The cumulative energy after a reading of ``raw_mj`` at ``t_s``; ``power_w`` is asked once."""
        watts = power_w()
        if watts is not None:
            self.power_w = watts
        if self.last_raw_mj is None:
            self.last_raw_mj, self.last_t_s, self.first_t_s = raw_mj, t_s, t_s
            self.step_t_s = t_s - STEP_S / 2  # nothing is known of the counter's phase yet: half a step
            self.start_power_w = self.power_w or 0.0
            self.start_lag_j = self._lag_j(t_s)
            return 0.0
        last_raw, last_t = self.last_raw_mj, self.last_t_s
        self.last_raw_mj, self.last_t_s = raw_mj, t_s
        if raw_mj > last_raw:
            self.counted_mj += raw_mj - last_raw
            self.steps += 1
            self.step_t_s = self._step_time(last_t, t_s)
            if self.steps == 1 and self.step_t_s - self.first_t_s <= 1.5 * STEP_S:  # the first lag, now known
                age_s = max(0.0, STEP_S - (self.step_t_s - self.first_t_s))
                self.start_lag_j = self.start_power_w * age_s
        elif raw_mj < last_raw:  # the counter restarted: the interval is filled from one power reading
            self.resets += 1
            if self.power_w is None:
                self.unfilled += 1
            else:
                self.extra_j += self.power_w * (t_s - last_t)
            self.step_t_s = t_s  # the fill reaches this reading; the new counter is counted from here
        estimate = max(0.0, mj_to_j(self.counted_mj) + self.extra_j + self._lag_j(t_s) - self.start_lag_j)
        if not final:
            self.reported_j = max(self.reported_j, estimate)  # never backwards while the run goes on
            return self.reported_j
        self.estimated_final = self.steps == 0 or self.elapsed_s < EXACT_AFTER_S
        self.reported_j = estimate if self.estimated_final else mj_to_j(self.counted_mj) + self.extra_j
        return self.reported_j

    def _step_time(self, a: float, b: float) -> float:
        """When the counter moved, seen unmoved at ``a`` and moved at ``b``: the middle of (a, b], narrowed by the
        earlier intervals shifted by whole steps."""
        a = max(a, b - STEP_S)  # several steps in between: the last was within a step of b
        if self.phase is not None:
            lo, hi = self.phase
            n = round(((a + b) / 2 - (lo + hi) / 2) / STEP_S)
            lo, hi = max(lo + n * STEP_S, a), min(hi + n * STEP_S, b)
            if lo < hi:
                self.phase_kept += 1
                self.phase = (lo, hi)
                # a counter whose period is not STEP_S breaks the intersection often: then only (a, b] is used
                if self.phase_broken <= self.phase_kept:
                    return (lo + hi) / 2
                return (a + b) / 2
            self.phase_broken += 1
        self.phase = (a, b)
        return (a + b) / 2

    @property
    def elapsed_s(self) -> float:
        return self.last_t_s - self.first_t_s

    def _lag_j(self, t_s: float) -> float:
        return (self.power_w or 0.0) * max(0.0, t_s - self.step_t_s)
