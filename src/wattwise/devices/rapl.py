"""CPU and DRAM energy from the Linux powercap RAPL interface: hardware counters, labelled ``measured``.

Layout under the root (``/sys/class/powercap`` by default; a container may mount the host's copy elsewhere,
hence ``Settings.rapl_root``). Intel since Sandy Bridge and AMD since Zen (Linux ≥ 5.8) share the driver::

    intel-rapl:0/                 name=package-0   energy_uj  max_energy_range_uj
    intel-rapl:0/intel-rapl:0:0/  name=core        (also uncore, dram)
    intel-rapl:1/                 name=package-1   (second socket), or name=psys (whole SoC, client parts)

Channels: ``package-N`` → ``cpu:package-N``; its ``dram`` subzone → ``dram:package-N`` (both in the total);
``core``/``uncore`` → ``cpu:core-N``/``cpu:uncore-N`` and ``psys`` → ``platform:psys`` overlap the package,
so they are reported but kept out of the total. Only ``intel-rapl:*`` zones are read: ``intel-rapl-mmio:*``
exposes the same package domain through MMIO on recent Intel client CPUs and would count it twice.

Counters: ``energy_uj`` counts microjoules and wraps to 0 after ``max_energy_range_uj``, so a delta is
``(new − old) mod (max_energy_range_uj + 1)``. A 300 W package wraps a typical 2^38 µJ (≈ 262 kJ) range in
about 15 minutes; the sampling thread reads every second, and more than one wrap between two reads cannot be
detected: a counter says nothing of how many times it passed its range. What the tracker can tell is when it
*might* have happened: when two reads are further apart than the counter needs to wrap at the zone's largest
power limit (``constraint_*_power_limit_uw``/``max_power_uw``, else an assumed 1,000 W), the run's notes say so
(a stalled or suspended machine, a sampler blocked for minutes). ``read()`` returns per channel the unwrapped sum
of deltas since the first read (which reads 0).

Attribution: RAPL meters the whole machine. Each domain's energy over an interval is split into an idle part
(the domain's idle baseline × Δt) and the dynamic rest (:func:`~wattwise.devices.base.attribute`): the dynamic
part is charged by the tree's share of the machine's busy CPU time, the idle part by what the tree holds (its share
of the CPUs it may run on; for DRAM, its share of memory). A counter gives no idle figure: the baseline is learnt
from the run and applied to all of it at the end (:class:`~wattwise.devices.idle.IdleSplit`: the quietest moments,
else the intercept of power against utilisation, else an assumed or the lowest power); the run's notes give it.

Permissions: since Linux 5.10 (CVE-2020-8694) ``energy_uj`` is readable only by root. :meth:`RaplSource.open`
then raises :class:`~wattwise.errors.DeviceError` with the fix in one line; :func:`probe_rapl` gives the
full fix (a chmod lost at reboot, or a udev rule). A counter that becomes unreadable mid-run raises
DeviceError naming the file; it never reads as 0.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from wattwise.devices.base import (
    Channel,
    Component,
    HostSnapshot,
    MeterReading,
    ProbeResult,
    allocation_share,
    cpu_share,
    cpu_utilisation,
    memory_share,
)
from wattwise.devices.idle import IDLE_FRACTION, IdleSplit
from wattwise.errors import DeviceError
from wattwise.units import uj_to_j

__all__ = ["DEFAULT_RAPL_ROOT", "RaplSource", "RaplZone", "probe_rapl"]

DEFAULT_RAPL_ROOT = Path("/sys/class/powercap")

_ZONE = re.compile(r"intel-rapl:(\d+)")
_SUBZONE = re.compile(r"intel-rapl:(\d+):(\d+)")
_PACKAGE = re.compile(r"package-(\d+)")

_NO_RAPL = "no RAPL powercap interface (VM, container or non-Intel/AMD CPU)"
_MOUNT_FIX = (
    "on bare metal in a container, mount the host's powercap tree read-only "
    "(docker run -v /sys/class/powercap:/host/powercap:ro ...) and set WATTWISE_RAPL_ROOT=/host/powercap; "
    "in a VM there is no RAPL, and CPU energy is estimated instead"
)
_CHMOD = (
    "sudo chmod o+r /sys/class/powercap/intel-rapl:*/energy_uj /sys/class/powercap/intel-rapl:*/intel-rapl:*/energy_uj"
)
_UDEV_RULE = 'SUBSYSTEM=="powercap", KERNEL=="intel-rapl:*", ACTION=="add", RUN+="/bin/chmod o+r /sys%p/energy_uj"'
_UDEV_FILE = "/etc/udev/rules.d/99-wattwise-rapl.rules"


@dataclass(frozen=True, slots=True)
class RaplZone:
    """One powercap zone: where its counter is, how far it counts before it wraps, the channel it feeds."""

    path: Path  # the zone directory
    zone_id: str  # "intel-rapl:0", "intel-rapl:0:1"
    domain: str  # the zone's ``name`` file: package-0, core, uncore, dram, psys
    max_energy_range_uj: int
    channel: Channel
    max_power_w: float = 1000.0  # the zone's largest power limit; ASSUMED 1,000 W where powercap gives none
    long_term_limit_w: float | None = None  # constraint_0 (PL1, about the TDP) where powercap gives it

    @property
    def wrap_s(self) -> float:
        """The shortest time the counter can take to wrap: its range at the zone's largest power."""
        return uj_to_j(self.max_energy_range_uj) / self.max_power_w

    @property
    def energy_file(self) -> Path:
        return self.path / "energy_uj"


