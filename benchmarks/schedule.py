"""Carbon-aware scheduling on every trace of ../shared/data/carbon-intensity, against its BENCHMARKS.md.

For each trace and year in the folder (the region-years of BENCHMARKS.md Table A first, then the other years),
runs ``wattwise schedule evaluate`` logic in-process
for a 4 h job in a 24 h window (start semantics, or --duration/--window/--semantics) and prints: the oracle
savings next to the published oracle (Table A or B), the savings with the chosen forecaster (re-planning hourly;
also planned once), the m7 baseline planned once next to Table C's m7, and the share of the oracle kept.

    .venv/bin/python benchmarks/schedule.py [--forecaster auto] [--duration 4] [--window 24] [--semantics start]

Reads ../shared (benchmarks only); says so and exits 0 when the folder is absent. Timing: the plans of a year
(all submissions, all candidates) and the forecasts are timed separately; forecast training is excepted from the
one-second target.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "carbon-intensity"
# (label, file, year, Table A/B row label, Table C row label, kind of grid)
TRACES = [
    ("DE 2020 (LWA)", "lets-wait-awhile/ger_ci.csv", 2020, "DE 2020", "wind"),
    ("GB 2020 (LWA)", "lets-wait-awhile/gb_ci.csv", 2020, "GB 2020", "wind"),
    ("FR 2020 (LWA)", "lets-wait-awhile/fr_ci.csv", 2020, "FR 2020", ""),
    ("CISO 2020 (DACF)", "dacf/CISO_direct_emissions.csv", 2020, "CISO 2020", "solar"),
    ("US-CAL-CISO 2022 (EM LCA)", "electricitymaps/US-CAL-CISO_2022_hourly.csv", 2022, "CISO 2022", "solar"),
    ("ERCO 2020 (DACF)", "dacf/ERCO_direct_emissions.csv", 2020, "ERCO 2020", ""),
    ("PJM 2020 (DACF)", "dacf/PJM_direct_emissions.csv", 2020, "PJM 2020", ""),
    ("ISNE 2020 (DACF)", "dacf/ISNE_direct_emissions.csv", 2020, "ISNE 2020", ""),
    ("SE 2020 (DACF)", "dacf/SE_direct_emissions.csv", 2020, "SE 2020", ""),
    ("NO 2022 (EM)", "electricitymaps/NO_2022_hourly.csv", 2022, "NO 2022", ""),
    ("BR 2022 (EM)", "electricitymaps/BR_2022_hourly.csv", 2022, "BR 2022", ""),
    # the other years in the folder: no published reference, the same targets where the grid's kind is known
    ("CISO 2021 (DACF)", "dacf/CISO_direct_emissions.csv", 2021, "-", "solar"),
    ("ERCO 2021 (DACF)", "dacf/ERCO_direct_emissions.csv", 2021, "-", ""),
    ("PJM 2021 (DACF)", "dacf/PJM_direct_emissions.csv", 2021, "-", ""),
    ("ISNE 2021 (DACF)", "dacf/ISNE_direct_emissions.csv", 2021, "-", ""),
    ("SE 2021 (DACF)", "dacf/SE_direct_emissions.csv", 2021, "-", ""),
    ("US-CAL-CISO 2021 (EM LCA)", "electricitymaps/US-CAL-CISO_2021_hourly.csv", 2021, "-", "solar"),
    ("US-CAL-CISO 2023 (EM LCA)", "electricitymaps/US-CAL-CISO_2023_hourly.csv", 2023, "-", "solar"),
    ("NO 2021 (EM)", "electricitymaps/NO_2021_hourly.csv", 2021, "-", ""),
    ("NO 2023 (EM)", "electricitymaps/NO_2023_hourly.csv", 2023, "-", ""),
    ("BR 2021 (EM)", "electricitymaps/BR_2021_hourly.csv", 2021, "-", ""),
    ("BR 2023 (EM)", "electricitymaps/BR_2023_hourly.csv", 2023, "-", ""),
]
COLUMNS = ["1h/12h", "1h/24h", "4h/12h", "4h/24h", "8h/12h", "8h/24h"]


def published(text: str, table: str) -> dict[str, list[str]]:
    """Rows of BENCHMARKS.md table ``A``, ``B`` or ``C`` by their first cell's region-year (e.g. 'DE 2020')."""
    rows: dict[str, list[str]] = {}
    inside = False
    for line in text.splitlines():
        if line.startswith(f"**Table {table}"):
            inside = True
            continue
        if inside and line.startswith("**"):
            break
        if inside and line.startswith("|") and not line.startswith("|---") and "region" not in line:
            cells = [c.strip() for c in line.strip("|").split("|")]
            key = " ".join(cells[0].split()[:2])
            rows[key] = cells[1:]
    return rows


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--forecaster", default="auto")
    ap.add_argument("--duration", type=float, default=4.0)
    ap.add_argument("--window", type=float, default=24.0)
    ap.add_argument("--semantics", choices=["start", "deadline"], default="start")
    args = ap.parse_args()
    if not SHARED.is_dir():
        print(f"{SHARED} is absent: this benchmark needs the shared traces; nothing to do")
        return 0
    from wattwise.carbon.csvtrace import CsvTraceProvider
    from wattwise.schedule.evaluate import evaluate
    from wattwise.schedule.hourly import to_hourly

    text = (SHARED / "BENCHMARKS.md").read_text()
    table_ab = published(text, "A" if args.semantics == "start" else "B")
    table_c = published(text, "C")
    column = f"{args.duration:g}h/{args.window:g}h"
    has_column = column in COLUMNS
    print(
        f"job {args.duration:g} h, window {args.window:g} h, {args.semantics} semantics, forecaster {args.forecaster}"
    )
    header = (
        f"{'trace':<27} {'oracle':>7} {'publ.':>6} {'got':>6} {'once':>6} {'m7':>6} {'publ.m7':>8} "
        f"{'of oracle':>9} {'beats m7':>8} {'plans s':>8} {'fc s':>6}  chosen"
    )
    print(header)
    print("-" * len(header))
    failures = []
    for label, rel, year, key, kind in TRACES:
        path = SHARED / rel
        if not path.exists():
            print(f"{label:<27} missing: {path}")
            continue
        hourly = to_hourly(CsvTraceProvider(path).series)
        e = evaluate(hourly, args.duration, args.window, args.semantics, args.forecaster, year=year)
        pub_oracle = table_ab.get(key, []) or table_ab.get(key.replace("CISO", "US-CAL-CISO"), [])
        offset = 2 if args.semantics == "start" else 0  # Table A has two more leading columns
        pub = pub_oracle[offset + COLUMNS.index(column)] if has_column and pub_oracle else "-"
        pub_m7 = "-"
        if has_column and args.semantics == "start" and key in table_c:
            pub_m7 = table_c[key][COLUMNS.index(column)].split("·")[-1].strip()
        beats = e.savings_pct > e.baseline_savings_pct
        share = e.share_of_oracle_pct
        print(
            f"{label:<27} {e.oracle_savings_pct:7.1f} {pub:>6} {e.savings_pct:6.1f} {e.plan_once_savings_pct:6.1f} "
            f"{e.baseline_savings_pct:6.1f} {pub_m7:>8} {share:8.0f}% {'yes' if beats else 'NO':>8} "
            f"{e.plan_seconds:8.2f} {e.forecast_seconds:6.1f}  "
            + ", ".join(f"{k} {v}" for k, v in sorted(e.chosen.items()))
        )
        if pub != "-" and abs(e.oracle_savings_pct - float(pub)) > 0.5:
            failures.append(f"{label}: oracle {e.oracle_savings_pct:.1f} vs published {pub}")
        if not beats:
            failures.append(f"{label}: does not beat m7")
        target = {"wind": 80.0, "solar": 90.0}.get(kind)
        if target and share < target:
            failures.append(f"{label}: {share:.0f} % of the oracle, target {target:.0f} % ({kind}-driven grid)")
    print()
    print("targets missed:" if failures else "every target met")
    for line in failures:
        print(f"  {line}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
