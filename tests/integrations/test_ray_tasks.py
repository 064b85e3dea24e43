"""Measured Ray tasks on a local Ray (one CPU, started once for this module and shut down after): their values
unchanged, their runs in the driver's store, nothing stored on the worker's side."""

from __future__ import annotations

import logging
import shutil
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from wattwise.config import Settings
from wattwise.errors import ConfigError, StoreError
from wattwise.store import open_store

ray = pytest.importorskip("ray")

from wattwise.integrations.ray_tasks import measured  # noqa: E402


@pytest.fixture(scope="module")
def worker_home() -> Iterator[Path]:
    """The workers' WATTWISE_HOME, apart from every test's own (the driver's)."""
    short = Path(tempfile.mkdtemp(prefix="wwray-"))  # Ray's socket paths must stay under 107 bytes
    env = {
        "WATTWISE_HOME": str(short / "worker-home"),
        "WATTWISE_GPU": "false",
        "WATTWISE_RAPL_ROOT": str(short / "no-powercap"),
        "XDG_CONFIG_HOME": str(short / "xdg"),
    }
    ray.init(
        num_cpus=1,
        object_store_memory=80 * 1024**2,
        include_dashboard=False,
        log_to_driver=False,
        runtime_env={"env_vars": env},
        _temp_dir=str(short / "ray"),
    )
    try:
        yield short / "worker-home"
    finally:
        ray.shutdown()
        shutil.rmtree(short, ignore_errors=True)


def burn(n: int) -> int:
    total = 0
    for i in range(n):
        total += i * i
    return total


@measured(name="square", interval_s=0.05, flush_s=0.2)
def square(x: int) -> int:
    burn(100_000)
    return x * x


def pair(x: int) -> tuple[int, int]:
    burn(50_000)
    return x, -x


def fails(x: int) -> int:
    raise ValueError(f"bad shard {x}")


