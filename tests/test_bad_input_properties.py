"""Property-based tests over every parser and validator: whatever comes in, the answer is a value or one clear
error of wattwise's own (ConfigError, RecordError, ProviderError), never another exception, never a stored run
harmed. The coverage-guided fuzzers in tests/fuzz/ go further on three of them (see test_fuzz.py)."""

from __future__ import annotations

import contextlib
import io
import json
import math
import os
import string
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from tests.store.builders import make_run, runs
from wattwise import validate
from wattwise.carbon.csvtrace import CsvTraceProvider
from wattwise.carbon.http import JsonResponse
from wattwise.carbon.providers import ElectricityMapsProvider, UkGridProvider, WattTimeProvider
from wattwise.config import Settings
from wattwise.errors import ConfigError, ProviderError, RecordError, WattwiseError
from wattwise.record_schema import check_run, run_from_dict
from wattwise.store import SQLiteStore

EXAMPLES = int(os.environ.get("WATTWISE_PROPERTY_EXAMPLES", "200"))  # raise it for a deeper search
FUZZ = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda children: st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=10), children, max_size=5),
    max_leaves=30,
)

# -- the shared validators ---------------------------------------------------------------------------------------

ALL_BOUNDS = [value for name, value in vars(validate).items() if isinstance(value, validate.Bounds)]


@FUZZ
@given(bounds=st.sampled_from(ALL_BOUNDS), value=st.floats() | st.integers() | st.text(max_size=5) | st.none())
def test_a_bound_accepts_exactly_what_it_contains(bounds: validate.Bounds, value: Any) -> None:
    number = validate.is_number(value)
    inside = number and bounds.contains(float(value))
    try:
        assert bounds.check(value) == float(value)
        assert inside
    except ConfigError as exc:
        assert not inside
        assert str(exc).startswith(bounds.name) and "\n" not in str(exc)
    if number and inside:
        assert math.isfinite(float(value)) and bounds.low <= float(value) <= bounds.high


@FUZZ
@given(text=st.text(max_size=140))
def test_run_ids_are_safe_file_names_or_refused(text: str) -> None:
    try:
        validate.check_run_id(text)
    except ConfigError:
        return
    assert "/" not in text and "\\" not in text and not text.startswith(".") and 1 <= len(text) <= 128


# -- CSV intensity traces -----------------------------------------------------------------------------------------

cells = st.text(alphabet=string.printable, max_size=25) | st.floats().map(repr) | st.integers().map(str)
stamps = st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)).map(
    lambda d: d.isoformat()
)
headers = st.sampled_from(
    [
        "timestamp,intensity_g_per_kwh",
        "timestamp,intensity_kg_per_kwh,zone",
        "UTC time,carbon_intensity",
        "Time,Carbon Intensity",
        "timestamp,intensity (lbs/MWh)",
        "timestamp,intensity_furlongs",
        "",
    ]
)


@FUZZ
@given(header=headers, rows=st.lists(st.lists(stamps | cells, min_size=0, max_size=4), max_size=30))
def test_any_trace_is_a_series_in_range_or_one_line(tmp_path: Path, header: str, rows: list[list[str]]) -> None:
    path = tmp_path / "trace.csv"
    path.write_text(header + "\n" + "\n".join(",".join(row) for row in rows) + "\n", encoding="utf-8")
    try:
        provider = CsvTraceProvider(path)
    except ConfigError as exc:
        assert "\n" not in str(exc)
        return
    for point in provider.series.points:
        assert validate.INTENSITY.contains(point.intensity_g_per_kwh)


@FUZZ
@given(data=st.binary(max_size=300))
def test_any_bytes_as_a_trace(tmp_path: Path, data: bytes) -> None:
    path = tmp_path / "trace.csv"
    path.write_bytes(data)
    with contextlib.suppress(ConfigError):
        CsvTraceProvider(path)


# -- config files and environment ---------------------------------------------------------------------------------

SETTING_NAMES = ["pue", "interval_s", "flush_s", "region", "epochs", "gpu", "gpu_indices", "intensity", "kill_grace_s"]
SETTING_NAMES += ["electricitymaps_api_key", "attribution", "provider", "nonsense_key", "wue_l_per_kwh", "db"]
toml_values = (
    st.integers().map(str)
    | st.floats(allow_nan=True, allow_infinity=True).map(lambda f: "nan" if math.isnan(f) else repr(f))
    | st.text(alphabet=string.ascii_letters + " ,.-", max_size=12).map(json.dumps)
    | st.sampled_from(["true", "false", "[1, 2]", "[]", "{}", '"1,2"', "inf", "-inf"])
)


