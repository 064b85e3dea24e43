"""The estimate model's arithmetic, checked by hand, and its ranges, statements and CLI."""

from __future__ import annotations

import json
import re

import pytest

from wattwise.cli.main import main
from wattwise.errors import ConfigError
from wattwise.estimate.hardware import HardwareCatalogue
from wattwise.estimate.model import TrainingInputs, estimate_training
from wattwise.estimate.statement import latex, markdown


def test_published_inputs_are_reproduced_exactly() -> None:
    # LLaMA-65B style accounting: GPU-hours × 400 W × PUE 1.1 × 0.385 kg/kWh (Touvron et al. 2023, Table 15)
    e = estimate_training(
        TrainingInputs(
            hardware="A100-SXM4-80GB",
            accelerator_hours=1_022_362,
            power_w=400,
            host_overhead=0.0,
            pue=1.1,
            intensity_g_per_kwh=385,
        )
    )
    assert e.energy_kwh.value == pytest.approx(1_022_362 * 0.4 * 1.1)
    assert e.operational_co2e_kg.value == pytest.approx(1_022_362 * 0.4 * 1.1 * 0.385)
    assert e.energy_kwh.low == e.energy_kwh.value == e.energy_kwh.high  # everything given: no spread
    assert e.total_co2e_kg.value == pytest.approx(e.operational_co2e_kg.value + e.embodied_co2e_kg.value)


def test_power_model_includes_hosts_and_matches_a_measured_v100() -> None:
    e = estimate_training(
        TrainingInputs(hardware="V100-SXM2-32GB", devices=10, hours=10, pue=1.0, intensity_g_per_kwh=100)
    )
    assert e.power_w_per_device.value == pytest.approx(0.76 * 3500 / 8)  # ≈ 333 W; Patterson measured 330 W
    assert e.energy_kwh.value == pytest.approx(100 * 0.76 * 3500 / 8 / 1000)
    assert e.power_w_per_device.low < e.power_w_per_device.value < e.power_w_per_device.high


def test_from_the_model_counts_6nd_attention_mfu_and_goodput() -> None:
    catalogue = HardwareCatalogue()
    peak = catalogue.peak_flops(catalogue.get("H100-SXM"), "bf16")
    e = estimate_training(
        TrainingInputs(
            hardware="H100-SXM",
            params=8e9,
            tokens=1e12,
            seq_len=8192,
            mfu=0.5,
            goodput=0.8,
            pue=1.0,
            intensity_g_per_kwh=0,
        )
    )
    # shape from N at d/L = 128: N = 12 · L · d² → d = (128 N / 12)^(1/3) ≈ 4,405, L ≈ 34.4 (Llama 3 8B: 4096 / 32)
    width = (128 * 8e9 / 12) ** (1 / 3)
    attention = 12 * (width / 128) * width * 8192 * 1e12
    assert e.flops == pytest.approx(6 * 8e9 * 1e12 + attention)
    assert attention / (6 * 8e9 * 1e12) == pytest.approx(8192 / (6 * width))  # the share is T / 6d, here 31 %
    assert e.accelerator_hours.value == pytest.approx((6 * 8e9 * 1e12 + attention) / (peak * 0.5 * 0.8) / 3600)
    assert e.goodput == 0.8
    moe = estimate_training(TrainingInputs(hardware="H100-SXM", params=47e9, active_params=13e9, tokens=1e12))
    assert moe.flops is not None and 6 * 13e9 * 1e12 < moe.flops < 6 * 47e9 * 1e12  # active parameters only
    default = estimate_training(TrainingInputs(hardware="H100-SXM", params=8e9, tokens=1e12))
    assert default.accelerator_hours.low < default.accelerator_hours.value < default.accelerator_hours.high
    assert any("MFU 40.0%" in a and "Llama 3" in a for a in default.assumptions)
    assert any("goodput 90%" in a and "Dubey" in a for a in default.assumptions)
    assert any("context 4,096" in a for a in default.assumptions)
    assert default.goodput == 0.9


