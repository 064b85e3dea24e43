"""Every unit conversion in wattwise lives here, and nowhere else.

Names carry units (``energy_j``, ``power_w``, ``intensity_g_per_kwh``); functions are named ``<from>_to_<to>``.
"""

from __future__ import annotations

J_PER_KWH = 3.6e6
J_PER_WH = 3600.0
BYTES_PER_GB = 1e9  # decimal gigabyte, as used by network and cloud energy factors
BYTES_PER_GIB = 1024**3
G_PER_LB = 453.59237  # avoirdupois pound, exact by definition
KM_PER_MILE = 1.609344  # international mile, exact by definition


def uj_to_j(energy_uj: float) -> float:
    """Microjoules (RAPL counters) to joules."""
    return energy_uj * 1e-6


def mj_to_j(energy_mj: float) -> float:
    """Millijoules (NVML's total-energy counter) to joules."""
    return energy_mj * 1e-3


def mw_to_w(power_mw: float) -> float:
    """Milliwatts (NVML power readings and limits) to watts."""
    return power_mw * 1e-3


def j_to_kwh(energy_j: float) -> float:
    return energy_j / J_PER_KWH


def kwh_to_j(energy_kwh: float) -> float:
    return energy_kwh * J_PER_KWH


def j_to_wh(energy_j: float) -> float:
    return energy_j / J_PER_WH


def bytes_to_gb(n_bytes: float) -> float:
    return n_bytes / BYTES_PER_GB


def bytes_to_gib(n_bytes: float) -> float:
    return n_bytes / BYTES_PER_GIB


def g_to_kg(mass_g: float) -> float:
    return mass_g * 1e-3


def lbs_per_mwh_to_g_per_kwh(intensity_lbs_per_mwh: float) -> float:
    """Pounds of CO2 per MWh (WattTime, EPA eGRID) to grams per kWh."""
    return intensity_lbs_per_mwh * G_PER_LB / 1000.0


def emissions_g(energy_j: float, pue: float, intensity_g_per_kwh: float) -> float:
    """Operational emissions of ``energy_j`` of IT energy in a facility of ``pue`` on a grid of given intensity."""
    return j_to_kwh(energy_j) * pue * intensity_g_per_kwh


def ticks_to_s(ticks: float, ticks_per_s: float) -> float:
    """Kernel clock ticks (``/proc/*/stat`` CPU times) to seconds."""
    return ticks / ticks_per_s


L_PER_US_GAL = 3.785411784  # US liquid gallon, exact by definition (231 cubic inches)


def kg_per_kwh_to_g_per_kwh(intensity_kg_per_kwh: float) -> float:
    """Kilograms of CO2 per kWh (and tonnes per MWh, the same ratio) to grams per kWh."""
    return intensity_kg_per_kwh * 1000.0


def g_per_mwh_to_g_per_kwh(intensity_g_per_mwh: float) -> float:
    """Grams per MWh to grams per kWh (kg/MWh needs no conversion: it equals g/kWh)."""
    return intensity_g_per_mwh / 1000.0


def gal_per_mwh_to_l_per_kwh(water_gal_per_mwh: float) -> float:
    """US gallons of water per MWh generated (NREL, EIA factors) to litres per kWh."""
    return water_gal_per_mwh * L_PER_US_GAL / 1000.0
