"""Numbers as wattwise prints them: a value that rounds up past its unit moves to the next unit, never to 1.00e+03."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from wattwise.report import numbers


@pytest.mark.parametrize(
    ("value", "shown"),
    [(999.4, "999"), (999.5, "1,000"), (999.97, "1,000"), (-999.7, "-1,000"), (1234.0, "1,234"), (0.5, "0.5")],
)
def test_sig_never_writes_a_rounded_thousand_in_exponent_form(value: float, shown: str) -> None:
    assert numbers.sig(value) == shown


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        (lambda: numbers.energy_j(999.7 * 3600), "1 kWh"),  # 999.7 Wh: not "1.00e+03 Wh"
        (lambda: numbers.energy_kwh(0.99971), "1 kWh"),
        (lambda: numbers.energy_j(0.99996), "1 J"),
        (lambda: numbers.energy_j(0.00099996), "1 mJ"),
        (lambda: numbers.power_w(999.8), "1 kW"),
        (lambda: numbers.power_w(0.99996), "1 W"),
        (lambda: numbers.mass_kg(0.9997), "1 kg"),
        (lambda: numbers.volume_l(999.9), "1 m³"),
        (lambda: numbers.energy_j(3598.0), "3,598 J"),  # still below 1 Wh as shown
        (lambda: numbers.energy_kwh_range(0.99971, 0.5, 1.2), "1 kWh (0.5–1.2 kWh)"),
    ],
)
def test_a_value_that_rounds_up_to_the_next_unit_is_shown_in_it(text: Callable[[], str], shown: str) -> None:
    written = text()
    assert written == shown and "e+" not in written
