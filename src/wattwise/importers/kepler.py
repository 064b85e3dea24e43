"""Kepler's per-pod energy (Kubernetes): ``kepler_container_joules_total`` by default, any Kepler counter by name.

``kepler_container_joules_total`` (Kepler up to 0.7) is each container's energy in joules (CPU package, DRAM, GPU and
the rest), labelled ``container_namespace``, ``pod_name``, ``container_name`` and ``mode`` (``dynamic``: what its
work drew; ``idle``: its share of the node's idle draw). Kepler 0.10 and later export ``kepler_pod_cpu_joules_total``
instead (labels ``pod_namespace``, ``pod_name``, ``zone``: ``package``, ``core``, ``uncore``, ``dram``); give it as
the metric. A pod's figure sums every series of the pod: all its containers and both modes (wattwise's process
share counts idle draw too); of the zones only ``package`` and ``dram`` are added (``core`` and ``uncore`` are
inside ``package``); the figure's detail says which of these it summed, from the labels its series carry. The
``state`` label (running, terminated) is not part of a series' identity, and a container started during the run
counts from zero.

The namespace label is ``pod_namespace`` for ``kepler_pod_*`` metrics and ``container_namespace`` otherwise. The
figure's scope is ``pod NAMESPACE/NAME``, followed by what it covers when that is less than the whole pod (``(cpu,
dram)``): the report compares it with wattwise's figures for the same components.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from wattwise.errors import CounterError
from wattwise.importers.counters import Increase, Reading
from wattwise.records import ExternalFigure

if TYPE_CHECKING:
    import httpx

    from wattwise.records import Run

__all__ = ["DEFAULT_METRIC", "SOURCE", "ZONES", "Kepler", "covered", "kepler_from_prometheus"]

DEFAULT_METRIC = "kepler_container_joules_total"
SOURCE = "kepler"
ZONES = ("package", "dram")  # added up; core and uncore are inside package
_NOT_IDENTITY = ("state", "__name__")
# the labels whose series a pod's figure adds up, as its detail names them (Kepler 0.7: containers and modes; 0.10:
# zones); ``Reading.about`` carries the list, built from the labels the series have
_SUMMED = (
    ("container_name", "containers"),
    ("mode", "modes (dynamic and idle)"),
    ("zone", f"zones ({' and '.join(ZONES)}; core and uncore, inside package, left out)"),
)


def covered(metric: str) -> str:
    """What a Kepler metric counts, as wattwise's components: ``""`` for the whole pod, else a list such as
    ``cpu, dram``, or the metric itself when it is none of those."""
    if metric == DEFAULT_METRIC:
        return ""
    for marker, components in (("_cpu_", "cpu, dram"), ("_package_", "cpu"), ("_dram_", "dram"), ("_gpu_", "gpu")):
        if marker in metric:
            return components
    return metric


@dataclass(frozen=True, slots=True)
class Kepler:
    """The Kepler counter spec for one pod (see :class:`~wattwise.importers.counters.CounterSpec`)."""

    namespace: str
    pod: str
    metric: str = DEFAULT_METRIC
    source: str = SOURCE
    late_from_zero: bool = True  # a container started during the run counts from zero

    @property
    def namespace_label(self) -> str:
        return "pod_namespace" if self.metric.startswith("kepler_pod_") else "container_namespace"

    @property
    def scope(self) -> str:
        covers = covered(self.metric)
        return f"pod {self.namespace}/{self.pod}" + (f" ({covers})" if covers else "")

    def reading(self, labels: Mapping[str, str], value: float, at: datetime) -> Reading | None:
        if labels.get(self.namespace_label) != self.namespace or labels.get("pod_name") != self.pod:
            return None
        if "zone" in labels and labels["zone"] not in ZONES:
            return None
        key = ",".join(f"{k}={v}" for k, v in sorted(labels.items()) if k not in _NOT_IDENTITY)
        summed = " and ".join(name for label, name in _SUMMED if label in labels)
        return Reading(self.scope, key, value, at, dict(labels), summed)

    def select(self, readings: Sequence[Reading], run: Run, where: str) -> list[Reading]:
        if not readings:
            hint = (
                "" if self.metric != DEFAULT_METRIC else "; Kepler 0.10 and later name it kepler_pod_cpu_joules_total"
            )
            raise CounterError(
                f"{where} has no series of pod {self.namespace}/{self.pod} (label {self.namespace_label}): is the pod "
                f"on that node, and is the metric right{hint}?"
            )
        return list(readings)

    def selector(self) -> str:
        from wattwise.importers.prometheus_api import label_value

        return f"{self.metric}{{{self.namespace_label}={label_value(self.namespace)},pod_name={label_value(self.pod)}}}"

    def figure(self, increase: Increase, how: str) -> ExternalFigure:
        over = f" summed over the pod's {increase.about}" if increase.about and increase.series > 1 else ""
        parts = f"{increase.series} series{over}"
        late = f", {increase.late} of them started during the run (counted from zero)" if increase.late else ""
        return increase.figure(self.source, f"{self.selector()} (joules): {parts}{late}; {how}")


def kepler_from_prometheus(
    url: str,
    run: Run,
    *,
    namespace: str,
    pod: str,
    metric: str = DEFAULT_METRIC,
    timeout_s: float = 10.0,
    transport: httpx.BaseTransport | None = None,
) -> list[ExternalFigure]:
    """The pod's energy over the run by Kepler's counter, from the Prometheus server at ``url``."""
    from wattwise.importers.prometheus_api import Prometheus

    spec = Kepler(namespace, pod, metric)
    api = Prometheus(url, timeout_s=timeout_s, transport=transport)
    return api.figures(spec, spec.selector(), run)
