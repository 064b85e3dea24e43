"""``wattwise.track``: the one entry point of the Python API (see :mod:`wattwise.measure.tracker`)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, ParamSpec, TypeVar, overload

from wattwise.config import Settings
from wattwise.measure.observers import RunObserver
from wattwise.measure.tracker import Tracker

__all__ = ["track"]

P = ParamSpec("P")
R = TypeVar("R")


@overload
def track(name: Callable[P, R]) -> Callable[P, R]: ...


@overload
def track(
    name: str | None = None,
    *,
    settings: Settings | None = None,
    epochs: int | None = None,
    observers: Sequence[RunObserver] = (),
    **overrides: Any,
) -> Tracker: ...


def track(
    name: str | Callable[..., Any] | None = None,
    *,
    settings: Settings | None = None,
    epochs: int | None = None,
    observers: Sequence[RunObserver] = (),
    **overrides: Any,
) -> Any:
    """A tracker for a code block, a function or explicit ``start()``/``stop()`` calls.

    ``overrides`` are :class:`~wattwise.config.Settings` fields (``region="DE"``, ``pue=1.2``,
    ``interval_s=0.5``…) applied on top of the config file and ``WATTWISE_*`` environment. ``observers``
    (:class:`~wattwise.RunObserver`) are told of the run's samples, checkpoints and end.
    """
    if callable(name):  # used bare: @wattwise.track
        return track(settings=settings, epochs=epochs, observers=observers, **overrides)(name)
    if settings is None:
        settings = Settings.load(overrides)
    elif overrides:
        settings = settings.replace(**overrides)
    return Tracker(name, settings=settings, epochs=epochs, observers=observers)
