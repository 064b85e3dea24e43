"""Keras 3: a callback that measures ``model.fit()`` as one wattwise run, whatever the backend.

::

    import os
    os.environ["KERAS_BACKEND"] = "torch"  # before keras is first imported (or in the shell)
    from wattwise.integrations.keras import WattwiseCallback

    model.fit(x, y, epochs=10, callbacks=[WattwiseCallback("mlp")])

The run starts as ``fit``'s first epoch begins (``on_epoch_begin``, whose index is ``initial_epoch``: a resumed
``fit(epochs=5, initial_epoch=3)`` plans 2 epochs), each epoch is marked at ``on_epoch_end`` (window ``epoch-N``; with
the epochs ``fit`` plans, the record predicts the whole run after each one) and it is stored ``complete`` at
``on_train_end``.
Each epoch's logs get the run's energy so far (``energy_kwh``) and emissions (``co2e_kg``), so ``fit``'s ``History``
has them. Only the main process measures: one whose ``RANK`` is set to anything but 0 does nothing, except under
torchrun, where every rank measures its part and rank 0 stores one run with them all (see
:mod:`wattwise.integrations.training`). Keras has no hook for an exception: a ``fit`` that raises leaves its run open
until the next training in the process begins, which stores it ``failed`` (with any callback), or the exit hook,
which stores it ``incomplete`` when the process ends.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from wattwise.errors import ConfigError
from wattwise.integrations.training import EndStatus, TrainingRun, is_main_process

try:
    import keras
except ImportError as exc:  # keras itself, or the backend it was told to use
    if getattr(exc, "name", None) == "keras":
        raise ConfigError("the Keras callback needs keras 3: pip install 'wattwise[keras]'") from None
    raise ConfigError(
        f"keras could not load its backend ({exc}): set KERAS_BACKEND to an installed one (torch, jax or "
        "tensorflow) before keras is first imported"
    ) from None

if TYPE_CHECKING:
    from wattwise.config import Settings
    from wattwise.measure.observers import RunObserver
    from wattwise.records import Run

__all__ = ["WattwiseCallback"]


class WattwiseCallback(keras.callbacks.Callback):  # type: ignore[misc]
    """Measures ``model.fit()`` as one run (see the module docstring).

    ``name`` names the run (default: the model's name); ``settings``, ``observers`` (e.g.
    :class:`wattwise.integrations.mlflow.MlflowObserver`) and ``overrides`` (``region="DE"``…) are those of
    :func:`wattwise.track`. ``log`` false leaves the epochs' logs alone. After ``fit()``, ``run`` is the record.
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
        self.main = True  # this process is the main one (no RANK, or RANK=0)
        self._first_epoch = False  # on_train_begin sets it: the run begins at the first epoch

    @property
    def run(self) -> Run | None:
        """The final record of the last ``fit()`` this callback measured (None before one ends, and on ranks that do
        not measure; on another rank of a torchrun job, that rank's own part)."""
        return self.training.run

    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
        self.main = is_main_process()
        self._first_epoch = True

    def on_epoch_begin(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        """The run begins with ``fit``'s first epoch, whose index is ``initial_epoch`` (Keras passes it to no other
        hook): ``fit(epochs=5, initial_epoch=3)`` runs and plans 2 epochs, not 5."""
        if not self._first_epoch:
            return
        self._first_epoch = False
        if not self.training.measures_here(self.main):
            return
        params = self.params or {}
        epochs = params.get("epochs")
        planned = epochs - epoch if isinstance(epochs, int) and isinstance(epoch, int) else None
        model = getattr(self, "model", None)
        self.training.begin(planned, name=str(getattr(model, "name", "") or "keras-fit"))

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        figures = self.training.epoch_end()
        if self.log and self.main and logs is not None:
            logs.update(figures)

    def on_train_end(self, logs: dict[str, Any] | None = None) -> None:
        self.training.end("complete")

    def end(self, status: EndStatus = "incomplete", *, error: str | None = None) -> Run | None:
        """End a run that ``fit()`` left open (it raised), stored with ``status``; the record, or None."""
        return self.training.end(status, error=error)
