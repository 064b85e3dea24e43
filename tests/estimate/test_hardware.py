"""The hardware catalogue: every packaged row parses with sources, peaks are dense, names resolve by the documented
rules, and bad tables or names fail with one clear line."""

from __future__ import annotations

import dataclasses
import math

import pytest

from wattwise.errors import ConfigError
from wattwise.estimate.hardware import DTYPES, Hardware, HardwareCatalogue, resolve_dtype

HEADER = (
    "name,kind,vendor,year,tdp_w,fp64,fp32,tf32,bf16,fp16,fp8,int8,memory_gb,memory_bandwidth_gbs,bandwidth_source,"
    "embodied_kgco2e,embodied_source,"
    "avg_power_fraction,avg_power_source,aliases,sources\n"
)
GOOD = "X1,gpu,Acme,2024,100,,,,50,50,,,8,300,Acme brief,,not published,,not published,X1-8GB;Xone,Acme datasheet\n"


@pytest.fixture(scope="module")
def catalogue() -> HardwareCatalogue:
    return HardwareCatalogue()


def tiny(*rows: str) -> HardwareCatalogue:
    return HardwareCatalogue(HEADER + "".join(rows))


# -- the packaged table -----------------------------------------------------------------------------------------------


def test_every_row_parses_with_positive_figures_and_sources(catalogue: HardwareCatalogue) -> None:
    rows = catalogue.all()
    assert len(rows) >= 30
    for hw in rows:
        assert hw.sources.strip() and hw.embodied_source.strip() and hw.avg_power_source.strip(), hw.name
        assert set(hw.peak_tflops) <= set(DTYPES), hw.name
        assert all(v > 0 and math.isfinite(v) for v in hw.peak_tflops.values()), hw.name
        for value in (hw.tdp_w, hw.memory_gb, hw.embodied_kgco2e, hw.avg_power_fraction):
            assert value is None or value > 0, hw.name
        if hw.embodied_kgco2e is None:
            assert hw.embodied_source, hw.name
        if hw.kind != "cpu":
            assert hw.peak_tflops, f"{hw.name} has no peak at all"
        assert hw.kind in ("gpu", "tpu", "accelerator", "cpu")


def test_required_devices_are_covered(catalogue: HardwareCatalogue) -> None:
    names = {hw.name for hw in catalogue.all()}
    required = {
        "P100-PCIe-16GB", "P100-SXM2", "V100-PCIe-16GB", "V100-PCIe-32GB", "V100-SXM2-16GB", "V100-SXM2-32GB", "T4",
        "A10", "A40", "A100-PCIe-40GB", "A100-PCIe-80GB", "A100-SXM4-40GB", "A100-SXM4-80GB", "L4", "L40S",
        "H100-PCIe", "H100-SXM", "H100-NVL", "H200-SXM", "B200", "GB200", "MI100", "MI250X", "MI300X",
        "TPUv2", "TPUv3", "TPUv4", "TPUv5e", "TPUv5p", "EPYC-7763", "EPYC-9654", "Xeon-8380", "Xeon-8480+",
    }  # fmt: skip
    assert required <= names
    kinds = {hw.kind for hw in catalogue.all()}
    assert {"gpu", "tpu", "cpu"} <= kinds


@pytest.mark.parametrize(
    ("name", "dtype", "tflops"),
    [
        ("H100-SXM", "bf16", 989.0),  # dense; 1,979 is the sparsity figure
        ("H100-SXM", "fp8", 1979.0),
        ("H200-SXM", "bf16", 989.0),
        ("A100-SXM4-80GB", "bf16", 312.0),
        ("A100-PCIe-40GB", "tf32", 156.0),
        ("V100-SXM2-32GB", "fp16", 125.0),
        ("TPUv3", "bf16", 123.0),
        ("TPUv4", "bf16", 275.0),
        ("TPUv5e", "bf16", 197.0),
        ("TPUv5p", "bf16", 459.0),
        ("MI300X", "bf16", 1307.4),
        ("MI250X", "fp16", 383.0),
        ("L4", "bf16", 121.0),
        ("B200", "bf16", 2250.0),
    ],
)
def test_published_dense_peaks(catalogue: HardwareCatalogue, name: str, dtype: str, tflops: float) -> None:
    hw = catalogue.get(name)
    assert hw.peak_tflops[dtype] == pytest.approx(tflops, rel=0.002)
    assert catalogue.peak_flops(hw, dtype) == pytest.approx(tflops * 1e12, rel=0.002)


def test_sparsity_figures_are_not_used(catalogue: HardwareCatalogue) -> None:
    # the 2:4-sparsity marketing numbers must never appear as a bf16/fp16 peak (L40S: 362.05 dense vs 733 sparse)
    sparse = {"H100-SXM": 1979.0, "A100-SXM4-80GB": 624.0, "L4": 242.0, "L40S": 733.0, "A10": 250.0}
    for name, marketing in sparse.items():
        hw = catalogue.get(name)
        assert hw.peak_tflops["bf16"] == pytest.approx(marketing / 2, rel=0.02), name


