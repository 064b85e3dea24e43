"""Train an energy-aware agent to schedule a 4 h job within 24 h against a real intensity trace, and compare it
with wattwise's planner on held-out weeks.

    .venv/bin/python examples/energy_aware_agent.py [--trace FILE] [--iterations 12]

The agent is a linear policy (start when w·observation + b > 0) trained by the cross-entropy method on the
trace's first weeks (CarbonSchedulingEnv from wattwise.schedule.gym_env); the last 8 weeks are held out. The
planner is ``wattwise schedule``'s forecast-and-replan policy with the ``anomaly`` forecaster. Every figure is the
share of emissions saved against starting at submission, on what actually happened. Without --trace it uses the
German 2020 trace from ../shared when present, else a synthetic one (and says so). At the end, a few steps run
under EnergyRewardWrapper, which charges the agent for the energy its own steps use, measured by wattwise.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from wattwise.schedule.evaluate import forecast_all
from wattwise.schedule.forecast import forecaster
from wattwise.schedule.gym_env import CarbonSchedulingEnv, EnergyRewardWrapper
from wattwise.schedule.hourly import Hourly, to_hourly
from wattwise.schedule.replay import replay

SHARED = Path(__file__).resolve().parents[2] / "shared/data/carbon-intensity/lets-wait-awhile/ger_ci.csv"
HELD_OUT_H = 8 * 7 * 24


def load(trace: str | None) -> tuple[Hourly, str]:
    from wattwise.carbon.csvtrace import CsvTraceProvider

    path = Path(trace) if trace else SHARED
    if path.exists():
        return to_hourly(CsvTraceProvider(path).series), str(path)
    rng = np.random.default_rng(0)
    t = np.arange(24 * 200)
    weather = np.zeros(len(t))
    for i in range(1, len(t)):
        weather[i] = 0.95 * weather[i - 1] + rng.normal(0, 12)
    values = 300 + 60 * np.sin(2 * np.pi * (t % 24) / 24) + weather
    from datetime import UTC, datetime

    return Hourly(datetime(2024, 1, 1, tzinfo=UTC), values), f"synthetic ({SHARED} absent)"


def run_policy(env: CarbonSchedulingEnv, weights: np.ndarray, submissions: np.ndarray) -> float:
    saved = []
    for at in submissions:
        obs, _ = env.reset(options={"submission": int(at)})
        while True:
            action = int(obs @ weights[:-1] + weights[-1] > 0)
            obs, reward, done, _, _ = env.step(action)
            if done:
                saved.append(reward)
                break
    return float(np.mean(saved))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--trace")
    ap.add_argument("--iterations", type=int, default=12)
    args = ap.parse_args()
    hourly, label = load(args.trace)
    values = np.nan_to_num(hourly.values, nan=float(np.nanmean(hourly.values)))
    split = len(values) - HELD_OUT_H - 30
    train = CarbonSchedulingEnv(values, hours=range(8 * 24, split), first_hour=hourly.first_hour)
    test = CarbonSchedulingEnv(values, hours=range(split, len(values)), first_hour=hourly.first_hour)
    rng = np.random.default_rng(1)
    size = train.observation_space.shape[0] + 1  # type: ignore[index]
    mean, std = np.zeros(size), np.ones(size)
    mean[-1] = 0.5  # start with "start now"
    for it in range(args.iterations):
        batch = rng.choice(train.submissions, 40, replace=False)
        pop = mean + std * rng.normal(size=(30, size))
        scores = np.array([run_policy(train, w, batch) for w in pop])
        elite = pop[np.argsort(scores)[-6:]]
        mean, std = elite.mean(axis=0), elite.std(axis=0) + 0.02
        print(f"iteration {it + 1:2d}: training savings {scores.max() * 100:5.1f} % (best of 30)")
    held = test.submissions[::3]
    agent = run_policy(test, mean, held) * 100
    forecasts = forecast_all(forecaster("anomaly"), Hourly(hourly.start, values), 28)
    outcome = replay(values, forecasts, 4, 24, "start")
    mask = np.zeros(len(values), dtype=bool)
    mask[held] = True
    print(f"\ntrace: {label}; held-out: the last 8 weeks ({len(held)} submissions)")
    print(f"  agent (linear policy, cross-entropy)  {agent:5.1f} %")
    print(f"  planner (anomaly forecast, re-plan)   {outcome.savings_pct(mask):5.1f} %")
    print(f"  oracle (hindsight)                    {outcome.oracle_pct(mask):5.1f} %")
    wrapped = EnergyRewardWrapper(test, price_per_j=1e-4)
    wrapped.reset(options={"submission": int(held[0])})
    for _ in range(3):
        _, _, done, _, info = wrapped.step(0)
        print(f"  a measured step used {info['energy_j']:.4f} J (charged {info['energy_charge']:.2e})")
        if done:
            break
    wrapped.close()


if __name__ == "__main__":
    main()