def test_goodput_is_not_applied_twice_to_an_mfu_from_a_whole_run() -> None:
    catalogue = HardwareCatalogue()
    peak = catalogue.peak_flops(catalogue.get("V100-SXM2-32GB"), "fp16")
    # GPT-3's 21.3 % comes from its whole run's time, so its downtime is inside already
    e = estimate_training(TrainingInputs(hardware="V100-SXM2-32GB", flops=3.14e23, dtype="fp16"))
    assert e.accelerator_hours.value == pytest.approx(3.14e23 / (peak * 0.21) / 3600)
    assert e.goodput == 1.0
    assert any("already inside the MFU" in a for a in e.assumptions)
    given = estimate_training(TrainingInputs(hardware="V100-SXM2-32GB", flops=3.14e23, dtype="fp16", goodput=0.5))
    assert given.accelerator_hours.value == pytest.approx(2 * e.accelerator_hours.value)
    timed = estimate_training(TrainingInputs(hardware="H100-SXM", accelerator_hours=1000, goodput=0.5))
    assert timed.accelerator_hours.value == 1000 and timed.goodput is None
    assert any("goodput ignored" in a for a in timed.assumptions)


def test_energy_is_split_into_accelerators_and_hosts() -> None:
    e = estimate_training(TrainingInputs(hardware="H100-SXM", accelerator_hours=1000, pue=1.5, intensity_g_per_kwh=0))
    # the accelerator's own draw: 85 % of its 700 W TDP; the system: 76 % of the DGX H100's 10.2 kW / 8
    assert e.accelerator_power_w.value == pytest.approx(0.85 * 700)
    assert e.accelerator_energy_kwh.value == pytest.approx(1000 * 0.85 * 700 / 1000)
    assert e.it_energy_kwh.value == pytest.approx(1000 * 0.76 * 10_200 / 8 / 1000)
    assert e.host_energy_kwh.value == pytest.approx(e.it_energy_kwh.value - e.accelerator_energy_kwh.value)
    assert e.energy_kwh.value == pytest.approx(e.it_energy_kwh.value * 1.5)
    for part in (e.accelerator_energy_kwh, e.host_energy_kwh):
        assert 0 < part.low <= part.value <= part.high
    # TPU v4: Google's measured chip mean (170 W of a 378.5 W system, host included)
    tpu = estimate_training(TrainingInputs(hardware="TPUv4", accelerator_hours=1000, pue=1.0, intensity_g_per_kwh=0))
    assert tpu.accelerator_power_w.value == pytest.approx(170, rel=1e-3)
    assert tpu.host_energy_kwh.value == pytest.approx((378.5 - tpu.accelerator_power_w.value) * 1000 / 1000)
    # a given power is the device's unless host_overhead adds a host share
    given = estimate_training(
        TrainingInputs(hardware="H100-SXM", accelerator_hours=10, power_w=600, host_overhead=0.5, pue=1.0)
    )
    assert given.accelerator_energy_kwh.value == pytest.approx(6.0)
    assert given.host_energy_kwh.value == pytest.approx(3.0)
    # the accelerator alone never exceeds the measured system power (TPU v2: 85 % of 280 W > 221 W measured)
    v2 = estimate_training(TrainingInputs(hardware="TPUv2", accelerator_hours=10))
    assert v2.accelerator_power_w.value == pytest.approx(221) and v2.host_energy_kwh.value == pytest.approx(0)


def test_every_total_has_a_range_around_it() -> None:
    e = estimate_training(TrainingInputs(hardware="A100-SXM4-40GB", devices=64, hours=100, region="FR"))
    for r in (e.energy_kwh, e.operational_co2e_kg, e.embodied_co2e_kg, e.total_co2e_kg, e.water_l):
        assert 0 < r.low <= r.value <= r.high
    assert e.region == "FR"