@FUZZ
@given(entries=st.dictionaries(st.sampled_from(SETTING_NAMES), toml_values, max_size=6), table=st.booleans())
def test_any_config_file_is_settings_or_one_line(tmp_path: Path, entries: dict[str, str], table: bool) -> None:
    path = tmp_path / "config.toml"
    body = "\n".join(f"{key} = {value}" for key, value in entries.items())
    path.write_text(("[wattwise]\n" if table else "") + body + "\n")
    try:
        loaded = Settings.load(env={}, config_file=path)
    except ConfigError as exc:
        assert "\n" not in str(exc)
        return
    if loaded.pue is not None:
        assert validate.PUE.contains(loaded.pue)
    assert validate.INTERVAL_S.contains(loaded.interval_s)


@FUZZ
@given(data=st.binary(max_size=200))
def test_any_bytes_as_a_config_file(tmp_path: Path, data: bytes) -> None:
    path = tmp_path / "config.toml"
    path.write_bytes(data)
    with contextlib.suppress(ConfigError):
        Settings.load(env={}, config_file=path)


@FUZZ
@given(env=st.dictionaries(st.sampled_from([f"WATTWISE_{n.upper()}" for n in SETTING_NAMES]), st.text(max_size=12)))
def test_any_environment_is_settings_or_one_line(env: dict[str, str]) -> None:
    env = {**env, "XDG_CONFIG_HOME": "/nonexistent", "WATTWISE_HOME": "/nonexistent/home"}
    with contextlib.suppress(ConfigError):
        Settings.load(env=env)


# -- live providers' JSON -----------------------------------------------------------------------------------------


class JsonClient:
    """Answers every request with one JSON document (whatever a provider, a proxy or an outage might send)."""

    offline = False

    def __init__(self, data: Any) -> None:
        self.data = data

    def get_json(self, url: str, **kwargs: Any) -> JsonResponse:
        if url.endswith("/login"):
            return JsonResponse({"token": "t0k3n-abcdef"}, url, datetime(2025, 3, 10, 12, tzinfo=UTC))
        check = kwargs.get("check")
        if check is not None:
            check(self.data)
        return JsonResponse(self.data, url, datetime(2025, 3, 10, 12, tzinfo=UTC))

    def close(self) -> None:
        pass


leaves = json_values | st.floats() | st.integers(min_value=-(10**20), max_value=10**20)
times = stamps | st.text(max_size=12) | st.none() | st.integers()


@st.composite
def shaped(draw: st.DrawFn) -> Any:
    """The documented shapes of the three providers' answers, with any values in them."""
    em_row = st.fixed_dictionaries({"datetime": times, "carbonIntensity": leaves}, optional={"zone": leaves})
    wt_row = st.fixed_dictionaries({"point_time": times, "value": leaves})
    uk_row = st.fixed_dictionaries(
        {"from": times, "to": times, "intensity": st.fixed_dictionaries({"actual": leaves, "forecast": leaves})}
    )
    choice = draw(st.integers(0, 5))
    if choice == 0:
        return draw(em_row)
    if choice == 1:
        return {"forecast": draw(st.lists(em_row, max_size=5)), "history": draw(st.lists(em_row, max_size=5))}
    if choice == 2:
        meta = st.fixed_dictionaries(
            {"units": st.just("lbs_co2_per_mwh") | leaves, "data_point_period_seconds": leaves}
        )
        return {"data": draw(st.lists(wt_row, max_size=5)), "meta": draw(meta)}
    if choice == 3:
        return {"data": draw(st.lists(uk_row, max_size=5))}
    if choice == 4:
        return {"data": [{"regionid": 1, "shortname": draw(leaves), "data": draw(st.lists(uk_row, max_size=3))}]}
    return draw(json_values)


