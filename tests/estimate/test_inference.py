"""Serving estimates from the physics of decoding: what falls with batch, what memory and compute bound, what each
boundary adds, and one clear line for each input that cannot be served."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from wattwise.cli.main import main
from wattwise.errors import ConfigError
from wattwise.estimate.hardware import HardwareCatalogue
from wattwise.estimate.inference import InferenceInputs, estimate_inference
from wattwise.estimate.serving import ENGINES, Efficiencies, Engine, ModelShape, ServingPhysics, decode_and_prefill

BASE = InferenceInputs(
    hardware="H100-SXM", params=8e9, tokens_per_request=300, prompt_tokens=200, pue=1.2, intensity_g_per_kwh=400
)
NO_HOST = Engine("none", 0.0, 0.0, 0.0, overlapped=False)


def physics(batch: int, shape: ModelShape, **changes: float) -> ServingPhysics:
    catalogue = HardwareCatalogue()
    hw = catalogue.get("H100-SXM")
    values = {"bandwidth": 0.8, "kv_bandwidth": 0.5, "compute": 0.6, "memory_power": 0.6, "idle_share": 0.15}
    values.update(wait_share=0.25, **changes)
    return decode_and_prefill(
        hw,
        1,
        shape,
        batch=batch,
        prompt_tokens=200,
        output_tokens=300,
        peak_flops=catalogue.peak_flops(hw, "bf16"),
        engine=NO_HOST,
        efficiencies=Efficiencies(layer_latency_s=0.0),
        **values,
    )


def test_energy_per_token_falls_with_batch_then_levels_once_compute_bound() -> None:
    per_token = []
    for batch in (1, 4, 16, 64, 256):
        e = estimate_inference(replace(BASE, batch=batch, boundary="accelerator"))
        per_token.append(e.j_per_output_token.value)
        assert e.j_per_output_token.low <= e.j_per_output_token.value <= e.j_per_output_token.high
    assert per_token == sorted(per_token, reverse=True)
    assert per_token[0] / per_token[-1] > 5  # ML.ENERGY: 6-8x from batch 8 to 256
    small = physics(1, ModelShape(8e9, 8e9, "bf16"))
    big = physics(4096, ModelShape(8e9, 8e9, "bf16"))
    assert small.bound == "memory" and big.bound == "compute"


def test_a_memory_bound_step_scales_with_bandwidth() -> None:
    shape = ModelShape(8e9, 8e9, "bf16")
    slow, fast = physics(1, shape), physics(1, shape, bandwidth=1.6, kv_bandwidth=1.0)
    assert slow.kernel_s == pytest.approx(2 * fast.kernel_s, rel=1e-9)


def test_a_mixture_of_experts_reads_its_active_experts_at_batch_one_and_all_of_them_soon_after() -> None:
    moe = ModelShape(141e9, 39e9, "bf16")
    dense_active, dense_total = ModelShape(39e9, 39e9, "bf16"), ModelShape(141e9, 141e9, "bf16")
    one = physics(1, moe).kernel_s
    # the shape (layers, KV) follows the active parameters, so at batch 1 the MoE step is the 39 B dense one
    assert one == pytest.approx(physics(1, dense_active).kernel_s, rel=1e-6)
    weights_64 = 141e9 * (1 - (1 - 39 / 141) ** 64) * 2
    assert weights_64 > 0.99 * 141e9 * 2  # batch 64 touches nearly every expert
    assert physics(64, moe).kernel_s > 3 * one
    assert physics(64, moe).kernel_s < physics(64, dense_total).kernel_s


def test_boundaries_add_hosts_then_the_facility() -> None:
    accelerator = estimate_inference(replace(BASE, batch=32, boundary="accelerator"))
    server = estimate_inference(replace(BASE, batch=32, boundary="server"))
    facility = estimate_inference(replace(BASE, batch=32, boundary="facility"))
    assert server.wh_per_request.value > accelerator.wh_per_request.value
    assert facility.wh_per_request.value == pytest.approx(server.wh_per_request.value * 1.2)
    assert facility.co2e_g_per_request.value == pytest.approx(facility.wh_per_request.value * 0.4)
    assert facility.wh_per_1k_requests.value == pytest.approx(facility.wh_per_request.value * 1000)
    assert facility.kwh_per_day.value == pytest.approx(facility.wh_per_request.value * facility.requests_per_day / 1000)
    assert facility.water_ml_per_request.value > 0


def test_idle_hours_count_when_the_load_is_given() -> None:
    busy = estimate_inference(replace(BASE, batch=32))
    light = estimate_inference(replace(BASE, batch=32, requests_per_day=busy.requests_per_day / 100))
    # a hundredth of the load keeps few requests in flight: the batch it can fill is small (Little's law)
    assert any("in flight" in a and "not 32" in a for a in light.assumptions)
    assert 0.01 < light.busy_share < 1
    assert light.wh_per_request.value > 5 * busy.wh_per_request.value  # small batches, and idle hours shared
    with pytest.raises(ConfigError, match=r"serve at most [\d,]+ requests a day"):
        estimate_inference(replace(BASE, batch=32, requests_per_day=busy.requests_per_day * 2))


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"batch": 0}, "batch must be a whole number from 1"),
        ({"active_params": 9e9}, r"active_params \(9e\+09\) cannot exceed params"),
        ({"hardware": "A100-SXM4-80GB", "dtype": "fp8"}, "A100-SXM4-80GB has no fp8 arithmetic"),
        ({"params": 70e9}, r"does not fit: its weights need 140 GB in bf16, and 1 × H100-SXM hold 72 GB usable"),
        ({"dtype": "fp4"}, "dtype must be one of"),
        ({"boundary": "planet"}, "boundary must be one of accelerator, server, facility"),
        ({"engine": "warp"}, "engine must be one of"),
        ({"tokens_per_request": 0.0}, "tokens_per_request must be between 1 and"),
        ({"prompt_tokens": 1e7}, "not even one request fits"),
        ({"devices": 0}, "devices must be"),
    ],
)
def test_bad_inputs_are_one_clear_error(changes: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        estimate_inference(replace(BASE, **changes))  # type: ignore[arg-type]


def test_weight_only_int4_needs_a_quarter_of_the_memory_and_runs_on_an_a100() -> None:
    bf16 = estimate_inference(replace(BASE, hardware="A100-SXM4-80GB", params=30e9))
    int4 = estimate_inference(replace(BASE, hardware="A100-SXM4-80GB", params=30e9, dtype="int4"))
    assert int4.memory_needed_gb < 0.3 * bf16.memory_needed_gb
    assert int4.j_per_output_token.value < bf16.j_per_output_token.value  # batch 1 reads a quarter of the bytes


def test_cli_json_has_the_figures_and_every_assumption(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["estimate", "inference", "--hardware", "H100-SXM", "--devices", "4", "--params", "70e9"]
    argv += ["--batch", "64", "--prompt-tokens", "400", "--tokens-per-request", "350", "--boundary", "accelerator"]
    assert main([*argv, "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    for key in ("j_per_output_token", "wh_per_request", "wh_per_1k_requests", "kwh_per_day", "boundary", "assumptions"):
        assert key in data
    assert data["boundary"] == "accelerator" and data["low"]["j_per_output_token"] <= data["j_per_output_token"]
    assert any("GB/s" in a and "datasheet" in a for a in data["assumptions"])
    assert main([*argv, "--batch", "0"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "batch must be a whole number" in err
    assert sorted(ENGINES) == ["batched", "eager", "overlapped"]


def test_a_device_the_catalogue_lacks_figures_for_is_described_by_the_user() -> None:
    cpu = replace(BASE, hardware="EPYC-7763", params=16.8e6, dtype="fp32", engine="eager", boundary="accelerator")
    with pytest.raises(ConfigError, match="EPYC-7763 has no fp32 arithmetic"):
        estimate_inference(cpu)
    given = replace(cpu, peak_tflops=0.08, memory_bandwidth_gbs=20.0, power_w=7.0)
    one, wider = estimate_inference(given), estimate_inference(replace(given, memory_bandwidth_gbs=40.0))
    assert any("20 GB/s (as given)" in a for a in one.assumptions)
    assert wider.step_ms <= one.step_ms
    for name, value, said in (
        ("peak_tflops", 0.0, "peak_tflops must be above 0"),
        ("memory_bandwidth_gbs", -1.0, "memory_bandwidth_gbs must"),
    ):
        with pytest.raises(ConfigError, match=said):
            estimate_inference(replace(given, **{name: value}))  # type: ignore[arg-type]