def test_embodied_is_not_counted_twice_when_the_figure_covers_the_server() -> None:
    h100 = estimate_training(
        TrainingInputs(hardware="H100-SXM", accelerator_hours=8760 * 4, pue=1.0, intensity_g_per_kwh=0)
    )
    # 462.5 kg per GPU, server included, amortised over 5 years; 4 GPU-years use 4/5 of it
    assert h100.embodied_co2e_kg.value == pytest.approx(462.5 * 4 / 5)
    a100 = estimate_training(
        TrainingInputs(hardware="A100-SXM4-80GB", accelerator_hours=8760 * 5, pue=1.0, intensity_g_per_kwh=0)
    )
    assert a100.embodied_co2e_kg.value == pytest.approx(150 + 2500 / 8)


def test_cost_and_water() -> None:
    e = estimate_training(
        TrainingInputs(
            hardware="H100-SXM",
            devices=8,
            hours=10,
            pue=1.5,
            region="aws:us-east-1",
            price_usd_per_kwh=0.1,
            price_usd_per_device_hour=2.0,
        )
    )
    assert e.cost_usd is not None
    assert e.cost_usd.value == pytest.approx(e.energy_kwh.value * 0.1 + 80 * 2.0)
    it_kwh = e.energy_kwh.value / 1.5
    assert e.water_l.value > it_kwh * 0.18  # on-site at AWS's WUE, plus off-site generation water


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"mfu": 1.2}, "mfu must be above 0 and at most 1 .*fraction of the accelerators' peak"),
        ({"goodput": 0.0, "flops": 1e20}, "goodput must be above 0.*share of held"),
        ({"goodput": 1.5, "flops": 1e20}, "goodput must be above 0.*share of held"),
        ({"seq_len": -4096, "params": 1e9, "tokens": 1e9}, "seq_len must be a whole number from 1"),
        ({"devices": 2.5, "hours": 1}, "devices must be a whole number"),
        ({"intensity_g_per_kwh": 1e9, "devices": 1, "hours": 1}, "intensity_g_per_kwh must be between 0 and 5,000"),
        ({"params": 1e30, "tokens": 1e9}, "params must be above 0 and at most 1e"),
        ({"pue": 0.8}, "pue must be between"),
        ({"devices": -1, "hours": 1}, "devices must be a whole number from 1"),
        ({"hours": 5}, "hours needs devices"),
        ({}, "say how much compute"),
        ({"params": 1e9, "active_params": 2e9, "tokens": 1e9}, "active_params cannot exceed"),
    ],
)
def test_bad_inputs(changes: dict[str, float], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        estimate_training(TrainingInputs(hardware="H100-SXM", **changes))  # type: ignore[arg-type]


def test_unknown_hardware_lists_close_names() -> None:
    with pytest.raises(ConfigError, match="H100"):
        estimate_training(TrainingInputs(hardware="H100-SXN", devices=1, hours=1))


def test_statements_carry_the_numbers_and_assumptions() -> None:
    e = estimate_training(TrainingInputs(hardware="H100-SXM", devices=512, hours=100, region="DE"))
    md = markdown(e, "Model-X")
    assert "Training Model-X used an estimated 51,200 accelerator-hours" in md
    assert "| Total emissions (CO2e) | " in md and "Assumptions:" in md
    assert "59.5 MWh of electricity (range 43.1–84.6 MWh)" in md
    tex = latex(e, "Model_X")
    assert (
        r"\begin{tabular}{lrr}" in tex and r"Model\_X" in tex and "CO$_2$e" in tex and "%" not in tex.replace(r"\%", "")
    )


def test_small_jobs_are_stated_in_small_units_never_zero() -> None:
    e = estimate_training(TrainingInputs(hardware="H100-SXM", devices=1, hours=0.01, region="DE"))
    md = markdown(e)
    paragraph = md.splitlines()[0]
    assert " 0.0 MWh" not in md and "0.00 t" not in md
    assert re.search(r"and \d+(\.\d+)? Wh of electricity \(range \d+(\.\d+)?–\d+(\.\d+)? Wh\)", paragraph)
    assert re.search(r"corresponds to \d+(\.\d+)? g CO2e of operational emissions", paragraph)
    assert "| Accelerator-hours | 0.01 |" in md
    big = markdown(estimate_training(TrainingInputs(hardware="H100-SXM", params=70e9, tokens=2e12, region="DE")))
    assert re.search(r"\d MWh of electricity", big) and re.search(r"\d t CO2e of operational", big)


def test_cli_json_and_errors(capsys: pytest.CaptureFixture[str]) -> None:
    assert (
        main(
            [
                "estimate",
                "training",
                "--hardware",
                "H100-SXM",
                "--devices",
                "1024",
                "--hours",
                "240",
                "--power-w",
                "550",
                "--pue",
                "1.1",
                "--intensity",
                "385",
                "--json",
            ]
        )
        == 0
    )
    data = json.loads(capsys.readouterr().out)
    for key in (
        "energy_kwh",
        "operational_co2e_kg",
        "embodied_co2e_kg",
        "total_co2e_kg",
        "water_l",
        "accelerator_hours",
        "cost_usd",
        "low",
        "high",
    ):
        assert key in data
    assert data["energy_kwh"] == pytest.approx(1024 * 240 * 0.55 * 1.1)
    assert (
        main(["estimate", "training", "--hardware", "H100-SXM", "--devices", "8", "--hours", "1", "--format", "latex"])
        == 0
    )
    assert r"\begin{table}" in capsys.readouterr().out
    assert (
        main(
            [
                "estimate",
                "inference",
                "--hardware",
                "A100-SXM4-80GB",
                "--params",
                "7e9",
                "--tokens-per-request",
                "300",
                "--requests-per-day",
                "1e4",
                "--json",
            ]
        )
        == 0
    )
    assert "energy_wh_per_1k_tokens" in json.loads(capsys.readouterr().out)
    assert main(["estimate", "training", "--hardware", "Z80", "--devices", "1", "--hours", "1"]) == 2
    assert "unknown hardware" in capsys.readouterr().err.lower()
    args = ["estimate", "training", "--hardware", "H100-SXM", "--params", "7e9", "--tokens", "1e12", "--json"]
    assert main([*args, "--goodput", "1", "--seq-len", "2048"]) == 0
    whole = json.loads(capsys.readouterr().out)
    assert whole["goodput"] == 1.0 and whole["inputs"]["seq_len"] == 2048
    assert whole["it_energy_kwh"] == pytest.approx(whole["accelerator_energy_kwh"] + whole["host_energy_kwh"])
    assert main([*args, "--goodput", "0.5", "--seq-len", "2048"]) == 0
    assert json.loads(capsys.readouterr().out)["accelerator_hours"] == pytest.approx(2 * whole["accelerator_hours"])
    assert main([*args, "--goodput", "2"]) == 2
    assert "goodput" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"devices": 8, "hours": 10, "accelerator_hours": 5}, "not both"),
        ({"accelerator_hours": 5, "hours": 3}, "not both"),
        ({"flops": 1e20, "params": 1e9, "tokens": 1e9}, "flops or params"),
        ({"devices": 8, "hours": 1e308}, "hours must be above 0 and at most"),
    ],
)
def test_conflicting_or_absurd_training_inputs(changes: dict[str, float], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        estimate_training(TrainingInputs(hardware="H100-SXM", **changes))  # type: ignore[arg-type]


def test_water_is_split_on_and_off_site(capsys: pytest.CaptureFixture[str]) -> None:
    assert (
        main(
            [
                "estimate",
                "training",
                "--hardware",
                "H100-SXM",
                "--devices",
                "8",
                "--hours",
                "10",
                "--region",
                "aws:us-east-1",
                "--json",
            ]
        )
        == 0
    )
    data = json.loads(capsys.readouterr().out)
    assert data["water_l"] == pytest.approx(data["water_onsite_l"] + data["water_offsite_l"])
    assert data["water_onsite_l"] > 0 and data["low"]["water_onsite_l"] <= data["water_onsite_l"]


def test_latex_escapes_in_one_pass() -> None:
    from wattwise.report.tex import tex as _tex

    assert _tex("C:\\models & 50%_x") == r"C:\textbackslash{}models \& 50\%\_x"
