"""CPU power where no counter exists: a documented model, labelled ``estimated``, never a silent zero.

Two models, chosen once when the source is built (:func:`choose_model`):

* **cpu-tdp-model**, on bare metal whose ``/proc/cpuinfo`` model name matches a row of the packaged TDP table
  (``data/cpu_tdp.csv``, see ``data/SOURCES.md``), or wherever ``Settings.cpu_tdp_w`` is set::

      P_machine = sockets × TDP × (f_idle + (1 − f_idle) × u)

  with ``u`` the machine's CPU utilisation over the interval and ``f_idle = 0.74 / 3.5 ≈ 0.21``: the ratio of
  the minimum to the maximum watts per vCPU of Cloud Carbon Footprint's AWS averages, which CCF derives from
  the SPECpower_ssj2008 results (https://www.cloudcarbonfootprint.org/docs/methodology).

* **cpu-per-thread-model**, in a VM (the ``hypervisor`` cpu flag: the host package's TDP would charge the
  whole socket to this guest) or when the model is not in the table::

      P_machine = logical_cpus × (0.74 + (3.5 − 0.74) × u)  W

  with 0.74 W and 3.5 W CCF's AWS average minimum and maximum watts per vCPU (same source). CCF's other
  averages are 0.71–4.26 W (GCP, medians) and 0.78–3.76 W (Azure). Note that these figures come from
  SPECpower, which measures whole servers at the wall: they include memory, fans and power-supply losses,
  so this model overlaps a separately modelled memory channel somewhat.

Energy over an interval is ``P_machine(u) × dt`` with ``dt = snap.t_s − prev.t_s``; the first read returns
zeros. The attributed energy charges the model's idle power by the tree's CPU allocation and the power above it by
the tree's share of busy CPU time (:func:`~wattwise.devices.base.attribute`), so the tree's figure is
``idle_w × dt × allocation + (max_w − idle_w) × dt × tree CPU ÷ all CPU``, whatever else runs.

How far off this can be: TDP is a thermal design figure, not a power reading. Under load, packages run
above TDP for long stretches (turbo power limits), light loads spend time in deep idle states far below
``f_idle × TDP``, power is not linear in utilisation, and in shared hosts the per-vCPU figures average over
hardware generations the guest cannot see. No published error figure exists for these models; our
judgement is that errors of tens of percent are likely, more on a given machine. The stated range, ×0.5 …
×1.5 of the point value for both models, is an ASSUMPTION of wattwise chosen to cover those effects, not a
published figure; CCF's spread across providers (above) is narrower because it averages whole fleets.
"""

from __future__ import annotations

import csv
import io
import os
import re
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from wattwise.devices.base import (
    Channel,
    HostSnapshot,
    MeterReading,
    ProbeResult,
    attribute,
    cpu_utilisation,
)
from wattwise.devices.idle import CCF_AWS_MAX_W_PER_VCPU, CCF_AWS_MIN_W_PER_VCPU, IDLE_FRACTION

__all__ = [
    "CCF_AWS_MAX_W_PER_VCPU",
    "CCF_AWS_MIN_W_PER_VCPU",
    "DEFAULT_TDP_TABLE",
    "IDLE_FRACTION",
    "CpuInfo",
    "CpuModelSource",
    "CpuPowerModel",
    "TdpMatch",
    "TdpTable",
    "choose_model",
    "match_tdp",
    "normalise_model_name",
    "parse_cpuinfo",
    "probe_cpu_model",
    "read_cpuinfo",
]

LOW_FACTOR = 0.5  # ASSUMPTION (see the module docstring), not a published figure
HIGH_FACTOR = 1.5  # ASSUMPTION (see the module docstring), not a published figure

DEFAULT_TDP_TABLE = Path(__file__).resolve().parent.parent / "data" / "cpu_tdp.csv"

# Normalisation of model names, applied alike to /proc/cpuinfo strings and table rows. Compiled on first use:
# a VM never matches the table, and start-up time counts.
_MARKS = r"\((?:r|tm|c)\)|®|™"
_STRIPPED = (
    r"\([^)]*\)",  # (OEM Only), (125W), (AF)
    r"@?\s*\d+(?:\.\d+)?\s*[gm]hz\b",
    r"\b\d+(?:st|nd|rd|th)\s+gen(?:eration)?\b",
    r"\s(?:with|w/)\s.*$",  # with Radeon Graphics, w/ Radeon Vega Mobile Gfx
    r"\b[a-z0-9]+-cores?\b",  # 64-Core, Quad-Core
)
_NOISE = frozenset({"intel", "amd", "cpu", "processor", "apu", "genuineintel", "authenticamd"})


def normalise_model_name(name: str) -> str:
    """Lower case without vendor words, marks, frequency, core count or parentheses; single spaces."""
    text = re.sub(_MARKS, " ", name.lower())  # re caches compiled patterns itself
    for pattern in _STRIPPED:
        text = re.sub(pattern, " ", text)
    return " ".join(t for t in text.split() if t not in _NOISE)


