from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from tests.schedule.conftest import synthetic
from wattwise.carbon.base import IntensityPoint, IntensitySeries
from wattwise.errors import ConfigError
from wattwise.schedule.forecast import FORECASTERS, Anomaly, forecast, forecaster, refit_points
from wattwise.schedule.hourly import to_hourly
from wattwise.schedule.learned import Gbm, Lstm

CHEAP = ("p24", "m7", "anomaly", "linear", "blend")


def test_p24_and_m7_are_the_benchmark_definitions() -> None:
    values = np.arange(24 * 10, dtype=float)
    issue = 24 * 9 + 5
    f = forecaster("p24").matrix(values, 0, np.array([issue]), 30)[0]
    assert f[0] == values[issue - 24] and f[18] == values[issue + 18 - 24]
    assert f[23] == values[issue - 1]
    assert f[24] == values[issue + 24 - 48]  # leads of a day or more: 48 h back
    m = forecaster("m7").matrix(values, 0, np.array([issue]), 30)[0]
    assert m[0] == pytest.approx(np.mean([values[issue - 24 * d] for d in range(1, 8)]))
    assert m[25] == pytest.approx(np.mean([values[issue + 25 - 24 * d] for d in range(2, 9)]))


@pytest.mark.parametrize("name", CHEAP)
def test_a_forecast_never_sees_its_future(name: str) -> None:
    values = synthetic(24 * 60, seed=5)
    issues = np.array([24 * 30, 24 * 45 + 7])
    model = forecaster(name)
    before = model.matrix(values, 0, issues, 30)
    for issue, row in zip(issues, before, strict=True):
        changed = values.copy()
        changed[issue:] = changed[issue:] * 3 + 500  # the future changes completely
        after = model.matrix(changed, 0, np.array([issue]), 30)[0]
        np.testing.assert_allclose(after, row)


def test_learned_models_refit_only_on_the_past() -> None:
    groups = refit_points(np.arange(0, 2000), 500, 600)
    assert groups[0][0] == -1 and groups[0][1].max() == 599
    for fit_at, rows in groups[1:]:
        assert rows.min() >= fit_at  # a model fitted at fit_at serves only issues at or after it
    values = synthetic(24 * 80, seed=6)
    issue = np.array([24 * 70])
    gbm = Gbm(max_iter=20)
    before = gbm.matrix(values, 0, issue, 28)
    changed = values.copy()
    changed[24 * 70 :] += 400
    np.testing.assert_allclose(gbm.matrix(changed, 0, issue, 28), before)


def test_lstm_forecasts_from_the_past_only() -> None:
    pytest.importorskip("torch")
    values = synthetic(24 * 60, seed=7)
    model = Lstm(epochs=2, max_windows=300)
    issue = np.array([24 * 50])
    before = model.matrix(values, 0, issue, 28)
    changed = values.copy()
    changed[24 * 50 :] *= 2
    np.testing.assert_allclose(model.matrix(changed, 0, issue, 28), before, rtol=1e-5)
    assert np.isfinite(before).all()


def test_anomaly_follows_the_current_departure_and_fades() -> None:
    values = np.tile(np.linspace(100, 200, 24), 20)
    values[-1] += 50  # the last observed hour is 50 above its usual value
    f = Anomaly(days=14, half_life_days=None, fade=0.5).matrix(values, 0, np.array([len(values)]), 26)
    f = f[0] if f.ndim == 2 else f
    base = np.tile(np.linspace(100, 200, 24), 2)[:26]
    base[23] += 50 / 14  # that hour's own profile (the same hour over 14 days) now holds it too
    np.testing.assert_allclose(f - base, 50 * 0.5 ** np.arange(1, 27), atol=1e-6)


def test_unknown_forecaster_and_short_history_are_one_line() -> None:
    with pytest.raises(ConfigError, match=r"unknown forecaster 'nope'.*auto"):
        forecaster("nope")
    with pytest.raises(ConfigError, match="needs at least 168 h"):
        forecast(forecaster("m7"), np.ones(30), 0, 24)
    assert set(FORECASTERS) == {"p24", "m7", "anomaly", "linear", "blend", "gbm", "lstm"}


def test_to_hourly_averages_quarter_hours_and_leaves_gaps() -> None:
    start = datetime(2024, 1, 1, tzinfo=UTC)
    points = [IntensityPoint(start + timedelta(minutes=15 * i), 900, float(i)) for i in range(8)]
    points += [IntensityPoint(start + timedelta(hours=5), 3600, 50.0)]  # hours 2-4 missing
    hourly = to_hourly(IntensitySeries("X", "average", "t", tuple(points)))
    assert hourly.start == start
    assert list(hourly.values[:2]) == [1.5, 5.5]
    assert np.isnan(hourly.values[2:5]).all() and hourly.values[5] == 50.0


def test_recent_days_weigh_more_with_a_half_life() -> None:
    values = np.concatenate([np.full(24 * 10, 100.0), np.full(24 * 2, 200.0)])
    flat = Anomaly(days=12, half_life_days=None, fade=0.0).matrix(values, 0, np.array([len(values)]), 24)[0]
    recent = Anomaly(days=12, half_life_days=1.0, fade=0.0).matrix(values, 0, np.array([len(values)]), 24)[0]
    assert flat[5] == pytest.approx((10 * 100 + 2 * 200) / 12)
    assert recent[5] == pytest.approx(np.average([200, 200, *[100] * 10], weights=0.5 ** np.arange(12)))
