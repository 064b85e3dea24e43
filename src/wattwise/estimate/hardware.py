"""The hardware catalogue: accelerators and CPUs with TDP, dense peak FLOP/s per dtype, memory and its bandwidth,
embodied carbon and measured average power, every figure with its source (data in ``wattwise/data/hardware.csv``,
see SOURCES.md).

Conventions, so that figures from different vendors mean the same thing:

* ``peak_tflops`` is the **dense** peak per dtype in TFLOP/s (TOPS for int8): vendor figures quoted "with sparsity"
  are halved. Where a chip has matrix/tensor units for a dtype, their peak is used (A100 fp64 = 19.5, the tensor-core
  figure; MI250X fp32 = 95.7, the matrix figure); where it has none, the vector peak (V100 fp32 = 15.7).
* ``tdp_w`` is the board/chip TDP; for a configurable range the maximum. Google publishes no TDP for TPU v4, so its
  value is the published measured maximum (192 W), and none at all for v5e/v5p: ``tdp_w`` is ``None`` there.
* ``avg_power_fraction`` is a *device-level* measured average during work divided by ``tdp_w`` (only TPU v3 and v4
  have one). System-level measurements that include the host (Patterson et al. 2021) are quoted in
  ``avg_power_source`` but not turned into a fraction, so a power model can add host power without counting it twice.
* ``embodied_kgco2e`` is per device where published; ``embodied_source`` says what it covers (GPU only, or the GPU's
  share of a whole server) and cites die-only figures (LLMCarbon) without using them.

Name resolution (``HardwareCatalogue.get``), case- and separator-insensitive, with a leading vendor word ("NVIDIA",
"AMD", "Google", "Intel", "Tesla", "Instinct", "Cloud") ignored and "80GB" equal to "80G":

1. a canonical name ("H100-SXM", "A100-SXM4-80GB", "TPUv4", "MI300X", "EPYC-7763") always wins;
2. an alias shared by one row resolves to it ("H100-SXM5", "TPU v4", "H200");
3. an alias shared by several rows ("A100", "V100-SXM2") resolves only when the variants are interchangeable for an
   estimate: TDP and every peak they both publish within 10 % of each other. Then the variant with the most memory
   is returned (its canonical ``name`` says which: "A100-SXM4" gives A100-SXM4-80GB, "V100-SXM2" V100-SXM2-32GB).
   Otherwise it is an error that lists the choices with their TDP ("A100", "H100", "A100-80GB", "V100-32GB").

An unknown name is a :class:`~wattwise.errors.ConfigError` that lists the closest names.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Literal, get_args

from wattwise.errors import ConfigError

__all__ = ["DTYPES", "KINDS", "Dtype", "Hardware", "HardwareCatalogue", "Kind", "resolve_dtype"]

Dtype = Literal["fp64", "fp32", "tf32", "bf16", "fp16", "fp8", "int8"]
Kind = Literal["gpu", "tpu", "accelerator", "cpu"]
DTYPES: tuple[Dtype, ...] = get_args(Dtype)
KINDS: tuple[Kind, ...] = get_args(Kind)

# bf16 -> fp16 -> tf32 -> fp32: a V100 has no bf16 but trains in fp16 at the same tensor-core rate.
_FALLBACK: tuple[Dtype, ...] = ("bf16", "fp16", "tf32", "fp32")
_INTERCHANGEABLE = 0.10  # variants within 10 % in TDP and peak FLOP/s resolve from a shared alias
_VENDOR_WORDS = ("nvidia", "amd", "google", "intel", "tesla", "instinct", "cloud")
_COLUMNS = (
    "name",
    "kind",
    "vendor",
    "year",
    "tdp_w",
    *DTYPES,
    "memory_gb",
    "memory_bandwidth_gbs",
    "bandwidth_source",
    "embodied_kgco2e",
    "embodied_source",
    "avg_power_fraction",
    "avg_power_source",
    "aliases",
    "sources",
)


@dataclass(frozen=True, slots=True)
class Hardware:
    """One catalogue row; see the module docstring for what each figure means."""

    name: str
    kind: Kind
    vendor: str
    year: int | None
    tdp_w: float | None  # None only where the vendor publishes no chip power (TPU v5e, v5p)
    peak_tflops: Mapping[str, float] = field(hash=False)  # dense TFLOP/s (TOPS for int8), only published dtypes
    memory_gb: float | None
    memory_bandwidth_gbs: float  # peak memory bandwidth per device (HBM/GDDR; a CPU socket's DRAM channels), GB/s
    bandwidth_source: str
    embodied_kgco2e: float | None
    embodied_source: str
    avg_power_fraction: float | None
    avg_power_source: str
    aliases: tuple[str, ...]
    sources: str

    @property
    def embodied_includes_server(self) -> bool:
        """True when ``embodied_kgco2e`` is the device's share of a whole server (the source says "… plus …"),
        so no separate server share may be added on top."""
        return " plus " in self.embodied_source.split(":", 1)[0].lower()

    def to_dict(self) -> dict[str, Any]:
        """Every field as plain JSON-ready values."""
        return {
            "name": self.name,
            "kind": self.kind,
            "vendor": self.vendor,
            "year": self.year,
            "tdp_w": self.tdp_w,
            "peak_tflops": dict(self.peak_tflops),
            "memory_gb": self.memory_gb,
            "memory_bandwidth_gbs": self.memory_bandwidth_gbs,
            "bandwidth_source": self.bandwidth_source,
            "embodied_kgco2e": self.embodied_kgco2e,
            "embodied_source": self.embodied_source,
            "avg_power_fraction": self.avg_power_fraction,
            "avg_power_source": self.avg_power_source,
            "aliases": list(self.aliases),
            "sources": self.sources,
        }


def resolve_dtype(hw: Hardware, dtype: str) -> Dtype:
    """The dtype whose peak applies to ``dtype`` on ``hw``: itself if published, else the next of bf16 -> fp16 ->
    tf32 -> fp32 after it (fp64, fp8 and int8 never fall back). ConfigError when none is published."""
    wanted = _dtype(dtype)
    chain = _FALLBACK[_FALLBACK.index(wanted) :] if wanted in _FALLBACK else (wanted,)
    for candidate in chain:
        if candidate in hw.peak_tflops:
            return candidate
    have = ", ".join(d for d in DTYPES if d in hw.peak_tflops) or "none"
    tried = f" (tried {', '.join(chain)})" if len(chain) > 1 else ""
    raise ConfigError(
        f"{hw.name} has no published dense peak for {wanted}{tried}; published: {have}. "
        "Give the device-hours directly instead of deriving them from FLOPs"
    )


class HardwareCatalogue:
    """All rows of a hardware CSV (the packaged one by default), parsed when constructed; no module-level state."""

    def __init__(self, text: str | None = None) -> None:
        if text is None:
            from wattwise.data import read_text

            text = read_text("hardware.csv")
        self._rows: list[Hardware] = _parse(text)
        self._by_name: dict[str, Hardware] = {}
        self._by_alias: dict[str, list[Hardware]] = {}
        for hw in self._rows:
            key = _key(hw.name)
            if key in self._by_name:
                raise ConfigError(f"hardware table: {hw.name!r} appears twice (as {self._by_name[key].name!r})")
            self._by_name[key] = hw
        for hw in self._rows:
            for alias in hw.aliases:
                key = _key(alias)
                other = self._by_name.get(key)
                if other is not None and other is not hw:
                    raise ConfigError(f"hardware table: alias {alias!r} of {hw.name} is the name of {other.name}")
                group = self._by_alias.setdefault(key, [])
                if not any(member is hw for member in group):
                    group.append(hw)

    def all(self) -> list[Hardware]:
        """Every row, in table order."""
        return list(self._rows)

    def get(self, name: str) -> Hardware:
        """The row for a canonical name or alias (rules in the module docstring); ConfigError when unknown or
        ambiguous."""
        key = _key(name)
        if not key:
            raise ConfigError("hardware name is empty; `wattwise hardware list` shows the known names")
        if key in self._by_name:
            return self._by_name[key]
        group = self._by_alias.get(key, [])
        if len(group) == 1:
            return group[0]
        if group and _interchangeable(group):
            return max(group, key=lambda hw: hw.memory_gb or 0.0)  # max keeps the first of equals
        if group:
            choices = ", ".join(f"{hw.name} ({_watts(hw.tdp_w)})" for hw in group)
            raise ConfigError(
                f"hardware {name!r} is ambiguous: {choices} differ by more than 10% in TDP or peak FLOP/s; "
                "name one of them"
            )
        raise ConfigError(f"unknown hardware {name!r}; {self._closest(key)}. `wattwise hardware list` shows all")

    def peak_flops(self, hw: Hardware, dtype: str) -> float:
        """Dense peak in FLOP/s (OP/s for int8) for ``dtype``, falling back bf16 -> fp16 -> tf32 -> fp32."""
        return hw.peak_tflops[resolve_dtype(hw, dtype)] * 1e12

    def _closest(self, key: str) -> str:
        import difflib  # the error path only

        names = {k: hw.name for k, hw in self._by_name.items()}
        for alias_key, group in self._by_alias.items():
            names.setdefault(alias_key, group[0].name)
        close = difflib.get_close_matches(key, list(names), n=8, cutoff=0.5)
        found = list(dict.fromkeys(names[c] for c in close))[:5]
        return f"closest: {', '.join(found)}" if found else "no close match"


# -- parsing ----------------------------------------------------------------------------------------------------------


def _parse(text: str) -> list[Hardware]:
    reader = csv.DictReader(io.StringIO(text))
    header = tuple(reader.fieldnames or ())
    missing = [c for c in _COLUMNS if c not in header]
    extra = [c for c in header if c not in _COLUMNS]
    problems = [f"missing column {c}" for c in missing] + [f"unknown column {c}" for c in extra]
    if problems:
        raise ConfigError(f"hardware table: {'; '.join(problems)}")
    rows = [_row(raw, reader.line_num) for raw in reader]
    if not rows:
        raise ConfigError("hardware table: no rows")
    return rows


def _row(raw: dict[str, str | None], line: int) -> Hardware:
    cell = {c: (raw.get(c) or "").strip() for c in _COLUMNS}
    where = f"hardware table line {line} ({cell['name'] or 'no name'})"
    if not cell["name"]:
        raise ConfigError(f"{where}: the name is empty")
    if cell["kind"] not in KINDS:
        raise ConfigError(f"{where}: kind {cell['kind']!r} is not one of {', '.join(KINDS)}")
    for column in ("vendor", "sources", "embodied_source", "avg_power_source", "bandwidth_source"):
        if not cell[column]:
            raise ConfigError(f"{where}: {column} is empty (write 'not published' where a figure is unknown)")
    peaks: dict[str, float] = {d: value for d in DTYPES if (value := _number(cell, d, where)) is not None}
    fraction = _number(cell, "avg_power_fraction", where)
    if fraction is not None and fraction > 1.5:
        raise ConfigError(f"{where}: avg_power_fraction {fraction:g} is not a fraction of TDP")
    bandwidth = _number(cell, "memory_bandwidth_gbs", where)
    if bandwidth is None:
        raise ConfigError(f"{where}: memory_bandwidth_gbs is empty: every device's bandwidth is published")
    year = _number(cell, "year", where)
    if year is not None and not (year.is_integer() and 1990 <= year <= 2100):
        raise ConfigError(f"{where}: year {cell['year']!r} is not a year")
    return Hardware(
        name=cell["name"],
        kind=cell["kind"],
        vendor=cell["vendor"],
        year=None if year is None else int(year),
        tdp_w=_number(cell, "tdp_w", where),
        peak_tflops=MappingProxyType(peaks),
        memory_gb=_number(cell, "memory_gb", where),
        memory_bandwidth_gbs=bandwidth,
        bandwidth_source=cell["bandwidth_source"],
        embodied_kgco2e=_number(cell, "embodied_kgco2e", where),
        embodied_source=cell["embodied_source"],
        avg_power_fraction=fraction,
        avg_power_source=cell["avg_power_source"],
        aliases=tuple(a.strip() for a in cell["aliases"].split(";") if a.strip()),
        sources=cell["sources"],
    )


def _number(cell: dict[str, str], column: str, where: str) -> float | None:
    """An empty cell is None (not published); anything else must be a finite positive number."""
    text = cell[column]
    if not text:
        return None
    try:
        value = float(text)
    except ValueError:
        raise ConfigError(f"{where}: {column} {text!r} is not a number") from None
    if not (0 < value < float("inf")):
        raise ConfigError(f"{where}: {column} must be positive and finite (got {text})")
    return value


# -- names ------------------------------------------------------------------------------------------------------------

_NOT_KEY = re.compile(r"[^a-z0-9+]")
_GB = re.compile(r"(\d)gb")


def _key(name: str) -> str:
    """Lower case, separators dropped, a leading vendor word dropped, '80gb' -> '80g'."""
    key = _GB.sub(r"\1g", _NOT_KEY.sub("", name.lower()))
    stripped = True
    while stripped:
        stripped = False
        for word in _VENDOR_WORDS:
            if key.startswith(word) and len(key) > len(word):
                key, stripped = key[len(word) :], True
    return key


def _dtype(dtype: str) -> Dtype:
    wanted = dtype.strip().lower()
    if wanted not in DTYPES:
        raise ConfigError(f"unknown dtype {dtype!r}; use one of {', '.join(DTYPES)}")
    return wanted


def _interchangeable(group: list[Hardware]) -> bool:
    """True when every pair agrees within 10 % on TDP and on every peak both publish."""

    def close(values: list[float | None]) -> bool:
        if any(v is None for v in values):
            return all(v is None for v in values)
        numbers = [v for v in values if v is not None]
        return max(numbers) <= min(numbers) * (1 + _INTERCHANGEABLE)

    if not close([hw.tdp_w for hw in group]):
        return False
    shared = set.intersection(*(set(hw.peak_tflops) for hw in group))
    return all(close([hw.peak_tflops[d] for hw in group]) for d in shared)


def _watts(value: float | None) -> str:
    return "no published power" if value is None else f"{value:g} W"
