"""The plausible range of every value that enters wattwise, checked in one place.

Every entry point uses these bounds: CLI flags and Python arguments (through :class:`~wattwise.config.Settings`
and the estimate inputs), the config file and ``WATTWISE_*`` environment, CSV intensity traces, live providers'
JSON and imported run records. A value outside its range is refused with one line that names the value, where
it came from, the range and why the range is what it is; it is never clipped or silently replaced.

The ranges are wide on purpose: they exist to catch unit mistakes (kg given as g is ×1000, a trace in
lbs/MWh read as g/kWh is ×0.45, a value of 1e300) and garbage, not to second-guess real figures.
"""

from __future__ import annotations

import dataclasses
import math
import re
from dataclasses import dataclass

from wattwise.errors import ConfigError

__all__ = [
    "ACCELERATOR_HOURS",
    "CAPACITY",
    "CO2E_G",
    "CPU_TDP_W",
    "DEVICES",
    "DURATION_S",
    "ENERGY_J",
    "ENERGY_KWH",
    "EPOCHS",
    "FLOPS",
    "FLUSH_S",
    "FRACTION",
    "GOODPUT",
    "HOST_OVERHEAD",
    "HOURS",
    "HTTP_TIMEOUT_S",
    "INTENSITY",
    "INTERVAL_S",
    "JOBS",
    "JOB_HOURS",
    "KILL_GRACE_S",
    "MEMORY_W_PER_GB",
    "MFU",
    "NETWORK_KWH_PER_GB",
    "PARAMS",
    "PORT",
    "POWER_W",
    "PRICE_USD_PER_DEVICE_HOUR",
    "PRICE_USD_PER_KWH",
    "PROMPT_TOKENS",
    "PUE",
    "REQUESTS_PER_DAY",
    "RUN_ID",
    "SAMPLE_POWER_W",
    "SEQ_LEN",
    "TOKENS",
    "TOKENS_PER_REQUEST",
    "UTILISATION",
    "WATER_L",
    "WATER_L_PER_KWH",
    "WINDOW_HOURS",
    "WUE",
    "Bounds",
    "check_gpu",
    "check_http_url",
    "check_metric_name",
    "check_pod",
    "check_run_id",
    "check_slurm_job_id",
    "hours",
    "is_number",
    "renamed",
    "short",
]


def is_number(value: object) -> bool:
    """A real int or float (not a bool, not a string that looks like a number)."""
    return isinstance(value, int | float) and not isinstance(value, bool)


@dataclass(frozen=True, slots=True)
class Bounds:
    """The range of one quantity. ``low_open``: the low end itself is refused (strictly positive quantities).
    ``integer``: only whole numbers. ``why`` says where the range comes from, for the error line."""

    name: str
    unit: str
    low: float
    high: float
    why: str = ""
    low_open: bool = False
    integer: bool = False

    def contains(self, value: object) -> bool:
        """Whether ``value`` is a number in the range (an int too large for a float is not)."""
        if not is_number(value):
            return False
        try:
            number = float(value)  # type: ignore[arg-type]
        except OverflowError:
            return False
        if not math.isfinite(number) or number > self.high:
            return False
        if self.integer and not number.is_integer():
            return False
        return number > self.low if self.low_open else number >= self.low

    def describe(self) -> str:
        """``between 0 and 5000 g/kWh`` or ``a whole number from 1 to 10,000,000``."""
        unit = f" {self.unit}" if self.unit else ""
        if self.integer:
            return f"a whole number from {_fmt(self.low + (1 if self.low_open else 0))} to {_fmt(self.high)}{unit}"
        if self.low_open and self.low == 0:
            return f"above 0 and at most {_fmt(self.high)}{unit}"
        return f"between {_fmt(self.low)} and {_fmt(self.high)}{unit}"

    def message(self, value: object, where: str = "") -> str:
        origin = f" from {where}" if where else ""
        reason = f"; {self.why}" if self.why else ""
        return f"{self.name}{origin} must be {self.describe()} (got {short(value)}){reason}"

    def check(self, value: object, where: str = "") -> float:
        """``value`` as a float when it is a number in range, else ConfigError with one line that says why."""
        if not self.contains(value):
            raise ConfigError(self.message(value, where))
        return float(value)  # type: ignore[arg-type]

    def check_int(self, value: object, where: str = "") -> int:
        """Like :meth:`check`, for quantities counted in whole numbers."""
        number = self.check(value, where)
        return int(number)

    def check_optional(self, value: object, where: str = "") -> float | None:
        return None if value is None else self.check(value, where)


