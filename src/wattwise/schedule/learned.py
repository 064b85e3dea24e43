"""Forecasters that learn from the trace's past: gradient-boosted trees (scikit-learn) and an LSTM (torch).

Both predict the departure of each hour ahead from the 14-day same-hour profile, from the recent departures and
the calendar, and refit every 4 weeks on everything before the refit (see :func:`refit_points`), so a backtest
never trains on the hours it is scored on. Their libraries are imported when a model is first fitted; a missing
one is one line saying which extra to install.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from wattwise.errors import ConfigError
from wattwise.schedule.forecast import DAY, WEEK, _padded, _Profile, calendar, refit_points

PROFILE_DAYS = 14
LAGS = 24
REFIT_H = 4 * WEEK
FIRST_FIT_H = DAY * PROFILE_DAYS + 2 * WEEK
_SEED = 0


def _import(module: str, extra: str) -> Any:
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        raise ConfigError(
            f"this forecaster needs {module.split('.', maxsplit=1)[0]}: pip install 'wattwise[{extra}]'"
        ) from None


class _Inputs:
    """Departures from the profile, lagged, and the profile seen from each lead, for one series."""

    def __init__(self, values: np.ndarray, horizon: int) -> None:
        self.padded = _padded(values, horizon)
        self.profile = _Profile(self.padded, PROFILE_DAYS, horizon)
        departure = self.padded - self.profile.by_back[1]
        self.departure = np.where(np.isnan(departure), 0.0, departure)  # a gap reads as "as usual"
        self.horizon = horizon
        self.scale = 1.0

    def fit_scale(self, fit_at: int) -> None:
        """Scale departures by their spread before ``fit_at`` only (the future must not leak in)."""
        self.scale = float(np.std(self.departure[:fit_at])) or 1.0

    def lags(self, issues: np.ndarray, count: int) -> np.ndarray:
        """``out[i, j]``: the departure ``j + 1`` hours before ``issues[i]`` (0 before the series starts)."""
        idx = issues[:, None] - 1 - np.arange(count)[None, :]
        out: np.ndarray = np.where(idx >= 0, self.departure[np.maximum(idx, 0)] / self.scale, 0.0)
        return out

    def targets(self, issues: np.ndarray) -> np.ndarray:
        actual = self.padded[issues[:, None] + np.arange(self.horizon)[None, :]]
        out: np.ndarray = (actual - self.profile.at(issues, self.horizon)) / self.scale
        return out


def _fits(inputs: _Inputs, issues: np.ndarray, horizon: int) -> Iterator[tuple[np.ndarray, np.ndarray, Any]]:
    """For each refit: the rows of ``issues`` it serves, the training issues (all before the fit, their targets
    complete) and a random generator seeded by the fit's hour; departures are scaled by the past only."""
    for fit_at, rows in refit_points(issues, REFIT_H, FIRST_FIT_H):
        if fit_at < 0:
            continue
        train = np.arange(DAY * PROFILE_DAYS, max(fit_at - horizon, DAY * PROFILE_DAYS))
        if len(train) < WEEK:
            continue
        inputs.fit_scale(fit_at)
        yield rows, train, np.random.default_rng(_SEED + fit_at)


@dataclass
class Gbm:
    name: str = "gbm"
    max_iter: int = 150
    leads_per_issue: int = 6
    min_history_h: int = FIRST_FIT_H

    def _rows(
        self, inputs: _Inputs, first_hour: int, issues: np.ndarray, leads: np.ndarray
    ) -> np.ndarray:  # issues and leads of equal length
        lags = inputs.lags(issues, LAGS)
        hour, weekday = calendar(first_hour, issues + leads)
        recent = lags[:, :DAY]
        return np.column_stack([lags, recent.mean(axis=1), recent.std(axis=1), leads, hour, weekday])

    def matrix(self, values: np.ndarray, first_hour: int, issues: np.ndarray, horizon: int) -> np.ndarray:
        ensemble = _import("sklearn.ensemble", "schedule")
        inputs = _Inputs(values, horizon)
        out = inputs.profile.at(issues, horizon)
        for rows, train, rng in _fits(inputs, issues, horizon):
            leads = rng.integers(0, horizon, size=(len(train), self.leads_per_issue))
            t_issue = np.repeat(train, self.leads_per_issue)
            t_lead = leads.ravel()
            y = inputs.targets(train)[np.repeat(np.arange(len(train)), self.leads_per_issue), t_lead]
            ok = ~np.isnan(y)
            model = ensemble.HistGradientBoostingRegressor(max_iter=self.max_iter, random_state=_SEED)
            model.fit(self._rows(inputs, first_hour, t_issue[ok], t_lead[ok]), y[ok])
            these = issues[rows]
            p_issue = np.repeat(these, horizon)
            p_lead = np.tile(np.arange(horizon), len(these))
            pred = model.predict(self._rows(inputs, first_hour, p_issue, p_lead)).reshape(len(these), horizon)
            out[rows] += pred * inputs.scale
        return out


@dataclass
class Lstm:
    name: str = "lstm"
    hidden: int = 32
    epochs: int = 40
    max_windows: int = 4000
    min_history_h: int = FIRST_FIT_H

    def _inputs(self, inputs: _Inputs, first_hour: int, issues: np.ndarray) -> np.ndarray:
        seq = 2 * DAY
        lags = inputs.lags(issues, seq)[:, ::-1]  # oldest first
        hours = issues[:, None] - seq + np.arange(seq)[None, :]
        hour, _ = calendar(first_hour, hours)
        angle = 2 * np.pi * hour / DAY
        return np.stack([lags, np.sin(angle), np.cos(angle)], axis=-1).astype(np.float32)

    def matrix(self, values: np.ndarray, first_hour: int, issues: np.ndarray, horizon: int) -> np.ndarray:
        torch = _import("torch", "lstm")
        inputs = _Inputs(values, horizon)
        out = inputs.profile.at(issues, horizon)
        for rows, past, rng in _fits(inputs, issues, horizon):
            many = len(past) > self.max_windows
            train = np.sort(rng.choice(past, self.max_windows, replace=False)) if many else past
            y = inputs.targets(train)
            y = np.where(np.isnan(y), 0.0, y).astype(np.float32)
            model = _fit_lstm(torch, self._inputs(inputs, first_hour, train), y, self.hidden, self.epochs)
            with torch.no_grad():
                x = torch.from_numpy(self._inputs(inputs, first_hour, issues[rows]))
                pred = model(x).numpy()
            out[rows] += pred * inputs.scale
        return out


def _fit_lstm(torch: Any, x: np.ndarray, y: np.ndarray, hidden: int, epochs: int) -> Any:
    nn = torch.nn
    torch.manual_seed(_SEED)

    class Net(nn.Module):  # type: ignore[misc,name-defined]
        def __init__(self) -> None:
            super().__init__()
            self.lstm = nn.LSTM(x.shape[-1], hidden, batch_first=True)
            self.head = nn.Linear(hidden, y.shape[-1])

        def forward(self, batch: Any) -> Any:
            seq, _ = self.lstm(batch)
            return self.head(seq[:, -1])

    net = Net()
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    xt, yt = torch.from_numpy(np.ascontiguousarray(x)), torch.from_numpy(y)
    gen = torch.Generator().manual_seed(_SEED)
    for _ in range(epochs):
        for idx in torch.randperm(len(xt), generator=gen).split(256):
            opt.zero_grad()
            loss = torch.nn.functional.mse_loss(net(xt[idx]), yt[idx])
            loss.backward()
            opt.step()
    net.eval()
    return net
