"""A builder for plausible runs and Hypothesis strategies for arbitrary ones."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from hypothesis import strategies as st

from wattwise.records import RUN_STATUSES, ComponentEnergy, Prediction, Range, Run, Sample, WindowRecord
from wattwise.store.base import this_host

T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
HOST = this_host()

GPU = ComponentEnergy(
    name="gpu:0",
    component="gpu",
    energy_j=900.0,
    machine_energy_j=1000.0,
    source="measured",
    method="nvml-energy-counter",
    detail="NVIDIA H100",
)
CPU = ComponentEnergy(
    name="cpu:package-0",
    component="cpu",
    energy_j=250.5,
    machine_energy_j=400.25,
    source="estimated",
    method="cpu-tdp-model",
    low_j=200.0,
    high_j=300.0,
)


def make_run(run_id: str = "a1b2c3d4e5f60718", **changes: Any) -> Run:
    """A finished two-component run; keyword arguments replace fields."""
    run = Run(
        id=run_id,
        name="train",
        status="complete",
        started_at=T0,
        ended_at=T0 + timedelta(seconds=60),
        duration_s=60.0,
        energy_j=1150.5,
        machine_energy_j=1400.25,
        co2e_g=0.121,
        region="DE",
        intensity_g_per_kwh=380.0,
        intensity_source="static:ember-2023",
        pue=1.0,
        attribution="process",
        components=(GPU, CPU),
        command=("python", "train.py"),
        exit_code=0,
        host="elsewhere.example",
        pid=4242,
        wattwise_version="0.1.0",
    )
    return run.replace(**changes)


# --- Hypothesis strategies -------------------------------------------------------------------------------

finite = st.floats(allow_nan=False, allow_infinity=False)
maybe_finite = st.none() | finite
text = st.text(max_size=30)
moments = st.datetimes(
    min_value=datetime(1970, 1, 2),
    max_value=datetime(2200, 1, 1),
    timezones=st.sampled_from(
        [
            UTC,
            timezone(timedelta(hours=5, minutes=30)),
            timezone(timedelta(hours=-8)),
            timezone(-timedelta(minutes=150)),
        ]
    ),
)
components = st.builds(
    ComponentEnergy,
    name=text,
    component=text,
    energy_j=finite,
    machine_energy_j=finite,
    source=st.sampled_from(["measured", "estimated"]),
    method=text,
    detail=text,
    in_total=st.booleans(),
    low_j=maybe_finite,
    high_j=maybe_finite,
)
windows = st.builds(
    WindowRecord,
    name=text,
    started_at=moments,
    duration_s=finite,
    energy_j=finite,
    co2e_g=finite,
    components=st.dictionaries(text, finite, max_size=4),
    parent=st.none() | text,
)
ranges = st.builds(Range, value=finite, low=finite, high=finite)
predictions = st.builds(
    Prediction,
    epochs_done=st.integers(),
    epochs_planned=st.integers(),
    energy_j=ranges,
    duration_s=ranges,
    co2e_g=ranges,
    method=text,
)
runs = st.builds(
    Run,
    id=st.text(min_size=1, max_size=40),
    name=text,
    status=st.sampled_from(RUN_STATUSES),
    started_at=moments,
    duration_s=finite,
    energy_j=finite,
    machine_energy_j=finite,
    co2e_g=finite,
    region=text,
    intensity_g_per_kwh=finite,
    intensity_source=text,
    pue=finite,
    attribution=st.sampled_from(["process", "machine"]),
    components=st.lists(components, max_size=4).map(tuple),
    windows=st.lists(windows, max_size=3).map(tuple),
    prediction=st.none() | predictions,
    ended_at=st.none() | moments,
    command=st.none() | st.lists(text, max_size=4).map(tuple),
    exit_code=st.none() | st.integers(),
    error=st.none() | text,
    host=text.filter(lambda h: h != HOST),  # never this host: a "running" run must not look stale
    pid=st.integers(min_value=0, max_value=2**31),
    notes=st.lists(text, max_size=3).map(tuple),
    wattwise_version=text,
)
samples = st.builds(Sample, t_s=finite, channel=text, power_w=finite, energy_j=finite)
