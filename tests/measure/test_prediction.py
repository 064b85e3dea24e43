from __future__ import annotations

import pytest

from wattwise.measure.prediction import predict
from wattwise.units import emissions_g


def test_no_epochs_no_prediction() -> None:
    assert predict([], [], 10, 0.0, 0.0, 1.0, 400.0) is None


def test_one_epoch_uses_the_floor_range() -> None:
    p = predict([100.0], [10.0], 10, 100.0, 10.0, 1.0, 400.0)
    assert p is not None
    assert p.energy_j.value == pytest.approx(1000.0)
    # floor: 10 % of the mean per remaining epoch
    assert p.energy_j.low == pytest.approx(100.0 + 9 * 90.0)
    assert p.energy_j.high == pytest.approx(100.0 + 9 * 110.0)
    assert p.duration_s.value == pytest.approx(100.0)
    assert p.co2e_g.value == pytest.approx(emissions_g(1000.0, 1.0, 400.0))


def test_first_epoch_left_out_once_three_are_done_and_spread_widens_range() -> None:
    energies = [500.0, 100.0, 120.0, 80.0]  # warm-up epoch first
    p = predict(energies, [50.0, 10.0, 12.0, 8.0], 10, sum(energies), 80.0, 1.2, 300.0)
    assert p is not None
    mean, std = 100.0, 20.0
    assert p.energy_j.value == pytest.approx(800.0 + 6 * mean)
    assert p.energy_j.high == pytest.approx(800.0 + 6 * (mean + 2 * std))
    assert p.energy_j.low == pytest.approx(800.0 + 6 * (mean - 2 * std))
    assert p.co2e_g.high == pytest.approx(emissions_g(p.energy_j.high, 1.2, 300.0))


def test_done_run_predicts_what_was_measured() -> None:
    p = predict([10.0, 10.0], [1.0, 1.0], 2, 25.0, 2.5, 1.0, 100.0)
    assert p is not None
    assert p.energy_j.value == p.energy_j.low == p.energy_j.high == 25.0
