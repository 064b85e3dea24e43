"""PyTorch Lightning: a callback that measures ``Trainer.fit()`` as one wattwise run.

::

    from wattwise.integrations.lightning import WattwiseCallback

    trainer = lightning.pytorch.Trainer(max_epochs=10, callbacks=[WattwiseCallback("resnet")])
    trainer.fit(model, data)

The run starts at ``on_fit_start``, each training epoch is marked at ``on_train_epoch_end`` (window ``epoch-N``,
validation at the epoch's end included; with ``max_epochs`` the record predicts the whole run after each one), and
it is stored ``complete`` at ``on_fit_end``; an exception ends it through ``on_exception`` (``failed``, or
``incomplete`` for Ctrl-C). All on the global main process only (``trainer.is_global_zero``), the other ranks do
nothing, except under torchrun, where every rank measures its part and rank 0 stores one run with them all (see
:mod:`wattwise.integrations.training`). At each epoch's end the run's energy so far (``energy_kwh``) and emissions
(``co2e_kg``) go to the trainer's loggers at the epoch's last step, as Lightning logs its own epoch metrics
(``log=False``: not).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from wattwise.errors import ConfigError
from wattwise.integrations.training import EndStatus, TrainingRun

try:
    from lightning.pytorch import Callback
except ImportError as exc:
    raise ConfigError(f"the Lightning callback needs lightning ({exc}): pip install 'wattwise[lightning]'") from None

if TYPE_CHECKING:
    import lightning.pytorch as pl

    from wattwise.config import Settings
    from wattwise.measure.observers import RunObserver
    from wattwise.records import Run

__all__ = ["WattwiseCallback"]


class WattwiseCallback(Callback):
    """Measures ``Trainer.fit()`` as one run (see the module docstring).

    ``name`` names the run (default: the LightningModule's class name); ``settings``, ``observers`` (e.g.
    :class:`wattwise.integrations.mlflow.MlflowObserver`) and ``overrides`` (``region="DE"``…) are those of
    :func:`wattwise.track`. After ``fit()``, ``run`` is the record.
    """

    def __init__(
        self,
        name: str | None = None,
        *,
        settings: Settings | Mapping[str, Any] | None = None,
        observers: RunObserver | Iterable[RunObserver] = (),
        log: bool = True,
        **overrides: Any,
    ) -> None:
        super().__init__()
        self.training = TrainingRun(name, settings=settings, observers=observers, **overrides)
        self.log = log

    @property
    def run(self) -> Run | None:
        """The final record of the last ``fit()`` this callback measured (None before one ends, and on ranks that do
        not measure; on another rank of a torchrun job, that rank's own part)."""
        return self.training.run

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not self.training.measures_here(trainer.is_global_zero):
            return
        max_epochs = trainer.max_epochs if trainer.max_steps == -1 else None  # a step budget ends fit mid-epoch
        done = trainer.current_epoch  # resumed from a checkpoint: the epochs before it are not this run's
        epochs = max_epochs - done if max_epochs is not None and max_epochs > 0 else None
        self.training.begin(epochs, name=type(pl_module).__name__)

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        figures = self.training.epoch_end()
        if self.log and figures and trainer.is_global_zero:
            step = max(0, trainer.global_step - 1)  # the epoch's last step, where Lightning logs its epoch metrics
            for logger in trainer.loggers:
                logger.log_metrics(figures, step=step)

    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.training.end("complete")

    def on_exception(self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException) -> None:
        self.training.fail(exception)

    def end(self, status: EndStatus = "incomplete", *, error: str | None = None) -> Run | None:
        """End a run that ``fit()`` left open, stored with ``status``; the record, or None."""
        return self.training.end(status, error=error)
