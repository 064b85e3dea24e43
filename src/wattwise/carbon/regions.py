"""Where the work runs, said the way a user knows it, resolved to a grid, a country, a facility and water figures.

``resolve_region`` accepts, case-insensitively:

- an ISO 3166 alpha-2 or alpha-3 code or a country name (``DE``, ``deu``, ``Germany``): kind ``"country"``;
- an Electricity Maps zone key (``US-CAL-CISO``, ``SE-SE3``): kind ``"zone"``; a key that is also a country code
  (``DE``, ``GB``) resolves as that country, whose zone key it is;
- a cloud region ``provider:region`` (``aws:eu-west-1``, ``gcp:europe-west4``, ``azure:westeurope``; ``amazon``,
  ``google`` and ``microsoft`` are accepted for the provider), or a bare cloud region name that only one provider
  uses (``westeurope``): kind ``"cloud"``;
- nothing (None, ``""``, ``world``): the generation-weighted world average, kind ``"world"``, with a note saying so.

Anything else raises :class:`~wattwise.errors.UnknownRegionError` listing the closest valid names of every kind.

The static annual intensity of a region comes from the packaged country table (``country_intensity.csv``) for its
country (a zone or cloud region falls back to its country's annual figure), except for Google Cloud regions, where
Google publishes a grid intensity per region (``cloud_regions.csv``), which is used instead;
``Region.intensity_basis`` says which. PUE and on-site WUE are set for cloud regions only, from the provider's
published fleet figures (``cloud_providers.csv``); elsewhere they are None and the caller keeps its own default.
Off-site water is the country's figure from ``water_intensity.csv``. Every figure carries its source.

Tables are read once per :class:`RegionResolver` object; ``resolve_region`` builds a fresh one per call.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from functools import cached_property
from typing import Literal

from wattwise.carbon.static import WORLD, GridIntensity, StaticIntensityTable
from wattwise.data import read_text
from wattwise.errors import UnknownRegionError

RegionKind = Literal["country", "zone", "cloud", "world"]
IntensityBasis = Literal["country", "provider", "world"]
PROVIDERS = ("aws", "gcp", "azure")
_PROVIDER_ALIASES = {
    "aws": "aws",
    "amazon": "aws",
    "gcp": "gcp",
    "google": "gcp",
    "azure": "azure",
    "microsoft": "azure",
}
_WORLD_NAMES = {"", WORLD}


@dataclass(frozen=True, slots=True)
class Region:
    """A resolved place: its grid, its static annual intensity, and the facility and water figures that apply."""

    code: str  # canonical: "DE", "US-CAL-CISO", "aws:eu-west-1", "WORLD"
    kind: RegionKind
    country: str | None  # ISO 3166 alpha-2
    grid_zone: str | None  # Electricity Maps zone key
    intensity: GridIntensity  # static annual figure
    intensity_basis: IntensityBasis
    cloud_provider: str | None = None
    cloud_region: str | None = None
    location: str | None = None
    latitude: float | None = None
    longitude: float | None = None
    pue: float | None = None
    pue_source: str | None = None
    wue_l_per_kwh: float | None = None
    wue_source: str | None = None
    offsite_water_l_per_kwh: float | None = None
    offsite_water_source: str | None = None
    note: str = ""

    @property
    def is_world(self) -> bool:
        return self.kind == "world"


@dataclass(frozen=True, slots=True)
class ProviderFacts:
    provider: str
    name: str
    pue: float
    pue_source: str
    wue_l_per_kwh: float | None
    wue_source: str


@dataclass(frozen=True, slots=True)
class _Cloud:
    provider: str
    region: str
    name: str
    location: str
    country: str
    zone: str
    latitude: float | None
    longitude: float | None
    intensity_g_per_kwh: float | None
    intensity_year: int | None
    source: str


@dataclass(frozen=True, slots=True)
class _Water:
    offsite_l_per_kwh: float
    upper_l_per_kwh: float
    year: int
    generation_twh: float


def _rows(name: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(read_text(name))))


def _float(text: str) -> float | None:
    return float(text) if text.strip() else None


class RegionResolver:
    """Resolves region names against the packaged tables, read lazily and once per object."""

    def __init__(self, table: StaticIntensityTable | None = None) -> None:
        self._table = table

    @cached_property
    def table(self) -> StaticIntensityTable:
        return self._table or StaticIntensityTable()

    @cached_property
    def clouds(self) -> dict[str, _Cloud]:
        out: dict[str, _Cloud] = {}
        for r in _rows("cloud_regions.csv"):
            year = r["provider_intensity_year"]
            cloud = _Cloud(
                provider=r["provider"],
                region=r["region"],
                name=r["name"],
                location=r["location"],
                country=r["country"].upper(),
                zone=r["grid_zone"],
                latitude=_float(r["latitude"]),
                longitude=_float(r["longitude"]),
                intensity_g_per_kwh=_float(r["provider_intensity_g_per_kwh"]),
                intensity_year=int(year) if year else None,
                source=r["source"],
            )
            out[f"{cloud.provider}:{cloud.region}"] = cloud
        return out

    @cached_property
    def providers(self) -> dict[str, ProviderFacts]:
        out: dict[str, ProviderFacts] = {}
        for r in _rows("cloud_providers.csv"):
            year = f" ({r['pue_year']})" if r["pue_year"] else ""
            wue_year = f" ({r['wue_year']})" if r["wue_year"] else ""
            out[r["provider"]] = ProviderFacts(
                provider=r["provider"],
                name=r["name"],
                pue=float(r["pue"]),
                pue_source=f"{r['name']} PUE {r['pue']}{year}: {r['pue_source']}",
                wue_l_per_kwh=_float(r["wue_l_per_kwh"]),
                wue_source=f"{r['name']} WUE{wue_year}: {r['wue_source']}",
            )
        return out

    @cached_property
    def zones(self) -> dict[str, tuple[str, str]]:
        """Zone key (upper case) -> (zone key, country alpha-2)."""
        return {r["zone"].upper(): (r["zone"], r["country"].upper()) for r in _rows("grid_zones.csv")}

    @cached_property
    def water(self) -> dict[str, _Water]:
        return {
            r["alpha2"].upper(): _Water(
                float(r["offsite_l_per_kwh"]),
                float(r["offsite_incl_hydro_l_per_kwh"]),
                int(r["year"]),
                float(r["generation_twh"]),
            )
            for r in _rows("water_intensity.csv")
        }

    # -- resolving ----------------------------------------------------------------------------------------------------

    def resolve(self, text: str | None) -> Region:
        raw = (text or "").strip()
        if raw.upper() in _WORLD_NAMES:
            return self._world()
        if ":" in raw:
            provider, _, name = raw.partition(":")
            key = f"{_PROVIDER_ALIASES.get(provider.strip().lower(), provider.strip().lower())}:{name.strip().lower()}"
            if key in self.clouds:
                return self._cloud(self.clouds[key])
            raise self._unknown(raw, prefer=key.split(":", 1)[0])
        upper = raw.upper()
        if upper in self.zones and "-" in upper:
            zone, country = self.zones[upper]
            return self._place(country, kind="zone", code=zone, zone=zone)
        try:
            country_figure = self.table.lookup(raw)
        except UnknownRegionError:
            country_figure = None
        if country_figure is not None:
            return self._place(country_figure.region, kind="country", code=country_figure.region)
        bare = [c for c in self.clouds.values() if c.region == raw.lower()]
        if len(bare) == 1:
            return self._cloud(bare[0])
        raise self._unknown(raw)

    def names(self) -> list[str]:
        """Every accepted canonical name: country codes, zone keys and cloud regions."""
        return sorted(set(self.table.regions()) | {z for z, _ in self.zones.values()}) + sorted(self.clouds)

    def _world(self) -> Region:
        figure = self.table.world_average()
        offsite, source = self._world_water()
        return Region(
            code=WORLD,
            kind="world",
            country=None,
            grid_zone=None,
            intensity=figure,
            intensity_basis="world",
            offsite_water_l_per_kwh=offsite,
            offsite_water_source=source,
            note=figure.note,
        )

    def _place(self, country: str, *, kind: RegionKind, code: str, zone: str | None = None) -> Region:
        figure = self.table.lookup(country)
        note = ""
        if kind == "zone":
            note = f"static intensity is {country}'s annual country figure: no zone-level table is packaged for {code}"
            figure = GridIntensity(code, figure.intensity_g_per_kwh, figure.source, figure.year, note)
        offsite, source = self._water(country)
        return Region(
            code=code,
            kind=kind,
            country=country,
            grid_zone=zone or country,  # Electricity Maps keys a whole country by its alpha-2 code
            intensity=figure,
            intensity_basis="country",
            offsite_water_l_per_kwh=offsite,
            offsite_water_source=source,
            note=note,
        )

    def _cloud(self, cloud: _Cloud) -> Region:
        code = f"{cloud.provider}:{cloud.region}"
        facts = self.providers[cloud.provider]
        country_figure = self.table.lookup(cloud.country)
        if cloud.intensity_g_per_kwh is not None:
            figure = GridIntensity(
                code,
                cloud.intensity_g_per_kwh,
                f"Google Cloud published grid intensity for {cloud.region} ({cloud.intensity_year}), "
                "Electricity Maps annual average as reported by Google (cloud_regions.csv)",
                cloud.intensity_year,
            )
            basis: IntensityBasis = "provider"
        else:
            note = f"{cloud.country} annual country figure for the {cloud.zone} grid"
            figure = GridIntensity(
                code, country_figure.intensity_g_per_kwh, country_figure.source, country_figure.year, note
            )
            basis = "country"
        offsite, source = self._water(cloud.country)
        return Region(
            code=code,
            kind="cloud",
            country=cloud.country,
            grid_zone=cloud.zone,
            intensity=figure,
            intensity_basis=basis,
            cloud_provider=cloud.provider,
            cloud_region=cloud.region,
            location=cloud.location,
            latitude=cloud.latitude,
            longitude=cloud.longitude,
            pue=facts.pue,
            pue_source=facts.pue_source,
            wue_l_per_kwh=facts.wue_l_per_kwh,
            wue_source=facts.wue_source,
            offsite_water_l_per_kwh=offsite,
            offsite_water_source=source,
            note=f"region mapping: {cloud.source}",
        )

    def _water(self, country: str) -> tuple[float | None, str | None]:
        row = self.water.get(country)
        if row is None:
            return None, None
        return row.offsite_l_per_kwh, (
            f"derived for {country} ({row.year} generation mix, Our World in Data) from Macknick et al. 2012 median "
            f"consumption factors; reservoir evaporation of hydropower excluded (with it: {row.upper_l_per_kwh:g} "
            "L/kWh); see water_intensity.csv and scripts/derive_water_intensity.py"
        )

    def _world_water(self) -> tuple[float, str]:
        rows = list(self.water.values())
        total = sum(r.generation_twh for r in rows)
        value = sum(r.offsite_l_per_kwh * r.generation_twh for r in rows) / total
        return value, "world: generation-weighted mean of the per-country figures in water_intensity.csv"

    # -- errors -------------------------------------------------------------------------------------------------------

    def _unknown(self, raw: str, *, prefer: str | None = None) -> UnknownRegionError:
        import difflib  # the error path only

        query = raw.strip().lower()
        candidates: dict[str, str] = {name.lower(): name for name in self.clouds}
        if prefer in PROVIDERS:
            pool = {k: v for k, v in candidates.items() if k.startswith(f"{prefer}:")}
            close = sorted(difflib.get_close_matches(query, list(pool), n=6, cutoff=0.85))
        else:
            for z, _ in self.zones.values():
                candidates[z.lower()] = z
            for r in _rows("country_intensity.csv"):
                for key in (r["alpha2"], r["alpha3"], r["name"]):
                    candidates[key.lower()] = f"{r['alpha2']} ({r['name']})" if key != r["alpha2"] else r["alpha2"]
            for c in self.clouds.values():
                candidates[c.region] = f"{c.provider}:{c.region}"
            close = difflib.get_close_matches(query, list(candidates), n=6, cutoff=0.6)
        names = list(dict.fromkeys(candidates[c] for c in close))
        hint = f"closest: {', '.join(names)}" if names else "no close match"
        if prefer is not None and prefer not in PROVIDERS:
            hint = f"unknown cloud provider {prefer!r}, use one of {', '.join(PROVIDERS)}"
        return UnknownRegionError(
            f"unknown region {raw!r}; {hint}. Use an ISO country code (DE), a grid zone (US-CAL-CISO) or a cloud "
            f"region (aws:eu-west-1); `wattwise doctor --regions` lists all {len(self.names())}."
        )


def resolve_region(text: str | None) -> Region:
    """Resolve one region name with freshly read tables (see the module docstring for what is accepted)."""
    return RegionResolver().resolve(text)