@dataclass(frozen=True, slots=True)
class _Problem:
    """Why RAPL cannot be used here: a line for ``doctor``, the commands that fix it, the one-line error."""

    summary: str
    fix: str
    error: str


class RaplSource:
    """Every readable RAPL domain of the machine, as cumulative counters (see the module docstring)."""

    name: str = "rapl"

    def __init__(self, zones: Sequence[RaplZone]) -> None:
        """Use :meth:`open`; this takes zones already discovered and checked."""
        self._zones = tuple(zones)
        self._files = tuple(str(z.energy_file) for z in self._zones)
        self._moduli = tuple(z.max_energy_range_uj + 1 for z in self._zones)
        self._channels = tuple(z.channel for z in self._zones)
        self._last_uj: list[int] | None = None
        self._last_snapshot: HostSnapshot | None = None
        # a package's idle prior: its long-term limit (≈ TDP) × the CPU model's idle fraction (CCF, 0.74/3.5 W)
        self._splits = [
            IdleSplit(
                prior_w=IDLE_FRACTION * z.long_term_limit_w if z.long_term_limit_w and z.domain != "dram" else None
            )
            for z in self._zones
        ]
        self._notes: dict[str, None] = {}
        self._by_memory = tuple(z.domain == "dram" for z in self._zones)  # DRAM idle is charged by memory held

    @classmethod
    def open(cls, root: Path = DEFAULT_RAPL_ROOT) -> RaplSource:
        """Discover the zones under ``root`` and check every counter reads; else DeviceError with the fix."""
        found = _scan(root)
        if isinstance(found, _Problem):
            raise DeviceError(found.error)
        return cls(found)

    @property
    def zones(self) -> tuple[RaplZone, ...]:
        return self._zones

    def channels(self) -> tuple[Channel, ...]:
        return self._channels

    def read(self, snapshot: HostSnapshot, final: bool = False) -> tuple[MeterReading, ...]:
        """Cumulative joules per channel since the first call; attributed by the interval's CPU-time share."""
        now = [_read_counter(path) for path in self._files]  # all or nothing: a failure changes no state
        last = self._last_snapshot
        if self._last_uj is not None and last is not None:
            dt_s = max(0.0, snapshot.t_s - last.t_s)
            self._check_gap(dt_s)
            util, share = cpu_utilisation(last, snapshot), cpu_share(last, snapshot)
            held = allocation_share(snapshot), memory_share(last, snapshot)
            for i, (new, old) in enumerate(zip(now, self._last_uj, strict=True)):
                delta_j = uj_to_j((new - old) % self._moduli[i])
                self._splits[i].add(delta_j, dt_s, util, held[1] if self._by_memory[i] else held[0], share)
        self._last_uj = now
        self._last_snapshot = snapshot
        return tuple(MeterReading(split.energy_j, split.attributed_j()) for split in self._splits)

    def _check_gap(self, dt_s: float) -> None:
        for zone in self._zones:
            if dt_s >= zone.wrap_s:
                self._notes.setdefault(
                    f"{zone.channel.name}: {dt_s:.0f} s passed between two readings, as long as its counter takes to "
                    f"wrap at {zone.max_power_w:g} W ({zone.wrap_s:.0f} s): a second wrap in that interval would not "
                    f"be seen, and the interval may be short by multiples of {uj_to_j(zone.max_energy_range_uj):,.0f} J"
                )

    def notes(self) -> tuple[str, ...]:
        """The idle baselines used, and intervals in which a second counter wrap could have gone unseen."""
        how = {
            "quiet": "its quietest moments",
            "intercept": "power against utilisation at zero use",
            "lowest": "the lowest power seen: an upper bound, the machine was never quiet",
            "assumed": "assumed: 21 % of its long-term power limit, the machine was never quiet",
        }
        baselines = []
        for zone, split in zip(self._zones, self._splits, strict=True):
            watts, method = split.baseline()
            if method != "none" and zone.channel.in_total:
                baselines.append(f"{zone.channel.name} {watts:.1f} W ({how[method]})")
        found = list(self._notes)
        if baselines:
            found.append(
                "RAPL idle baselines, charged by what the run holds (the rest by its CPU time): " + ", ".join(baselines)
            )
        return tuple(found)

    def close(self) -> None:
        """Nothing is held open between reads."""