@FUZZ
@given(
    data=shaped(),
    which=st.sampled_from(["electricitymaps", "watttime", "ukgrid"]),
    ask=st.sampled_from(["latest", "history", "forecast"]),
)
def test_any_provider_json_is_a_series_in_range_or_a_provider_error(
    isolated_env: Path, data: Any, which: str, ask: str
) -> None:
    s = Settings.load(
        {"electricitymaps_api_key": "k3y-123456", "watttime_username": "u", "watttime_password": "p4ssw0rd"}
    )
    clock = lambda: datetime(2025, 3, 10, 12, 20, tzinfo=UTC)  # noqa: E731
    client: Any = JsonClient(data)
    provider: Any
    zone = {"electricitymaps": "DE", "watttime": "CAISO_NORTH", "ukgrid": "GB"}[which]
    if which == "electricitymaps":
        provider = ElectricityMapsProvider(s, client=client, clock=clock)
    elif which == "watttime":
        provider = WattTimeProvider(s, client=client, clock=clock)
    else:
        provider = UkGridProvider(s, client=client, clock=clock)
    try:
        if ask == "latest":
            series = provider.latest(zone)
        elif ask == "history":
            series = provider.history(zone, datetime(2025, 3, 10, tzinfo=UTC), datetime(2025, 3, 10, 12, tzinfo=UTC))
        else:
            series = provider.forecast(zone, 24)
    except ProviderError as exc:
        assert "\n" not in str(exc)
        return
    for point in series.points:
        assert validate.INTENSITY.contains(point.intensity_g_per_kwh) and point.duration_s > 0


# -- imported records ---------------------------------------------------------------------------------------------


@FUZZ
@given(data=json_values)
def test_any_json_as_a_record_is_a_run_or_a_record_error(data: Any) -> None:
    try:
        run = run_from_dict(data)
        check_run(run)
    except (RecordError, ConfigError) as exc:
        assert "\n" not in str(exc)


@FUZZ
@given(run=runs(), key=st.sampled_from(list(make_run().to_dict())), value=json_values, drop=st.booleans())
def test_a_damaged_record_never_harms_a_stored_run(run: Any, key: str, value: Any, drop: bool) -> None:
    keeper = make_run("keeper01")
    data = run.to_dict()
    if drop:
        data.pop(key, None)
    else:
        data[key] = value
    with SQLiteStore(":memory:") as store:
        store.save(keeper)
        try:
            imported = run_from_dict(data)
            check_run(imported)
            store.add([(imported, [])], replace=False)
        except WattwiseError as exc:
            assert isinstance(exc, RecordError | ConfigError) or "already stored" in str(exc), exc
        assert store.get("keeper01") == keeper


# -- the command line ---------------------------------------------------------------------------------------------

TOKENS = ["runs", "list", "show", "export", "import", "estimate", "training", "inference", "intensity", "now"]
TOKENS += ["hardware", "--limit", "--name", "--status", "--format", "--json", "--hardware", "H100-SXM", "--params"]
TOKENS += ["--tokens", "--devices", "--hours", "--intensity", "--pue", "--region", "--offline", "latest", "csv"]
TOKENS += ["-7e9", "1e300", "nan", "-1", "0", "2.5", "DE", "\x1b[31m", "", "--", "--mfu", "--goodput", "weird"]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(argv=st.lists(st.sampled_from(TOKENS) | st.text(max_size=8), max_size=8))
def test_any_command_line_is_an_exit_code_never_a_traceback(isolated_env: Path, argv: list[str]) -> None:
    assume(not (argv[:1] == ["runs"] and "import" in argv))  # imports read files: covered above
    assume(argv[:1] not in (["run"], ["optimize"], ["doctor"]))  # these start processes or probe hardware
    from wattwise.cli.main import main

    out, err = io.StringIO(), io.StringIO()
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = main(argv)
    except SystemExit as exc:  # argparse: usage errors and --help
        code = exc.code if isinstance(exc.code, int) else 2
    assert isinstance(code, int) and 0 <= code <= 2, (argv, err.getvalue())
    if code != 0:
        lines = [line for line in err.getvalue().splitlines() if line.strip()]
        assert lines and "Traceback" not in err.getvalue() and "\x1b" not in err.getvalue(), (argv, err.getvalue())
    assert not (isolated_env / "wattwise.db").exists()  # reading commands create nothing


@pytest.mark.parametrize("value", ["-7e9", "-1e-3", "-inf", "-.5", "-7E+09"])
def test_negative_numbers_reach_the_validator(value: str) -> None:
    from wattwise.cli.main import main

    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        code = main(["estimate", "training", "--hardware", "H100-SXM", "--params", value, "--tokens", "1e9"])
    assert code == 2 and "params must be above 0" in err.getvalue()
