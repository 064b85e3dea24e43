"""The one exception tree of wattwise.

Every error the library raises on purpose derives from :class:`WattwiseError`, and its message is one line that
says what went wrong and what to do about it. The CLI prints that line and exits non-zero.

    WattwiseError
    ├── ConfigError              a setting, config-file key, environment variable or flag is invalid
    │   ├── UnknownRegionError   a region that no packaged table knows (lists the closest names)
    │   └── RecordError          a run record (imported, exported or stored) breaks the record rules
    ├── DeviceError              a power source failed while it was being read
    │   └── NvmlError            NVML said no (driver missing, no permission, GPU lost); .reason names which
    │       └── EnergyCounterUnsupported   this GPU has no total-energy counter (power sampling is used)
    ├── StoreError               the run store cannot be opened, read or written
    │   ├── RunNotFoundError     no stored run matches the id or prefix
    │   ├── RunExistsError       a run with this id is already stored (``runs import --replace`` replaces it)
    │   ├── StoreUnreachable     a store server did not answer (down, network): runs are kept locally meanwhile
    │   └── StoreRefused         a store server refused the login or the database: runs are kept locally too
    ├── ProviderError            a carbon-intensity provider could not answer (network, auth, quota, bad data)
    ├── CounterError             a cluster's energy counter could not be read (DCGM, Kepler, Prometheus, sacct)
    ├── TrackerStateError        the tracker was used out of order (stop before start, window never opened)
    └── CommandError             `wattwise run` could not start the command (not found, not executable)
"""

from __future__ import annotations

__all__ = [
    "CommandError",
    "ConfigError",
    "CounterError",
    "DeviceError",
    "ProviderError",
    "RecordError",
    "RunExistsError",
    "RunNotFoundError",
    "StoreError",
    "StoreRefused",
    "StoreUnreachable",
    "TrackerStateError",
    "UnknownRegionError",
    "WattwiseError",
]


class WattwiseError(Exception):
    """Root of every error wattwise raises on purpose."""


class ConfigError(WattwiseError):
    """A setting (argument, environment variable, config-file key or CLI flag) is invalid."""


class UnknownRegionError(ConfigError):
    """The region is not in any packaged table; the message lists the closest valid names."""


class RecordError(ConfigError):
    """A run record is malformed or breaks a rule every stored record obeys (see ``wattwise.record_schema``)."""


class DeviceError(WattwiseError):
    """A power source failed while being read (the message names the source and the cause)."""


class StoreError(WattwiseError):
    """The run store cannot be opened, read or written."""


class StoreUnreachable(StoreError):
    """A store's server could not be reached (refused, timed out, unknown host): the tracker keeps the run locally
    (``wattwise runs sync`` sends it later)."""


class StoreRefused(StoreError):
    """A store's server answered but refused the connection (a wrong password or role, a database that does not
    exist): the tracker keeps the run locally too, and says what to fix."""


class ProviderError(WattwiseError):
    """A carbon-intensity provider could not answer. ``retryable`` says whether trying later may help
    (timeouts, 429, 5xx, an empty answer during an outage) as opposed to a wrong key or an unknown zone;
    ``plan_limit`` that the credentials are good but the user's plan does not include this endpoint or zone (a free
    key asking for a forecast): callers degrade to what the plan allows. ``status`` is the HTTP status, if any."""

    def __init__(
        self,
        message: str,
        *,
        provider: str = "",
        retryable: bool = False,
        plan_limit: bool = False,
        status: int | None = None,
        detail: str = "",
    ) -> None:
        super().__init__(message)
        self.provider = provider
        self.retryable = retryable
        self.plan_limit = plan_limit
        self.status = status
        self.detail = detail  # the server's own words, secrets scrubbed


class CounterError(WattwiseError):
    """A cluster's own energy counter could not be read or gave no usable figure: an exporter or Prometheus that is
    down or answers garbage, a counter that went down during the run (reset), sacct failing or keeping no energy.
    Nothing is stored when it is raised."""


class RunNotFoundError(StoreError):
    """No stored run matches the given id, prefix or alias."""


class RunExistsError(StoreError):
    """A run with this id is already stored."""


class TrackerStateError(WattwiseError):
    """The tracker's methods were called out of order."""


class CommandError(WattwiseError):
    """The command given to ``wattwise run`` could not be started."""
