"""Energy counters a cluster already keeps, read for a run and stored beside wattwise's figures (``Run.external``).

Three counters, each kept with its source and never added into wattwise's totals:

- DCGM's GPU energy (``DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION``, :mod:`~wattwise.importers.dcgm`): live from the
  exporter (:class:`DcgmCounters`) or afterwards from Prometheus (:func:`dcgm_from_prometheus`);
- Kepler's per-pod joules (``kepler_container_joules_total`` or another Kepler counter, :mod:`~.kepler`): live
  (:class:`KeplerCounters`) or from Prometheus (:func:`kepler_from_prometheus`);
- Slurm's ``ConsumedEnergy`` of a job, from ``sacct`` (:func:`sacct_job`, :func:`slurm_figure`, :mod:`~.slurm`).

:func:`attach` stores figures into a run's record (one transaction; a run still running is refused), which is what
``wattwise runs attach`` does; :func:`counterpart` says which of wattwise's own figures each one compares with.
Every failure (a server down, a 404, garbage, a counter reset, an unknown job, sacct missing) is one line
(:class:`~wattwise.errors.CounterError`, or :class:`~wattwise.errors.ConfigError` for bad input), and nothing is
stored then.
"""

from __future__ import annotations

from wattwise.importers.attach import attach
from wattwise.importers.compare import Counterpart, counterpart
from wattwise.importers.dcgm import dcgm_from_prometheus
from wattwise.importers.kepler import kepler_from_prometheus
from wattwise.importers.live import DcgmCounters, KeplerCounters
from wattwise.importers.slurm import sacct_job, slurm_figure

__all__ = [
    "Counterpart",
    "DcgmCounters",
    "KeplerCounters",
    "attach",
    "counterpart",
    "dcgm_from_prometheus",
    "kepler_from_prometheus",
    "sacct_job",
    "slurm_figure",
]
