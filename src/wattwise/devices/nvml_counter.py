"""NVML's total-energy counter, read between its steps.

The counter moves in steps, about every 100 ms (``STEP_S``): read at time ``t`` it holds the energy up to its
last step, some time before ``t``. Read raw, a window shorter than a step is often 0 J and a window of a few steps is
off by up to a step at each edge. :class:`CounterSmoother` keeps the counted energy and adds the energy since the
counter's last step, ``power × (t − t_step)``; the same lag at the run's first reading is subtracted, so both edges
are treated alike.

**When did the counter last step?** It steps with a steady period, so every pair of readings less than a step
apart says something of the phase: the counter moved between them (a step lies in that arc of the 100 ms cycle) or
it did not (none does). :class:`PhaseVotes` counts, for each millisecond of the cycle, how many such observations
agree with a step there (older ones fading, so a drifting clock is followed), and takes the phase only where one
narrow arc is clearly ahead. Then the last step before a reading is known to a few milliseconds, even between
readings a second apart. Until then, or where the counter does not step every 100 ms, the step is put in the middle
of the interval in which the counter moved (at most a step before the reading), which is never worse on average
than the raw counter.

**Stalls.** A counter that stops moving for more than ``STALL_S`` (or three of its usual gaps between moves, for a
counter that moves less often) while power is drawn lost that energy: when it moves again with less than half of
what the power says, the difference is filled from the power; at the end of a run, a counter still stalled gives
way to the estimate. Both are said in the notes. The usual gap also sets the first reading's lag for a counter that
does not move every 100 ms.

**The run's total** is the counter's exact delta where the run lasted ``EXACT_AFTER_S`` (half a second, about five
steps) or more, the counter moved and did not stall at the end: the counter, integrated by the GPU itself at a rate
no sampler matches, is then the better figure, and an edge's error is at most one step. Otherwise the estimate
stands, and ``estimated_final`` says so.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

from wattwise.units import mj_to_j

__all__ = ["EXACT_AFTER_S", "STALL_S", "STEP_S", "CounterSmoother", "PhaseVotes"]

STEP_S = 0.1  # NVML's energy counter moves about every 100 ms (Volta to Hopper; benchmarks/gpu_accuracy.py measures it)
EXACT_AFTER_S = 5 * STEP_S
STALL_S = 3 * STEP_S
_BINS = 100  # one per millisecond of the cycle
_BIN_S = STEP_S / _BINS
_JITTER_S = 0.002  # the counter's steps and our clock readings are not exact: arcs are widened (moved) or narrowed
_HALF_LIFE_S = 30.0  # observations fade: a clock drifting 50 ppm moves the phase 1.5 ms in 30 s
_LOCK_VOTES = 3.0  # the leading arc must be this many observations ahead of the phases it excludes
_LOCK_WIDTH_BINS = 40  # and all lie in one arc at most 40 ms wide


@dataclass(slots=True)
class PhaseVotes:
    """Where in its cycle the counter steps, voted on by the intervals between readings."""

    votes: list[float] = field(default_factory=lambda: [0.0] * _BINS)
    at_s: float | None = None

    def observe(self, a: float, b: float, *, moved: bool) -> None:
        """The counter moved (or not) between readings at ``a`` and ``b``."""
        if not 0.0 < b - a < STEP_S - 2 * _JITTER_S:
            return  # an interval of a step or more holds a step whatever the phase: it says nothing
        if self.at_s is not None and b > self.at_s:
            fade = 0.5 ** ((b - self.at_s) / _HALF_LIFE_S)
            self.votes = [v * fade for v in self.votes]
        self.at_s = b
        if moved:  # a step in (a, b]: the bins inside the (widened) arc agree
            start, length = a - _JITTER_S, b - a + 2 * _JITTER_S
            inside = True
        else:  # no step in (a, b]: the bins outside the (narrowed) arc agree
            start, length = a + _JITTER_S, b - a - 2 * _JITTER_S
            inside = False
        for k in range(_BINS):
            centre = (k + 0.5) * _BIN_S
            if (((centre - start) % STEP_S) < length) == inside:
                self.votes[k] += 1.0

    def phase_s(self) -> float | None:
        """The step's offset in the cycle (``t mod STEP_S``), or None until one narrow arc clearly leads: every
        phase within ``_LOCK_VOTES`` of the best lies in one arc of at most ``_LOCK_WIDTH_BINS``."""
        best = max(self.votes)
        strong = _arc([k for k, v in enumerate(self.votes) if v > best - _LOCK_VOTES])
        if strong is None or strong[1] > _LOCK_WIDTH_BINS:
            return None
        leading = _arc([k for k, v in enumerate(self.votes) if v >= best - 0.5])
        if leading is None:
            return None
        first, width = leading
        return ((first + width / 2) * _BIN_S) % STEP_S

    def last_step(self, a: float, b: float) -> float | None:
        """The step the counter was seen to make between readings at ``a`` and ``b`` (its last at or before ``b``):
        at the known phase; else, where the phases that lead the vote within (a, b] form one arc, its middle."""
        phase = self.phase_s()
        if phase is not None:
            step = phase + math.floor((b - phase) / STEP_S + 1e-9) * STEP_S
            return step if step > a - _JITTER_S else None
        if not 0.0 < b - a < STEP_S or max(self.votes) < _LOCK_VOTES:
            return None
        best = max(self.votes)
        inside = [k for k in range(_BINS) if ((k + 0.5) * _BIN_S - a) % STEP_S < b - a]
        leading = _arc([k for k in inside if self.votes[k] >= best - 0.5])
        if leading is None:
            return None
        first, width = leading
        centre = ((first + width / 2) * _BIN_S) % STEP_S
        return centre + math.floor((b - centre) / STEP_S + 1e-9) * STEP_S


def _arc(bins: list[int]) -> tuple[int, int] | None:
    """(first bin, width) of sorted bin indices forming one arc of the cycle; None if they form several."""
    if not bins or len(bins) == _BINS:
        return None
    gaps = [(bins[(i + 1) % len(bins)] - bins[i]) % _BINS for i in range(len(bins))]
    breaks = [i for i, gap in enumerate(gaps) if gap != 1]
    if len(bins) > 1 and len(breaks) != 1:
        return None
    first = bins[(breaks[0] + 1) % len(bins)] if len(bins) > 1 else bins[0]
    return first, len(bins)


@dataclass(slots=True)
class CounterSmoother:
    """A cumulative energy (J since the first reading) from a counter that moves in steps, and power readings."""

    counted_mj: int = 0
    extra_j: float = 0.0  # energy the counter missed: intervals it went backwards in, or stalled through
    reported_j: float = 0.0
    last_raw_mj: int | None = None
    last_t_s: float = 0.0
    first_t_s: float = 0.0
    step_t_s: float = 0.0  # when the counter last moved (estimated)
    phase: PhaseVotes = field(default_factory=PhaseVotes)
    start_lag_j: float = 0.0  # the energy since the counter's last step at the first reading
    start_power_w: float = 0.0
    start_locked: bool = False  # the first reading's lag has been set from the known phase
    power_w: float | None = None  # the last power reading
    steps: int = 0
    resets: int = 0
    unfilled: int = 0  # resets whose interval could not be filled (no power reading)
    stalls: list[float] = field(default_factory=list)  # when the counter was seen to stop moving (clock time)
    first_step_t_s: float | None = None
    gaps_s: list[float] = field(default_factory=list)  # the last gaps between the counter's observed moves
    estimated_final: bool = False
    final_reason: str | None = None  # why the final reading is the estimate: "never-moved", "stalled", "short"

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
        self.last_raw_mj, self.last_t_s = raw_mj, max(t_s, last_t)
        if raw_mj > last_raw:
            self.phase.observe(last_t, t_s, moved=True)
            self._moved(raw_mj - last_raw, last_t, t_s)
        elif raw_mj == last_raw:
            self.phase.observe(last_t, t_s, moved=False)
        else:  # the counter restarted: the interval is filled from one power reading
            self.resets += 1
            if self.power_w is None:
                self.unfilled += 1
            else:
                self.extra_j += self.power_w * (t_s - last_t)
            self.step_t_s = t_s  # the fill reaches this reading; the new counter is counted from here
        self._lock_start()
        estimate = max(0.0, mj_to_j(self.counted_mj) + self.extra_j + self._lag_j(t_s) - self.start_lag_j)
        if not final:
            self.reported_j = max(self.reported_j, estimate)  # never backwards while the run goes on
            return self.reported_j
        stalled = self.steps > 0 and t_s - self.step_t_s > self._stall_s()
        if self.steps == 0:
            self.final_reason = "never-moved"
        elif stalled:
            self.final_reason = "stalled"
        elif self.elapsed_s < EXACT_AFTER_S:
            self.final_reason = "short"
        self.estimated_final = self.final_reason is not None
        self.reported_j = estimate if self.estimated_final else mj_to_j(self.counted_mj) + self.extra_j
        return self.reported_j

    def _moved(self, delta_mj: int, a: float, b: float) -> None:
        previous = self.step_t_s
        known = self.phase.last_step(a, b)
        self.step_t_s = known if known is not None else (max(a, b - STEP_S) + b) / 2
        self.counted_mj += delta_mj
        self.steps += 1
        gap_s = self.step_t_s - previous
        if self.steps == 1:
            self.first_step_t_s = self.step_t_s
        else:
            self.gaps_s = [*self.gaps_s[-19:], gap_s]
        # seen standing still (at the reading before this one) for longer than a stall, while power was drawn: did
        # it count, when it moved again, what was drawn meanwhile?
        if a - previous > self._stall_s() and self.power_w is not None:
            expected_j = self.power_w * gap_s
            if mj_to_j(delta_mj) < 0.5 * expected_j:
                self.extra_j += expected_j - mj_to_j(delta_mj)
                self.stalls.append(previous - self.first_t_s)

    def _usual_gap_s(self) -> float | None:
        """The median gap between the counter's observed moves (its period, or the reading interval if longer)."""
        if len(self.gaps_s) < 3:
            return None
        ordered = sorted(self.gaps_s)
        return ordered[len(ordered) // 2]

    def _stall_s(self) -> float:
        usual = self._usual_gap_s()
        return STALL_S if usual is None else max(STALL_S, 3 * usual)

    def _lock_start(self) -> None:
        """The first reading's lag: the time since the counter's step before it. At first a step before the first
        step seen (within a step and a half of the first reading); once the phase is known, from it; for a counter
        whose usual gap is longer than a step, that gap before the first step seen."""
        if self.start_locked or self.first_step_t_s is None:
            return
        since_first_s = self.first_step_t_s - self.first_t_s
        phase = self.phase.phase_s()
        usual = self._usual_gap_s()
        if phase is not None:
            self.start_locked = True
            self.start_lag_j = self.start_power_w * ((self.first_t_s - phase) % STEP_S)
        elif usual is not None and usual > 1.5 * STEP_S:
            self.start_locked = True
            self.start_lag_j = self.start_power_w * max(0.0, usual - since_first_s)
        elif self.steps == 1 and since_first_s <= 1.5 * STEP_S:
            self.start_lag_j = self.start_power_w * max(0.0, STEP_S - since_first_s)  # until one of the above

    @property
    def elapsed_s(self) -> float:
        return self.last_t_s - self.first_t_s

    def _lag_j(self, t_s: float) -> float:
        return (self.power_w or 0.0) * max(0.0, t_s - self.step_t_s)