def _split(key: str) -> tuple[frozenset[str], frozenset[str]]:
    """(tokens with a digit: the model number and suffixes, the other words)."""
    tokens = key.split()
    digits = frozenset(t for t in tokens if any(c.isdigit() for c in t))
    return digits, frozenset(tokens) - digits


@dataclass(frozen=True, slots=True)
class TdpMatch:
    """The table row a CPU model matched, its TDP per package, and how it matched."""

    name: str
    tdp_w: float
    how: Literal["exact", "model-number"]


class TdpTable:
    """CPU model names → TDP, indexed for :func:`match_tdp`. Build with :meth:`load`; immutable after."""

    def __init__(self, rows: Iterable[tuple[str, float]]) -> None:
        self._exact: dict[str, list[tuple[str, float]]] = {}
        self._by_digits: dict[frozenset[str], list[tuple[frozenset[str], str, float]]] = {}
        for name, tdp_w in rows:
            key = normalise_model_name(name)
            if not key:
                continue
            self._exact.setdefault(key, []).append((name, tdp_w))
            digits, words = _split(key)
            if digits:
                self._by_digits.setdefault(digits, []).append((words, name, tdp_w))

    @classmethod
    def load(cls, path: Path = DEFAULT_TDP_TABLE) -> TdpTable:
        """Read a ``Name,TDP`` CSV (the packaged one by default)."""
        text = path.read_text(encoding="utf-8")
        return cls(_parse_rows(csv.DictReader(io.StringIO(text))))

    def exact(self, key: str) -> list[tuple[str, float]]:
        return self._exact.get(key, [])

    def by_digits(self, digits: frozenset[str]) -> list[tuple[frozenset[str], str, float]]:
        return self._by_digits.get(digits, [])

    def __len__(self) -> int:
        return sum(len(v) for v in self._exact.values())


def _parse_rows(records: Iterable[dict[str, str]]) -> Iterable[tuple[str, float]]:
    """Rows with a name and a numeric TDP; the few that have neither (``27.29.5``: a range whose dash was
    lost in the source) are skipped rather than guessed."""
    for record in records:
        name, tdp = (record.get("Name") or "").strip(), (record.get("TDP") or "").strip()
        try:
            tdp_w = float(tdp)
        except ValueError:
            continue
        if name and tdp_w > 0:
            yield name, tdp_w


def match_tdp(model_name: str, table: TdpTable) -> TdpMatch | None:
    """The row for a ``/proc/cpuinfo`` model name, or None when no row is clearly the one.

    First an exact match of normalised names. Else rows whose model-number tokens (those with a digit, like
    ``8375c``, ``i7-12700k``, ``e5-2686 v4``) are exactly the query's, and whose other words share the family
    (``xeon``, ``phenom``) and contain, or are contained in, the query's: ``Phenom(tm) II X4 975 Processor``
    finds ``Phenom II X4 975 BE``. Candidates that disagree on TDP make the match ambiguous: None. The
    maximum of fuzzy candidates is never taken.
    """
    key = normalise_model_name(model_name)
    if not key:
        return None
    rows = table.exact(key)
    if rows:
        return _agreed(rows, "exact")
    digits, words = _split(key)
    if not any(len(t) >= 3 for t in digits):  # "xeon", "epyc", "x4": no model number, nothing to match
        return None
    candidates = [
        (len(words ^ row_words), name, tdp_w)
        for row_words, name, tdp_w in table.by_digits(digits)
        if (row_words <= words or words <= row_words) and (row_words & words or row_words == words)
    ]
    if not candidates:
        return None
    candidates.sort()
    return _agreed([(name, tdp_w) for _, name, tdp_w in candidates], "model-number")


def _agreed(rows: list[tuple[str, float]], how: Literal["exact", "model-number"]) -> TdpMatch | None:
    """The first row, if every row gives the same TDP; else None (ambiguous, e.g. 95 W and 125 W variants)."""
    if len({tdp for _, tdp in rows}) != 1:
        return None
    name, tdp_w = rows[0]
    return TdpMatch(name, tdp_w, how)


@dataclass(frozen=True, slots=True)
class CpuInfo:
    """What the power model needs to know about the machine's processors."""

    model_name: str
    sockets: int
    logical_cpus: int
    is_virtual: bool  # the ``hypervisor`` cpu flag


def parse_cpuinfo(text: str) -> CpuInfo:
    """Parse the text of ``/proc/cpuinfo`` (x86 and ARM layouts)."""
    model = ""
    processors = 0
    physical_ids: set[str] = set()
    flags: str | None = None
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if not sep:
            continue
        key = key.strip()
        if key == "processor":
            processors += 1
        elif key in ("model name", "cpu model", "Hardware") and not model:
            model = value.strip()
        elif key == "physical id":
            physical_ids.add(value.strip())
        elif key in ("flags", "Features") and flags is None:
            flags = value
    return CpuInfo(
        model_name=model,
        sockets=max(1, len(physical_ids)),
        logical_cpus=max(1, processors),
        is_virtual="hypervisor" in (flags or "").split(),
    )


