"""A builder for plausible runs and Hypothesis strategies for arbitrary ones."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from hypothesis import strategies as st

from wattwise.records import (
    RUN_STATUSES,
    ComponentEnergy,
    IntensityStep,
    Prediction,
    Range,
    Run,
    Sample,
    WindowRecord,
    Work,
)
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


def energised(run: Run, energy_j: float, machine_energy_j: float | None = None) -> Run:
    """``run`` with these totals, and one component that holds them (a record's totals are its components' sums)."""
    machine = max(energy_j, machine_energy_j if machine_energy_j is not None else energy_j)
    part = ComponentEnergy("cpu", "cpu", energy_j, machine, "measured", "rapl")
    return run.replace(energy_j=energy_j, machine_energy_j=machine, components=(part,))


def make_run(run_id: str = "a1b2c3d4e5f60718", **changes: Any) -> Run:
    """A finished two-component run; keyword arguments replace fields. Totals given without components get one
    component that holds them."""
    if ("energy_j" in changes or "machine_energy_j" in changes) and "components" not in changes:
        energy = changes.pop("energy_j", 1150.5)
        machine = changes.pop("machine_energy_j", None)
        return energised(make_run(run_id, **changes), energy, machine)
    if "started_at" in changes and "ended_at" not in changes:
        changes["ended_at"] = changes["started_at"] + timedelta(seconds=changes.get("duration_s", 60.0))
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


# --- Hypothesis strategies: any run the store accepts --------------------------------------------------------

finite = st.floats(allow_nan=False, allow_infinity=False)
energy = st.floats(min_value=0.0, max_value=1e12, allow_nan=False)
seconds = st.floats(min_value=0.0, max_value=1e8, allow_nan=False)
counts = st.floats(min_value=0.0, max_value=1e15, allow_nan=False)
text = st.text(max_size=30)
run_ids = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,40}", fullmatch=True)
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


@st.composite
def components(draw: st.DrawFn, name: str) -> ComponentEnergy:
    energy_j = draw(energy)
    return ComponentEnergy(
        name=name,
        component=draw(text),
        energy_j=energy_j,
        machine_energy_j=draw(st.floats(min_value=energy_j, max_value=2e12, allow_nan=False)),
        source=draw(st.sampled_from(["measured", "estimated"])),
        method=draw(text),
        detail=draw(text),
        in_total=draw(st.booleans()),
        low_j=draw(st.none() | energy),
        high_j=draw(st.none() | energy),
    )


windows = st.builds(
    WindowRecord,
    name=st.text(min_size=1, max_size=30),
    started_at=moments,
    duration_s=seconds,
    energy_j=energy,
    co2e_g=energy,
    components=st.dictionaries(text, energy, max_size=4),
    parent=st.none() | text,
)


@st.composite
def ranges(draw: st.DrawFn, values: st.SearchStrategy[float] = energy) -> Range:
    low, value, high = sorted(draw(values) for _ in range(3))
    return Range(value=value, low=low, high=high)


predictions = st.builds(
    Prediction,
    epochs_done=st.integers(1, 10_000),
    epochs_planned=st.integers(1, 10_000),
    energy_j=ranges(),
    duration_s=ranges(seconds),
    co2e_g=ranges(),
    method=text,
)


@st.composite
def runs(draw: st.DrawFn) -> Run:
    names = draw(st.lists(st.text(min_size=1, max_size=12), min_size=1, max_size=4, unique=True))
    parts = tuple(draw(components(name)) for name in names)
    started = draw(moments)
    duration_s = draw(seconds)
    return Run(
        id=draw(run_ids),
        name=draw(text),
        status=draw(st.sampled_from(RUN_STATUSES)),
        started_at=started,
        duration_s=duration_s,
        energy_j=sum(c.energy_j for c in parts if c.in_total),
        machine_energy_j=sum(c.machine_energy_j for c in parts if c.in_total),
        co2e_g=draw(energy),
        region=draw(text),
        intensity_g_per_kwh=draw(st.floats(0.0, 5000.0)),
        intensity_source=draw(text),
        pue=draw(st.floats(1.0, 5.0)),
        attribution=draw(st.sampled_from(["process", "machine"])),
        components=parts,
        windows=tuple(draw(st.lists(windows, max_size=3))),
        prediction=draw(st.none() | predictions),
        ended_at=draw(st.none() | st.just(started + timedelta(seconds=duration_s))),
        command=draw(st.none() | st.lists(text, max_size=4).map(tuple)),
        exit_code=draw(st.none() | st.integers(-255, 255)),
        error=draw(st.none() | text),
        host=draw(text.filter(lambda h: h != HOST)),  # never this host: a "running" run must not look stale
        pid=draw(st.integers(min_value=0, max_value=2**31 - 1)),
        notes=tuple(draw(st.lists(text, max_size=3))),
        wattwise_version=draw(text),
        intensity_series=tuple(
            draw(
                st.lists(
                    st.builds(
                        IntensityStep,
                        start=moments,
                        duration_s=seconds,
                        intensity_g_per_kwh=st.floats(0.0, 5000.0),
                        forecast=st.booleans(),
                    ),
                    max_size=3,
                )
            )
        ),
        work=draw(st.none() | st.builds(Work, output_tokens=counts, requests=counts, prompt_tokens=counts)),
    )


samples = st.builds(Sample, t_s=finite, channel=text, power_w=finite, energy_j=finite)
