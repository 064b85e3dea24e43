"""Every number wattwise prints, formatted in one place: units chosen by magnitude, never a small job rounded to 0.

``energy_j(2.5e6)`` is ``694 Wh``; ``mass_kg(0.0004)`` is ``0.4 g``; a range is written in the unit of its value
(``1.2 MWh (0.9–1.6 MWh)``). Values keep three significant digits, so a figure is never shown as ``0.0`` unless
it is zero.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime

from wattwise.units import J_PER_KWH

__all__ = [
    "column",
    "duration_s",
    "energy_j",
    "energy_kwh",
    "energy_kwh_range",
    "energy_scale",
    "intensity",
    "iso_moment",
    "mass_g",
    "mass_kg",
    "mass_kg_range",
    "mass_scale",
    "moment",
    "percent",
    "power_scale",
    "power_w",
    "short_duration",
    "sig",
    "signed_percent",
    "volume_l",
    "volume_l_range",
]

# (divisor, unit), smallest first: the largest unit whose divisor is at most the value is used
_ENERGY_KWH: tuple[tuple[float, str], ...] = ((1e-3, "Wh"), (1.0, "kWh"), (1e3, "MWh"), (1e6, "GWh"), (1e9, "TWh"))
_MASS_KG: tuple[tuple[float, str], ...] = (
    (1e-9, "µg"),
    (1e-6, "mg"),
    (1e-3, "g"),
    (1.0, "kg"),
    (1e3, "t"),
    (1e6, "kt"),
    (1e9, "Mt"),
)
_VOLUME_L: tuple[tuple[float, str], ...] = ((1e-6, "µL"), (1e-3, "mL"), (1.0, "L"), (1e3, "m³"), (1e6, "thousand m³"))


def _rounded(value: float, digits: int = 3) -> float:
    """``value`` as :func:`sig` shows it, so that a unit is chosen by what is printed: 999.7 is shown as 1,000."""
    return float(f"{value:.{digits}g}") if math.isfinite(value) else value


def sig(value: float, digits: int = 3) -> str:
    """``value`` to ``digits`` significant digits (all digits of a number ≥ 1,000, thousands separated: 999.7 is
    ``1,000``, never ``1.00e+03``)."""
    if value == 0 or not math.isfinite(value):
        return "0" if value == 0 else str(value)
    if abs(_rounded(value, digits)) >= 1000:
        return f"{value:,.0f}"
    text = f"{value:.{digits}g}"
    return text if "e" not in text else f"{value:.{digits - 1}e}"


def _pick(value: float, scale: tuple[tuple[float, str], ...]) -> tuple[float, str]:
    """The largest unit whose divisor is at most ``value`` as it will be shown (0.9997 kWh is ``1 kWh``)."""
    chosen = scale[0]
    for divisor, unit in scale:
        if abs(_rounded(value / divisor)) >= 1:
            chosen = (divisor, unit)
    return chosen


def _scaled(value: float, scale: tuple[tuple[float, str], ...]) -> str:
    divisor, unit = _pick(value, scale)
    return f"{sig(value / divisor)} {unit}"


def _scaled_range(value: float, low: float, high: float, scale: tuple[tuple[float, str], ...]) -> str:
    divisor, unit = _pick(value, scale)
    return f"{sig(value / divisor)} {unit} ({sig(low / divisor)}–{sig(high / divisor)} {unit})"


def energy_kwh(kwh: float) -> str:
    return _scaled(kwh, _ENERGY_KWH)


def energy_kwh_range(value: float, low: float, high: float) -> str:
    return _scaled_range(value, low, high, _ENERGY_KWH)


def energy_j(joules: float) -> str:
    """µJ and mJ below 1 J, joules below 1 Wh (``12.5 J``), then Wh, kWh, MWh…"""
    if joules and abs(_rounded(joules * 1e3)) < 1:
        return f"{sig(joules * 1e6)} µJ"
    if joules and abs(_rounded(joules)) < 1:
        return f"{sig(joules * 1e3)} mJ"
    if abs(_rounded(joules / 3600)) < 1:
        return f"{sig(joules)} J" if joules else "0 J"
    return energy_kwh(joules / J_PER_KWH)


def mass_kg(kg: float) -> str:
    return _scaled(kg, _MASS_KG)


def mass_kg_range(value: float, low: float, high: float) -> str:
    return _scaled_range(value, low, high, _MASS_KG)


def mass_g(grams: float) -> str:
    return mass_kg(grams / 1000.0)


def volume_l(litres: float) -> str:
    return _scaled(litres, _VOLUME_L)


def volume_l_range(value: float, low: float, high: float) -> str:
    return _scaled_range(value, low, high, _VOLUME_L)


def duration_s(seconds: float) -> str:
    if 0 < seconds < 1:
        return f"{sig(seconds * 1000)} ms"
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m{secs:02d}s" if hours else f"{minutes}m{secs:02d}s"


def short_duration(seconds: float) -> str:
    """An axis label: ``0``, ``0.5 s``, ``45 s``, ``1.5 min``, ``2 h``, ``3 d``."""
    if seconds == 0:
        return "0"
    if abs(seconds) < 60:
        return f"{sig(seconds)} s"
    if abs(seconds) < 3600:
        return f"{sig(seconds / 60)} min"
    if abs(seconds) < 86400 * 2:
        return f"{sig(seconds / 3600)} h"
    return f"{sig(seconds / 86400)} d"


def power_w(watts: float) -> str:
    """mW below 1 W, W, then kW and MW."""
    if watts != 0 and abs(_rounded(watts)) < 1:
        return f"{sig(watts * 1000)} mW"
    if abs(_rounded(watts / 1e6)) >= 1:
        return f"{sig(watts / 1e6)} MW"
    if abs(_rounded(watts / 1e3)) >= 1:
        return f"{sig(watts / 1e3)} kW"
    return f"{sig(watts)} W"


def intensity(g_per_kwh: float) -> str:
    return f"{g_per_kwh:,.0f} gCO2e/kWh" if abs(g_per_kwh) >= 10 else f"{sig(g_per_kwh)} gCO2e/kWh"


def percent(fraction: float) -> str:
    """A share (0.123 → ``12.3 %``)."""
    return f"{sig(fraction * 100)} %"


def signed_percent(fraction: float) -> str:
    """A change (0.123 → ``+12.3 %``, -0.05 → ``−5 %``), ``±0 %`` for none."""
    if abs(fraction) < 5e-5:  # float noise, or a change below a thousandth of a percent
        return "±0 %"
    sign = "+" if fraction > 0 else "−"
    return f"{sign}{sig(abs(fraction) * 100)} %"


def moment(when: datetime) -> str:
    """A time in UTC to the second: ``2026-12-03 12:46:06 UTC``."""
    return when.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def iso_moment(text: str) -> str:
    """An ISO 8601 time as :func:`moment` writes it, to the minute (``2026-12-03 12:46 UTC``)."""
    return datetime.fromisoformat(text).astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def energy_scale(largest_j: float) -> tuple[float, str]:
    """(joules per unit, unit) for a plot axis whose largest value is ``largest_j``: µJ, mJ, J, Wh, kWh, MWh or
    GWh, so tick labels stay short."""
    for divisor, unit in ((3.6e12, "GWh"), (3.6e9, "MWh"), (3.6e6, "kWh"), (3600.0, "Wh"), (1.0, "J"), (1e-3, "mJ")):
        if abs(largest_j) >= divisor:
            return divisor, unit
    return (1e-6, "µJ") if largest_j else (1.0, "J")


def mass_scale(largest_g: float) -> tuple[float, str]:
    """(grams per unit, unit) for a plot axis: mg, g, kg or t."""
    for divisor, unit in ((1e6, "t"), (1e3, "kg"), (1.0, "g")):
        if abs(largest_g) >= divisor:
            return divisor, unit
    return 1e-3, "mg"


def power_scale(largest_w: float) -> tuple[float, str]:
    """(watts per unit, unit) for a plot axis: mW, W, kW or MW."""
    for divisor, unit in ((1e6, "MW"), (1e3, "kW"), (1.0, "W")):
        if abs(largest_w) >= divisor:
            return divisor, unit
    return (1e-3, "mW") if largest_w > 0 else (1.0, "W")


def column(value: float | None, spec: str) -> str:
    """A table cell in a column whose unit is in its header: ``spec`` is a format spec (``",.2f"``); ``-`` for
    no value."""
    return "-" if value is None else format(value, spec)
