"""CPU power model: /proc/cpuinfo parsing, TDP table matching, model choice and exact integration."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from wattwise.devices.base import HostSnapshot, PowerSource
from wattwise.devices.cpu_model import (
    CCF_AWS_MAX_W_PER_VCPU,
    CCF_AWS_MIN_W_PER_VCPU,
    DEFAULT_TDP_TABLE,
    IDLE_FRACTION,
    CpuInfo,
    CpuModelSource,
    TdpTable,
    choose_model,
    match_tdp,
    normalise_model_name,
    probe_cpu_model,
    read_cpuinfo,
)

XEON_8375C = "Intel(R) Xeon(R) Platinum 8375C CPU @ 2.90GHz"
BASE_FLAGS = "fpu vme de pse tsc msr pae mce cx8 apic sep mtrr pge mca cmov pat pse36 clflush mmx fxsr sse sse2"


def cpuinfo_text(model: str, sockets: int, threads_per_socket: int, hypervisor: bool = False) -> str:
    flags = BASE_FLAGS + (" hypervisor" if hypervisor else "") + " lahf_lm abm"
    blocks = []
    n = 0
    for socket in range(sockets):
        for core in range(threads_per_socket):
            blocks.append(
                f"processor\t: {n}\nvendor_id\t: GenuineIntel\ncpu family\t: 6\nmodel\t\t: 106\n"
                f"model name\t: {model}\nphysical id\t: {socket}\ncore id\t\t: {core}\n"
                f"flags\t\t: {flags}\nbogomips\t: 5800.00\n"
            )
            n += 1
    return "\n".join(blocks) + "\n"


def write_proc(tmp_path: Path, text: str) -> Path:
    proc = tmp_path / "proc"
    proc.mkdir(exist_ok=True)
    (proc / "cpuinfo").write_text(text)
    return proc


def snap(
    t_s: float, busy_s: float, total_s: float, tree_s: float, allowed: float | None = None, cpus: int = 8
) -> HostSnapshot:
    """A snapshot of a machine of ``cpus`` logical CPUs, of which the tree may use ``allowed`` (None: all)."""
    return HostSnapshot(
        t_s=t_s, cpu_busy_s=busy_s, cpu_total_s=total_s, tree_cpu_s=tree_s, logical_cpus=cpus, tree_allowed_cpus=allowed
    )


@pytest.fixture(scope="module")
def table() -> TdpTable:
    return TdpTable.load()


# --- /proc/cpuinfo --------------------------------------------------------------------------------


def test_bare_metal_two_socket_xeon(tmp_path: Path) -> None:
    info = read_cpuinfo(write_proc(tmp_path, cpuinfo_text(XEON_8375C, sockets=2, threads_per_socket=4)))
    assert info == CpuInfo(model_name=XEON_8375C, sockets=2, logical_cpus=8, is_virtual=False)


def test_vm_has_the_hypervisor_flag(tmp_path: Path) -> None:
    text = cpuinfo_text(XEON_8375C, sockets=1, threads_per_socket=2, hypervisor=True)
    assert read_cpuinfo(write_proc(tmp_path, text)) == CpuInfo(XEON_8375C, 1, 2, True)


def test_no_physical_id_means_one_socket_and_arm_features(tmp_path: Path) -> None:
    text = "processor\t: 0\nBogoMIPS\t: 50.00\nFeatures\t: fp asimd evtstrm\n\nprocessor\t: 1\n"
    assert read_cpuinfo(write_proc(tmp_path, text)) == CpuInfo("", 1, 2, False)


def test_without_proc_cpuinfo_the_platform_fallback_spawns_nothing(tmp_path: Path) -> None:
    info = read_cpuinfo(tmp_path / "no-proc")
    assert info.sockets == 1 and info.logical_cpus == (os.cpu_count() or 1) and not info.is_virtual
    assert info.model_name


# --- table matching -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("proc_model", "row", "tdp_w"),
    [
        (XEON_8375C, "Intel Xeon Platinum 8375C", 300.0),
        ("Intel(R) Xeon(R) Platinum 8259CL CPU @ 2.50GHz", "Intel Xeon Platinum 8259CL", 210.0),
        ("Intel(R) Xeon(R) CPU E5-2686 v4 @ 2.30GHz", "Intel Xeon E5-2686 v4", 145.0),
        ("Intel(R) Xeon(R) Gold 6248 CPU @ 2.50GHz", "Intel Xeon Gold 6248", 150.0),  # not 6248R (205 W)
        ("AMD EPYC 7763 64-Core Processor", "AMD EPYC 7763", 280.0),
        ("AMD EPYC 7R13 Processor", "AMD EPYC 7R13", 225.0),
        ("12th Gen Intel(R) Core(TM) i7-12700K", "Intel Core i7-12700K", 190.0),
        ("11th Gen Intel(R) Core(TM) i7-1165G7 @ 2.80GHz", "Intel Core i7-1165G7", 28.0),
        ("Intel(R) Core(TM) i7-7700K CPU @ 4.20GHz", "Intel Core i7-7700K", 91.0),
        ("AMD Ryzen 9 5950X 16-Core Processor", "AMD Ryzen 9 5950X", 105.0),
        ("AMD Ryzen 7 PRO 4750U with Radeon Graphics", "AMD Ryzen 7 PRO 4750U", 15.0),
        ("AMD Ryzen Threadripper PRO 3995WX 64-Cores", "AMD Ryzen Threadripper PRO 3995WX", 280.0),
        ("Intel(R) Core(TM)2 Duo CPU     T7700  @ 2.40GHz", "Intel Core 2 Duo T7700", 35.0),
    ],
)
def test_real_proc_model_strings_match_exactly(table: TdpTable, proc_model: str, row: str, tdp_w: float) -> None:
    match = match_tdp(proc_model, table)
    assert match is not None
    assert (match.name, match.tdp_w, match.how) == (row, tdp_w, "exact")


def test_model_number_match_when_the_table_has_extra_words(table: TdpTable) -> None:
    match = match_tdp("AMD Phenom(tm) II X4 975 Processor", table)
    assert match is not None
    assert (match.name, match.tdp_w, match.how) == ("AMD Phenom II X4 975 BE", 125.0, "model-number")
    match = match_tdp("Intel(R) Xeon(R) 8375C CPU @ 2.90GHz", table)  # series word missing
    assert match is not None and match.name == "Intel Xeon Platinum 8375C"


@pytest.mark.parametrize(
    "proc_model",
    [
        "Intel(R) Xeon(R) CPU @ 2.20GHz",  # GCP: no model number at all
        "Intel(R) Xeon(R) Processor",  # a KVM guest
        "AMD EPYC Processor (with IBPB)",
        "AMD Phenom(tm) II X4 945 Processor",  # two rows: 945 (95W) and 945 (125W)
        "AMD EPYC 7B13",  # not in the table; must not become 7B12 (240 W)
        "Intel(R) Core(TM) i9-14900K",  # not in the table; must not become 13900K
        "QEMU Virtual CPU version 2.5+",
        "",
    ],
)
def test_ambiguous_or_unknown_models_do_not_match(table: TdpTable, proc_model: str) -> None:
    assert match_tdp(proc_model, table) is None


def test_candidates_that_disagree_on_tdp_are_ambiguous_never_the_maximum() -> None:
    table = TdpTable([("Intel Xeon Platinum 8375C", 300.0), ("Intel Xeon Gold 8375C", 250.0)])
    assert match_tdp("Intel(R) Xeon(R) 8375C", table) is None
    agreeing = TdpTable([("Intel Xeon Platinum 8375C", 300.0), ("Intel Xeon Platinum 8375C", 300.0)])
    assert match_tdp(XEON_8375C, agreeing) is not None


def test_a_bare_model_number_needs_a_shared_family_word() -> None:
    table = TdpTable([("3280", 65.0), ("Intel Xeon Platinum 8375C", 300.0)])
    assert match_tdp("Intel(R) Xeon(R) CPU 3280", table) is None
    assert match_tdp("8375C", table) is None


def test_normalisation() -> None:
    assert normalise_model_name(XEON_8375C) == "xeon platinum 8375c"
    assert normalise_model_name("AMD Athlon Gold 3150G (OEM Only)") == "athlon gold 3150g"
    assert normalise_model_name("AMD Ryzen 5 3600 6-Core Processor") == "ryzen 5 3600"


def test_packaged_table_loads_and_skips_malformed_rows(tmp_path: Path) -> None:
    assert len(TdpTable.load()) > 4800
    csv_path = tmp_path / "t.csv"
    csv_path.write_text("Name,TDP\nIntel Celeron 1000A,27.29.5\nIntel Xeon Gold 6130,125.0\n,10\n")
    assert len(TdpTable.load(csv_path)) == 1


# --- model choice ---------------------------------------------------------------------------------


def test_bare_metal_match_uses_the_tdp_model() -> None:
    model = choose_model(CpuInfo(XEON_8375C, sockets=2, logical_cpus=8, is_virtual=False))
    assert model.method == "cpu-tdp-model"
    assert model.idle_w == pytest.approx(600 * IDLE_FRACTION)
    assert model.max_w == 600.0
    assert "'Intel Xeon Platinum 8375C'" in model.detail and "300 W" in model.detail


def test_vm_uses_the_per_thread_model_even_when_the_model_matches(tmp_path: Path) -> None:
    model = choose_model(CpuInfo(XEON_8375C, 1, 4, True), table_path=tmp_path / "absent.csv")  # table not read
    assert model.method == "cpu-per-thread-model"
    assert (model.idle_w, model.max_w) == (4 * CCF_AWS_MIN_W_PER_VCPU, 4 * CCF_AWS_MAX_W_PER_VCPU)
    assert "VM" in model.detail and "whole socket" in model.detail


def test_unknown_model_uses_the_per_thread_model() -> None:
    model = choose_model(CpuInfo("Intel(R) Xeon(R) Processor", 1, 2, False))
    assert model.method == "cpu-per-thread-model" and "not in table" in model.detail


def test_tdp_override_wins_everywhere() -> None:
    model = choose_model(CpuInfo("Intel(R) Xeon(R) Processor", 2, 4, True), tdp_w=100.0)
    assert model.method == "cpu-tdp-model" and model.max_w == 200.0 and "cpu_tdp_w setting" in model.detail


def test_channel_is_estimated_with_a_stated_range() -> None:
    source = CpuModelSource(CpuInfo("unknown", 1, 2, False))
    (channel,) = source.channels()
    assert (channel.name, channel.component, channel.source, channel.in_total) == (
        "cpu",
        "cpu",
        "estimated",
        True,
    )
    assert (channel.low_factor, channel.high_factor) == (0.5, 1.5)
    assert isinstance(source, PowerSource)


# --- integration ----------------------------------------------------------------------------------


def test_tdp_model_energy_by_hand() -> None:
    source = CpuModelSource(CpuInfo(XEON_8375C, sockets=2, logical_cpus=8, is_virtual=False))
    (first,) = source.read(snap(100.0, busy_s=0.0, total_s=0.0, tree_s=0.0))
    assert (first.energy_j, first.attributed_j) == (0.0, 0.0)
    # 2 s; 8 CPUs: 16 CPU-s in total, 8 busy (u = 0.5), 2 of them the tree's (a quarter of the busy time).
    (r,) = source.read(snap(102.0, busy_s=8.0, total_s=16.0, tree_s=2.0))
    f = 0.74 / 3.5
    idle_w, max_w = 2 * 300.0 * f, 2 * 300.0
    assert r.energy_j == pytest.approx((idle_w + (max_w - idle_w) * 0.5) * 2.0)
    # idle charged by allocation (no CPU set: the whole machine), the power above idle by CPU time
    assert r.attributed_j == pytest.approx(idle_w * 2.0 * 1.0 + (max_w - idle_w) * 0.5 * 2.0 * 0.25)


def test_tdp_model_charges_idle_by_the_cpus_the_tree_may_use() -> None:
    source = CpuModelSource(CpuInfo(XEON_8375C, sockets=2, logical_cpus=8, is_virtual=False))
    source.read(snap(100.0, busy_s=0.0, total_s=0.0, tree_s=0.0, allowed=2))
    (r,) = source.read(snap(102.0, busy_s=8.0, total_s=16.0, tree_s=2.0, allowed=2))
    f = 0.74 / 3.5
    idle_w, max_w = 2 * 300.0 * f, 2 * 300.0
    assert r.attributed_j == pytest.approx(idle_w * 2.0 * (2 / 8) + (max_w - idle_w) * 0.5 * 2.0 * 0.25)


def test_per_thread_model_energy_by_hand_and_accumulation() -> None:
    source = CpuModelSource(CpuInfo("Intel(R) Xeon(R) Processor", 1, 4, True))
    source.read(snap(0.0, 0.0, 0.0, 0.0, allowed=1, cpus=4))
    # 10 s, 4 CPUs: 40 CPU-s, 10 busy (u = 0.25), 5 of them the tree's: 4 × (0.74 + 2.76 × 0.25) W on the machine.
    # The tree may use 1 CPU of 4: idle 4 × 0.74 W × 10 s × 1/4 = 7.4 J;
    # above idle 11.04 W × 0.25 × 10 s × 5/10 = 13.8 J
    (r,) = source.read(snap(10.0, busy_s=10.0, total_s=40.0, tree_s=5.0, allowed=1, cpus=4))
    assert r.energy_j == pytest.approx(57.2)
    assert r.attributed_j == pytest.approx(7.4 + 13.8)
    # 5 s idle: 4 × 0.74 W × 5 s more on the machine; the tree still holds its CPU: 14.8 J × 1/4
    (r,) = source.read(snap(15.0, busy_s=10.0, total_s=60.0, tree_s=5.0, allowed=1, cpus=4))
    assert r.energy_j == pytest.approx(57.2 + 14.8)
    assert r.attributed_j == pytest.approx(7.4 + 13.8 + 3.7)
    # The same instant twice adds nothing.
    (again,) = source.read(snap(15.0, busy_s=10.0, total_s=60.0, tree_s=5.0, allowed=1, cpus=4))
    assert again == r


@pytest.mark.parametrize("other_busy_s", [0.0, 3.0, 9.0, 15.0])
def test_the_same_work_is_charged_the_same_whatever_else_runs(other_busy_s: float) -> None:
    """4 CPUs for 10 s; the tree uses 5 CPU-s, other processes 0 to 15 more: the tree's figure does not move."""
    source = CpuModelSource(CpuInfo("Intel(R) Xeon(R) Processor", 1, 4, True))
    source.read(snap(0.0, 0.0, 0.0, 0.0, allowed=2, cpus=4))
    (r,) = source.read(snap(10.0, busy_s=5.0 + other_busy_s, total_s=40.0, tree_s=5.0, allowed=2, cpus=4))
    idle_w, max_w = 4 * 0.74, 4 * 3.5
    assert r.attributed_j == pytest.approx(idle_w * 10 * 0.5 + (max_w - idle_w) * 10 * 5 / 40)


def test_open_and_probe_read_the_given_proc(tmp_path: Path) -> None:
    proc = write_proc(tmp_path, cpuinfo_text(XEON_8375C, sockets=2, threads_per_socket=2))
    source = CpuModelSource.open(proc)
    assert source.info.sockets == 2 and source.model.method == "cpu-tdp-model"
    source.close()
    probe = probe_cpu_model(proc)
    assert probe.available and "cpu-tdp-model" in probe.summary and "8375C" in probe.summary
    assert probe.channels[0].method == "cpu-tdp-model"
    vm = write_proc(tmp_path, cpuinfo_text(XEON_8375C, 1, 2, hypervisor=True))
    assert "VM" in probe_cpu_model(vm).summary
    assert probe_cpu_model(vm, tdp_w=50.0).channels[0].method == "cpu-tdp-model"


def test_default_table_is_packaged_next_to_the_code() -> None:
    assert DEFAULT_TDP_TABLE.is_file()
    assert DEFAULT_TDP_TABLE.parent.name == "data"