def test_tdp_and_measured_power(catalogue: HardwareCatalogue) -> None:
    assert catalogue.get("H100-SXM").tdp_w == 700
    assert catalogue.get("A100-SXM4-80GB").tdp_w == 400
    assert catalogue.get("V100-SXM2-16GB").tdp_w == 300
    assert catalogue.get("TPUv5e").tdp_w is None  # Google publishes no chip power: None, not a guess
    v3 = catalogue.get("TPUv3")
    assert v3.tdp_w is not None and v3.avg_power_fraction is not None
    assert v3.tdp_w * v3.avg_power_fraction == pytest.approx(220, abs=1)  # Google's measured mean chip power
    v4 = catalogue.get("TPUv4")
    assert v4.tdp_w is not None and v4.avg_power_fraction is not None
    assert v4.tdp_w * v4.avg_power_fraction == pytest.approx(170, abs=1)
    assert catalogue.get("V100-SXM2-16GB").avg_power_fraction is None  # only system-level (host) figures exist
    assert "325 W" in catalogue.get("V100-SXM2-16GB").avg_power_source


def test_embodied_figures_say_what_they_cover(catalogue: HardwareCatalogue) -> None:
    a100 = catalogue.get("A100-SXM4-80GB")
    assert a100.embodied_kgco2e == 150 and "GPU only" in a100.embodied_source
    h100 = catalogue.get("H100-SXM")
    assert h100.embodied_kgco2e == pytest.approx(3700 / 8) and "server" in h100.embodied_source
    assert catalogue.get("TPUv4").embodied_kgco2e is None  # LLMCarbon's die-only figure is cited, not used
    assert "die-only" in catalogue.get("TPUv4").embodied_source


def test_rows_are_frozen_and_peaks_read_only(catalogue: HardwareCatalogue) -> None:
    hw = catalogue.get("H100-SXM")
    with pytest.raises(dataclasses.FrozenInstanceError):
        hw.tdp_w = 1.0  # type: ignore[misc]
    with pytest.raises(TypeError):
        hw.peak_tflops["bf16"] = 1.0  # type: ignore[index]
    assert hash(hw) == hash(catalogue.get("H100-SXM"))
    data = hw.to_dict()
    assert data["peak_tflops"]["bf16"] == hw.peak_tflops["bf16"] and data["sources"] == hw.sources


def test_each_catalogue_parses_its_own_text() -> None:
    first, second = HardwareCatalogue(), tiny(GOOD)
    assert [hw.name for hw in second.all()] == ["X1"]
    assert len(first.all()) > 1  # no shared module-level state


# -- names ------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "canonical"),
    [
        ("H100-SXM", "H100-SXM"),
        ("h100-sxm5", "H100-SXM"),
        ("NVIDIA H100 SXM5 80GB", "H100-SXM"),
        ("h100_sxm", "H100-SXM"),
        ("A100-SXM4-80GB", "A100-SXM4-80GB"),
        ("a100 sxm4 80g", "A100-SXM4-80GB"),
        ("A100-SXM4", "A100-SXM4-80GB"),  # 40GB and 80GB are interchangeable for an estimate: the larger is taken
        ("V100-SXM2", "V100-SXM2-32GB"),
        ("H200", "H200-SXM"),
        ("TPU v4", "TPUv4"),
        ("Cloud TPU v5e", "TPUv5e"),
        ("Google TPUv3", "TPUv3"),
        ("AMD Instinct MI300X", "MI300X"),
        ("Intel Xeon Platinum 8480+", "Xeon-8480+"),
        ("AMD EPYC 7763", "EPYC-7763"),
        ("Tesla T4", "T4"),
        ("a10", "A10"),  # a canonical name, never confused with the A100 family
    ],
)
def test_names_and_aliases_resolve(catalogue: HardwareCatalogue, query: str, canonical: str) -> None:
    assert catalogue.get(query).name == canonical


@pytest.mark.parametrize(
    ("query", "choices"),
    [
        ("A100", ["A100-PCIe-40GB (250 W)", "A100-PCIe-80GB (300 W)", "A100-SXM4-40GB (400 W)", "A100-SXM4-80GB"]),
        ("A100-80GB", ["A100-PCIe-80GB (300 W)", "A100-SXM4-80GB (400 W)"]),
        ("H100", ["H100-PCIe (350 W)", "H100-SXM (700 W)", "H100-NVL (400 W)"]),
        ("V100", ["V100-PCIe-16GB", "V100-SXM2-32GB"]),
        ("P100", ["P100-PCIe-16GB (250 W)", "P100-SXM2 (300 W)"]),
    ],
)
def test_ambiguous_aliases_list_the_choices(catalogue: HardwareCatalogue, query: str, choices: list[str]) -> None:
    with pytest.raises(ConfigError, match="ambiguous") as info:
        catalogue.get(query)
    message = str(info.value)
    assert "\n" not in message and "10%" in message
    for choice in choices:
        assert choice in message