def short(value: object, most: int = 60) -> str:
    """``repr(value)``, cut to ``most`` characters: an error line quotes what it got, never 400 digits of it."""
    text = repr(value)
    return text if len(text) <= most else f"{text[: most - 15]}… ({len(text):,} chars)"


def renamed(bounds: Bounds, name: str) -> Bounds:
    """The same range under another name (``active_params`` has the range of ``params``)."""
    return dataclasses.replace(bounds, name=name)


def _fmt(value: float) -> str:
    if float(value).is_integer() and abs(value) < 1e7:
        return f"{int(value):,}"
    return f"{value:g}"


# -- grid and facility ----------------------------------------------------------------------------------------

INTENSITY = Bounds(
    "intensity_g_per_kwh",
    "g/kWh",
    0.0,
    5000.0,
    "coal plants emit 740-910 g/kWh over their life cycle (IPCC AR5 WGIII, Annex III) and no grid averages "
    "more; the headroom allows unusual marginal signals, not unit mistakes",
)
PUE = Bounds(
    "pue",
    "",
    1.0,
    5.0,
    "1.0 means no facility overhead; the Uptime Institute's surveys put data centres near 1.6",
)
WUE = Bounds("wue_l_per_kwh", "L/kWh", 0.0, 20.0, "on-site water; published fleet figures are below 2 L/kWh")
WATER_L_PER_KWH = Bounds(
    "water_l_per_kwh", "L/kWh", 0.0, 500.0, "water consumed per kWh generated; thermal plants use a few litres"
)

# -- the tracker ----------------------------------------------------------------------------------------------

INTERVAL_S = Bounds(
    "interval_s",
    "s",
    0.01,
    10.0,
    "below 10 ms the sampler costs more than it measures; samples reach the store at least every 10 s",
)
FLUSH_S = Bounds("flush_s", "s", 0.01, 10.0, "a crash loses at most this much of the time series")
EPOCHS = Bounds("epochs", "", 1, 10_000_000, "the number of planned epochs, for the early prediction", integer=True)
KILL_GRACE_S = Bounds(
    "kill_grace_s",
    "s",
    0.0,
    3600.0,
    "how long `wattwise run` waits after forwarding SIGTERM/SIGHUP before it sends SIGKILL",
)
HTTP_TIMEOUT_S = Bounds("http_timeout_s", "s", 0.0, 300.0, low_open=True)
CPU_TDP_W = Bounds(
    "cpu_tdp_w", "W", 0.0, 2000.0, "per socket; the largest server CPUs are rated near 500 W", low_open=True
)
MEMORY_W_PER_GB = Bounds("memory_w_per_gb", "W/GB", 0.0, 10.0, "DRAM draws well under 1 W per GB", low_open=True)
NETWORK_KWH_PER_GB = Bounds(
    "network_kwh_per_gb",
    "kWh/GB",
    0.0,
    1.0,
    "published figures run from 0.001 to 0.06 kWh/GB (2015); --no-network leaves the network out",
    low_open=True,
)

# -- estimates ------------------------------------------------------------------------------------------------

