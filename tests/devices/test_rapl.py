"""RAPL counters from fake powercap trees: discovery, deltas, wraparound, attribution, failure modes."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.fakes.sysfs import MAX_RANGE_UJ, FakeZone, make_powercap, write_zone
from tests.fakes.unprivileged import as_unprivileged
from wattwise.devices.base import HostSnapshot, MeterReading, PowerSource
from wattwise.devices.rapl import DEFAULT_RAPL_ROOT, RaplSource, probe_rapl
from wattwise.errors import DeviceError


def snap(t_s: float, busy_s: float = 0.0, tree_s: float = 0.0) -> HostSnapshot:
    return HostSnapshot(t_s=t_s, cpu_busy_s=busy_s, cpu_total_s=4 * t_s, tree_cpu_s=tree_s)


def by_name(source: RaplSource, readings: tuple[MeterReading, ...]) -> dict[str, MeterReading]:
    return {ch.name: r for ch, r in zip(source.channels(), readings, strict=True)}


def test_two_sockets_with_dram_core_and_psys_give_the_documented_channels(tmp_path: Path) -> None:
    make_powercap(tmp_path, sockets=2, dram=True, core=True, uncore=True, psys=True)
    source = RaplSource.open(tmp_path)
    channels = {ch.name: ch for ch in source.channels()}
    assert list(channels) == [
        "cpu:package-0",
        "cpu:core-0",
        "cpu:uncore-0",
        "dram:package-0",
        "cpu:package-1",
        "cpu:core-1",
        "cpu:uncore-1",
        "dram:package-1",
        "platform:psys",
    ]
    assert {n for n, ch in channels.items() if ch.in_total} == {
        "cpu:package-0",
        "cpu:package-1",
        "dram:package-0",
        "dram:package-1",
    }
    assert channels["dram:package-1"].component == "dram"
    assert channels["platform:psys"].component == "platform"
    assert channels["cpu:core-0"].component == "cpu"
    for ch in channels.values():
        assert (ch.source, ch.method, ch.low_factor, ch.high_factor) == ("measured", "rapl", 1.0, 1.0)
    assert channels["cpu:package-0"].detail == "powercap intel-rapl:0 package-0"
    assert channels["dram:package-1"].detail == "powercap intel-rapl:1:2 dram of package-1"
    assert isinstance(source, PowerSource)


def test_first_read_is_zero_then_deltas_accumulate_per_socket(tmp_path: Path) -> None:
    zones = make_powercap(tmp_path, sockets=2, dram=True, core=False)
    source = RaplSource.open(tmp_path)
    first = source.read(snap(0.0))
    assert all(r.energy_j == 0.0 and r.attributed_j == 0.0 for r in first)

    zones["cpu:package-0"].add_energy(10_000_000)  # 10 J
    zones["cpu:package-1"].add_energy(20_000_000)  # 20 J
    zones["dram:package-0"].add_energy(1_500_000)  # 1.5 J
    # nothing on dram:package-1
    second = by_name(source, source.read(snap(1.0)))
    assert [second[n].energy_j for n in ("cpu:package-0", "cpu:package-1")] == [10.0, 20.0]
    assert second["dram:package-0"].energy_j == 1.5
    assert second["dram:package-1"].energy_j == 0.0

    zones["cpu:package-0"].add_energy(5_000_000)
    third = by_name(source, source.read(snap(2.0)))
    assert third["cpu:package-0"].energy_j == 15.0  # cumulative
    assert third["cpu:package-1"].energy_j == 20.0


def test_wraparound_is_unwrapped_modulo_the_range(tmp_path: Path) -> None:
    zones = make_powercap(tmp_path, sockets=1, dram=False, core=False)
    zones["cpu:package-0"].set_energy(MAX_RANGE_UJ - 999_999)  # 1,000,000 µJ to the wrap (range + 1)
    source = RaplSource.open(tmp_path)
    source.read(snap(0.0))
    zones["cpu:package-0"].set_energy(2_000_000)
    (reading,) = source.read(snap(1.0))
    assert reading.energy_j == pytest.approx(3.0)  # 1 J up to the wrap + 2 J after it


def test_small_range_wraps_several_times_over_a_run(tmp_path: Path) -> None:
    zone = write_zone(tmp_path / "intel-rapl:0", "package-0", energy_uj=900, max_range_uj=999)
    source = RaplSource.open(tmp_path)
    source.read(snap(0.0))
    total_uj = 0
    for step, delta in enumerate([150, 999, 1, 600, 0, 400], start=1):
        zone.add_energy(delta, max_range_uj=999)
        total_uj += delta
        (reading,) = source.read(snap(float(step)))
        assert reading.energy_j == pytest.approx(total_uj * 1e-6)


@settings(max_examples=50, deadline=None)
@given(
    start=st.integers(0, 10**6 - 1),
    deltas=st.lists(st.integers(0, 10**6 - 1), min_size=1, max_size=20),
)
def test_unwrapped_total_equals_the_sum_of_deltas(start: int, deltas: list[int]) -> None:
    max_range = 10**6 - 1
    with tempfile.TemporaryDirectory() as tmp:
        zone = write_zone(Path(tmp) / "intel-rapl:0", "package-0", energy_uj=start, max_range_uj=max_range)
        source = RaplSource.open(Path(tmp))
        source.read(snap(0.0))
        for i, delta in enumerate(deltas, start=1):
            zone.add_energy(delta, max_range_uj=max_range)
            (reading,) = source.read(snap(float(i)))
        assert reading.energy_j == pytest.approx(sum(deltas) * 1e-6)


def held(t_s: float, busy_s: float, tree_s: float, rss: int = 0) -> HostSnapshot:
    """A machine of 4 CPUs and 16 GB of which the tree may use 1 CPU and holds ``rss`` bytes."""
    return HostSnapshot(
        t_s=t_s,
        cpu_busy_s=busy_s,
        cpu_total_s=4 * t_s,
        tree_cpu_s=tree_s,
        logical_cpus=4,
        tree_allowed_cpus=1,
        tree_rss_bytes=rss,
        mem_total_bytes=16_000_000_000,
    )


def test_idle_is_charged_by_allocation_and_the_rest_by_cpu_time(tmp_path: Path) -> None:
    zones = make_powercap(tmp_path, sockets=1, dram=True, core=False)
    source = RaplSource.open(tmp_path)
    source.read(held(0.0, busy_s=0.0, tree_s=0.0, rss=4_000_000_000))
    # 1 s of a quiet machine: package 5 J, DRAM 1 J: the idle baselines (5 W, 1 W). The tree holds 1 CPU of 4 and
    # 4 GB of 16: it is charged 5 J × 1/4 and 1 J × 1/4.
    zones["cpu:package-0"].add_energy(5_000_000)
    zones["dram:package-0"].add_energy(1_000_000)
    pkg, dram = source.read(held(1.0, busy_s=0.0, tree_s=0.0, rss=4_000_000_000))
    assert pkg.energy_j == 5.0 and pkg.attributed_j == pytest.approx(1.25)
    assert dram.energy_j == 1.0 and dram.attributed_j == pytest.approx(0.25)
    # 1 s busy: package 13 J (8 above idle), 2 CPU-s busy of which the tree's 0.5: 5 × 1/4 + 8 × 0.25.
    # DRAM 3 J (2 above idle): 1 × 4/16 + 2 × 0.25.
    zones["cpu:package-0"].add_energy(13_000_000)
    zones["dram:package-0"].add_energy(3_000_000)
    pkg, dram = source.read(held(2.0, busy_s=2.0, tree_s=0.5, rss=4_000_000_000))
    assert pkg.energy_j == 18.0 and pkg.attributed_j == pytest.approx(1.25 + 1.25 + 2.0)
    assert dram.energy_j == 4.0 and dram.attributed_j == pytest.approx(0.25 + 0.25 + 0.5)
    assert any("idle baselines" in n and "cpu:package-0 5.0 W" in n for n in source.notes())


@pytest.mark.parametrize("other_busy_s", [0.0, 0.5, 1.5, 3.0])
def test_the_same_work_costs_the_same_whatever_else_runs(tmp_path: Path, other_busy_s: float) -> None:
    """A package drawing 5 W idle + 4 W per busy CPU: the tree's 0.5 CPU-s is charged 1.25 + 2 J in every case."""
    zones = make_powercap(tmp_path, sockets=1, dram=False, core=False)
    source = RaplSource.open(tmp_path)
    source.read(held(0.0, 0.0, 0.0))
    zones["cpu:package-0"].add_energy(5_000_000)
    source.read(held(1.0, 0.0, 0.0))
    busy = 0.5 + other_busy_s
    zones["cpu:package-0"].add_energy(int((5 + 4 * busy) * 1e6))
    (pkg,) = source.read(held(2.0, busy, 0.5))
    assert pkg.attributed_j - 1.25 == pytest.approx(1.25 + 4 * 0.5)


