"""Work a run serves, counted by the program: generated tokens, prompt tokens and requests.

``Tracker.count(tokens=..., requests=..., prompt_tokens=...)`` adds to the run's totals, from any thread, while the
run is measured; ``wattwise.report_work(...)`` does the same from a command under ``wattwise run`` (the datagram
of :mod:`wattwise.measure.epochs`). ``tokens`` are **output** tokens, those the model generated: energy per token
is per output token, as serving is usually compared (decoding is what a served request waits for); prompt tokens
are kept beside them. The record keeps the totals (:class:`~wattwise.records.Work`) and derives energy per output
token and per request from the run's energy (:attr:`~wattwise.records.Run.per_work`).

Each count is a non-negative number (``len(ids)``, numpy integers and floats too); ``True``, NaN, a negative or an
absurd figure (:data:`wattwise.validate.WORK_TOKENS`, :data:`~wattwise.validate.WORK_REQUESTS`) is one ConfigError,
and nothing of that call is added. A count that arrives after the run's final reading is refused
(TrackerStateError): it would not be in the record.
"""

from __future__ import annotations

import contextlib
import numbers
import threading
from typing import TypeAlias

from wattwise import validate
from wattwise.errors import ConfigError, TrackerStateError
from wattwise.records import Work

__all__ = ["Count", "WorkCounter", "counted"]

Count: TypeAlias = float | None  # one count given to Tracker.count or report_work (None: not counted in this call)

_PROMPT_TOKENS = validate.renamed(validate.WORK_TOKENS, "prompt_tokens")


def _count(value: object, bounds: validate.Bounds, where: str) -> float:
    if value is None:
        return 0.0
    if isinstance(value, bool):  # True is not a count of one
        raise ConfigError(f"{where} is a count, not {value!r}: give a number of {bounds.name}")
    if isinstance(value, numbers.Real) and not isinstance(value, bool) and not validate.is_number(value):
        with contextlib.suppress(ArithmeticError, TypeError, ValueError):
            value = float(value)  # numpy's integers and other real numbers, as the float they are
    return bounds.check(value, where)


def counted(tokens: object, requests: object, prompt_tokens: object, where: str = "count") -> Work:
    """The counts of one call as :class:`Work`, each checked; ConfigError (one line) names the first bad one."""
    if tokens is None and requests is None and prompt_tokens is None:
        raise ConfigError(f"{where}() needs tokens=, requests= or prompt_tokens= (the work to add to the run)")
    return Work(
        output_tokens=_count(tokens, validate.WORK_TOKENS, f"{where}(tokens=...)"),
        requests=_count(requests, validate.WORK_REQUESTS, f"{where}(requests=...)"),
        prompt_tokens=_count(prompt_tokens, _PROMPT_TOKENS, f"{where}(prompt_tokens=...)"),
    )


class WorkCounter:
    """A run's totals so far; :meth:`total` with ``close=True`` takes the final figure and refuses later counts."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._total: Work | None = None
        self._closed = False

    def add(self, work: Work) -> Work:
        """Add ``work`` (checked by :func:`counted`) and return the totals so far."""
        with self._lock:
            if self._closed:
                raise TrackerStateError("the run has taken its final reading: work counted now would not be in it")
            total = work if self._total is None else self._total + work
            for bounds, value in (
                (validate.WORK_TOKENS, total.output_tokens),
                (validate.WORK_REQUESTS, total.requests),
                (_PROMPT_TOKENS, total.prompt_tokens),
            ):
                if not bounds.contains(value):
                    raise ConfigError(
                        f"the run's {bounds.name} would reach {value:g}, beyond {bounds.describe()} ({bounds.why}); "
                        "nothing of this count was added"
                    )
            self._total = total
            return total

    def total(self, *, close: bool = False) -> Work | None:
        """The totals so far (None when nothing was counted); ``close``: no count is taken after this one."""
        with self._lock:
            self._closed = self._closed or close
            return self._total