def test_unknown_name_lists_close_names(catalogue: HardwareCatalogue) -> None:
    with pytest.raises(ConfigError, match="unknown hardware 'H1000'") as info:
        catalogue.get("H1000")
    assert "closest: " in str(info.value) and "H100-" in str(info.value)
    with pytest.raises(ConfigError, match=r"closest: .*MI300X"):
        catalogue.get("MI300")
    with pytest.raises(ConfigError, match="no close match"):
        catalogue.get("zzzzzz")
    with pytest.raises(ConfigError, match="empty"):
        catalogue.get("  ")


# -- dtypes -----------------------------------------------------------------------------------------------------------


def test_dtype_fallback_and_errors(catalogue: HardwareCatalogue) -> None:
    v100 = catalogue.get("V100-SXM2-16GB")
    assert resolve_dtype(v100, "bf16") == "fp16"  # Volta has no bf16; fp16 tensor cores are what training used
    assert catalogue.peak_flops(v100, "BF16") == pytest.approx(125e12)
    assert resolve_dtype(catalogue.get("H100-SXM"), "bf16") == "bf16"
    with pytest.raises(ConfigError, match=r"A100-SXM4-80GB has no published dense peak for fp8; published: fp64"):
        catalogue.peak_flops(catalogue.get("A100-SXM4-80GB"), "fp8")  # fp8 never silently becomes bf16
    with pytest.raises(ConfigError, match=r"EPYC-7763 .* \(tried bf16, fp16, tf32, fp32\); published: none"):
        catalogue.peak_flops(catalogue.get("EPYC-7763"), "bf16")
    with pytest.raises(ConfigError, match="unknown dtype 'fp4'; use one of fp64, fp32"):
        catalogue.peak_flops(v100, "fp4")


# -- bad tables -------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (HEADER.replace(",sources", "") + "X1,gpu\n", "missing column sources"),
        (HEADER.replace("\n", ",notes\n") + GOOD.replace("\n", ",x\n"), "unknown column notes"),
        (HEADER, "no rows"),
        (HEADER + GOOD.replace(",gpu,", ",fpga,"), "kind 'fpga' is not one of gpu, tpu, accelerator, cpu"),
        (HEADER + GOOD.replace(",100,", ",-100,"), "tdp_w must be positive"),
        (HEADER + GOOD.replace(",100,", ",lots,"), "tdp_w 'lots' is not a number"),
        (HEADER + GOOD.replace(",100,", ",inf,"), "tdp_w must be positive and finite"),
        (HEADER + GOOD.replace("2024", "24.5"), "year '24.5' is not a year"),
        (HEADER + GOOD.replace("Acme datasheet", ""), "sources is empty"),
        (HEADER + GOOD.replace(",not published,,", ",,,"), "embodied_source is empty"),
        (HEADER + GOOD.replace("published,,not", "published,2,not"), "avg_power_fraction 2 is not a fraction"),
        (HEADER + GOOD + GOOD.replace("X1-8GB;Xone", ""), "'X1' appears twice"),
        (HEADER + GOOD.replace(",300,Acme brief,", ",,Acme brief,"), "memory_bandwidth_gbs is empty"),
        (HEADER + GOOD.replace(",300,Acme brief,", ",300,,"), "bandwidth_source is empty"),
        (HEADER + GOOD + GOOD.replace("X1,", "X2,", 1).replace("Xone", "x-1"), "alias 'x-1' of X2 is the name of X1"),
    ],
)
def test_bad_tables_fail_with_the_line(text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        HardwareCatalogue(text)


def test_table_error_names_the_line() -> None:
    with pytest.raises(ConfigError, match=r"hardware table line 3 \(X2\): tdp_w"):
        tiny(GOOD, GOOD.replace("X1,", "X2,", 1).replace(",100,", ",0,").replace("X1-8GB;Xone", ""))


def test_custom_table_with_interchangeable_and_distinct_variants() -> None:
    cat = tiny(
        "Y-8GB,accelerator,Acme,,100,,,,50,,,,8,200,Acme,,not published,,not published,Y,Acme\n",
        "Y-16GB,accelerator,Acme,,105,,,,52,,,,16,200,Acme,,not published,,not published,Y,Acme\n",
        "Z-a,accelerator,Acme,,100,,,,50,,,,,200,Acme,,not published,,not published,Z,Acme\n",
        "Z-b,accelerator,Acme,,150,,,,50,,,,,200,Acme,,not published,,not published,Z,Acme\n",
    )
    assert cat.get("Y").name == "Y-16GB"  # within 10 %: the most memory
    with pytest.raises(ConfigError, match=r"'Z' is ambiguous: Z-a \(100 W\), Z-b \(150 W\)"):
        cat.get("Z")
    assert isinstance(cat.get("y-8gb"), Hardware) and cat.get("y-8gb").year is None