def probe_rapl(root: Path = DEFAULT_RAPL_ROOT) -> ProbeResult:
    """Can this user read the RAPL counters under ``root``? If not, why, and the exact commands to fix it."""
    found = _scan(root)
    if isinstance(found, _Problem):
        return ProbeResult(source="rapl", available=False, summary=found.summary, fix=found.fix)
    domains = ", ".join(f"{z.domain} ({z.zone_id})" for z in found)
    return ProbeResult(
        source="rapl",
        available=True,
        summary=f"RAPL energy counters readable under {root}: {domains}",
        channels=tuple(z.channel for z in found),
    )


def _read_raw(path: str | Path) -> int:
    """One counter: open, read, close (a sysfs attribute is regenerated on every open)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        data = os.read(fd, 64)
    finally:
        os.close(fd)
    try:
        return int(data)
    except ValueError:
        raise ValueError(f"not an integer counter: {data[:32]!r}") from None


def _read_counter(path: str) -> int:
    """Raises DeviceError naming the file on any failure; never returns a guess."""
    try:
        return _read_raw(path)
    except OSError as exc:
        raise DeviceError(
            f"RAPL: cannot read {path} ({exc.strerror or exc}); it was readable when the source was opened "
            f"(zone removed, driver unloaded or permissions changed)"
        ) from exc
    except ValueError as exc:
        raise DeviceError(f"RAPL: {path}: {exc}") from exc


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not ASCII"
        raise DeviceError(f"RAPL: cannot read {path} ({reason})") from exc


def _scan(root: Path) -> list[RaplZone] | _Problem:
    """Zones under ``root`` whose counters this process can read, or why there are none."""
    if not root.is_dir():
        return _Problem(
            summary=_NO_RAPL,
            fix=_MOUNT_FIX,
            error=f"RAPL: {root} does not exist ({_NO_RAPL}); {_MOUNT_FIX}",
        )
    try:
        zones = _discover(root)
    except DeviceError as exc:
        return _Problem(summary=str(exc), fix=_MOUNT_FIX, error=str(exc))
    if not zones:
        fix = f"load the RAPL driver (sudo modprobe intel_rapl_msr) on bare metal; {_MOUNT_FIX}"
        return _Problem(
            summary=f"no intel-rapl zones under {root}", fix=fix, error=f"RAPL: no zones under {root}; {fix}"
        )
    for zone in zones:
        try:
            _read_raw(zone.energy_file)
        except PermissionError:
            return _permission_problem(root, zone.energy_file)
        except (OSError, ValueError) as exc:
            reason = (exc.strerror or str(exc)) if isinstance(exc, OSError) else str(exc)
            msg = f"RAPL: cannot read {zone.energy_file} ({reason})"
            return _Problem(summary=msg, fix=_MOUNT_FIX, error=msg)
    return zones


def _permission_problem(root: Path, path: Path) -> _Problem:
    host = "" if root == DEFAULT_RAPL_ROOT else f" (on the host: {root} mounts its /sys/class/powercap)"
    fix = "\n".join(
        [
            f"Run as root, or let other users read the counters{host}.",
            "This re-opens the side channel that CVE-2020-8694 closed: do it only where you trust the users.",
            "  until the next reboot:",
            f"    {_CHMOD}",
            "  persistently (a udev rule, applied now and at every boot):",
            f"    echo '{_UDEV_RULE}' | sudo tee {_UDEV_FILE}",
            "    sudo udevadm control --reload",
            "    sudo udevadm trigger --subsystem-match=powercap --action=add",
        ]
    )
    return _Problem(
        summary=f"RAPL counters are readable only by root since Linux 5.10 (CVE-2020-8694): {path}",
        fix=fix,
        error=(
            f"RAPL: permission denied reading {path} (root-only since Linux 5.10, CVE-2020-8694); "
            f"run `{_CHMOD}` (until reboot), or see `wattwise doctor` for a persistent udev rule"
        ),
    )


def _discover(root: Path) -> list[RaplZone]:
    """Top-level zones in id order, each followed by its subzones in id order."""
    top: dict[int, Path] = {}
    flat_subzones: dict[tuple[int, int], Path] = {}
    for entry in root.iterdir():
        if m := _ZONE.fullmatch(entry.name):
            top[int(m[1])] = entry
        elif m := _SUBZONE.fullmatch(entry.name):
            flat_subzones[int(m[1]), int(m[2])] = entry
    zones: list[RaplZone] = []
    taken: set[str] = set()
    for index in sorted(top):
        zone_dir = top[index]
        parent = _zone(zone_dir, f"intel-rapl:{index}", None, index, taken)
        zones.append(parent)
        # Subzones are nested in their zone; some mounts also (or only) list them at the top level.
        subzones = {k[1]: p for k, p in flat_subzones.items() if k[0] == index}
        for entry in zone_dir.iterdir():
            m = _SUBZONE.fullmatch(entry.name)
            if m and int(m[1]) == index and entry.is_dir():
                subzones[int(m[2])] = entry
        for sub in sorted(subzones):
            zones.append(_zone(subzones[sub], f"intel-rapl:{index}:{sub}", parent.domain, index, taken))
    return zones


def _zone(path: Path, zone_id: str, parent: str | None, index: int, taken: set[str]) -> RaplZone:
    domain = _read_text(path / "name")
    max_text = _read_text(path / "max_energy_range_uj")
    try:
        max_range = int(max_text)
    except ValueError:
        max_range = 0
    if max_range < 1:
        raise DeviceError(f"RAPL: {path / 'max_energy_range_uj'} holds {max_text!r}, not a counter range")
    name, component, in_total = _channel_name(domain, parent, index)
    if name in taken:  # two zones of the same name (never seen, but never merge two counters)
        name = f"{name}@{zone_id}"
    taken.add(name)
    detail = f"powercap {zone_id} {domain}" if parent is None else f"powercap {zone_id} {domain} of {parent}"
    channel = Channel(name, component, "measured", "rapl", detail, in_total=in_total)
    return RaplZone(path, zone_id, domain, max_range, channel, _max_power_w(path), _long_term_limit_w(path))


def _long_term_limit_w(path: Path) -> float | None:
    """``constraint_0_power_limit_uw`` (the long-term limit, PL1, about the TDP), or None."""
    try:
        value = int((path / "constraint_0_power_limit_uw").read_text(encoding="ascii").strip())
    except (OSError, ValueError, UnicodeDecodeError):
        return None
    return uj_to_j(value) if value > 0 else None


def _max_power_w(path: Path) -> float:
    """The zone's largest power limit or maximum (powercap constraints, µW), or the assumed 1,000 W."""
    found = 0.0
    for name in ("constraint_0", "constraint_1", "constraint_2"):
        for suffix in ("power_limit_uw", "max_power_uw"):
            try:
                value = int((path / f"{name}_{suffix}").read_text(encoding="ascii").strip())
            except (OSError, ValueError, UnicodeDecodeError):
                continue
            found = max(found, uj_to_j(value))  # µW to W is the same factor as µJ to J
    return found if found > 0 else 1000.0


def _channel_name(domain: str, parent: str | None, index: int) -> tuple[str, Component, bool]:
    """(channel name, component, in_total) for a zone's domain name."""
    if parent is None:
        if _PACKAGE.fullmatch(domain):
            return f"cpu:{domain}", "cpu", True
        if domain == "dram":
            return f"dram:rapl-{index}", "dram", True
        return f"platform:{domain}", "platform", False  # psys, and anything unknown: overlaps, kept out
    m = _PACKAGE.fullmatch(parent)
    socket = m[1] if m else str(index)
    if domain == "dram":
        return f"dram:{parent}" if m else f"dram:rapl-{index}", "dram", True
    return f"cpu:{domain}-{socket}", "cpu", False  # core, uncore (client graphics): inside the package