def test_amd_layout_package_and_core_without_dram(tmp_path: Path) -> None:
    make_powercap(tmp_path, sockets=1, dram=False, core=True)
    source = RaplSource.open(tmp_path)
    assert [(c.name, c.in_total) for c in source.channels()] == [
        ("cpu:package-0", True),
        ("cpu:core-0", False),
    ]


def test_mmio_duplicate_and_control_type_are_ignored(tmp_path: Path) -> None:
    make_powercap(tmp_path, sockets=1, dram=False, core=False, mmio=True)
    assert [c.name for c in RaplSource.open(tmp_path).channels()] == ["cpu:package-0"]


@pytest.mark.parametrize(("nested", "links"), [(True, False), (False, False)])
def test_subzones_found_nested_only_or_flattened(tmp_path: Path, nested: bool, links: bool) -> None:
    make_powercap(tmp_path, sockets=1, dram=True, core=True, nested=nested, top_level_links=links)
    names = [c.name for c in RaplSource.open(tmp_path).channels()]
    assert names == ["cpu:package-0", "cpu:core-0", "dram:package-0"]


def test_missing_root_says_why_and_how(tmp_path: Path) -> None:
    root = tmp_path / "no-powercap"
    probe = probe_rapl(root)
    assert not probe.available
    assert probe.summary == "no RAPL powercap interface (VM, container or non-Intel/AMD CPU)"
    assert probe.fix is not None and "WATTWISE_RAPL_ROOT" in probe.fix and "mount" in probe.fix
    with pytest.raises(DeviceError, match="no RAPL powercap interface") as info:
        RaplSource.open(root)
    assert "\n" not in str(info.value)


