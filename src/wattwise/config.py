"""One Settings object, resolved in one place: defaults → config file → ``WATTWISE_*`` environment → arguments.

The config file is TOML: ``$WATTWISE_CONFIG`` if set, else ``$WATTWISE_HOME/config.toml``, else
``<user config dir>/wattwise/config.toml``. Keys are the field names of :class:`Settings`; an unknown key, a
value of the wrong type or out of range raises :class:`~wattwise.errors.ConfigError` naming the key, where it
came from and what would be valid.
"""

from __future__ import annotations

import dataclasses
import os
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from wattwise import validate
from wattwise.errors import ConfigError

ATTRIBUTIONS = ("process", "machine")
_PROVIDER_ENV = {
    "ELECTRICITYMAPS_API_KEY": "electricitymaps_api_key",
    "WATTTIME_USERNAME": "watttime_username",
    "WATTTIME_PASSWORD": "watttime_password",
}


def default_home(env: Mapping[str, str]) -> Path:
    """The directory that holds the default run store: ``$WATTWISE_HOME`` or the user's data directory."""
    if env.get("WATTWISE_HOME"):
        return Path(env["WATTWISE_HOME"]).expanduser()
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Application Support" / "wattwise"
    if sys.platform == "win32":
        base = env.get("LOCALAPPDATA") or str(Path.home() / "AppData" / "Local")
        return Path(base) / "wattwise"
    base = env.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "wattwise"


