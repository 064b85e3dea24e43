"""Write the SYNTHETIC NVML traces in this folder. They are made up, not recorded, and named so.

Real traces come from ``benchmarks/record_nvml_trace.py`` on a machine with an NVIDIA GPU; add them beside
these under a name that says which GPU recorded them (``h100_…csv``), never ``synthetic_…``.

The model behind the synthetic ones: a true power that steps between load phases, with a little seeded noise;
NVML's power reading follows it with a lag (NVML reports an average over a short window); the energy counter
integrates the true power exactly, in whole millijoules, from an arbitrary value the driver had reached. So
power sampling disagrees with the counter by a few per cent, as on real GPUs, while the counter is exact.

Run: ``python tests/data/nvml/make_synthetic.py`` (deterministic: the same files every time).
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from pathlib import Path

HERE = Path(__file__).resolve().parent
STEP_S = 0.1
LAG = 0.35  # fraction of the gap between reading and true power closed per step


def _phases(spec: Sequence[tuple[float, float]], seconds: float) -> list[float]:
    """The true power (W) per step from (start_s, watts) phases."""
    steps = round(seconds / STEP_S) + 1
    powers = []
    for k in range(steps):
        t_s = k * STEP_S
        powers.append(next(w for start, w in reversed(spec) if t_s + 1e-9 >= start))
    return powers


def write_trace(path: Path, title: str, true_w: list[float], counter_start_mj: int | None, seed: int) -> None:
    rng = random.Random(seed)
    reading_mw = true_w[0] * 1000.0
    energy_mj = counter_start_mj
    lines = [
        "# SYNTHETIC trace, not a recording: written by tests/data/nvml/make_synthetic.py",
        f"# gpu 0: {title}; step {STEP_S} s; seed {seed}",
        "t_s,index,power_mw,energy_mj",
    ]
    for k, watts in enumerate(true_w):
        noisy_mw = watts * 1000.0 * (1.0 + rng.uniform(-0.03, 0.03))
        reading_mw += (noisy_mw - reading_mw) * LAG
        energy = "" if energy_mj is None else str(energy_mj)
        lines.append(f"{k * STEP_S:.1f},0,{round(reading_mw)},{energy}")
        if energy_mj is not None:
            energy_mj += round(noisy_mw * STEP_S)  # mW × s = mJ
    path.write_text("\n".join(lines) + "\n")


def main() -> None:
    a100 = [(0, 58.0), (3, 180.0), (5, 310.0), (8, 61.0), (11, 395.0), (18, 64.0), (20, 220.0), (26, 60.0)]
    write_trace(
        HERE / "synthetic_a100_counter.csv",
        "synthetic A100-like GPU with an energy counter, idle and three load levels",
        _phases(a100, 30.0),
        counter_start_mj=4_211_337_905,
        seed=7,
    )
    p100 = [(0, 32.0), (2, 240.0), (9, 35.0), (12, 160.0), (17, 33.0)]
    write_trace(
        HERE / "synthetic_p100_no_counter.csv",
        "synthetic P100-like GPU without an energy counter (pre-Volta)",
        _phases(p100, 20.0),
        counter_start_mj=None,
        seed=11,
    )


if __name__ == "__main__":
    main()
