"""Emissions of a run as the integral of power × grid intensity, not total energy × one average.

The :class:`CarbonAccount` is called by the meter set for every interval between two readings, in time order,
with the energy of that interval (the channels the totals count). It multiplies it by the time-weighted mean of
the intensity series over exactly that interval, and by PUE. Where the series has no value (outside a trace, a
gap), the region's annual figure is used for that interval and the share of energy this applied to is reported.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from wattwise.carbon.base import IntensitySeries
from wattwise.devices.base import Channel
from wattwise.errors import ProviderError, WattwiseError
from wattwise.measure.meters import Reading
from wattwise.records import Attribution
from wattwise.units import emissions_g, j_to_kwh

if TYPE_CHECKING:
    from wattwise.carbon.service import IntensityService
    from wattwise.config import Settings


class CarbonAccount:
    """Integrates emissions reading by reading; the series may be replaced while running (live refresh)."""

    def __init__(
        self,
        series: IntensitySeries,
        *,
        fallback_g_per_kwh: float,
        fallback_source: str = "annual average",
        pue: float,
        channels: Sequence[Channel],
        attribution: Attribution,
    ) -> None:
        self._series = series
        self.fallback_g_per_kwh = fallback_g_per_kwh
        self.fallback_source = fallback_source
        self.pue = pue
        self._counted = [i for i, ch in enumerate(channels) if ch.in_total]
        self._attribution = attribution
        self._lock = threading.RLock()  # effective_intensity() reads the series under the same lock
        self.energy_j = 0.0
        self.uncovered_energy_j = 0.0
        self.co2e_g = 0.0

    @property
    def series(self) -> IntensitySeries:
        with self._lock:
            return self._series

    def replace_series(self, series: IntensitySeries) -> None:
        with self._lock:
            self._series = series

    def __call__(self, previous: Reading, current: Reading) -> float:
        before = previous.attributed_j if self._attribution == "process" else previous.machine_j
        now = current.attributed_j if self._attribution == "process" else current.machine_j
        energy_j = sum(max(0.0, now[i] - before[i]) for i in self._counted)
        with self._lock:
            series = self._series
            if series.constant:
                intensity: float | None = series.points[0].intensity_g_per_kwh
            else:
                intensity = series.mean_over(
                    datetime.fromtimestamp(previous.wall_s, UTC), datetime.fromtimestamp(current.wall_s, UTC)
                )
            if intensity is None:
                intensity = self.fallback_g_per_kwh
                self.uncovered_energy_j += energy_j
            grams = emissions_g(energy_j, self.pue, intensity)
            self.energy_j += energy_j
            self.co2e_g += grams
        return grams

    def intensity_now(self, moment: datetime | None = None) -> float:
        """The intensity in effect now (for predictions and the live panel), or the annual figure."""
        point = self.series.at(moment or datetime.now(UTC))
        return self.fallback_g_per_kwh if point is None else point.intensity_g_per_kwh

    def effective_intensity(self) -> float:
        """Emissions ÷ (energy × PUE): the intensity the run actually experienced."""
        with self._lock:
            if self.energy_j <= 0:
                return self.intensity_now()
            return self.co2e_g / (j_to_kwh(self.energy_j) * self.pue)

    def source(self) -> str:
        """Where the intensity came from: the series, or the annual table when the series covered none of the run."""
        with self._lock:
            if (
                self.energy_j > 0
                and self.uncovered_energy_j >= self.energy_j * (1 - 1e-9)
                and not self._series.constant
            ):
                return f"{self.fallback_source} (the series {self._series.source} did not cover the run)"
            return self._series.source

    def method(self) -> str:
        """How the emissions were computed, for the record."""
        with self._lock:
            series = self._series
            if series.constant:
                return "annual-average" if not series.source.startswith("fixed") else "fixed-value"
            if self.energy_j > 0 and self.uncovered_energy_j >= self.energy_j * (1 - 1e-9):
                return "annual-average (the series did not cover the run)"
            if self.uncovered_energy_j > 0:
                share = self.uncovered_energy_j / self.energy_j * 100
                return f"time-resolved ({share:.0f} % of the energy outside the series: annual average)"
            return "time-resolved"


class CarbonPlan:
    """Everything a run needs to turn energy into emissions and water, decided before the run starts.

    Resolving the region (a bad one fails here, before anything is opened), choosing the provider and fetching the
    series: a trace's whole series, a fixed or annual value, or a live provider's latest value and forecast (one
    request at start; refreshed in the background every ``refresh_s`` during long runs). A provider that cannot
    answer leaves the packaged annual figure in place, flagged as a fallback.
    """

    def __init__(self, settings: Settings, *, service: IntensityService | None = None, refresh_s: float = 900.0):
        from wattwise.carbon.service import IntensityService

        self.service = service or IntensityService(settings)
        self.region = self.service.region
        self.facility = self.service.facility()
        self.refresh_s = refresh_s
        self._no_forecast = False  # the provider's plan refused the forecast: do not ask again
        self.notes: list[str] = [self.region.note] if self.region.note else []
        self.series = self._initial_series()
        if self.series.note and self.series.note != self.region.note:
            self.notes.append(f"intensity: {self.series.note}")
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._failures = 0
        self.refresh_notes: list[str] = []

    @property
    def live(self) -> bool:
        from wattwise.carbon.registry import info

        return info(self.service.provider_name).live

    def _initial_series(self) -> IntensitySeries:
        provider = self.service.provider
        whole = getattr(provider, "series", None)  # a trace: every point it has
        if isinstance(whole, IntensitySeries):
            check = getattr(provider, "check_zone", None)
            if callable(check):
                check(self.service.zone())
            return whole
        if not self.live:
            return self.service.latest()
        return self._live_series()

    def _live_series(self) -> IntensitySeries:
        """The latest value and, where the provider and the plan allow, a 48 h forecast after it. A plan without
        forecasts (a free Electricity Maps key) keeps the latest value, refreshed every ``refresh_s``, and says so;
        the forecast is not asked for again during the run."""
        latest = self.service.latest()
        if latest.fallback:
            return latest
        try:
            ahead = self.service.forecast(48) if not self._no_forecast else None
        except ProviderError as exc:  # a forecast that cannot be used (empty, malformed): the latest value stands
            ahead = self.service.fallback(f"{self.service.provider_name} could not answer a forecast: {exc}")
        if ahead is not None and ahead.fallback:
            self._no_forecast = ahead.plan_limit  # an outage may pass; a plan limit will not
            why = ahead.note.removesuffix("; used the packaged annual average instead")
            every = f"{self.refresh_s / 60:g} min" if self.refresh_s >= 60 else f"{self.refresh_s:g} s"
            extra = f"the latest value, refreshed every {every}, is used without a forecast"
            return IntensitySeries(
                region=latest.region,
                signal=latest.signal,
                source=latest.source,
                points=latest.points,
                note="; ".join(n for n in (latest.note, f"{why}; {extra}") if n),
            )
        if ahead is None or not latest.points:
            return latest
        end = latest.points[-1].end
        points = latest.points + tuple(p for p in ahead.points if p.start >= end)
        note = "; ".join(n for n in (latest.note, ahead.note) if n)
        return IntensitySeries(
            region=latest.region, signal=latest.signal, source=latest.source, points=points, note=note
        )

    def account(self, channels: Sequence[Channel], attribution: Attribution) -> CarbonAccount:
        return CarbonAccount(
            self.series,
            fallback_g_per_kwh=self.region.intensity.intensity_g_per_kwh,
            fallback_source=self.region.intensity.source,
            pue=self.facility.pue,
            channels=channels,
            attribution=attribution,
        )

    def start_refresh(self, account: CarbonAccount) -> None:
        """For live providers: fetch fresh values every ``refresh_s`` while the run lasts."""
        if not self.live or self.series.fallback:
            return

        def loop() -> None:
            while not self._stop.wait(self.refresh_s):
                try:
                    series = self._live_series()
                except WattwiseError as exc:  # garbage or a refusal mid-run: keep the series we have, say so
                    self._refresh_failed(f"{type(exc).__name__}: {exc}")
                    continue
                if series.fallback:
                    self._refresh_failed(series.note)
                else:
                    account.replace_series(series)

        self._thread = threading.Thread(target=loop, name="wattwise-intensity", daemon=True)
        self._thread.start()

    def _refresh_failed(self, why: str) -> None:
        moment = datetime.now(UTC).strftime("%H:%M:%S UTC")
        with self._lock:
            self._failures += 1
            if self._failures == 1:
                self.refresh_notes.append(
                    f"intensity refresh at {moment} failed ({why}); the values fetched before were kept"
                )

    def refresh_failures(self) -> list[str]:
        """Notes on refreshes that failed during the run (the first one, and how many), for the record."""
        with self._lock:
            notes = list(self.refresh_notes)
            if self._failures > 1:
                notes.append(f"{self._failures} intensity refreshes failed in all")
            return notes

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=1.0)
        self.service.close()

    def water_l(self, energy_j: float) -> tuple[float, float]:
        """(on-site, off-site) litres for ``energy_j`` of IT energy."""
        kwh = j_to_kwh(energy_j)
        return kwh * self.facility.wue_l_per_kwh, kwh * self.facility.pue * self.facility.offsite_water_l_per_kwh

    def water_source(self) -> str:
        f = self.facility
        return (
            f"on-site WUE {f.wue_l_per_kwh:g} L/kWh ({f.wue_source}); off-site {f.offsite_water_l_per_kwh:g} "
            f"L/kWh of electricity ({f.offsite_water_source})"
        )
