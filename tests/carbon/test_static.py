from __future__ import annotations

import csv
import io
from importlib import resources

import pytest

from wattwise.carbon.static import StaticIntensityTable
from wattwise.errors import UnknownRegionError


def test_lookup_by_alpha2_alpha3_and_name() -> None:
    table = StaticIntensityTable()
    de = table.lookup("de")
    assert de.region == "DE" and 200 < de.intensity_g_per_kwh < 600
    assert table.lookup("DEU") == de
    assert table.lookup("Germany") == de
    assert "Our World in Data" in de.source and de.year in (2023, 2024)


def test_world_average_is_generation_weighted_and_flagged() -> None:
    table = StaticIntensityTable()
    world = table.lookup(None)
    text = resources.files("wattwise.data").joinpath("country_intensity.csv").read_text(encoding="utf-8")
    rows = list(csv.DictReader(io.StringIO(text)))
    pairs = [
        (float(r["intensity_g_per_kwh"]), float(r["generation_twh_2022"])) for r in rows if r["generation_twh_2022"]
    ]
    expected = sum(i * g for i, g in pairs) / sum(g for _, g in pairs)
    assert world.intensity_g_per_kwh == pytest.approx(expected)
    assert 400 < world.intensity_g_per_kwh < 550  # Ember reports 480 g/kWh for 2023
    assert "no region set" in world.note


def test_unknown_region_lists_close_names() -> None:
    with pytest.raises(UnknownRegionError, match=r"closest: .*FR \(France\)"):
        StaticIntensityTable().lookup("Frence")


def test_table_covers_many_countries_with_sane_values() -> None:
    table = StaticIntensityTable()
    regions = table.regions()
    assert len(regions) > 200
    for code in regions:
        assert 0 <= table.lookup(code).intensity_g_per_kwh < 1500
