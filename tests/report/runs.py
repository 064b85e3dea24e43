"""A realistic stored run for report tests: two channels, 1 Hz samples, epochs, a prediction, an intensity series."""

from __future__ import annotations

import math
from datetime import timedelta

from tests.store.builders import T0, make_run
from wattwise.records import ComponentEnergy, IntensityStep, Prediction, Range, Run, Sample, WindowRecord
from wattwise.store.base import RunStore

EPOCHS = 5
SECONDS = 300


def samples(seconds: int = SECONDS) -> list[Sample]:
    out = []
    cpu_j = gpu_j = 0.0
    for t in range(1, seconds + 1):
        cpu_w = 40.0 + 5.0 * math.sin(t / 10)
        gpu_w = 250.0 if t % 60 > 5 else 80.0  # a dip at each epoch boundary
        if t == 123:
            gpu_w = 700.0  # one spike that display thinning must keep
        cpu_j += cpu_w
        gpu_j += gpu_w
        out += [Sample(float(t), "cpu:package-0", cpu_w, cpu_j), Sample(float(t), "gpu:0", gpu_w, gpu_j)]
    return out


def rich_run(run_id: str = "20250301-120000-abcdef", *, name: str = "train", scale: float = 1.0) -> Run:
    cpu_j = 40.0 * SECONDS * scale
    gpu_j = 230.0 * SECONDS * scale
    per = SECONDS / EPOCHS
    windows = tuple(
        WindowRecord(
            name=f"epoch-{i + 1}",
            started_at=T0 + timedelta(seconds=i * per),
            duration_s=per,
            energy_j=(cpu_j + gpu_j) / EPOCHS,
            co2e_g=(cpu_j + gpu_j) / EPOCHS / 3.6e6 * 300.0,
            components={"cpu:package-0": cpu_j / EPOCHS, "gpu:0": gpu_j / EPOCHS},
        )
        for i in range(EPOCHS)
    )
    total = cpu_j + gpu_j
    return make_run(
        run_id,
        name=name,
        duration_s=float(SECONDS),
        energy_j=total,
        machine_energy_j=cpu_j * 1.5 + gpu_j * 1.13,
        co2e_g=total / 3.6e6 * 300.0,
        intensity_g_per_kwh=300.0,
        water_offsite_l=total / 3.6e6 * 1.5,
        emissions_method="time-resolved",
        components=(
            ComponentEnergy(
                "cpu:package-0",
                "cpu",
                cpu_j,
                cpu_j * 1.5,
                "estimated",
                "cpu-tdp-model",
                "",
                True,
                cpu_j * 0.8,
                cpu_j * 1.2,
            ),
            ComponentEnergy("gpu:0", "gpu", gpu_j, gpu_j * 1.13, "measured", "nvml-energy-counter", "NVIDIA H100"),
        ),
        windows=windows,
        prediction=Prediction(
            EPOCHS, EPOCHS, Range(total, total, total), Range(300.0, 300.0, 300.0), Range(1.0, 1.0, 1.0), "epoch-mean"
        ),
        intensity_series=(
            IntensityStep(T0 - timedelta(minutes=30), 3600.0, 310.0),
            IntensityStep(T0 + timedelta(minutes=30), 3600.0, 280.0, forecast=True),
        ),
        started_at=T0,
    )


def store_with_runs(store: RunStore, count: int = 2) -> list[Run]:
    runs = []
    for i in range(count):
        run = rich_run(f"20250301-12000{i}-abcde{i}", name=f"train-{i}", scale=1.0 + 0.5 * i)
        run = run.replace(started_at=T0 + timedelta(hours=i), ended_at=T0 + timedelta(hours=i, seconds=SECONDS))
        store.save(run)
        store.append_samples(run.id, samples())
        runs.append(run)
    return runs
