"""NVIDIA DCGM's GPU energy counter, as ``dcgm-exporter`` serves it: ``DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION``.

The counter is the GPU's whole energy in millijoules since the driver loaded, one series per GPU, labelled ``gpu``
(index), ``UUID``, ``Hostname``, ``modelName`` and, on Kubernetes, the pod holding it. A run's figure per GPU is the
counter's increase between the run's start and end, read from the exporter itself (:class:`DcgmCounters`, live) or
from Prometheus afterwards (:func:`dcgm_from_prometheus`). The GPUs are those wattwise measured in the run (matched
by UUID), or those given; a run that measured no GPU takes every GPU of the exporter (live) or of the run's host
(``Hostname``, from Prometheus). Each figure's scope is ``gpu INDEX UUID``, which the report matches with wattwise's
own channel for that GPU (its whole draw, ``machine_energy_j``: DCGM counts every process on the GPU).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from wattwise import units
from wattwise.errors import ConfigError, CounterError
from wattwise.importers.counters import Increase, Reading
from wattwise.records import ExternalFigure

if TYPE_CHECKING:
    import httpx

    from wattwise.records import Run

__all__ = ["METRIC", "SOURCE", "Dcgm", "dcgm_from_prometheus", "gpu_uuid", "run_gpu_uuids"]

METRIC = "DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION"
SOURCE = "dcgm"
_UUID = re.compile(r"GPU-[0-9a-fA-F-]{8,64}")


def gpu_uuid(text: str) -> str | None:
    """The first GPU UUID in ``text`` (a channel's detail, a figure's scope), or None."""
    match = _UUID.search(text)
    return None if match is None else match.group(0)


def run_gpu_uuids(run: Run) -> list[str]:
    """The UUIDs of the GPUs wattwise measured in ``run`` (its GPU channels name them in their detail)."""
    found = [gpu_uuid(c.detail) for c in run.components if c.component == "gpu"]
    return list(dict.fromkeys(u for u in found if u is not None))


@dataclass(frozen=True, slots=True)
class Dcgm:
    """The DCGM counter spec (see :class:`~wattwise.importers.counters.CounterSpec`); ``gpus``: indices or UUIDs
    to read instead of the run's own GPUs."""

    gpus: tuple[str, ...] = ()
    source: str = SOURCE
    metric: str = METRIC
    late_from_zero: bool = False  # a GPU does not appear during a run

    def reading(self, labels: Mapping[str, str], value: float, at: datetime) -> Reading:
        uuid = labels.get("UUID", "")
        index = labels.get("gpu", "?")
        host = labels.get("Hostname", "")
        model = labels.get("modelName", "")
        about = " on ".join(part for part in (model, host) if part)
        key = uuid or f"{host}/gpu{index}"
        return Reading(f"gpu {index} {uuid}".strip(), key, units.mj_to_j(value), at, dict(labels), about)

    def select(self, readings: Sequence[Reading], run: Run, where: str) -> list[Reading]:
        listed = ", ".join(sorted({r.scope for r in readings})) or "none"
        if self.gpus:
            wanted = set(self.gpus)
            kept = [r for r in readings if r.labels.get("UUID") in wanted or r.labels.get("gpu") in wanted]
            seen = {r.labels.get("UUID") for r in kept} | {r.labels.get("gpu") for r in kept}
            missing = sorted(wanted - seen)
            if missing:
                raise CounterError(f"{where} has no GPU {missing[0]} (it lists: {listed}); check --gpu")
            return kept
        uuids = run_gpu_uuids(run)
        if not uuids:
            if not readings:
                raise CounterError(f"{where} lists no GPU; is that the exporter of the run's node?")
            return list(readings)
        kept = [r for r in readings if r.labels.get("UUID") in uuids]
        missing = [u for u in uuids if u not in {r.labels.get("UUID") for r in kept}]
        if missing:
            raise CounterError(
                f"{where} has no GPU {missing[0]}, which the run measured (it lists: {listed}): is it the exporter "
                "of the run's node? --gpu chooses GPUs by index or UUID"
            )
        return kept

    def selector(self, run: Run, hostname: str | None = None) -> str:
        """The PromQL selector of the run's GPUs: by UUID (unique across a cluster) where known, else by host."""
        from wattwise.importers.prometheus_api import label_value

        uuids = [g for g in self.gpus if g.startswith("GPU-")] if self.gpus else run_gpu_uuids(run)
        if uuids and len(uuids) == len(self.gpus or uuids):  # UUIDs only: they are safe in a regex (hex and '-')
            return f'{METRIC}{{UUID=~"{"|".join(uuids)}"}}'
        host = hostname or run.host
        if not host:
            raise ConfigError("the run records no host, so its GPUs cannot be found by host: give --hostname NODE")
        return f"{METRIC}{{Hostname={label_value(host)}}}"

    def figure(self, increase: Increase, how: str) -> ExternalFigure:
        about = f"; {increase.about}" if increase.about else ""
        return increase.figure(
            self.source, f"{METRIC} (the whole GPU's energy counter, mJ since the driver loaded){about}; {how}"
        )


def dcgm_from_prometheus(
    url: str,
    run: Run,
    *,
    gpus: Sequence[str] = (),
    hostname: str | None = None,
    timeout_s: float = 10.0,
    transport: httpx.BaseTransport | None = None,
) -> list[ExternalFigure]:
    """Each of the run's GPUs' energy by DCGM's counter, from the Prometheus server at ``url`` (see the module)."""
    from wattwise.importers.prometheus_api import Prometheus

    spec = Dcgm(tuple(gpus))
    api = Prometheus(url, timeout_s=timeout_s, transport=transport)
    return api.figures(spec, spec.selector(run, hostname), run)
