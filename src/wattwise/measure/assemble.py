"""A run's record from two meter readings and what the tracker knows of it (its windows, prediction, notes)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from wattwise.measure import accounting
from wattwise.measure.meters import Reading
from wattwise.measure.notes import capped_notes, clip
from wattwise.record_schema import MAX_INTENSITY_STEPS
from wattwise.records import Attribution, IntensityStep, Prediction, Run, RunStatus, WindowRecord, Work
from wattwise.store.base import this_host

if TYPE_CHECKING:
    from wattwise.devices.base import Channel
    from wattwise.measure.emissions import CarbonAccount, CarbonPlan

__all__ = ["assemble"]


def assemble(
    *,
    run_id: str,
    name: str,
    status: RunStatus,
    started_at: datetime,
    channels: Sequence[Channel],
    origin: Reading,
    reading: Reading,
    attribution: Attribution,
    account: CarbonAccount,
    plan: CarbonPlan,
    windows: tuple[WindowRecord, ...],
    prediction: Prediction | None,
    command: tuple[str, ...] | None,
    notes: Sequence[str],
    work: Work | None = None,
    ended: bool = False,
    error: str | None = None,
    exit_code: int | None = None,
) -> Run:
    """The run from ``origin`` to ``reading``: energy per channel, emissions, water and where each came from."""
    parts = accounting.components(channels, origin, reading, attribution)
    energy_j, machine_j = accounting.totals(parts)
    duration_s = reading.t_s - origin.t_s
    onsite_l, offsite_l = plan.water_l(energy_j)
    series = account.series
    from wattwise import __version__

    return Run(
        id=run_id,
        name=name,
        status=status,
        started_at=started_at,
        ended_at=started_at + timedelta(seconds=duration_s) if ended else None,
        duration_s=duration_s,
        energy_j=energy_j,
        machine_energy_j=machine_j,
        co2e_g=reading.co2e_g - origin.co2e_g,
        region=plan.region.code,
        intensity_g_per_kwh=account.effective_intensity(),
        intensity_source=account.source(),
        pue=account.pue,
        attribution=attribution,
        components=parts,
        windows=windows,
        prediction=prediction,
        command=command,
        work=work,
        exit_code=exit_code,
        error=None if error is None else clip(error),
        host=this_host(),
        pid=os.getpid(),
        notes=capped_notes(list(notes)),
        wattwise_version=__version__,
        emissions_method=account.method(),
        signal=series.signal,
        intensity_fallback=series.fallback,
        water_onsite_l=onsite_l,
        water_offsite_l=offsite_l,
        water_source=plan.water_source(),
        intensity_series=tuple(
            IntensityStep(p.start, p.duration_s, p.intensity_g_per_kwh, p.forecast)
            for p in series.overlapping(started_at, started_at + timedelta(seconds=duration_s))[-MAX_INTENSITY_STEPS:]
        ),
    )
