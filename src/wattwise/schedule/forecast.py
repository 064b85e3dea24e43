"""Forecasters of hourly grid intensity from its own past, for when a provider gives no forecast.

Every forecaster answers :meth:`Forecaster.matrix`: ``F[i, k]`` is its forecast, issued at the start of hour
``issues[i]`` (knowing only ``values[:issues[i]]``, never later), of hour ``issues[i] + k``. One call covers a
year of hourly issues, so a backtest and a single forecast run the same code. Models that learn (``linear``,
``gbm``, ``lstm``) refit on an expanding window of the past at fixed intervals, so no row ever sees its future.

- ``p24``: the same hour on the last observed day (48 h back for leads of a day or more).
- ``m7``: the mean of the last 7 observed values of the same hour (the baseline of the shared benchmarks).
- ``anomaly``: the same-hour mean over the last 28 days, weighted with a 7-day half-life, plus the last observed
  hour's departure from it, fading by a factor of 0.97 an hour: the grid's daily shape, with the state it is in
  now. (The half-life and fade are generic defaults, flat within a point from 4 to 10 days and 0.96 to 0.98 on
  every shared trace; they are not tuned per grid.)
- ``linear``: the same profile plus a ridge regression per lead on the last 6 hours' departures (refit weekly).
- ``blend``: the mean of ``anomaly`` and ``linear``.
- ``gbm``: gradient-boosted trees (scikit-learn) on departures, profiles and calendar features (refit every
  4 weeks; the ``schedule`` extra).
- ``lstm``: a small LSTM (torch) on the last two days' departures and the hour of day (refit every 4 weeks;
  needs torch).

Which one schedules best depends on the grid; :mod:`wattwise.schedule.select` chooses on the trace's own past.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from wattwise.errors import ConfigError

DAY = 24
WEEK = 7 * DAY


class Forecaster(Protocol):
    @property
    def name(self) -> str: ...

    @property
    def min_history_h(self) -> int:
        """Fewer hours of history than this and the forecaster cannot answer."""
        ...

    def matrix(self, values: np.ndarray, first_hour: int, issues: np.ndarray, horizon: int) -> np.ndarray:
        """``F[i, k]``: the forecast issued at ``issues[i]`` for hour ``issues[i] + k`` (see the module doc)."""
        ...


def _padded(values: np.ndarray, horizon: int) -> np.ndarray:
    return np.concatenate([np.asarray(values, dtype=float), np.full(horizon + 1, np.nan)])


def same_hour_mean(
    values: np.ndarray, days: int, back: int, half_life_days: float | None = None, min_count: int | None = None
) -> np.ndarray:
    """``out[h]`` = the mean of ``values[h - 24 * d]`` for d = back .. back + days - 1, NaNs skipped; weighted by
    ``0.5 ** ((d - back) / half_life_days)`` when a half-life is given (recent days count more). NaN where fewer
    than ``min_count`` (default half of ``days``) of them are there."""
    n = len(values)
    total, weight, count = np.zeros(n), np.zeros(n), np.zeros(n)
    for d in range(back, back + days):
        shift = DAY * d
        if shift >= n:
            break
        w = 1.0 if half_life_days is None else 0.5 ** ((d - back) / half_life_days)
        seen = values[: n - shift]
        ok = ~np.isnan(seen)
        total[shift:][ok] += w * seen[ok]
        weight[shift:][ok] += w
        count[shift:][ok] += 1
    need = max(1, days // 2) if min_count is None else min_count
    with np.errstate(invalid="ignore", divide="ignore"):
        out: np.ndarray = np.where(count >= need, total / np.maximum(weight, 1e-12), np.nan)
    return out


class _Profile:
    """Same-hour means of ``days`` days, seen from each lead: ``at(issues, horizon)[i, k]`` uses only days
    before ``issues[i]`` (the last observed same hour is ``k // 24 + 1`` days before the target)."""

    def __init__(
        self,
        values: np.ndarray,
        days: int,
        horizon: int,
        half_life_days: float | None = None,
        min_count: int | None = None,
    ) -> None:
        self.by_back = {
            back: same_hour_mean(values, days, back, half_life_days, min_count) for back in range(1, horizon // DAY + 2)
        }

    def at(self, issues: np.ndarray, horizon: int) -> np.ndarray:
        out = np.empty((len(issues), horizon))
        for k in range(horizon):
            out[:, k] = self.by_back[k // DAY + 1][issues + k]
        return out


@dataclass
class SameHourMean:
    """``p24`` (days=1) and ``m7`` (days=7)."""

    name: str
    days: int

    @property
    def min_history_h(self) -> int:
        return DAY * self.days

    def matrix(self, values: np.ndarray, first_hour: int, issues: np.ndarray, horizon: int) -> np.ndarray:
        padded = _padded(values, horizon)
        return _Profile(padded, self.days, horizon).at(issues, horizon)


@dataclass
class Anomaly:
    """The daily profile (same-hour means over ``days`` days, weighted with a ``half_life_days`` half-life) plus
    the current departure from it, fading by ``fade`` an hour."""

    name: str = "anomaly"
    days: int = 28
    half_life_days: float | None = 7.0
    fade: float = 0.97
    min_days: int = 7

    @property
    def min_history_h(self) -> int:
        return DAY * (self.min_days + 1)

    def matrix(self, values: np.ndarray, first_hour: int, issues: np.ndarray, horizon: int) -> np.ndarray:
        padded = _padded(values, horizon)
        profile = _Profile(padded, self.days, horizon, self.half_life_days, self.min_days)
        departure = padded - profile.by_back[1]
        last = departure[np.maximum(issues - 1, 0)]
        last = np.where(np.isnan(last), 0.0, last)
        fades = self.fade ** np.arange(1, horizon + 1)
        out: np.ndarray = profile.at(issues, horizon) + last[:, None] * fades[None, :]
        return out


def refit_points(issues: np.ndarray, every_h: int, first_fit_h: int) -> list[tuple[int, np.ndarray]]:
    """Groups of issue indices that share one fit: ``(fit_at, rows)``; a model fitted at ``fit_at`` uses only
    hours before it. Issues before ``first_fit_h`` form a group with ``fit_at = -1`` (no model yet)."""
    order = np.asarray(issues)
    epoch = np.where(order < first_fit_h, -1, (order - first_fit_h) // every_h)
    groups = []
    for e in np.unique(epoch):
        rows = np.nonzero(epoch == e)[0]
        fit_at = -1 if e < 0 else int(first_fit_h + e * every_h)
        groups.append((fit_at, rows))
    return groups


@dataclass
class Linear:
    """Profile plus a ridge regression per lead on the last ``lags`` hours' departures."""

    name: str = "linear"
    days: int = 14
    lags: int = 6
    ridge: float = 1.0
    refit_h: int = WEEK

    @property
    def min_history_h(self) -> int:
        return DAY * self.days + 2 * WEEK

    def matrix(self, values: np.ndarray, first_hour: int, issues: np.ndarray, horizon: int) -> np.ndarray:
        padded = _padded(values, horizon)
        profile = _Profile(padded, self.days, horizon)
        departure = padded - profile.by_back[1]
        n = len(padded)
        lagged = np.full((n, self.lags + 1), np.nan)
        for i in range(1, self.lags + 1):
            lagged[i:, i - 1] = departure[:-i]
        lagged[:, self.lags] = 1.0
        targets = _Profile(padded, self.days, horizon)
        base = profile.at(issues, horizon)
        out = base.copy()
        first_fit = DAY * self.days + WEEK
        for fit_at, rows in refit_points(issues, self.refit_h, first_fit):
            if fit_at < 0:
                continue
            train = np.arange(DAY * self.days, max(fit_at - horizon, DAY * self.days))
            if len(train) < WEEK:
                continue
            x = lagged[train]
            y = padded[train[:, None] + np.arange(horizon)[None, :]] - targets.at(train, horizon)
            coefs = np.zeros((self.lags + 1, horizon))
            ok_x = ~np.isnan(x).any(axis=1)
            for k in range(horizon):
                ok = ok_x & ~np.isnan(y[:, k])
                if ok.sum() < WEEK:
                    continue
                xo = x[ok]
                coefs[:, k] = np.linalg.solve(xo.T @ xo + self.ridge * np.eye(self.lags + 1), xo.T @ y[ok, k])
            now = lagged[issues[rows]]
            fixed = np.where(np.isnan(now), 0.0, now)
            out[rows] = base[rows] + fixed @ coefs
        return out


@dataclass
class Blend:
    """The mean of ``anomaly`` and ``linear``: two views of the current departure, averaged."""

    name: str = "blend"

    @property
    def min_history_h(self) -> int:
        return Linear().min_history_h

    def matrix(self, values: np.ndarray, first_hour: int, issues: np.ndarray, horizon: int) -> np.ndarray:
        a = Anomaly().matrix(values, first_hour, issues, horizon)
        b = Linear().matrix(values, first_hour, issues, horizon)
        out: np.ndarray = np.where(np.isnan(b), a, (a + b) / 2)
        return out


def calendar(first_hour: int, hours: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Hour of day and day of week (0 = Monday) in UTC of absolute hour indices ``first_hour + hours``."""
    absolute = first_hour + hours
    return absolute % DAY, (absolute // DAY + 3) % 7  # 1970-01-01 was a Thursday


def _registry() -> dict[str, Callable[[], Forecaster]]:
    from wattwise.schedule.learned import Gbm, Lstm

    return {
        "p24": lambda: SameHourMean("p24", 1),
        "m7": lambda: SameHourMean("m7", 7),
        "anomaly": Anomaly,
        "linear": Linear,
        "blend": Blend,
        "gbm": Gbm,
        "lstm": Lstm,
    }


FORECASTERS = ("p24", "m7", "anomaly", "linear", "blend", "gbm", "lstm")


def forecaster(name: str) -> Forecaster:
    """The forecaster called ``name`` (``auto`` is chosen by :mod:`wattwise.schedule.select`, not here)."""
    makers = _registry()
    if name not in makers:
        raise ConfigError(f"unknown forecaster {name!r}: choose one of {', '.join((*FORECASTERS, 'auto'))}")
    return makers[name]()


def forecast(model: Forecaster, history: np.ndarray, first_hour: int, horizon: int) -> np.ndarray:
    """The next ``horizon`` hours after ``history`` (hourly values, the last one just observed)."""
    if np.sum(~np.isnan(history)) < model.min_history_h:
        raise ConfigError(
            f"forecaster {model.name} needs at least {model.min_history_h} h of history "
            f"({math.ceil(model.min_history_h / DAY)} days), and {int(np.sum(~np.isnan(history)))} h were given"
        )
    row: np.ndarray = model.matrix(history, first_hour, np.array([len(history)]), horizon)[0]
    return row
