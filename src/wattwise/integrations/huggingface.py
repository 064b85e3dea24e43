"""Hugging Face ``transformers``: a Trainer callback that measures the training as one wattwise run.

::

    from wattwise.integrations.huggingface import WattwiseCallback

    trainer = Trainer(model=model, args=args, train_dataset=data, callbacks=[WattwiseCallback("finetune")])
    trainer.train()

The run starts at ``on_train_begin``, each epoch is marked at ``on_epoch_end`` (window ``epoch-N``; with the epochs
the Trainer plans, from ``num_train_epochs`` or ``max_steps``, the record predicts the whole run after each one) and
it is stored ``complete`` at ``on_train_end``; on the world's main process only (``is_world_process_zero``), the
other ranks do nothing, except under torchrun, where every rank measures its part and rank 0 stores one run with
them all (see :mod:`wattwise.integrations.training`). Each ``on_log`` adds the run's energy so far (``energy_kwh``)
and emissions (``co2e_kg``) to the logs, and to ``trainer.state.log_history``; the loggers ``report_to`` sets up are
called before user callbacks and do not see them (pass ``report_to="none"`` and their callbacks after this one to
have them logged there). The Trainer has no hook for an exception: a training that raises leaves its run open until
the next training in the process begins, which stores it ``failed`` (with any callback), or the exit hook, which
stores it ``incomplete`` when the process ends.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from wattwise.errors import ConfigError
from wattwise.integrations.training import EndStatus, TrainingRun

try:
    from transformers import TrainerCallback
except ImportError as exc:  # pragma: no cover - exercised with transformers hidden
    raise ConfigError(
        f"the Hugging Face callback needs transformers ({exc}): pip install 'wattwise[huggingface]'"
    ) from None

if TYPE_CHECKING:
    from transformers import TrainerControl, TrainerState, TrainingArguments

    from wattwise.config import Settings
    from wattwise.measure.observers import RunObserver
    from wattwise.records import Run

__all__ = ["WattwiseCallback"]


class WattwiseCallback(TrainerCallback):
    """Measures ``Trainer.train()`` as one run (see the module docstring).

    ``name`` names the run (default: the Trainer's ``run_name``, else ``train``); ``settings``, ``observers``
    (e.g. :class:`wattwise.integrations.mlflow.MlflowObserver`) and ``overrides`` (``region="DE"``…) are those of
    :func:`wattwise.track`. ``log`` false leaves the Trainer's logs alone. After training, ``run`` is the record.
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
        self.training = TrainingRun(name, settings=settings, observers=observers, **overrides)
        self.log = log
        self.main = True  # this process is the world's main one (as the Trainer says at on_train_begin)

    @property
    def run(self) -> Run | None:
        """The final record of the last training this callback measured (None before one ends, and on ranks that do
        not measure; on another rank of a torchrun job, that rank's own part)."""
        return self.training.run

    def on_train_begin(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> None:
        self.main = state.is_world_process_zero
        if not self.training.measures_here(self.main):
            return
        planned = state.num_train_epochs or math.ceil(args.num_train_epochs)
        done = int(state.epoch or 0)  # resumed from a checkpoint: the epochs before it are not this run's
        self.training.begin(planned - done, name=args.run_name or "train")

    def on_epoch_end(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> None:
        self.training.epoch_end()

    def on_log(
        self,
        args: TrainingArguments,
        state: TrainerState,
        control: TrainerControl,
        logs: dict[str, float] | None = None,
        **kwargs: Any,
    ) -> None:
        if not self.log or not self.main or logs is None or not self.training.running:
            return
        figures = self.training.figures()
        logs.update(figures)
        entry = state.log_history[-1] if state.log_history else None
        if entry is not None and entry.get("step") == state.global_step:  # the entry the Trainer made of these logs
            entry.update(figures)

    def on_train_end(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> None:
        self.training.end("complete")

    def end(self, status: EndStatus = "incomplete", *, error: str | None = None) -> Run | None:
        """End a run that training left open (it raised), stored with ``status``; the record, or None."""
        return self.training.end(status, error=error)