@pytest.mark.slow
def test_tasks_keep_their_values_and_their_runs_reach_the_drivers_store(
    worker_home: Path, settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    driver_db = tmp_path / "driver.db"
    monkeypatch.setenv("WATTWISE_DB", f"sqlite:///{driver_db}")  # only the driver knows it
    refs = [square.remote(i) for i in range(3)]
    assert all(isinstance(ref, ray.ObjectRef) for ref in refs)
    assert ray.get(refs) == [0, 1, 4]
    with open_store(f"sqlite:///{driver_db}") as store:
        runs = store.list_runs(name="square")
        assert len(runs) == store.count() == 3
        assert {run.status for run in runs} == {"complete"}
        assert all(run.energy_j > 0 and run.duration_s > 0 for run in runs)
        assert all(len(list(store.iter_samples(run.id))) > 0 for run in runs)
    assert not (worker_home / "wattwise.db").exists()  # measured on the worker, stored only by the driver


@pytest.mark.slow
def test_a_ray_remote_function_keeps_its_options(worker_home: Path, settings: Settings) -> None:
    both = measured(ray.remote(num_returns=2)(pair), name="pair")
    first, second = both.remote(7)
    assert ray.get([first, second]) == [7, -7]
    many = [both.options(num_cpus=0.5).remote(i) for i in range(2)]
    assert [ray.get(refs) for refs in many] == [[0, 0], [1, -1]]
    with open_store(settings.db_url) as store:  # the driver's home, from the test's environment
        runs = store.list_runs(name="pair")
    assert len(runs) == 3 and {run.status for run in runs} == {"complete"}


@pytest.mark.slow
def test_a_task_that_raises_raises_and_its_run_is_stored_failed(worker_home: Path, settings: Settings) -> None:
    task = measured(fails)
    with pytest.raises(ValueError, match="bad shard 3"):
        ray.get(task.remote(3))
    with open_store(settings.db_url) as store:
        run = store.get("latest")
    assert run.name == "fails" and run.status == "failed"
    assert run.error is not None and "ValueError: bad shard 3" in run.error


def test_bad_settings_and_bad_targets_fail_when_decorating() -> None:
    with pytest.raises(ConfigError, match="interval_s"):
        measured(pair, interval_s=-1)
    with pytest.raises(ConfigError, match="measured"):
        measured(42)  # type: ignore[call-overload]
    assert measured(pair)(3) == (3, -3)  # a local call is the plain function


def numbers(n: int) -> Iterator[int]:
    yield from range(n)


async def later(n: int) -> AsyncIterator[int]:
    for i in range(n):
        yield i


def test_generator_functions_are_refused_in_one_line() -> None:
    for function in (numbers, later, ray.remote(numbers), ray.remote(num_returns="streaming")(numbers)):
        with pytest.raises(ConfigError, match="not the generator function") as caught:
            measured(function)
        assert "\n" not in str(caught.value)


def test_a_driver_store_in_memory_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    before = measured(pair)  # decorated while the store was a file, as a module is imported before its settings
    monkeypatch.setenv("WATTWISE_DB", "sqlite://:memory:")
    with pytest.raises(ConfigError, match=r"the driver's run store is in memory .*would be lost"):
        measured(pair)
    with pytest.raises(ConfigError, match=r"the driver's run store is in memory"):
        before.remote(1)
    with pytest.raises(ConfigError, match=r"the driver's run store is in memory"):
        measured(pair, db=":memory:")


@pytest.mark.slow
def test_submitting_resolves_the_settings_once_and_options_are_built_once(
    worker_home: Path, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    import wattwise.carbon.regions

    calls = {"resolve_region": 0, "ray.remote": 0}
    resolve_region, remote = wattwise.carbon.regions.resolve_region, ray.remote

    def counting_region(*args: Any, **kwargs: Any) -> Any:
        calls["resolve_region"] += 1
        return resolve_region(*args, **kwargs)

    def counting_remote(*args: Any, **kwargs: Any) -> Any:
        calls["ray.remote"] += 1
        return remote(*args, **kwargs)

    monkeypatch.setattr(wattwise.carbon.regions, "resolve_region", counting_region)
    monkeypatch.setattr(ray, "remote", counting_remote)
    task = measured(pair, name="counted", region="DE")
    assert calls == {"resolve_region": 1, "ray.remote": 0}  # the settings checked where it was decorated
    refs = [task.remote(i) for i in range(6)] + [task.options(num_cpus=0.5).remote(i) for i in range(6)]
    assert [tuple(v) for v in ray.get(refs)] == [(i, -i) for i in range(6)] * 2
    assert calls["resolve_region"] == 1  # never again per call
    assert calls["ray.remote"] == 3  # the task, its variant and the collector: once each
    assert task.options(num_cpus=0.5) is task.options(num_cpus=0.5)
    with open_store(settings.db_url) as store:
        assert len(store.list_runs(name="counted")) == 12


@pytest.mark.slow
def test_a_collector_that_refuses_is_one_warning_line_with_its_cause(
    worker_home: Path, settings: Settings, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from wattwise.integrations.ray_tasks import _call_measured

    @ray.remote(num_cpus=0)
    class Refusing:
        def add(self, record: Any, samples: Any) -> str:
            raise StoreError("cannot write runs.db: disk I/O error\n(while saving)")

    overrides = {"gpu": False, "rapl_root": str(tmp_path / "none"), "interval_s": 0.05, "flush_s": 0.2}
    with caplog.at_level(logging.WARNING):
        assert _call_measured(pair, "refused", overrides, Refusing.remote(), 4) == (4, -4)  # type: ignore[attr-defined]
    lines = [r.getMessage() for r in caplog.records if "did not reach the driver's store" in r.getMessage()]
    assert len(lines) == 1 and "\n" not in lines[0], lines
    assert "(StoreError: cannot write runs.db: disk I/O error (while saving))" in lines[0]
    assert "Traceback" not in lines[0] and "wattwise runs import" in lines[0]
