"""Everyday equivalents of a footprint, each with its source, always shown next to the raw figure.

An equivalent is a reading aid, not a measurement: pages print ``0.42 kWh ≈ 22 phone charges`` with the
coefficient and where it comes from, never the equivalent alone.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypedDict

from wattwise.report import numbers
from wattwise.report.numbers import sig
from wattwise.units import J_PER_KWH, J_PER_WH, KM_PER_MILE

__all__ = ["EQUIVALENTS", "Equivalent", "EquivalentRow", "equivalents"]


@dataclass(frozen=True, slots=True)
class Equivalent:
    """``quantity`` (``energy_j``, ``co2e_g``, ``water_l``) divided by ``per_unit`` gives ``value`` ``unit``."""

    key: str
    quantity: str
    unit: str
    one: str  # one of the unit, for fractions: "1/40 of a full smartphone charge"
    per_unit: float  # in the quantity's own unit: J, g CO2e or L per one of ``unit``
    basis: str
    source: str


EQUIVALENTS: tuple[Equivalent, ...] = (
    Equivalent(
        key="car_km",
        quantity="co2e_g",
        unit="km driven by an average petrol car",
        one="a kilometre driven by an average petrol car",
        per_unit=400.0 / KM_PER_MILE,  # 400 g CO2 per mile
        basis="400 g CO2 per mile (249 g/km) for a typical passenger vehicle (its CO2 alone, against the run's CO2e)",
        source="US EPA, Greenhouse Gas Emissions from a Typical Passenger Vehicle (EPA-420-F-23-014, 2023)",
    ),
    Equivalent(
        key="phone_charges",
        quantity="energy_j",
        unit="full smartphone charges",
        one="a full smartphone charge",
        per_unit=19.0 * J_PER_WH,
        basis=(
            "19 Wh from the wall per full charge: a 4,000 mAh battery at 3.85 V (15.4 Wh) charged at about 80 % "
            "efficiency (wattwise's assumption from typical battery specifications)"
        ),
        source="battery capacity and voltage of current smartphones, as printed by their makers",
    ),
    Equivalent(
        key="household_days",
        quantity="energy_j",
        unit="days of an average US household's electricity",
        one="a day of an average US household's electricity",
        per_unit=10_791.0 / 365.0 * J_PER_KWH,
        basis="10,791 kWh a year (29.6 kWh a day) per US residential customer in 2022",
        source="US EIA, Frequently Asked Questions: How much electricity does an American home use? (2023)",
    ),
    Equivalent(
        key="drinking_water_days",
        quantity="water_l",
        unit="days of one adult's drinking water",
        one="a day of one adult's drinking water",
        per_unit=2.0,
        basis="2 L of drinking water a day for an adult, the consumption WHO's guideline values assume",
        source="WHO, Guidelines for Drinking-water Quality, 4th edition incorporating the 1st addendum (2017)",
    ),
)


class EquivalentRow(TypedDict):
    key: str
    quantity: str
    value: float
    raw: str  # the figure it stands for, as printed beside it
    text: str
    basis: str
    source: str


def equivalents(energy_j: float, co2e_g: float, water_l: float, *, energy_note: str = "") -> list[EquivalentRow]:
    """Each equivalent of these figures (skipping a quantity that is zero), with its text, basis and source.
    ``energy_note`` says which energy it is (``facility``), beside the raw figure."""
    amounts = {"energy_j": energy_j, "co2e_g": co2e_g, "water_l": water_l}
    raw = {
        "energy_j": numbers.energy_j(energy_j) + (f" ({energy_note})" if energy_note else ""),
        "co2e_g": f"{numbers.mass_g(co2e_g)} CO2e",
        "water_l": f"{numbers.volume_l(water_l)} of water",
    }
    rows: list[EquivalentRow] = []
    for eq in EQUIVALENTS:
        amount = amounts[eq.quantity]
        if amount <= 0:
            continue
        value = amount / eq.per_unit
        rows.append(
            {
                "key": eq.key,
                "quantity": eq.quantity,
                "value": value,
                "raw": raw[eq.quantity],
                "text": f"{sig(value)} {eq.unit}" if value >= 0.1 else f"1/{sig(1 / value)} of {eq.one}",
                "basis": eq.basis,
                "source": eq.source,
            }
        )
    return rows