PARAMS = Bounds("params", "", 0.0, 1e15, "parameters: the largest models have about 1e12", low_open=True)
TOKENS = Bounds("tokens", "", 0.0, 1e17, "training tokens: the largest runs use about 4e13", low_open=True)
FLOPS = Bounds("flops", "", 0.0, 1e32, "training FLOPs: the largest runs are near 5e25", low_open=True)
DEVICES = Bounds("devices", "", 0, 10_000_000, low_open=True, integer=True)
HOURS = Bounds("hours", "h", 0.0, 1e6, "wall-clock hours (1e6 h is over a century)", low_open=True)
ACCELERATOR_HOURS = Bounds("accelerator_hours", "h", 0.0, 1e12, low_open=True)
FRACTION = Bounds("fraction", "", 0.0, 1.0, low_open=True)
MFU = Bounds("mfu", "", 0.0, 1.0, "model FLOPs utilisation is a fraction of the accelerators' peak", low_open=True)
GOODPUT = Bounds("goodput", "", 0.0, 1.0, "the share of held accelerator time that advances training", low_open=True)
UTILISATION = Bounds("utilisation", "", 0.0, 1.0, "the share of peak FLOP/s sustained while serving", low_open=True)
SEQ_LEN = Bounds("seq_len", "tokens", 0, 100_000_000, low_open=True, integer=True)
POWER_W = Bounds("power_w", "W", 0.0, 100_000.0, "average power per device", low_open=True)
HOST_OVERHEAD = Bounds("host_overhead", "", 0.0, 5.0, "host power as a fraction of the devices' power")
PRICE_USD_PER_KWH = Bounds("price_usd_per_kwh", "USD", 0.0, 100.0)
PRICE_USD_PER_DEVICE_HOUR = Bounds("price_usd_per_device_hour", "USD", 0.0, 10_000.0)
TOKENS_PER_REQUEST = Bounds("tokens_per_request", "", 1.0, 1e8, "output tokens per request: at least one")
PROMPT_TOKENS = Bounds("prompt_tokens", "", 0.0, 1e8)
REQUESTS_PER_DAY = Bounds("requests_per_day", "", 0.0, 1e13, low_open=True)
BATCH = Bounds("batch", "requests", 1, 1_000_000, "requests decoded together on one deployment", integer=True)
MEMORY_BANDWIDTH_GBS = Bounds("memory_bandwidth_gbs", "GB/s", 0.0, 1e6, "HBM3e reaches about 8,000 GB/s", low_open=True)
PEAK_TFLOPS = Bounds(
    "peak_tflops", "TFLOP/s", 0.0, 1e6, "a dense peak per device (a B200 has about 2,250 in bf16)", low_open=True
)
ACHIEVABLE = Bounds("achievable", "", 0.0, 1.0, "a fraction of a hardware peak that software sustains", low_open=True)

# -- work counted in a run (tokens, requests) ------------------------------------------------------------------

WORK_TOKENS = Bounds("tokens", "", 0.0, 1e18, "tokens counted in one run")
WORK_REQUESTS = Bounds("requests", "", 0.0, 1e15, "requests counted in one run")

# -- run records ----------------------------------------------------------------------------------------------

ENERGY_J = Bounds("energy_j", "J", 0.0, 1e18, "1e18 J is 280 TWh, more than any computation has used")
CO2E_G = Bounds("co2e_g", "g", 0.0, 1e18)
DURATION_S = Bounds("duration_s", "s", 0.0, 1e10, "1e10 s is over 300 years")
WATER_L = Bounds("water_l", "L", 0.0, 1e15)
SAMPLE_POWER_W = Bounds("power_w", "W", 0.0, 1e8, "one channel's power over one sampling interval")
ENERGY_KWH = Bounds("energy_kwh", "kWh", 0.0, 1e18 / 3.6e6, "the range of energy_j, in kWh")
JOB_HOURS = Bounds("duration", "h", 0.0, 336.0, "a schedulable job of up to two weeks", low_open=True)
WINDOW_HOURS = Bounds("window", "h", 0.0, 336.0, "no intensity forecast reaches further than two weeks")
JOBS = Bounds("jobs", "", 1.0, 100_000.0, "one batch plan", integer=True)
CAPACITY = Bounds("capacity", "", 1.0, 100_000.0, "concurrent jobs or GPUs", integer=True)
PORT = Bounds("port", "", 1, 65535, "a TCP port", integer=True)

_HOURS_TEXT = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*(s|sec|m|min|h|hr|hours?|d|days?)?\s*$", re.IGNORECASE)
_PER_HOUR = {"s": 1 / 3600, "sec": 1 / 3600, "m": 1 / 60, "min": 1 / 60, "h": 1.0, "hr": 1.0, "d": 24.0}


def hours(text: object, bounds: Bounds, where: str = "") -> float:
    """A span given as ``4h``, ``90m``, ``2d``, ``3600s`` or a bare number of hours, checked against ``bounds``."""
    if is_number(text):
        return bounds.check(text, where)
    match = _HOURS_TEXT.match(str(text))
    if not match:
        origin = f" from {where}" if where else ""
        raise ConfigError(f"{bounds.name}{origin} must be a span like 4h, 90m or 2d (got {short(text)})")
    unit = (match.group(2) or "h").lower().rstrip("s") or "s"
    unit = {"hour": "h", "day": "d", "second": "s", "sec": "sec", "": "h"}.get(unit, unit)
    return bounds.check(float(match.group(1)) * _PER_HOUR[unit], where)


