"""Derive src/wattwise/data/water_intensity.csv: off-site water consumed per kWh of electricity, per country.

    python scripts/derive_water_intensity.py [--shared ../shared]

Method: the generation-weighted mean of per-technology operational water *consumption* factors (water evaporated
or otherwise not returned, not withdrawal) over each country's 2022 generation mix.

Inputs
- Generation mix: ``<shared>/data/grids/country_energy_mix_2022.json`` (Our World in Data energy dataset, from
  Ember and the Energy Institute, CC BY 4.0, TWh per source), as packaged in codecarbon 3.3.2. Despite the file
  name the year varies by country (130 rows 2022, 78 rows 2023, 4 rows 2021, one 2009); each output row keeps it.
- ISO alpha-3 -> alpha-2 and country names: the package's own ``country_intensity.csv``.
- Consumption factors (median, US gal/MWh): Macknick, Newmark, Heath and Hallett (2012), "Operational water
  consumption and withdrawal factors for electricity generating technologies: a review of existing literature",
  Environ. Res. Lett. 7 045802 (NREL), Table 1. The medians below were taken from a transcription of that table
  (repository Lucas-Doctorate-Project/env_research_scripts, ``intensity-factors/intensities.json``), not read in
  the paper itself: treat them as secondary until checked against the original.

Choices (each one changes the result; they are stated in SOURCES.md too)
- Thermal plants use the recirculating cooling-tower median: it is the most common cooling system of new plants
  and the conservative choice; fleets dominated by once-through cooling consume less (and withdraw far more).
- Oil has no Macknick category: the natural-gas steam-turbine (tower) factor stands in for it.
- "Other renewables" (OWID, excluding bioenergy) is mostly geothermal: the geothermal flash (tower) median is used.
- Solar is taken as photovoltaics (panel washing); concentrating solar, which consumes far more, is a small share.
- Hydropower: reservoir evaporation (median 4,491 gal/MWh) is contested, because reservoirs serve irrigation,
  flood control and supply too, and natural lakes would evaporate anyway. The main column leaves it out (factor 0);
  ``offsite_incl_hydro_l_per_kwh`` adds it in full, as an upper bound.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from wattwise.units import gal_per_mwh_to_l_per_kwh  # noqa: E402

MACKNICK_2012_GAL_PER_MWH: dict[str, float] = {
    "coal_TWh": 687.0,  # coal, generic, cooling tower
    "gas_TWh": 205.0,  # natural gas combined cycle, cooling tower
    "oil_TWh": 826.0,  # no oil category: natural gas steam turbine, cooling tower, as a proxy
    "nuclear_TWh": 672.0,  # nuclear, cooling tower
    "biofuel_TWh": 553.0,  # biopower steam, cooling tower
    "other_renewable_exc_biofuel_TWh": 15.0,  # geothermal flash, cooling tower
    "solar_TWh": 1.0,  # photovoltaic, utility scale (cleaning)
    "wind_TWh": 0.0,  # wind
    "hydroelectricity_TWh": 0.0,  # reservoir evaporation left out of the main column (see module docstring)
}
HYDRO_EVAPORATION_GAL_PER_MWH = 4491.0  # hydropower, in-stream/reservoir evaporation, median (upper-bound column)
COLUMNS = (
    "alpha2",
    "alpha3",
    "name",
    "year",
    "offsite_l_per_kwh",
    "offsite_incl_hydro_l_per_kwh",
    "generation_twh",
    "hydro_share",
)


def derive(mix: dict[str, dict[str, object]], names: dict[str, tuple[str, str]]) -> list[dict[str, str]]:
    rows: list[dict[str, str]] = []
    for alpha3, rec in sorted(mix.items()):
        if alpha3 not in names:
            continue
        twh = {key: float(str(rec.get(key) or 0.0)) for key in MACKNICK_2012_GAL_PER_MWH}
        total = sum(twh.values())
        if total <= 0:
            continue
        gal = sum(twh[key] * factor for key, factor in MACKNICK_2012_GAL_PER_MWH.items()) / total
        hydro = twh["hydroelectricity_TWh"] / total
        alpha2, name = names[alpha3]
        upper_gal = gal + hydro * HYDRO_EVAPORATION_GAL_PER_MWH
        rows.append(
            {
                "alpha2": alpha2,
                "alpha3": alpha3,
                "name": name,
                "year": str(rec.get("year", "")),
                "offsite_l_per_kwh": f"{gal_per_mwh_to_l_per_kwh(gal):.3f}",
                "offsite_incl_hydro_l_per_kwh": f"{gal_per_mwh_to_l_per_kwh(upper_gal):.3f}",
                "generation_twh": f"{total:.2f}",
                "hydro_share": f"{hydro:.3f}",
            }
        )
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared", type=Path, default=ROOT.parent / "shared", help="the shared/ folder")
    parser.add_argument("--out", type=Path, default=ROOT / "src" / "wattwise" / "data" / "water_intensity.csv")
    args = parser.parse_args(argv)
    mix_path = args.shared / "data" / "grids" / "country_energy_mix_2022.json"
    mix = json.loads(mix_path.read_text(encoding="utf-8"))
    with (ROOT / "src" / "wattwise" / "data" / "country_intensity.csv").open(encoding="utf-8") as fh:
        names = {r["alpha3"].upper(): (r["alpha2"].upper(), r["name"]) for r in csv.DictReader(fh)}
    rows = derive(mix, names)
    with args.out.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=COLUMNS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    print(f"wrote {len(rows)} countries to {args.out} (of {len(mix)} in {mix_path.name})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
