"""Prometheus: a machine exporter (``wattwise exporter``) and a Pushgateway observer for batch jobs.

Metrics follow Prometheus naming: counters end in ``_total`` with base units (``wattwise_energy_joules_total``,
``wattwise_emissions_grams_total``), gauges carry their unit (``wattwise_power_watts``). Labels are bounded: the
channel (one per device or domain), its component and whether it is measured or estimated, the region; never a
run id. The exporter's counters continue across its restarts: their totals are kept in
``<home>/exporter-state.json`` (every 10 s and at exit) and added to what the meters read after a restart.
"""

from __future__ import annotations

import json
import logging
import math
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from wattwise.fsutil import write_private
from wattwise.measure.observers import RunObserver

if TYPE_CHECKING:
    from wattwise.config import Settings
    from wattwise.devices.base import PowerSource
    from wattwise.devices.host import HostReader
    from wattwise.records import Run

__all__ = ["CONTENT_TYPE", "MachineMeter", "PushgatewayObserver", "exposition", "run_metrics"]

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
STATE_FILE = "exporter-state.json"
SAVE_EVERY_S = 10.0
log = logging.getLogger(__name__)

Family = tuple[str, str, str, list[tuple[Mapping[str, str], float]]]  # name, type, help, samples


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _number(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(float(value))


def exposition(families: Iterable[Family]) -> str:
    """The text format (0.0.4) of these metric families."""
    lines = []
    for name, kind, help_text, samples in families:
        lines.append(f"# HELP {name} {help_text.replace(chr(92), chr(92) * 2).replace(chr(10), ' ')}")
        lines.append(f"# TYPE {name} {kind}")
        for labels, value in samples:
            inner = ",".join(f'{key}="{_label(str(v))}"' for key, v in labels.items())
            lines.append(f"{name}{{{inner}}} {_number(value)}" if inner else f"{name} {_number(value)}")
    return "\n".join(lines) + "\n"


class MachineMeter:
    """Reads the machine's power channels on a thread and keeps counters that survive restarts."""

    def __init__(
        self,
        settings: Settings,
        *,
        sources: list[PowerSource] | None = None,
        host: HostReader | None = None,
        state_path: Path | None = None,
    ) -> None:
        import os

        from wattwise.measure.emissions import CarbonPlan
        from wattwise.measure.meters import MeterSet, unique_channels

        if sources is None:
            from wattwise.devices import discover

            sources = list(discover(settings).sources)
        if host is None:
            from wattwise.devices.host import open_host

            host = open_host(os.getpid(), settings.proc_root)
        self._plan = CarbonPlan(settings)
        self.region = self._plan.region.code
        self._account = self._plan.account(unique_channels(sources), "machine")
        self._meters = MeterSet(host, sources, carbon=self._account)
        self.channels = self._meters.channels
        self._state_path = state_path if state_path is not None else settings.home / STATE_FILE
        self._base_j, self._base_g = self._load()
        self._lock = threading.Lock()
        self._first = self._last = self._meters.read()
        self._power_w = [0.0] * len(self.channels)
        self._saved_at = time.monotonic()
        self.started_at = time.time()

    def _load(self) -> tuple[dict[str, float], float]:
        try:
            data = json.loads(self._state_path.read_text(encoding="utf-8"))
            energy = {
                str(k): float(v)
                for k, v in data.get("energy_j", {}).items()
                if math.isfinite(float(v)) and float(v) >= 0
            }
            grams = float(data.get("co2e_g", 0.0))
            return energy, grams if math.isfinite(grams) and grams >= 0 else 0.0
        except (OSError, ValueError, TypeError, AttributeError):
            return {}, 0.0  # a missing or damaged state file: counters start again (Prometheus sees a reset)

    def totals(self) -> tuple[dict[str, float], float]:
        """Energy per channel and emissions since the exporter first ran here (state file + this process)."""
        with self._lock:
            first, last = self._first, self._last
        energy = dict(self._base_j)
        for i, channel in enumerate(self.channels):
            energy[channel.name] = energy.get(channel.name, 0.0) + max(0.0, last.machine_j[i] - first.machine_j[i])
        return energy, self._base_g + max(0.0, last.co2e_g - first.co2e_g)

    def sample(self) -> None:
        reading = self._meters.read()
        with self._lock:
            previous, self._last = self._last, reading
            dt = reading.t_s - previous.t_s
            if dt > 0:
                self._power_w = [
                    max(0.0, (now - before) / dt)
                    for now, before in zip(reading.machine_j, previous.machine_j, strict=True)
                ]
        if time.monotonic() - self._saved_at >= SAVE_EVERY_S:
            self.save()

    def save(self) -> bool:
        """Write the counters' totals; False (one warning) when the state file cannot be written."""
        energy, grams = self.totals()
        try:
            write_private(self._state_path, json.dumps({"energy_j": energy, "co2e_g": grams}))
        except OSError as exc:
            log.warning("wattwise: exporter state not saved to %s: %s", self._state_path, exc)
            return False
        self._saved_at = time.monotonic()
        return True

    def families(self) -> list[Family]:
        energy, grams = self.totals()
        with self._lock:
            power = list(self._power_w)
        labels = [
            {"channel": c.name, "component": c.component, "source": c.source, "region": self.region}
            for c in self.channels
        ]
        return [
            (
                "wattwise_energy_joules_total",
                "counter",
                "Energy each power channel drew, machine-wide, since the exporter first ran on this machine.",
                [(label, energy[c.name]) for label, c in zip(labels, self.channels, strict=True)],
            ),
            (
                "wattwise_power_watts",
                "gauge",
                "Power of each channel over the last sampling interval, machine-wide.",
                list(zip(labels, power, strict=True)),
            ),
            (
                "wattwise_emissions_grams_total",
                "counter",
                "CO2e of the energy counted by the channels in the total, at the region's grid intensity and PUE.",
                [({"region": self.region}, grams)],
            ),
            (
                "wattwise_grid_intensity_grams_per_kilowatt_hour",
                "gauge",
                "Grid carbon intensity in effect (gCO2e/kWh).",
                [({"region": self.region}, self._account.intensity_now())],
            ),
            (
                "wattwise_exporter_start_time_seconds",
                "gauge",
                "When this exporter process started (Unix time).",
                [({}, self.started_at)],
            ),
        ]

    def close(self) -> bool:
        """Save the counters and release the meters; whether the counters were saved."""
        saved = self.save()
        self._plan.close()
        return saved


def run_metrics(run: Run) -> str:
    """A finished run's figures as metric families for the Pushgateway (no run id label: the group is the job)."""
    parts: list[tuple[Mapping[str, str], float]] = [
        ({"channel": c.name, "component": c.component, "source": c.source}, c.energy_j) for c in run.components
    ]
    common = {"region": run.region}
    return exposition(
        [
            ("wattwise_run_energy_joules", "gauge", "Energy of the job's last run, per channel.", parts),
            ("wattwise_run_emissions_grams", "gauge", "CO2e of the job's last run.", [(common, run.co2e_g)]),
            ("wattwise_run_water_litres", "gauge", "Water of the job's last run.", [(common, run.water_l)]),
            ("wattwise_run_duration_seconds", "gauge", "Duration of the job's last run.", [({}, run.duration_s)]),
            (
                "wattwise_run_end_time_seconds",
                "gauge",
                "When the job's last run ended (Unix time).",
                [({}, (run.ended_at or run.started_at).timestamp())],
            ),
            (
                "wattwise_run_success",
                "gauge",
                "1 if the job's last run completed.",
                [({}, float(run.status == "complete"))],
            ),
        ]
    )


class PushgatewayObserver(RunObserver):
    """Pushes a run's figures to a Prometheus Pushgateway when it ends (``PUT /metrics/job/<job>``)."""

    def __init__(self, url: str, job: str, *, timeout_s: float = 10.0) -> None:
        from urllib.parse import quote

        from wattwise.errors import ConfigError

        if not url.startswith(("http://", "https://")):
            raise ConfigError(f"the Pushgateway URL must start with http:// or https:// (got {url!r})")
        if not job:
            raise ConfigError("the Pushgateway job name is empty; give --push-job NAME")
        if "/" in job:  # the Pushgateway's own encoding for label values holding a slash
            import base64

            encoded = base64.urlsafe_b64encode(job.encode("utf-8")).decode("ascii").rstrip("=")
            self.target = f"{url.rstrip('/')}/metrics/job@base64/{encoded}"
        else:
            self.target = f"{url.rstrip('/')}/metrics/job/{quote(job, safe='')}"
        self.timeout_s = timeout_s
        self.pushed = False

    def run_ended(self, run: Run) -> None:
        body = run_metrics(run).encode("utf-8")
        request = urllib.request.Request(self.target, data=body, method="PUT", headers={"Content-Type": CONTENT_TYPE})
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
                response.read()
            self.pushed = True
        except (urllib.error.URLError, OSError) as exc:  # an integration warns; the run is stored regardless
            log.warning("wattwise: could not push run %s to the Pushgateway %s: %s", run.id, self.target, exc)