RUN_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")


def check_run_id(run_id: object, where: str = "") -> str:
    """A run id that can name a file and a URL path safely: letters, digits, ``-``, ``_`` and ``.``, not starting
    with ``.``, at most 128 characters. Never a path (``../../etc/x`` is refused)."""
    if not isinstance(run_id, str) or RUN_ID.fullmatch(run_id) is None:
        origin = f" in {where}" if where else ""
        raise ConfigError(
            f"run id {short(run_id)}{origin} is not valid: use 1-128 letters, digits, '-', '_' or '.', "
            "not starting with '.'"
        )
    return run_id


# -- cluster counters (``wattwise runs attach``, ``wattwise run --dcgm``) ------------------------------------------

_CONTROL = re.compile(r"[\x00-\x20\x7f]")


def check_http_url(url: object, what: str) -> str:
    """An ``http://`` or ``https://`` URL with a host (an exporter's ``/metrics``, a Prometheus server), without
    spaces, control characters or a fragment; returned without a trailing slash. ``what`` names it in the error."""
    from urllib.parse import urlsplit

    text = url if isinstance(url, str) else ""
    try:
        parts = urlsplit(text)
        port = parts.port  # ValueError for a port that is not a number or out of range
    except ValueError:
        parts, port = None, None
    ok = (
        parts is not None
        and parts.scheme in ("http", "https")
        and bool(parts.hostname)
        and not parts.fragment
        and not _CONTROL.search(text)
        and len(text) <= 2000
    )
    if not ok or (port is not None and not 0 < port < 65536):
        raise ConfigError(
            f"{what} must be an http:// or https:// URL with a host, such as http://127.0.0.1:9400/metrics "
            f"(got {short(url)})"
        )
    return text.rstrip("/")


_SLURM_JOB_ID = re.compile(r"[0-9]{1,10}(?:_[0-9]{1,10})?(?:\+[0-9]{1,5})?")


def check_slurm_job_id(job_id: object, where: str = "--slurm") -> str:
    """A Slurm job id as sacct takes it: ``1234``, an array task ``1234_7`` or a heterogeneous component ``1234+0``
    (never a step: the job's own line carries its energy)."""
    if not isinstance(job_id, str) or _SLURM_JOB_ID.fullmatch(job_id) is None:
        raise ConfigError(
            f"{where} must be a Slurm job id such as 1234, 1234_7 (array task) or 1234+0 (got {short(job_id)}); "
            "`squeue --me` and `sacct` list yours"
        )
    return job_id


_K8S_NAME = re.compile(r"[a-z0-9](?:[a-z0-9.-]{0,251}[a-z0-9])?")


def check_pod(pod: object, where: str = "--pod") -> tuple[str, str]:
    """``NAMESPACE/NAME`` of a Kubernetes pod (DNS names: lower-case letters, digits, '-' and '.'), as a pair."""
    namespace, _, name = pod.partition("/") if isinstance(pod, str) else ("", "", "")
    if not (_K8S_NAME.fullmatch(namespace) and _K8S_NAME.fullmatch(name) and len(namespace) <= 63):
        raise ConfigError(
            f"{where} must be NAMESPACE/NAME of a pod, such as ml/train-7f9c (got {short(pod)}); "
            "`kubectl get pods -A` lists them"
        )
    return namespace, name


_METRIC_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]{0,199}")


def check_metric_name(name: object, where: str = "--metric") -> str:
    """A Prometheus metric name (letters, digits, '_' and ':', not starting with a digit)."""
    if not isinstance(name, str) or _METRIC_NAME.fullmatch(name) is None:
        raise ConfigError(
            f"{where} must be a Prometheus metric name such as kepler_container_joules_total (got {short(name)})"
        )
    return name


_GPU_REF = re.compile(r"[0-9]{1,4}|GPU-[0-9a-fA-F-]{8,64}")


def check_gpu(ref: object, where: str = "--gpu") -> str:
    """A GPU as DCGM labels it: its index (``0``) or its UUID (``GPU-4b0a…``, as ``nvidia-smi -L`` shows)."""
    if isinstance(ref, str) and _GPU_REF.fullmatch(ref):
        return ref
    raise ConfigError(f"{where} must be a GPU index (0) or UUID (GPU-…, see `nvidia-smi -L`) (got {short(ref)})")
