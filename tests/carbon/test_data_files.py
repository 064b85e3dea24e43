"""The packaged cloud, zone, provider and water tables: complete, consistent with each other, and sourced."""

from __future__ import annotations

import csv
import importlib.util
import io
from collections import Counter
from pathlib import Path

import pytest

from wattwise.carbon.regions import RegionResolver
from wattwise.data import DATA_DIR, read_text

ROOT = Path(__file__).resolve().parents[2]
SHARED = ROOT.parent / "shared"


def rows(name: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(read_text(name))))


COUNTRIES = {r["alpha2"] for r in rows("country_intensity.csv")}
ZONES = {r["zone"]: r for r in rows("grid_zones.csv")}
PROVIDERS = {r["provider"]: r for r in rows("cloud_providers.csv")}
CLOUD = rows("cloud_regions.csv")


def test_cloud_coverage() -> None:
    counts = Counter(r["provider"] for r in CLOUD)
    assert counts["aws"] >= 30 and counts["gcp"] >= 40 and counts["azure"] >= 50
    keys = [(r["provider"], r["region"]) for r in CLOUD]
    assert len(keys) == len(set(keys))


@pytest.mark.parametrize("row", CLOUD, ids=[f"{r['provider']}:{r['region']}" for r in CLOUD])
def test_every_cloud_row_resolves_to_known_tables(row: dict[str, str]) -> None:
    assert row["provider"] in PROVIDERS and row["source"].strip()
    assert row["country"] in COUNTRIES, f"{row['country']} is not in country_intensity.csv"
    assert row["grid_zone"] in ZONES, f"{row['grid_zone']} is not in grid_zones.csv"
    assert ZONES[row["grid_zone"]]["country"] == row["country"]
    if row["latitude"] or row["longitude"]:
        assert -90 <= float(row["latitude"]) <= 90 and -180 <= float(row["longitude"]) <= 180
    if row["provider_intensity_g_per_kwh"]:
        assert 0 <= float(row["provider_intensity_g_per_kwh"]) < 1500 and row["provider_intensity_year"]
    region = RegionResolver().resolve(f"{row['provider']}:{row['region']}")
    assert region.grid_zone == row["grid_zone"] and region.offsite_water_l_per_kwh is not None


def test_providers_have_pue_at_least_one_and_sources() -> None:
    assert {"aws", "gcp", "azure", "default", "industry-average"} <= set(PROVIDERS)
    for provider, row in PROVIDERS.items():
        assert float(row["pue"]) >= 1.0, provider
        assert row["pue_source"].strip() and row["wue_source"].strip() and row["verification"].strip()
        if row["wue_l_per_kwh"]:
            assert 0 <= float(row["wue_l_per_kwh"]) < 5
    assert float(PROVIDERS["default"]["pue"]) == 1.0 and float(PROVIDERS["default"]["wue_l_per_kwh"]) == 0.0
    assert float(PROVIDERS["industry-average"]["pue"]) == 1.58


def test_zones_cover_the_shared_traces_and_belong_to_known_countries() -> None:
    assert {"US-CAL-CISO", "US-TEX-ERCO", "US-MIDA-PJM", "US-NE-ISNE", "SE", "NO", "BR", "DE", "GB", "FR"} <= set(ZONES)
    for zone, row in ZONES.items():
        assert row["country"] in COUNTRIES and row["source"].strip() and row["name"].strip(), zone
        assert zone == row["country"] or zone.startswith(f"{row['country']}-")


def test_water_table_is_plausible() -> None:
    water = rows("water_intensity.csv")
    assert len(water) > 200
    for row in water:
        assert row["alpha2"] in COUNTRIES
        main, upper = float(row["offsite_l_per_kwh"]), float(row["offsite_incl_hydro_l_per_kwh"])
        assert 0 <= main <= 4 and main <= upper <= 20, row


def test_every_new_table_has_a_section_in_sources() -> None:
    sources = (DATA_DIR / "SOURCES.md").read_text(encoding="utf-8")
    for name in ("cloud_regions.csv", "cloud_providers.csv", "grid_zones.csv", "water_intensity.csv"):
        assert f"## {name}" in sources


@pytest.mark.skipif(not (SHARED / "data" / "grids").is_dir(), reason="../shared/data/grids is not beside this checkout")
def test_water_table_is_reproduced_by_its_script(tmp_path: Path) -> None:
    spec = importlib.util.spec_from_file_location(
        "derive_water_intensity", ROOT / "scripts" / "derive_water_intensity.py"
    )
    assert spec is not None and spec.loader is not None
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    out = tmp_path / "water.csv"
    assert script.main(["--shared", str(SHARED), "--out", str(out)]) == 0
    assert out.read_text(encoding="utf-8") == read_text("water_intensity.csv")