def test_root_without_zones(tmp_path: Path) -> None:
    (tmp_path / "intel-rapl").mkdir()
    probe = probe_rapl(tmp_path)
    assert not probe.available and "no intel-rapl zones" in probe.summary
    assert probe.fix is not None and "modprobe intel_rapl_msr" in probe.fix
    with pytest.raises(DeviceError, match="no zones"):
        RaplSource.open(tmp_path)


def test_unreadable_counter_at_open_names_the_file(tmp_path: Path) -> None:
    zones = make_powercap(tmp_path, sockets=1, dram=True, core=False)
    zones["dram:package-0"].break_by_directory()  # EISDIR: fails for root too
    bad = str(zones["dram:package-0"].energy_file)
    with pytest.raises(DeviceError, match="cannot read") as info:
        RaplSource.open(tmp_path)
    assert bad in str(info.value)
    probe = probe_rapl(tmp_path)
    assert not probe.available and bad in probe.summary


@pytest.mark.skipif(not hasattr(os, "fork"), reason="POSIX permissions")
def test_permission_denied_gives_the_exact_fix() -> None:
    root = Path(tempfile.mkdtemp(prefix="wattwise-rapl-"))  # outside pytest's 0700 tmp: "nobody" must traverse it
    try:
        zones = make_powercap(root, sockets=1, dram=False, core=False)
        for path in [root, *root.rglob("*")]:
            path.chmod(0o755 if path.is_dir() else 0o644)
        zones["cpu:package-0"].energy_file.chmod(0o400 if os.geteuid() == 0 else 0)

        def check() -> str:
            try:
                RaplSource.open(root)
            except DeviceError as exc:
                error = str(exc)
            else:
                return "opened"
            probe = probe_rapl(root)
            return "\x00".join([error, str(probe.available), probe.fix or ""])

        error, available, fix = as_unprivileged(check).split("\x00")
    finally:
        shutil.rmtree(root)
    assert "CVE-2020-8694" in error and "\n" not in error
    assert "sudo chmod o+r /sys/class/powercap/intel-rapl:*/energy_uj" in error
    assert available == "False" and "99-wattwise-rapl.rules" in fix


