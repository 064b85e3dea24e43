"""Annual average grid carbon intensity per country, from the packaged table (see data/SOURCES.md).

A region is an ISO 3166 alpha-2 or alpha-3 code, or a country name, matched case-insensitively. With no region
set, the generation-weighted world average is used and the record says so, instead of guessing the country from
an IP address (which goes wrong offline: CodeCarbon falls back to Quebec's 3.9 g/kWh).
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass

from wattwise.data import read_text
from wattwise.errors import UnknownRegionError

WORLD = "WORLD"
_TABLE = "country_intensity.csv"
_SOURCE = "Our World in Data (Ember, Energy Institute), annual life-cycle intensity"


@dataclass(frozen=True, slots=True)
class GridIntensity:
    """The grid figure a run used, and where it came from."""

    region: str
    intensity_g_per_kwh: float
    source: str
    year: int | None
    note: str = ""


@dataclass(frozen=True, slots=True)
class _Row:
    alpha2: str
    alpha3: str
    name: str
    year: int
    intensity_g_per_kwh: float
    generation_twh: float | None


class StaticIntensityTable:
    """Looks regions up in the packaged country table. Cheap to build; read once per object."""

    def __init__(self, text: str | None = None) -> None:
        if text is None:
            text = read_text(_TABLE)
        self._rows: list[_Row] = []
        for rec in csv.DictReader(io.StringIO(text)):
            gen = rec.get("generation_twh_2022") or ""
            self._rows.append(
                _Row(
                    alpha2=rec["alpha2"].upper(),
                    alpha3=rec["alpha3"].upper(),
                    name=rec["name"],
                    year=int(rec["year"]),
                    intensity_g_per_kwh=float(rec["intensity_g_per_kwh"]),
                    generation_twh=float(gen) if gen else None,
                )
            )
        self._index: dict[str, _Row] = {}
        for row in self._rows:
            for key in (row.alpha2, row.alpha3, row.name.upper()):
                self._index.setdefault(key, row)

    def regions(self) -> list[str]:
        return sorted(row.alpha2 for row in self._rows)

    def world_average(self) -> GridIntensity:
        weighted = [(r.intensity_g_per_kwh, r.generation_twh) for r in self._rows if r.generation_twh]
        total = sum(g for _, g in weighted)
        value = sum(i * g for i, g in weighted) / total
        return GridIntensity(
            region=WORLD,
            intensity_g_per_kwh=value,
            source=f"{_SOURCE}; world mean weighted by 2022 generation",
            year=max(r.year for r in self._rows),
            note="no region set: using the world average; set --region or WATTWISE_REGION (ISO country code)",
        )

    def lookup(self, region: str | None) -> GridIntensity:
        if region is None or region.strip().upper() in {"", WORLD}:
            return self.world_average()
        key = region.strip().upper()
        row = self._index.get(key)
        if row is None:
            candidates = sorted(self._index)
            import difflib  # the error path only

            close = difflib.get_close_matches(key, candidates, n=5, cutoff=0.5)
            names = [f"{self._index[c].alpha2} ({self._index[c].name})" for c in close]
            hint = f"closest: {', '.join(dict.fromkeys(names))}" if names else "use an ISO 3166 country code"
            raise UnknownRegionError(
                f"unknown region {region!r}; {hint}. `wattwise doctor --regions` lists all {len(self._rows)}."
            )
        return GridIntensity(
            region=row.alpha2,
            intensity_g_per_kwh=row.intensity_g_per_kwh,
            source=f"{_SOURCE}, {row.name} {row.year}",
            year=row.year,
        )
