"""Memory and network models against synthetic snapshots, with the expected joules worked out by hand."""

from __future__ import annotations

import pytest

from wattwise.devices.base import HostSnapshot, PowerSource
from wattwise.devices.memory_model import GREEN_ALGORITHMS_W_PER_GB, MemoryModelSource, probe_memory_model
from wattwise.devices.network import (
    ASLAN_2022_KWH_PER_GB,
    CCF_NETWORK_KWH_PER_GB,
    NetworkSource,
    probe_network,
)

GIB = 1024**3


def mem_snap(t_s: float, rss_bytes: int, total_bytes: int = 16 * GIB) -> HostSnapshot:
    return HostSnapshot(
        t_s=t_s,
        cpu_busy_s=0.0,
        cpu_total_s=0.0,
        tree_cpu_s=0.0,
        tree_rss_bytes=rss_bytes,
        mem_total_bytes=total_bytes,
    )


def net_snap(net_bytes: int) -> HostSnapshot:
    return HostSnapshot(t_s=0.0, cpu_busy_s=0.0, cpu_total_s=0.0, tree_cpu_s=0.0, net_bytes=net_bytes)


# --- memory ---------------------------------------------------------------------------------------


def test_memory_energy_by_hand() -> None:
    source = MemoryModelSource()
    (first,) = source.read(mem_snap(50.0, rss_bytes=2 * GIB))
    assert (first.energy_j, first.attributed_j) == (0.0, 0.0)
    # 10 s. Machine: 16 GiB × 0.3725 W/GiB = 5.96 W → 59.6 J.
    # Tree: RSS 2 → 4 GiB, mean 3 GiB × 0.3725 W/GiB = 1.1175 W → 11.175 J.
    (r,) = source.read(mem_snap(60.0, rss_bytes=4 * GIB))
    assert r.energy_j == pytest.approx(59.6)
    assert r.attributed_j == pytest.approx(11.175)
    # 2 s more at 4 GiB: machine + 11.92 J, tree + 2.98 J
    (r,) = source.read(mem_snap(62.0, rss_bytes=4 * GIB))
    assert r.energy_j == pytest.approx(59.6 + 11.92)
    assert r.attributed_j == pytest.approx(11.175 + 2.98)


def test_memory_coefficient_override_and_none_means_default() -> None:
    assert MemoryModelSource(None).w_per_gb == GREEN_ALGORITHMS_W_PER_GB == 0.3725
    source = MemoryModelSource(1.0)
    source.read(mem_snap(0.0, rss_bytes=GIB))
    (r,) = source.read(mem_snap(3.0, rss_bytes=GIB))  # 1 GiB × 1 W/GiB × 3 s
    assert r.attributed_j == pytest.approx(3.0)
    assert r.energy_j == pytest.approx(48.0)  # 16 GiB × 1 W/GiB × 3 s
    assert "memory_w_per_gb setting" in source.channels()[0].detail


def test_unknown_total_memory_falls_back_to_the_tree_and_rss_is_capped() -> None:
    source = MemoryModelSource()
    source.read(mem_snap(0.0, rss_bytes=2 * GIB, total_bytes=0))
    (r,) = source.read(mem_snap(1.0, rss_bytes=2 * GIB, total_bytes=0))
    assert r.energy_j == pytest.approx(2 * 0.3725) and r.attributed_j == pytest.approx(2 * 0.3725)
    capped = MemoryModelSource()
    capped.read(mem_snap(0.0, rss_bytes=8 * GIB, total_bytes=4 * GIB))
    (r,) = capped.read(mem_snap(1.0, rss_bytes=8 * GIB, total_bytes=4 * GIB))
    assert r.attributed_j == pytest.approx(r.energy_j)


def test_memory_channel_and_probe() -> None:
    source = MemoryModelSource()
    (channel,) = source.channels()
    assert (channel.name, channel.component, channel.source, channel.method) == (
        "memory",
        "memory",
        "estimated",
        "memory-model",
    )
    assert (channel.low_factor, channel.high_factor) == (0.5, 2.0)
    assert "Green Algorithms" in channel.detail and "GiB" in channel.detail
    assert isinstance(source, PowerSource)
    source.close()
    probe = probe_memory_model()
    assert probe.available and "0.3725 W per GiB" in probe.summary and "assumed" in probe.summary


# --- network --------------------------------------------------------------------------------------


def test_network_energy_by_hand_with_a_counter_reset() -> None:
    source = NetworkSource(None)
    (first,) = source.read(net_snap(1_000_000_000))
    assert first.energy_j == 0.0
    # 2.5 GB × 0.001 kWh/GB = 0.0025 kWh = 9,000 J
    (r,) = source.read(net_snap(3_500_000_000))
    assert r.energy_j == pytest.approx(9000.0)
    assert r.attributed_j == 0.0  # machine-wide counters: not charged to the process tree
    # an interface went away: the counter fell; nothing is added, counting resumes from the new value
    (r,) = source.read(net_snap(200_000_000))
    assert r.energy_j == pytest.approx(9000.0)
    # 0.5 GB more: 1,800 J
    (r,) = source.read(net_snap(700_000_000))
    assert r.energy_j == pytest.approx(10800.0)


def test_network_is_charged_whole_only_with_machine_attribution() -> None:
    source = NetworkSource(None, attributed=True)
    source.read(net_snap(0))
    (r,) = source.read(net_snap(1_000_000_000))
    assert r.attributed_j == r.energy_j == pytest.approx(3600.0)
    assert "counted whole" in source.channels()[0].detail
    assert "not charged to the process tree" in NetworkSource().channels()[0].detail


def test_network_coefficients_and_range() -> None:
    assert CCF_NETWORK_KWH_PER_GB == 0.001
    assert pytest.approx(0.0053, abs=5e-5) == ASLAN_2022_KWH_PER_GB
    (default,) = NetworkSource().channels()
    assert (default.name, default.component, default.source, default.method) == (
        "network",
        "network",
        "estimated",
        "network-model",
    )
    assert default.high_factor == pytest.approx(ASLAN_2022_KWH_PER_GB / 0.001)
    assert default.low_factor == 0.5
    assert "machine-wide" in default.detail and "Cloud Carbon Footprint" in default.detail
    (high,) = NetworkSource(0.01).channels()
    assert high.high_factor == 1.0 and "network_kwh_per_gb setting" in high.detail
    source = NetworkSource(0.0053)
    source.read(net_snap(0))
    (r,) = source.read(net_snap(1_000_000_000))
    assert r.energy_j == pytest.approx(0.0053 * 3.6e6)


def test_network_probe_and_protocol() -> None:
    probe = probe_network()
    assert probe.available and "0.001 kWh/GB" in probe.summary and "Cloud Carbon Footprint" in probe.summary
    assert probe.channels[0].name == "network"
    source = NetworkSource()
    assert isinstance(source, PowerSource)
    source.close()