def _config_path(env: Mapping[str, str]) -> Path:
    if env.get("WATTWISE_CONFIG"):
        return Path(env["WATTWISE_CONFIG"]).expanduser()
    if env.get("WATTWISE_HOME"):
        return Path(env["WATTWISE_HOME"]).expanduser() / "config.toml"
    base = env.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "wattwise" / "config.toml"


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything a measurement depends on. Build it with :meth:`Settings.load`; it is immutable after."""

    home: Path = field(default_factory=lambda: default_home(os.environ))
    db: str | None = None  # a database URL; None means sqlite:///<home>/wattwise.db
    region: str | None = None  # ISO 3166 alpha-2/alpha-3 country code; None means the world average, said so
    pue: float | None = None  # None: the cloud provider's published figure for a cloud region, else 1.0 (local)
    wue_l_per_kwh: float | None = None  # on-site water; None: the cloud provider's figure, else 0 (local machine)
    interval_s: float = 1.0  # sampling period of the background thread
    flush_s: float = 5.0  # samples and partial totals reach the store at least this often (≤ 10 s)
    attribution: str = "process"  # totals use the measured process tree's share, or the whole machine
    rapl_root: Path = Path("/sys/class/powercap")
    proc_root: Path = Path("/proc")
    gpu: bool = True
    gpu_indices: tuple[int, ...] | None = None  # NVML indices; None honours CUDA_VISIBLE_DEVICES
    network: bool = True
    network_kwh_per_gb: float | None = None  # None: the packaged default with its source (see devices.network)
    cpu_tdp_w: float | None = None  # overrides the CPU table; per socket
    memory_w_per_gb: float | None = None  # overrides the memory model's figure
    epochs: int | None = None  # planned epochs, for the early prediction
    provider: str | None = None  # carbon-intensity provider: electricitymaps, watttime, ukgrid, csv, fixed, static
    trace: Path | None = None  # a CSV intensity series (implies provider "csv")
    intensity: float | None = None  # a fixed intensity in g/kWh (implies provider "fixed")
    # secrets: from the config file, WATTWISE_* or the providers' usual variables; never printed (repr=False)
    electricitymaps_api_key: str | None = field(default=None, repr=False)  # also ELECTRICITYMAPS_API_KEY
    watttime_username: str | None = field(default=None, repr=False)  # also WATTTIME_USERNAME
    watttime_password: str | None = field(default=None, repr=False)  # also WATTTIME_PASSWORD
    offline: bool = False  # never touch the network: cached or packaged data only
    http_timeout_s: float = 10.0
    kill_grace_s: float = 10.0  # `wattwise run`: SIGKILL the command this long after forwarding SIGTERM/SIGHUP
    cuda_sync: bool = False  # Python API: torch.cuda.synchronize() at every window edge (exact GPU windows)
    # under torchrun (RANK, WORLD_SIZE, LOCAL_RANK set): each rank measures its own devices, node-wide sources are
    # read once per node, and rank 0 stores one record with every rank (false: each process measures as if alone)
    distributed: bool = True

    @property
    def db_url(self) -> str:
        return self.db if self.db else f"sqlite:///{self.home / 'wattwise.db'}"

    @classmethod
    def load(
        cls,
        overrides: Mapping[str, Any] | None = None,
        env: Mapping[str, str] | None = None,
        config_file: Path | None = None,
    ) -> Settings:
        """Resolve settings: defaults → config file → environment → ``overrides`` (None values are ignored)."""
        env = os.environ if env is None else env
        values: dict[str, Any] = {"home": default_home(env)}
        path = config_file if config_file is not None else _config_path(env)
        try:
            is_file = path.is_file()
            present = is_file or path.exists() or path.is_symlink()
        except OSError as exc:  # a directory on the way this user may not enter
            raise ConfigError(
                f"cannot look for config file {path}: {exc.strerror or exc}; fix the permissions of its directory, "
                "or point WATTWISE_CONFIG (or WATTWISE_HOME) elsewhere"
            ) from None
        if is_file:
            values.update(_read_file(path))
        elif present:
            kind = "a directory" if path.is_dir() else "not a regular file (or a broken link)"
            raise ConfigError(f"config file {path} is {kind}; make it a TOML file, or point WATTWISE_CONFIG elsewhere")
        elif config_file is not None or env.get("WATTWISE_CONFIG"):
            raise ConfigError(f"config file {path} does not exist; create it or unset WATTWISE_CONFIG")
        for var, name in _PROVIDER_ENV.items():  # the providers' own variable names, below WATTWISE_*
            if env.get(var):
                values[name] = env[var]
        values.update(_read_env(env))
        for key, value in (overrides or {}).items():
            if key not in _FIELDS:
                raise ConfigError(f"unknown setting {key!r}; valid settings: {', '.join(sorted(_FIELDS))}")
            if value is not None:
                values[key] = _coerce(key, value, "argument")
        settings = cls(**values)
        settings.validate()
        return settings

    def validate(self) -> None:
        """Every value in its plausible range (the shared bounds of :mod:`wattwise.validate`) and consistent."""
        for name, bounds in _BOUNDS.items():
            value = getattr(self, name)
            if value is not None and not bounds.contains(value):
                raise ConfigError(bounds.message(value))
        if self.flush_s < self.interval_s:
            raise ConfigError(
                f"flush_s must be between interval_s ({self.interval_s}) and 10 seconds (got {self.flush_s})"
            )
        if self.attribution not in ATTRIBUTIONS:
            raise ConfigError(f"attribution must be one of {', '.join(ATTRIBUTIONS)} (got {self.attribution!r})")
        if self.provider is not None:
            from wattwise.carbon.registry import NAMES

            if self.provider not in NAMES:
                raise ConfigError(f"provider must be one of {', '.join(NAMES)} (got {self.provider!r})")
        if self.provider == "fixed" and self.intensity is None:
            raise ConfigError("provider fixed needs a value: --intensity G (g/kWh) or WATTWISE_INTENSITY")
        if self.provider == "csv" and self.trace is None:
            raise ConfigError("provider csv needs a file: --trace FILE or WATTWISE_TRACE")
        if self.region is not None and not self.region.strip():
            raise ConfigError("region is empty; give an ISO country code, a grid zone or a cloud region, or unset it")

    def replace(self, **changes: Any) -> Settings:
        """A copy with ``changes`` (setting names → values, checked and converted as arguments are)."""
        for key in changes:
            if key not in _FIELDS:
                raise ConfigError(f"unknown setting {key!r}; valid settings: {', '.join(sorted(_FIELDS))}")
        coerced: dict[str, Any] = {k: None if v is None else _coerce(k, v, "argument") for k, v in changes.items()}
        updated = dataclasses.replace(self, **coerced)
        updated.validate()
        return updated


_FIELDS: dict[str, dataclasses.Field[Any]] = {f.name: f for f in dataclasses.fields(Settings)}
# the shared plausible ranges (wattwise.validate), by setting
_BOUNDS: dict[str, validate.Bounds] = {
    "pue": validate.PUE,
    "wue_l_per_kwh": validate.WUE,
    "interval_s": validate.INTERVAL_S,
    "flush_s": validate.FLUSH_S,
    "network_kwh_per_gb": validate.NETWORK_KWH_PER_GB,
    "cpu_tdp_w": validate.CPU_TDP_W,
    "memory_w_per_gb": validate.MEMORY_W_PER_GB,
    "intensity": validate.renamed(validate.INTENSITY, "intensity"),
    "http_timeout_s": validate.HTTP_TIMEOUT_S,
    "epochs": validate.EPOCHS,
    "kill_grace_s": validate.KILL_GRACE_S,
}
_ENV = {f"WATTWISE_{name.upper()}": name for name in _FIELDS}
# consumed elsewhere, not Settings fields: the config file's path, the socket `wattwise run` hands its command, and
# the dashboard's token
_ENV_IGNORED = {"WATTWISE_CONFIG", "WATTWISE_EPOCH_SOCKET", "WATTWISE_DASHBOARD_TOKEN"}


def _read_file(path: Path) -> dict[str, Any]:
    import tomllib  # only when a config file exists: start-up cost

    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(f"config file {path} is not UTF-8 text (byte {exc.start}); save it as UTF-8") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path} is not valid TOML: {exc}") from exc
    table = data.get("wattwise", data)
    if not isinstance(table, dict):
        raise ConfigError(f"config file {path}: [wattwise] must be a table of settings (got {type(table).__name__})")
    values: dict[str, Any] = {}
    for key, value in table.items():
        if key not in _FIELDS:
            hint = _close(key, list(_FIELDS))
            did_you_mean = f" (did you mean {hint[0]!r}?)" if hint else ""
            raise ConfigError(f"unknown key {key!r} in {path}{did_you_mean}; valid keys: {', '.join(sorted(_FIELDS))}")
        values[key] = _coerce(key, value, f"{path}")
    return values


def _close(word: str, choices: list[str]) -> list[str]:
    import difflib  # only on the error path

    return difflib.get_close_matches(word, choices, n=1)


def _read_env(env: Mapping[str, str]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for var, raw in env.items():
        if not var.startswith("WATTWISE_") or var in _ENV_IGNORED:
            continue
        name = _ENV.get(var)
        if name is None:
            hint = _close(var, list(_ENV))
            did_you_mean = f"; did you mean {hint[0]}?" if hint else ""
            raise ConfigError(f"unknown environment variable {var}{did_you_mean} (unset it to continue)")
        if raw == "":
            continue
        values[name] = _coerce(name, raw, f"environment variable {var}")
    return values


def _indices(values: Iterable[int]) -> tuple[int, ...]:
    found = tuple(values)
    if any(v < 0 or v > 4096 for v in found) or len(set(found)) != len(found):
        raise ValueError(found)  # negative, absurd or repeated GPU indices
    return found


def _coerce(name: str, value: Any, origin: str) -> Any:
    """Turn a value from a file, the environment or an argument into the field's type, or say what is wrong."""
    kind = str(_FIELDS[name].type)
    try:
        if isinstance(value, str) and "\x00" in value:  # a NUL byte can name no file and no URL
            raise ValueError(value)
        if "Path" in kind:
            if not isinstance(value, str | Path):
                raise ValueError(value)
            return Path(str(value)).expanduser()
        if "tuple[int" in kind:
            if isinstance(value, str):
                parts = [p for p in value.replace(" ", "").split(",") if p]
                return _indices(int(p) for p in parts)
            if not isinstance(value, list | tuple) or not all(type(v) is int for v in value):
                raise ValueError(value)  # [1.5, true] is not a list of GPU indices
            return _indices(value)
        if kind.startswith("bool"):
            if isinstance(value, bool):
                return value
            text = str(value).strip().lower()
            if text in {"1", "true", "yes", "on"}:
                return True
            if text in {"0", "false", "no", "off"}:
                return False
            raise ValueError(value)
        if kind.startswith("float"):
            if isinstance(value, bool):
                raise ValueError(value)
            return float(value)
        if kind.startswith("int"):
            if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
                raise ValueError(value)
            return int(value)
        if not isinstance(value, str):  # a TOML number or list where text belongs (an API key of 123)
            raise ValueError(value)
        if name == "region":
            return value.strip()
        return value
    except (TypeError, ValueError, OverflowError):
        expected = kind.replace(" | None", "").replace("tuple[int, ...]", "comma-separated integers")
        shown = f"a {type(value).__name__}" if not _FIELDS[name].repr else validate.short(value)  # never a secret
        raise ConfigError(f"{name} from {origin} must be {expected} (got {shown})") from None