def read_cpuinfo(proc_root: Path = Path("/proc")) -> CpuInfo:
    """The machine's CPUs from ``<proc_root>/cpuinfo``; without it, what the platform module says.

    No subprocess: ``platform.processor()`` runs ``uname -p`` on every system but Windows, so elsewhere the
    fallback name is ``platform.machine()`` (from ``os.uname``), which no table row matches.
    """
    try:
        text = (proc_root / "cpuinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:
        import platform  # only off Linux

        name = platform.processor() if sys.platform == "win32" else platform.machine()
        return CpuInfo(name or "unknown", 1, os.cpu_count() or 1, False)
    return parse_cpuinfo(text)


@dataclass(frozen=True, slots=True)
class CpuPowerModel:
    """Machine CPU power as a straight line in utilisation: ``idle_w + (max_w − idle_w) × u``."""

    method: Literal["cpu-tdp-model", "cpu-per-thread-model"]
    idle_w: float
    max_w: float
    detail: str

    def power_w(self, utilisation: float) -> float:
        return self.idle_w + (self.max_w - self.idle_w) * utilisation

    def channel(self) -> Channel:
        return Channel(
            "cpu",
            "cpu",
            "estimated",
            self.method,
            self.detail,
            low_factor=LOW_FACTOR,
            high_factor=HIGH_FACTOR,
        )


def choose_model(info: CpuInfo, tdp_w: float | None = None, table_path: Path = DEFAULT_TDP_TABLE) -> CpuPowerModel:
    """The model for this machine (see the module docstring). Reads the table only when it is needed."""
    if tdp_w is not None:
        vm = " (a VM: charged per virtual socket)" if info.is_virtual else ""
        return _tdp_model(info, tdp_w, f"TDP {tdp_w:g} W per socket from the cpu_tdp_w setting{vm}")
    if info.is_virtual:
        why = "VM (hypervisor flag): the host package's TDP would charge the whole socket to this guest"
        return _per_thread_model(info, why)
    match = match_tdp(info.model_name, TdpTable.load(table_path))
    if match is None:
        return _per_thread_model(info, f"CPU model {info.model_name!r} not in table, or not unambiguously")
    row = f"TDP {match.tdp_w:g} W per socket from cpu_tdp.csv row {match.name!r} ({match.how} match)"
    return _tdp_model(info, match.tdp_w, row)


def _tdp_model(info: CpuInfo, tdp_w: float, source: str) -> CpuPowerModel:
    max_w = info.sockets * tdp_w
    detail = (
        f"{info.sockets} socket(s) × {source}; idle at {IDLE_FRACTION:.2f} × TDP (CCF AWS min/max W per "
        f"vCPU), linear in machine CPU utilisation"
    )
    return CpuPowerModel("cpu-tdp-model", IDLE_FRACTION * max_w, max_w, detail)


def _per_thread_model(info: CpuInfo, why: str) -> CpuPowerModel:
    n = info.logical_cpus
    detail = (
        f"{n} logical CPUs × {CCF_AWS_MIN_W_PER_VCPU:g}–{CCF_AWS_MAX_W_PER_VCPU:g} W by utilisation "
        f"(Cloud Carbon Footprint AWS average per vCPU); {why}"
    )
    return CpuPowerModel("cpu-per-thread-model", n * CCF_AWS_MIN_W_PER_VCPU, n * CCF_AWS_MAX_W_PER_VCPU, detail)


class CpuModelSource:
    """One estimated channel, ``cpu``: the chosen model integrated over each interval's utilisation."""

    name: str = "cpu-model"

    def __init__(self, info: CpuInfo, tdp_w: float | None = None, table_path: Path = DEFAULT_TDP_TABLE) -> None:
        self.info = info
        self.model = choose_model(info, tdp_w, table_path)
        self._channel = self.model.channel()
        self._last: HostSnapshot | None = None
        self._energy_j = 0.0
        self._attributed_j = 0.0

    @classmethod
    def open(cls, proc_root: Path = Path("/proc"), tdp_w: float | None = None) -> CpuModelSource:
        return cls(read_cpuinfo(proc_root), tdp_w)

    def channels(self) -> tuple[Channel, ...]:
        return (self._channel,)

    def read(self, snapshot: HostSnapshot, final: bool = False) -> tuple[MeterReading, ...]:
        last = self._last
        if last is not None and snapshot.t_s > last.t_s:
            dt_s = snapshot.t_s - last.t_s
            energy_j = self.model.power_w(cpu_utilisation(last, snapshot)) * dt_s
            self._energy_j += energy_j
            self._attributed_j += attribute(energy_j, self.model.idle_w * dt_s, last, snapshot)
        self._last = snapshot
        return (MeterReading(self._energy_j, self._attributed_j),)

    def close(self) -> None:
        """Nothing to release."""


def probe_cpu_model(
    proc_root: Path = Path("/proc"), tdp_w: float | None = None, table_path: Path = DEFAULT_TDP_TABLE
) -> ProbeResult:
    """Always available: which CPU model would be used here, and why."""
    info = read_cpuinfo(proc_root)
    model = choose_model(info, tdp_w, table_path)
    return ProbeResult(
        source="cpu-model",
        available=True,
        summary=f"estimated ({model.method}) for {info.model_name!r}: {model.detail}",
        channels=(model.channel(),),
    )