def test_permission_fix_text() -> None:
    """The text behind a permission error (checked directly: as root no real EACCES can be made)."""
    from wattwise.devices.rapl import _permission_problem

    problem = _permission_problem(DEFAULT_RAPL_ROOT, DEFAULT_RAPL_ROOT / "intel-rapl:0" / "energy_uj")
    assert "CVE-2020-8694" in problem.summary and "Linux 5.10" in problem.summary
    assert (
        "sudo chmod o+r /sys/class/powercap/intel-rapl:*/energy_uj "
        "/sys/class/powercap/intel-rapl:*/intel-rapl:*/energy_uj"
    ) in problem.fix
    rule = 'SUBSYSTEM=="powercap", KERNEL=="intel-rapl:*", ACTION=="add", RUN+="/bin/chmod o+r /sys%p/energy_uj"'
    assert f"echo '{rule}' | sudo tee /etc/udev/rules.d/99-wattwise-rapl.rules" in problem.fix
    assert "udevadm trigger --subsystem-match=powercap --action=add" in problem.fix
    assert "\n" not in problem.error and "until reboot" in problem.error
    mounted = _permission_problem(Path("/host/powercap"), Path("/host/powercap/intel-rapl:0/energy_uj"))
    assert "on the host" in mounted.fix


def test_counter_vanishing_mid_run_raises_naming_the_file(tmp_path: Path) -> None:
    zones = make_powercap(tmp_path, sockets=2, dram=False, core=False)
    source = RaplSource.open(tmp_path)
    source.read(snap(0.0))
    zones["cpu:package-0"].add_energy(1_000_000)
    zones["cpu:package-1"].vanish()
    with pytest.raises(DeviceError, match="cannot read") as info:
        source.read(snap(1.0))
    assert str(zones["cpu:package-1"].energy_file) in str(info.value)
    # A failed read changes nothing: once the file is back, the delta since the last good read is counted.
    zones["cpu:package-1"].set_energy(2_000_000 + 3_000_000)
    pkg0, pkg1 = source.read(snap(2.0))
    assert (pkg0.energy_j, pkg1.energy_j) == (1.0, 3.0)


def test_zone_directory_removed_mid_run(tmp_path: Path) -> None:
    zones = make_powercap(tmp_path, sockets=1, dram=True, core=False)
    source = RaplSource.open(tmp_path)
    source.read(snap(0.0))
    zones["dram:package-0"].remove()
    with pytest.raises(DeviceError, match=str(zones["dram:package-0"].energy_file)):
        source.read(snap(1.0))


def test_garbage_counter_is_an_error_not_zero(tmp_path: Path) -> None:
    zones = make_powercap(tmp_path, sockets=1, dram=False, core=False)
    source = RaplSource.open(tmp_path)
    source.read(snap(0.0))
    zones["cpu:package-0"].energy_file.write_text("")
    with pytest.raises(DeviceError, match="not an integer"):
        source.read(snap(1.0))


def test_bad_max_range_is_refused(tmp_path: Path) -> None:
    write_zone(tmp_path / "intel-rapl:0", "package-0", max_range_uj=0)
    with pytest.raises(DeviceError, match="max_energy_range_uj"):
        RaplSource.open(tmp_path)
    assert not probe_rapl(tmp_path).available


def test_probe_lists_readable_domains(tmp_path: Path) -> None:
    make_powercap(tmp_path, sockets=2, dram=True, core=False, psys=True)
    probe = probe_rapl(tmp_path)
    assert probe.available and probe.fix is None
    assert "package-0 (intel-rapl:0)" in probe.summary and "psys (intel-rapl:2)" in probe.summary
    assert [c.name for c in probe.channels] == [
        "cpu:package-0",
        "dram:package-0",
        "cpu:package-1",
        "dram:package-1",
        "platform:psys",
    ]


def test_zones_and_close(tmp_path: Path) -> None:
    zones = make_powercap(tmp_path, sockets=1, dram=False, core=False)
    source = RaplSource.open(tmp_path)
    assert [z.path for z in source.zones] == [zones["cpu:package-0"].path]
    assert source.zones[0].max_energy_range_uj == MAX_RANGE_UJ
    source.close()
    source.close()


def test_fake_zone_helper_round_trip(tmp_path: Path) -> None:
    zone = FakeZone(tmp_path)
    zone.set_energy(5)
    zone.add_energy(7, max_range_uj=9)
    assert zone.energy_file.read_text() == "2\n"
