"""Gymnasium environments for energy-aware agents (the ``schedule`` extra's ``gymnasium``).

:class:`CarbonSchedulingEnv`: an agent schedules one flexible job per episode against a real intensity trace.
The job is submitted at a random hour of the chosen part of the trace (``hours``: e.g. training weeks, then
held-out ones); every step is an hour; action 0 waits, action 1 starts the job (at the last allowed start it
starts regardless). The reward, given when the job starts, is the fraction of emissions saved against starting at
submission (negative when the agent waited into dirtier hours). The agent sees only the past: the last 24 hourly
intensities and the 7-day same-hour profile of the next 24 hours, each relative to the last day's mean, the hour
of day, and how much of the window is left.

:class:`EnergyRewardWrapper`: wraps *any* Gymnasium environment and charges its agent for the energy its steps
use: measured around each ``step`` by a wattwise tracker window (the default), or given per action
(``energy_j_per_action``); the reward becomes ``reward - price_per_j * energy_j`` and ``info`` carries the energy.
Measured steps are windows of one run (``agent-steps``, stored like any run when the wrapper closes).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from wattwise.errors import ConfigError
from wattwise.schedule.forecast import same_hour_mean
from wattwise.schedule.planner import start_costs

try:
    import gymnasium as gym
    from gymnasium import spaces
except ImportError as exc:  # pragma: no cover - the extra is missing
    raise ConfigError("the energy-aware agents need gymnasium: pip install 'wattwise[schedule]'") from exc

OBS_SIZE = 24 + 24 + 3
OBS_LIMIT = 100.0  # intensities relative to the last day's mean; a hundredfold jump is clipped


class CarbonSchedulingEnv(gym.Env[np.ndarray, Any]):
    def __init__(
        self,
        intensity: np.ndarray,
        *,
        duration_h: int = 4,
        window_h: int = 24,
        hours: Sequence[int] | None = None,
        first_hour: int = 0,
    ) -> None:
        values = np.asarray(intensity, dtype=float)
        if np.isnan(values).any():
            raise ConfigError("the intensity series has gaps: fill or cut them before training an agent")
        if len(values) < 8 * 24 + window_h + duration_h:
            raise ConfigError("the intensity series is too short: it needs 8 days plus one window")
        self.values = values
        self.duration_h, self.window_h = duration_h, window_h
        self.first_hour = first_hour
        self.costs = start_costs(values, duration_h)
        self.profile = same_hour_mean(np.concatenate([values, np.full(48, np.nan)]), 7, 1)
        lo, hi = 8 * 24, len(values) - window_h - duration_h
        allowed = np.arange(lo, hi) if hours is None else np.array([h for h in hours if lo <= h < hi])
        if len(allowed) == 0:
            raise ConfigError("no submission hour of the trace leaves 8 days before and a window after it")
        self.submissions = allowed
        self.observation_space = spaces.Box(-OBS_LIMIT, OBS_LIMIT, shape=(OBS_SIZE,), dtype=np.float32)
        self.action_space = spaces.Discrete(2)
        self._t = self._submitted = 0

    def _obs(self) -> np.ndarray:
        t = self._t
        past = self.values[t - 24 : t]
        scale = float(past.mean()) or 1.0
        ahead = self.profile[t : t + 24]
        hour = (self.first_hour + t) % 24
        left = 1.0 - (t - self._submitted) / max(self.window_h, 1)
        features = [
            *(past / scale - 1.0),
            *(ahead / scale - 1.0),
            np.sin(2 * np.pi * hour / 24),
            np.cos(2 * np.pi * hour / 24),
            left,
        ]
        return np.clip(np.asarray(features, dtype=np.float32), -OBS_LIMIT, OBS_LIMIT)

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        at = (options or {}).get("submission")
        self._submitted = int(at) if at is not None else int(self.np_random.choice(self.submissions))
        self._t = self._submitted
        return self._obs(), {"submitted": self._submitted}

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        last = self._submitted + self.window_h
        if action == 1 or self._t >= last:
            now_cost = float(self.costs[self._submitted])
            cost = float(self.costs[self._t])
            saved = 1.0 - cost / now_cost if now_cost > 0 else 0.0
            info = {"start": self._t, "delay_h": self._t - self._submitted, "saved": saved}
            return self._obs(), saved, True, False, info
        self._t += 1
        return self._obs(), 0.0, False, False, {}


class EnergyRewardWrapper(gym.Wrapper[Any, Any, Any, Any]):
    def __init__(
        self,
        env: gym.Env[Any, Any],
        *,
        price_per_j: float,
        energy_j_per_action: Callable[[Any], float] | dict[Any, float] | None = None,
        tracker: Any = None,
    ) -> None:
        super().__init__(env)
        if not np.isfinite(price_per_j) or price_per_j < 0:
            raise ConfigError(f"price_per_j must be a finite number of at least 0 (got {price_per_j!r})")
        self.price_per_j = float(price_per_j)
        self._given = energy_j_per_action
        self._tracker = tracker
        self._own_tracker = False
        self.total_energy_j = 0.0
        self._steps = 0

    def _measured(self, action: Any) -> tuple[Any, Any, bool, bool, dict[str, Any], float]:
        if self._tracker is None:
            import wattwise

            self._tracker = wattwise.track("agent-steps")
            self._own_tracker = True
        if not self._tracker.running:
            self._tracker.start()
        name = f"step-{self._steps}"
        self._tracker.begin_window(name)
        try:
            obs, reward, terminated, truncated, info = self.env.step(action)
        finally:
            window = self._tracker.end_window(name)
        return obs, reward, terminated, truncated, info, float(window.energy_j)

    def step(self, action: Any) -> tuple[Any, float, bool, bool, dict[str, Any]]:
        if self._given is None:
            obs, reward, terminated, truncated, info, energy_j = self._measured(action)
        else:
            obs, reward, terminated, truncated, info = self.env.step(action)
            energy_j = float(self._given(action) if callable(self._given) else self._given[action])
        self._steps += 1
        self.total_energy_j += energy_j
        charge = self.price_per_j * energy_j
        info = {**info, "energy_j": energy_j, "energy_charge": charge}
        return obs, float(reward) - charge, terminated, truncated, info

    def close(self) -> None:
        if self._own_tracker and self._tracker is not None and self._tracker.running:
            self._tracker.stop()
        super().close()
