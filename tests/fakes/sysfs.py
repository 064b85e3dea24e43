"""Fake powercap (RAPL) trees under ``tmp_path``, laid out like ``/sys/class/powercap``; counters settable.

Real layout: the zones are directories (symlinks in the real class dir), subzones are nested in their zone and
also linked at the top level, and ``intel-rapl`` itself is the control type, with no counter::

    intel-rapl/            enabled
    intel-rapl:0/          name energy_uj max_energy_range_uj   (package-0)
    intel-rapl:0/intel-rapl:0:0/                                (core)
    intel-rapl:0:0 -> intel-rapl:0/intel-rapl:0:0
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

MAX_RANGE_UJ = 262_143_328_850  # a typical max_energy_range_uj of a package domain


@dataclass(frozen=True)
class FakeZone:
    """One zone directory; tests move its counter or break it."""

    path: Path

    @property
    def energy_file(self) -> Path:
        return self.path / "energy_uj"

    def set_energy(self, energy_uj: int) -> None:
        """Atomically, as sysfs does: a reader never sees a half-written (empty) counter."""
        tmp = self.energy_file.with_name(".energy_uj.tmp")
        tmp.write_text(f"{energy_uj}\n")
        tmp.replace(self.energy_file)

    def add_energy(self, delta_uj: int, max_range_uj: int = MAX_RANGE_UJ) -> None:
        """Advance the counter by ``delta_uj``, wrapping past ``max_range_uj`` as the hardware does."""
        current = int(self.energy_file.read_text())
        self.set_energy((current + delta_uj) % (max_range_uj + 1))

    def break_by_directory(self) -> None:
        """Make reads fail with EISDIR: a real failure that also happens as root (chmod does not stop it)."""
        self.energy_file.unlink()
        self.energy_file.mkdir()

    def vanish(self) -> None:
        """The counter file disappears (driver unloaded, zone removed, container remounted)."""
        self.energy_file.unlink()

    def remove(self) -> None:
        """The whole zone directory disappears."""
        shutil.rmtree(self.path)


def write_zone(path: Path, name: str, energy_uj: int = 0, max_range_uj: int | str = MAX_RANGE_UJ) -> FakeZone:
    path.mkdir(parents=True, exist_ok=True)
    (path / "name").write_text(f"{name}\n")
    (path / "energy_uj").write_text(f"{energy_uj}\n")
    (path / "max_energy_range_uj").write_text(f"{max_range_uj}\n")
    (path / "enabled").write_text("1\n")
    return FakeZone(path)


def make_powercap(
    root: Path,
    sockets: int = 2,
    dram: bool = True,
    core: bool = True,
    uncore: bool = False,
    psys: bool = False,
    mmio: bool = False,
    nested: bool = True,
    top_level_links: bool = True,
) -> dict[str, FakeZone]:
    """Build a tree; returns the zones keyed by the channel name wattwise is expected to give them.

    ``nested``/``top_level_links`` choose where subzones appear (real sysfs: both; some bind mounts flatten).
    ``mmio`` adds an ``intel-rapl-mmio:0`` duplicate of package 0, which must be ignored.
    """
    root.mkdir(parents=True, exist_ok=True)
    (root / "intel-rapl").mkdir(exist_ok=True)
    (root / "intel-rapl" / "enabled").write_text("1\n")
    zones: dict[str, FakeZone] = {}
    for n in range(sockets):
        zone_dir = root / f"intel-rapl:{n}"
        zones[f"cpu:package-{n}"] = write_zone(zone_dir, f"package-{n}", energy_uj=1_000_000 * (n + 1))
        subzones = [name for name, on in (("core", core), ("uncore", uncore), ("dram", dram)) if on]
        for m, sub in enumerate(subzones):
            sub_id = f"intel-rapl:{n}:{m}"
            nested_dir = zone_dir / sub_id
            target = nested_dir if nested else root / sub_id
            zone = write_zone(target, sub, energy_uj=100_000 * (m + 1))
            if nested and top_level_links:
                (root / sub_id).symlink_to(nested_dir, target_is_directory=True)
            key = f"dram:package-{n}" if sub == "dram" else f"cpu:{sub}-{n}"
            zones[key] = zone
    if psys:
        zones["platform:psys"] = write_zone(root / f"intel-rapl:{sockets}", "psys", energy_uj=5_000_000)
    if mmio:
        write_zone(root / "intel-rapl-mmio" / "intel-rapl-mmio:0", "package-0")
        (root / "intel-rapl-mmio:0").symlink_to(root / "intel-rapl-mmio" / "intel-rapl-mmio:0")
    return zones
