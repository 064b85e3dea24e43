"""Predict a training run's total energy, duration and emissions from its first epochs (as carbontracker does).

Method (``epoch-mean``): the remaining ``R`` epochs are assumed to cost the mean ``m`` of the epochs seen so far,
leaving out the first epoch once three or more are done (it usually carries warm-up: data loading, compilation,
cache filling). The range is ``R × (m ± h)`` with ``h = max(2·s, f·m)``, where ``s`` is the sample standard
deviation of the epochs used and ``f = 10 % / √n`` a floor for few epochs (a stated assumption: with one epoch
seen there is no spread to measure). Emissions follow from energy with the run's PUE and intensity.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence

from wattwise.records import Prediction, Range
from wattwise.units import emissions_g

METHOD = "epoch-mean"
_FLOOR = 0.10


def _extrapolate(done: float, per_epoch: Sequence[float], remaining: int) -> Range:
    used = list(per_epoch[1:]) if len(per_epoch) >= 3 else list(per_epoch)
    mean = statistics.fmean(used)
    spread = statistics.stdev(used) if len(used) >= 2 else 0.0
    half = max(2.0 * spread, _FLOOR / math.sqrt(len(used)) * mean)
    return Range(
        value=done + remaining * mean,
        low=done + remaining * max(0.0, mean - half),
        high=done + remaining * (mean + half),
    )


def predict(
    epoch_energy_j: Sequence[float],
    epoch_duration_s: Sequence[float],
    epochs_planned: int,
    energy_so_far_j: float,
    duration_so_far_s: float,
    pue: float,
    intensity_g_per_kwh: float,
) -> Prediction | None:
    """The whole run's footprint for ``epochs_planned`` epochs, or None before the first epoch ends."""
    done = len(epoch_energy_j)
    if done == 0 or epochs_planned < 1 or len(epoch_duration_s) != done:
        return None
    remaining = max(0, epochs_planned - done)
    energy = _extrapolate(energy_so_far_j, epoch_energy_j, remaining)
    duration = _extrapolate(duration_so_far_s, epoch_duration_s, remaining)
    co2e = Range(
        value=emissions_g(energy.value, pue, intensity_g_per_kwh),
        low=emissions_g(energy.low, pue, intensity_g_per_kwh),
        high=emissions_g(energy.high, pue, intensity_g_per_kwh),
    )
    return Prediction(
        epochs_done=done,
        epochs_planned=epochs_planned,
        energy_j=energy,
        duration_s=duration,
        co2e_g=co2e,
        method=METHOD,
    )
