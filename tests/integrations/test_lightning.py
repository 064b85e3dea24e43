"""The Lightning callback, on a tiny LightningModule over random tensors, on the CPU."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from wattwise.config import Settings
from wattwise.store import open_store

pytest.importorskip("lightning.pytorch")
import lightning.pytorch as pl
import torch

from wattwise.integrations.lightning import WattwiseCallback

pytestmark = [
    pytest.mark.slow,
    # Lightning 2.6 on torch 2.13, and its advice for this machine (Slurm is installed, 2 CPUs, a tiny data set)
    pytest.mark.filterwarnings("ignore:.isinstance.treespec, LeafSpec.. is deprecated:FutureWarning"),
    pytest.mark.filterwarnings("ignore:The `srun` command is available on your system:UserWarning"),
]


class Tiny(pl.LightningModule):
    def __init__(self, fail_at_epoch: int | None = None) -> None:
        super().__init__()
        self.layer = torch.nn.Linear(4, 1)
        self.fail_at_epoch = fail_at_epoch

    def training_step(self, batch: Any, batch_idx: int) -> Any:
        if self.fail_at_epoch is not None and self.current_epoch == self.fail_at_epoch:
            raise RuntimeError("boom")
        x, y = batch
        loss = torch.nn.functional.mse_loss(self.layer(x), y)
        self.log("loss", loss, on_step=False, on_epoch=True)  # an epoch metric: Lightning logs it with its "epoch"
        return loss

    def configure_optimizers(self) -> Any:
        return torch.optim.SGD(self.parameters(), lr=0.1)


class Recorder(pl.loggers.Logger):
    """A logger that keeps what it is given."""

    def __init__(self) -> None:
        super().__init__()
        self.logged: list[tuple[dict[str, float], int | None]] = []

    @property
    def name(self) -> str:
        return "recorder"

    @property
    def version(self) -> int:
        return 0

    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        self.logged.append((dict(metrics), step))

    def log_hyperparams(self, params: Any, *args: Any, **kwargs: Any) -> None:
        pass


def loader() -> Any:
    torch.manual_seed(0)
    data = torch.utils.data.TensorDataset(torch.randn(32, 4), torch.randn(32, 1))
    return torch.utils.data.DataLoader(data, batch_size=8)


def trainer(tmp_path: Path, callback: WattwiseCallback, logger: Any = False, epochs: int = 2) -> Any:
    return pl.Trainer(
        max_epochs=epochs,
        accelerator="cpu",
        devices=1,
        callbacks=[callback],
        logger=logger,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        log_every_n_steps=1,
        default_root_dir=str(tmp_path),
    )


def test_fit_is_one_complete_run_with_its_epochs_logged(settings: Settings, tmp_path: Path) -> None:
    callback = WattwiseCallback(settings=settings)
    recorder = Recorder()
    trainer(tmp_path, callback, logger=recorder).fit(Tiny(), loader())
    run = callback.run
    assert run is not None
    with open_store(settings.db_url) as store:
        stored = store.get(run.id)
    assert stored.name == "Tiny" and stored.status == "complete" and stored.energy_j > 0
    assert [w.name for w in stored.windows] == ["epoch-1", "epoch-2"]
    assert stored.prediction is not None and stored.prediction.epochs_planned == 2
    ours = [(m, step) for m, step in recorder.logged if "energy_kwh" in m]
    assert [step for _, step in ours] == [3, 7]  # 32 examples in batches of 8: 4 steps an epoch, its last is 3
    epoch_steps = [step for m, step in recorder.logged if "epoch" in m]  # Lightning's own epoch-end metrics
    assert [step for _, step in ours] == epoch_steps
    first, second = (m["energy_kwh"] * 3.6e6 for m, _ in ours)
    assert first == pytest.approx(stored.windows[0].energy_j)  # at an epoch's end: the epochs so far, exactly
    assert second == pytest.approx(stored.windows[0].energy_j + stored.windows[1].energy_j)
    assert ours[-1][0]["co2e_kg"] * 1000 == pytest.approx(sum(w.co2e_g for w in stored.windows))


def test_an_exception_in_fit_stores_the_run_failed(settings: Settings, tmp_path: Path) -> None:
    callback = WattwiseCallback("failing", settings=settings)
    with pytest.raises(RuntimeError, match="boom"):
        trainer(tmp_path, callback, epochs=3).fit(Tiny(fail_at_epoch=1), loader())
    with open_store(settings.db_url) as store:
        stored = store.get("latest")
    assert stored.name == "failing" and stored.status == "failed"
    assert stored.error is not None and "RuntimeError: boom" in stored.error
    assert [w.name for w in stored.windows] == ["epoch-1"]


def test_other_ranks_measure_nothing(settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    callback = WattwiseCallback(settings=settings)
    fit = trainer(tmp_path, callback)
    monkeypatch.setattr(type(fit), "is_global_zero", property(lambda self: False))  # as on rank 1
    fit.fit(Tiny(), loader())
    assert callback.run is None
    with open_store(settings.db_url) as store:
        assert store.count() == 0


def test_under_torchrun_rank_0_stores_one_run_with_every_rank(tmp_path: Path) -> None:
    root = Path(__file__).resolve().parents[2]
    home = tmp_path / "home"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WATTWISE_", "MASTER_", "TORCHELASTIC_"))}
    env.update(
        WATTWISE_HOME=str(home),
        WATTWISE_GPU="false",
        WATTWISE_RAPL_ROOT=str(tmp_path / "no-powercap"),
        WATTWISE_INTERVAL_S="0.25",
        WATTWISE_FLUSH_S="0.5",
        OMP_NUM_THREADS="1",
        PYTHONPATH=str(root),
    )
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]
    worker = Path(__file__).with_name("lightning_ddp.py")
    done = subprocess.run(
        [*command, str(worker), str(tmp_path / "out")],
        env=env,
        cwd=root,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    with open_store(f"sqlite:///{home / 'wattwise.db'}") as store:
        runs = store.list_runs()
    assert len(runs) == 1, [r.name for r in runs]  # one record for the job, none from rank 1 on its own
    run = runs[0]
    assert run.name == "ddp" and run.status == "complete", (run.status, run.error, run.notes)
    assert [r.rank for r in run.ranks] == [0, 1] and all(r.status == "complete" for r in run.ranks)
    assert [w.name for w in run.windows if w.parent is None] == ["epoch-1", "epoch-2"]


def test_a_store_url_no_store_takes_fails_where_the_callback_is_built() -> None:
    from wattwise.errors import ConfigError

    with pytest.raises(ConfigError, match="unsupported database URL 'mysql://x'"):
        WattwiseCallback(db="mysql://x")
