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

Every node needs wattwise installed (Ray imports it in the worker). Generator functions (sync or async, Ray's
streaming tasks) are refused where they are decorated: a measured call is a function that returns. So is a driver
whose store is in memory (``WATTWISE_DB=sqlite://:memory:``): the runs would be lost with it.

Submitting costs what Ray's own ``.remote()`` costs, and little more: the driver's store URL is resolved once per
measured function (at its first call: ``WATTWISE_DB`` may be set after the module that decorates is imported), and
``.options(...)`` gives one cached variant per set of options, which shares its collector with the function.
"""

from __future__ import annotations

import hashlib
import inspect
import logging
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Generic, ParamSpec, TypeVar, overload

from wattwise.errors import ConfigError, WattwiseError
from wattwise.integrations.training import resolve_settings
from wattwise.store import is_memory

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


class _Driver:
    """What every variant of one measured function shares on the driver: the store URL its runs go to, resolved at
    the first call, and the collector of that store for the current Ray job."""

    def __init__(self, overrides: Mapping[str, Any]) -> None:
        self.overrides = overrides
        self.db_url: str | None = None
        self.collector: tuple[tuple[str, str], Any] | None = None  # (job id, store URL) → its actor

    def store_url(self) -> str:
        if self.db_url is None:
            self.db_url = _driver_store(self.overrides)
        return self.db_url

    def collector_for_this_job(self) -> Any:
        db_url = self.store_url()  # a store in memory is refused before Ray is started
        if not ray.is_initialized():
            ray.init()  # what .remote() would do: Ray starts (or joins) a cluster on first use
        context = ray.get_runtime_context()
        key = (context.get_job_id(), db_url)
        if self.collector is None or self.collector[0] != key:
            digest = hashlib.sha256(db_url.encode()).hexdigest()[:16]
            actor = ray.remote(Collector).options(
                name=f"wattwise-collector-{key[0]}-{digest}",
                get_if_exists=True,
                num_cpus=0,
                scheduling_strategy=NodeAffinitySchedulingStrategy(node_id=context.get_node_id(), soft=False),
            )
            self.collector = (key, actor.remote(db_url))
        return self.collector[1]


def _driver_store(overrides: Mapping[str, Any]) -> str:
    """The store URL the driver's settings name, refused when it is in memory (its runs would be lost with it)."""
    from wattwise.config import Settings
    from wattwise.store import check_url

    db_url = check_url(Settings.load({k: v for k, v in overrides.items() if k in _DRIVER_ONLY}).db_url)
    if is_memory(db_url):
        raise ConfigError(
            f"the driver's run store is in memory ({db_url}): measured Ray tasks would be lost with it; set "
            "WATTWISE_DB (or measured(db=...)) to a file or a server"
        )
    return db_url


def _option_key(value: object) -> object:
    """A Ray option's value as part of a dict key: itself where it is hashable (a number, a scheduling strategy
    object), else its text (a ``runtime_env`` dict)."""
    try:
        hash(value)
    except TypeError:
        return (type(value).__name__, repr(value))
    return (type(value).__name__, value)


def _refuse_generators(function: Callable[..., Any]) -> None:
    if inspect.isgeneratorfunction(function) or inspect.isasyncgenfunction(function):
        name = getattr(function, "__qualname__", None) or type(function).__name__
        raise ConfigError(
            f"measured() takes a function that returns, not the generator function {name}: its run would end "
            "before the generator runs (measure the work it yields inside a function that returns)"
        )


class MeasuredFunction(Generic[P, R]):
    """A Ray remote function whose every call is a wattwise run; build it with :func:`measured`."""

    VARIANTS = 64  # option sets kept by .options(); past that, the oldest is dropped

    def __init__(
        self,
        function: Callable[P, R],
        *,
        name: str | None = None,
        ray_options: Mapping[str, Any] | None = None,
        overrides: Mapping[str, Any] | None = None,
        _driver: _Driver | None = None,
    ) -> None:
        self.function = function
        self.name = name or getattr(function, "__qualname__", None) or "ray-task"
        self.ray_options = {"name": self.name, **(ray_options or {})}
        self.overrides = dict(overrides or {})
        if _driver is None:  # a new function, not a variant of one: a bad setting fails here, on the driver
            _refuse_generators(function)
            settings = resolve_settings(None, self.overrides)
            if is_memory(settings.db_url):
                _driver_store(self.overrides)  # the one-line refusal
            _driver = _Driver(self.overrides)
        self._driver = _driver
        self._remote: Any = None
        self._variants: dict[tuple[tuple[str, object], ...], MeasuredFunction[P, R]] = {}

    def options(self, **ray_options: Any) -> MeasuredFunction[P, R]:
        """The same function with these Ray task options (``num_cpus``, ``num_gpus``, ``num_returns``…) added; one
        variant per set of options, kept (its Ray function is built once)."""
        key = tuple(sorted((k, _option_key(v)) for k, v in ray_options.items()))
        variant = self._variants.get(key)
        if variant is None:
            variant = MeasuredFunction(
                self.function,
                name=self.name,
                ray_options={**self.ray_options, **ray_options},
                overrides=self.overrides,
                _driver=self._driver,
            )
            if len(self._variants) >= self.VARIANTS:
                self._variants.pop(next(iter(self._variants)))
            self._variants[key] = variant
        return variant

    def remote(self, *args: P.args, **kwargs: P.kwargs) -> Any:
        """Submit a call: what ``ray.remote(function).remote(...)`` returns (an ObjectRef, or a list of them)."""
        if self._remote is None:
            function, name, overrides = self.function, self.name, self.overrides

            def task(collector: Any, *args: Any, **kwargs: Any) -> Any:
                return _call_measured(function, name, overrides, collector, *args, **kwargs)

            task.__module__ = getattr(function, "__module__", task.__module__)
            task.__qualname__ = task.__name__ = name
            self._remote = ray.remote(**self.ray_options)(task)
        return self._remote.remote(self._driver.collector_for_this_job(), *args, **kwargs)

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        """A local call, unmeasured (as a Ray remote function, it is called through ``.remote()``)."""
        return self.function(*args, **kwargs)


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


def _reason(exc: BaseException) -> str:
    """An exception on one line: a task's or actor's error as its cause (not the remote traceback Ray wraps it in)."""
    cause = exc.cause if isinstance(exc, ray.exceptions.RayTaskError) and exc.cause is not None else exc
    text = " ".join(str(cause).split()) or "no message"
    return f"{type(cause).__name__}: {text[:300]}"


def _keep(tracker: Tracker, run: Run, rows: list[SampleRow], exc: Exception) -> None:
    from wattwise.measure.persist import RunWriter
    from wattwise.records import Sample
    from wattwise.store import SQLiteStore
    from wattwise.store.sqlite import MEMORY

    with SQLiteStore(MEMORY) as scratch:
        path = RunWriter(scratch, tracker.settings.home).save_unsaved(run, [Sample(*row) for row in rows])
    where = f"kept in {path} (wattwise runs import {path})" if path else "lost (it could not be written to a file)"
    log.warning(
        "wattwise: run %s of task %s did not reach the driver's store (%s); %s", run.id, run.name, _reason(exc), where
    )
