"""Batch planning: the exact MILP on 200 jobs over a 72 h hourly horizon and the greedy on 10,000 jobs.

Targets (issue 12): 200 jobs solved to optimality in under 30 s; 10,000 jobs greedily in under 5 s; the greedy's
gap to the optimum wherever both run. The outlook is a real week of German intensity when ../shared is there
(lets-wait-awhile ger_ci.csv, 2020-06-01), else a synthetic daily cycle (said in the output). Job sets are
random but seeded: durations 1-8 h, releases in the first day, deadlines up to 72 h, 0.3-8 kW, 1-2 units.

    .venv/bin/python benchmarks/batch.py [--seeds 3]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

from wattwise.schedule.batch import BatchJob, greedy, plan_batch

TRACE = Path(__file__).resolve().parents[2] / "shared/data/carbon-intensity/lets-wait-awhile/ger_ci.csv"
HORIZON = 72


def outlook() -> tuple[np.ndarray, str]:
    if TRACE.exists():
        from datetime import UTC, datetime, timedelta

        from wattwise.carbon.csvtrace import CsvTraceProvider
        from wattwise.schedule.hourly import to_hourly

        start = datetime(2020, 6, 1, tzinfo=UTC)
        hourly = to_hourly(CsvTraceProvider(TRACE).series).between(start, start + timedelta(hours=HORIZON + 1))
        return hourly.values, f"{TRACE.name} from 2020-06-01 (real)"
    t = np.arange(HORIZON + 1)
    return 300 + 80 * np.sin(2 * np.pi * t / 24), f"synthetic daily cycle ({TRACE} absent)"


def jobs(n: int, seed: int) -> list[BatchJob]:
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        duration = int(rng.integers(1, 9))
        release = int(rng.integers(0, 24))
        deadline = min(release + duration + int(rng.integers(0, 48)), HORIZON)
        release = min(release, deadline - duration)
        out.append(BatchJob(f"j{i}", duration, deadline, float(rng.uniform(0.3, 8)), int(rng.integers(1, 3)), release))
    return out


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, default=3)
    args = ap.parse_args()
    values, label = outlook()
    print(f"outlook: {label}, {HORIZON} h")
    head = f"{'jobs':>6} {'capacity':>8} {'seed':>4} {'method':<18} {'solve s':>8} {'saved %':>8}"
    print(f"{head} {'greedy s':>9} {'gap %':>7}")
    for n, capacity in ((200, 40), (200, 25), (10_000, 1500)):
        for seed in range(args.seeds):
            batch = jobs(n, seed)
            if n <= 1000:
                plan = plan_batch(batch, values, capacity, method="milp")
                t0 = time.perf_counter()
                greedy(batch, values, capacity)
                greedy_s = time.perf_counter() - t0
                print(
                    f"{n:>6} {capacity:>8} {seed:>4} {plan.method:<18} {plan.seconds:8.2f} {plan.savings_pct:8.2f} "
                    f"{greedy_s:9.3f} {plan.gap_to_optimum_pct or 0:7.2f}"
                )
            else:
                plan = plan_batch(batch, values, capacity, method="greedy")
                print(
                    f"{n:>6} {capacity:>8} {seed:>4} {plan.method:<18} {'-':>8} {plan.savings_pct:8.2f} "
                    f"{plan.seconds:9.3f} {'-':>7}"
                )
    return 0


if __name__ == "__main__":
    sys.exit(main())
