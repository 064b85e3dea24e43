"""Ray: each call of a task measured on the node it runs on, its record stored in the driver's store.

::

    from wattwise.integrations.ray_tasks import measured

    @measured(name="preprocess")  # a plain function, or one ray.remote already made (its options are kept)
    def preprocess(shard): ...

    refs = [preprocess.remote(s) for s in shards]  # ObjectRefs of the function's own return values
    results = ray.get(refs)  # by now every call's run is in this process's store

How it works. The task runs the function under a :class:`~wattwise.Tracker` on the worker, with the worker's own
settings (its power sources, its ``WATTWISE_*`` environment; the overrides given to :func:`measured` on top) and
an in-memory store, so nothing is written on the worker's node. When the function returns or raises, the worker
sends the final record and its samples to a collector: one small actor per driver and store (``num_cpus=0``), pinned
to the node of the process that called ``.remote()``, which writes them into the store that process's
settings name (``WATTWISE_DB``, ``WATTWISE_HOME``). The worker waits for the collector before the task returns, so
the task's ObjectRef, its value and its exception are the function's own, and once ``ray.get`` has them, the run is
stored (``complete``, or ``failed`` with the exception's line). A record the collector cannot take is written to
``<home>/unsaved/`` on the worker's node with one warning (``wattwise runs import FILE``); a tracker that cannot
start is one warning and the function runs unmeasured.

Every node needs wattwise installed (Ray imports it in the worker). Streaming generators
(``num_returns="streaming"``) are not supported: a measured call is a function that returns.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Generic, ParamSpec, TypeVar, overload

from wattwise.errors import ConfigError, WattwiseError
from wattwise.integrations.training import resolve_settings

try:
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy
except ImportError as exc:
    raise ConfigError(f"measuring Ray tasks needs ray ({exc}): pip install 'wattwise[ray]'") from None

if TYPE_CHECKING:
    from wattwise.measure.tracker import Tracker
    from wattwise.records import Run, RunStatus
    from wattwise.store.base import RunStore

__all__ = ["MeasuredFunction", "measured"]

P = ParamSpec("P")
R = TypeVar("R")
SampleRow = tuple[float, str, float, float]  # t_s, channel, power_w, energy_j
_DRIVER_ONLY = ("db", "home")  # where runs are stored is the driver's business, not the worker's
log = logging.getLogger(__name__)  # on the worker: its log, which Ray forwards to the driver by default


class Collector:
    """The actor that writes the records tasks send into one store (opened on first use, kept open)."""

    def __init__(self, db_url: str) -> None:
        self.db_url = db_url
        self._store: RunStore | None = None

    def add(self, record: dict[str, Any], samples: list[SampleRow]) -> str:
        from wattwise.records import Run, Sample
        from wattwise.store import open_store

        run = Run.from_dict(record)
        if self._store is None:
            self._store = open_store(self.db_url)
        self._store.add([(run, [Sample(*row) for row in samples])])
        return run.id


class MeasuredFunction(Generic[P, R]):
    """A Ray remote function whose every call is a wattwise run; build it with :func:`measured`."""

    def __init__(
        self,
        function: Callable[P, R],
        *,
        name: str | None = None,
        ray_options: Mapping[str, Any] | None = None,
        overrides: Mapping[str, Any] | None = None,
    ) -> None:
        self.function = function
        self.name = name or getattr(function, "__qualname__", None) or "ray-task"
        self.ray_options = {"name": self.name, **(ray_options or {})}
        self.overrides = dict(overrides or {})
        resolve_settings(None, self.overrides)  # a bad setting fails here, on the driver
        self._remote: Any = None
        self._collector: tuple[tuple[str, str], Any] | None = None  # (job id, store URL) → its actor

    def options(self, **ray_options: Any) -> MeasuredFunction[P, R]:
        """The same function with these Ray task options (``num_cpus``, ``num_gpus``, ``num_returns``…) added."""
        return MeasuredFunction(
            self.function, name=self.name, ray_options={**self.ray_options, **ray_options}, overrides=self.overrides
        )

    def remote(self, *args: P.args, **kwargs: P.kwargs) -> Any:
        """Submit a call: what ``ray.remote(function).remote(...)`` returns (an ObjectRef, or a list of them)."""
        if self._remote is None:
            function, name, overrides = self.function, self.name, self.overrides

            def task(collector: Any, *args: Any, **kwargs: Any) -> Any:
                return _call_measured(function, name, overrides, collector, *args, **kwargs)

            task.__module__ = getattr(function, "__module__", task.__module__)
            task.__qualname__ = task.__name__ = name
            self._remote = ray.remote(**self.ray_options)(task)
        return self._remote.remote(self._collector_for_this_driver(), *args, **kwargs)

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        """A local call, unmeasured (as a Ray remote function, it is called through ``.remote()``)."""
        return self.function(*args, **kwargs)

    def _collector_for_this_driver(self) -> Any:
        if not ray.is_initialized():
            ray.init()  # what .remote() would do: Ray starts (or joins) a cluster on first use
        context = ray.get_runtime_context()
        db_url = resolve_settings(None, self.overrides).db_url
        key = (context.get_job_id(), db_url)
        if self._collector is None or self._collector[0] != key:
            digest = hashlib.sha256(db_url.encode()).hexdigest()[:16]
            actor = ray.remote(Collector).options(
                name=f"wattwise-collector-{key[0]}-{digest}",
                get_if_exists=True,
                num_cpus=0,
                scheduling_strategy=NodeAffinitySchedulingStrategy(node_id=context.get_node_id(), soft=False),
            )
            self._collector = (key, actor.remote(db_url))
        return self._collector[1]


@overload
def measured(function: Callable[P, R], *, name: str | None = None, **overrides: Any) -> MeasuredFunction[P, R]: ...


@overload
def measured(
    function: None = None, *, name: str | None = None, **overrides: Any
) -> Callable[[Callable[P, R]], MeasuredFunction[P, R]]: ...


def measured(function: Any = None, *, name: str | None = None, **overrides: Any) -> Any:
    """Measure every call of a Ray task (see the module docstring); a decorator, with or without arguments.

    ``function`` is a plain function or a ``ray.remote`` one (whose options are kept); ``name`` names its runs
    (default: the function's name); ``overrides`` are settings for the measurement (``region="DE"``,
    ``interval_s=0.5``…), applied on the worker on top of its own.
    """
    if function is None:
        return lambda f: measured(f, name=name, **overrides)
    if isinstance(function, ray.remote_function.RemoteFunction):
        inner = getattr(function, "_function", None)
        if inner is None:
            raise ConfigError("this Ray version hides a remote function's body: pass the plain function to measured()")
        options = dict(getattr(function, "_default_options", {}) or {})
        return MeasuredFunction(inner, name=name, ray_options=options, overrides=overrides)
    if isinstance(function, ray.actor.ActorClass) or not callable(function):
        raise ConfigError(f"measured() takes a function or a ray.remote function (got {type(function).__name__})")
    return MeasuredFunction(function, name=name, overrides=overrides)


# -- on the worker -------------------------------------------------------------------------------------------------


def _call_measured(
    function: Callable[..., R], name: str, overrides: Mapping[str, Any], collector: Any, *args: Any, **kwargs: Any
) -> R:
    from wattwise.config import Settings
    from wattwise.measure.tracker import Tracker
    from wattwise.store import SQLiteStore
    from wattwise.store.sqlite import MEMORY

    local = {key: value for key, value in overrides.items() if key not in _DRIVER_ONLY}
    store = SQLiteStore(MEMORY)
    try:
        tracker = Tracker(name, settings=Settings.load(local), store=store, handle_signals=False).start()
    except WattwiseError as exc:
        store.close()
        log.warning("wattwise: task %s is not measured: %s", name, exc)
        return function(*args, **kwargs)
    try:
        value = function(*args, **kwargs)
    except BaseException as exc:
        from wattwise.measure.edges import outcome

        _finish(tracker, store, collector, *outcome(exc, ()))
        raise
    _finish(tracker, store, collector, "complete", None)
    return value


def _finish(tracker: Tracker, store: RunStore, collector: Any, status: RunStatus, error: str | None) -> None:
    """Stop the run and hand its record to the collector; a failure is a warning, never the task's."""
    try:
        try:
            run = tracker.stop(status, error=error)
        except WattwiseError as exc:
            log.warning("wattwise: %s", exc)
            return
        rows: list[SampleRow] = [(s.t_s, s.channel, s.power_w, s.energy_j) for s in store.iter_samples(run.id)]
        try:
            ray.get(collector.add.remote(run.to_dict(), rows))
        except Exception as exc:  # the collector gone, or its store refusing the record: keep it here
            _keep(tracker, run, rows, exc)
    finally:
        store.close()


def _keep(tracker: Tracker, run: Run, rows: list[SampleRow], exc: Exception) -> None:
    from wattwise.measure.persist import RunWriter
    from wattwise.records import Sample
    from wattwise.store import SQLiteStore
    from wattwise.store.sqlite import MEMORY

    with SQLiteStore(MEMORY) as scratch:
        path = RunWriter(scratch, tracker.settings.home).save_unsaved(run, [Sample(*row) for row in rows])
    where = f"kept in {path} (wattwise runs import {path})" if path else "lost (it could not be written to a file)"
    log.warning("wattwise: run %s of task %s did not reach the driver's store (%s); %s", run.id, run.name, exc, where)
