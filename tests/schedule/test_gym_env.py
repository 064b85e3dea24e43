from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

gymnasium = pytest.importorskip("gymnasium")

from gymnasium.utils.env_checker import check_env  # noqa: E402

from tests.schedule.conftest import synthetic  # noqa: E402
from wattwise.errors import ConfigError  # noqa: E402
from wattwise.schedule.gym_env import CarbonSchedulingEnv, EnergyRewardWrapper  # noqa: E402


def test_env_rewards_the_savings_and_forces_a_start_at_the_window_end() -> None:
    values = synthetic(24 * 20, seed=8)
    env = CarbonSchedulingEnv(values, duration_h=4, window_h=6)
    check_env(env, skip_render_check=True)
    obs, info = env.reset(options={"submission": 24 * 10})
    assert obs.shape == env.observation_space.shape and info["submitted"] == 240
    obs, reward, done, _, info = env.step(1)
    assert done and reward == 0.0 and info["delay_h"] == 0
    env.reset(options={"submission": 24 * 10})
    for _ in range(6):
        _, reward, done, _, _ = env.step(0)
        assert not done and reward == 0.0
    _, reward, done, _, info = env.step(0)  # the last allowed start: it starts regardless
    now, then = values[240:244].sum(), values[246:250].sum()
    assert done and info["delay_h"] == 6 and reward == pytest.approx(1 - then / now)


def test_observations_never_see_the_future() -> None:
    values = synthetic(24 * 20, seed=9)
    env = CarbonSchedulingEnv(values)
    obs, _ = env.reset(options={"submission": 300})
    changed = values.copy()
    changed[300:] += 1000
    other = CarbonSchedulingEnv(changed)
    obs2, _ = other.reset(options={"submission": 300})
    np.testing.assert_allclose(obs, obs2)


def test_env_refuses_gaps_and_short_series() -> None:
    with pytest.raises(ConfigError, match="gaps"):
        CarbonSchedulingEnv(np.array([1.0, np.nan] * 200))
    with pytest.raises(ConfigError, match="too short"):
        CarbonSchedulingEnv(np.ones(50))


def test_energy_wrapper_charges_given_energy_per_action() -> None:
    env = EnergyRewardWrapper(
        CarbonSchedulingEnv(synthetic(24 * 20)), price_per_j=0.01, energy_j_per_action={0: 5.0, 1: 50.0}
    )
    env.reset(options={"submission": 250})
    _, reward, _, _, info = env.step(0)
    assert reward == pytest.approx(-0.05) and info["energy_j"] == 5.0
    _, reward, done, _, info = env.step(1)
    assert done and info["energy_charge"] == pytest.approx(0.5) and env.total_energy_j == 55.0
    with pytest.raises(ConfigError, match="price_per_j"):
        EnergyRewardWrapper(CarbonSchedulingEnv(synthetic(24 * 20)), price_per_j=-1)


def test_energy_wrapper_measures_any_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WATTWISE_HOME", str(tmp_path))
    env = EnergyRewardWrapper(gymnasium.make("CartPole-v1"), price_per_j=0.001)
    env.reset(seed=0)
    total = 0.0
    for _ in range(5):
        _, reward, terminated, truncated, info = env.step(0)
        assert info["energy_j"] >= 0 and reward == pytest.approx(1.0 - 0.001 * info["energy_j"])
        total += info["energy_j"]
        if terminated or truncated:
            break
    env.close()
    assert env.total_energy_j == pytest.approx(total)
    from wattwise.store import open_store

    with open_store(f"sqlite:///{tmp_path / 'wattwise.db'}") as store:
        run = store.list_runs(name="agent-steps")[0]
    assert len(run.windows) >= 1 and run.status == "complete"
