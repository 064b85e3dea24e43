"""The integrations cost nothing until used, and a framework that is missing is one line saying what to install."""

from __future__ import annotations

import importlib
import subprocess
import sys
from pathlib import Path

import pytest

from wattwise.config import Settings
from wattwise.errors import ConfigError, UnknownRegionError

FRAMEWORKS = ("transformers", "lightning", "keras", "mlflow", "ray", "torch")


def test_wattwise_and_its_integrations_package_load_no_framework() -> None:
    code = "import sys, wattwise, wattwise.integrations, wattwise.integrations.training; print(' '.join(sys.modules))"
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    for framework in FRAMEWORKS:
        assert framework not in loaded, f"`import wattwise.integrations` loads {framework}"


@pytest.mark.parametrize(
    ("module", "hidden", "extra"),
    [
        ("huggingface", ("transformers",), "huggingface"),
        ("lightning", ("lightning", "lightning.pytorch"), "lightning"),
        ("keras", ("keras",), "keras"),
        ("mlflow", ("mlflow", "mlflow.entities", "mlflow.tracking"), "mlflow"),
        ("ray_tasks", ("ray", "ray.util.scheduling_strategies"), "ray"),
    ],
)
def test_a_missing_framework_says_which_extra_to_install(
    module: str, hidden: tuple[str, ...], extra: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in hidden:
        monkeypatch.setitem(sys.modules, name, None)  # as if it were not installed
    monkeypatch.delitem(sys.modules, f"wattwise.integrations.{module}", raising=False)
    with pytest.raises(ConfigError, match=rf"pip install 'wattwise\[{extra}\]'") as caught:
        importlib.import_module(f"wattwise.integrations.{module}")
    assert "\n" not in str(caught.value)


def test_a_bad_setting_fails_where_the_integration_is_built(settings: Settings) -> None:
    from wattwise.integrations.training import TrainingRun

    with pytest.raises(UnknownRegionError, match="Atlantis"):
        TrainingRun(settings=settings, region="Atlantis")
    with pytest.raises(ConfigError, match="interval_s"):
        TrainingRun(interval_s=-1)
    with pytest.raises(ConfigError, match="RunObserver"):
        TrainingRun(settings=settings, observers=[object()])  # type: ignore[list-item]
    with pytest.raises(ConfigError, match="complete, incomplete or failed"):
        TrainingRun(settings=settings).end("running")  # type: ignore[arg-type]


def test_rank_is_read_from_the_environment() -> None:
    from wattwise.integrations.training import is_main_process

    assert is_main_process({}) and is_main_process({"RANK": "0"}) and is_main_process({"RANK": ""})
    assert not is_main_process({"RANK": "1"}) and not is_main_process({"RANK": "12"})


def test_a_store_that_fails_is_one_warning_and_training_goes_on(
    settings: Settings, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from wattwise.integrations.training import TrainingRun

    folder = tmp_path / "taken.db"
    folder.mkdir()  # a directory where the database file should be
    training = TrainingRun("unmeasured", settings=settings, db=str(folder))
    training.begin(3)
    assert [r.getMessage() for r in caplog.records if "not measured" in r.getMessage()]
    assert not training.running
    assert training.epoch_end() == {} and training.figures() == {} and training.end() is None
