"""Security: SQL is never built from values, secrets never leave memory, ids never become paths, files stay private."""

from __future__ import annotations

import ast
import contextlib
import io
import json
import logging
import stat
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.carbon.providers.replay import ReplayServer, Reply
from tests.fakes.power import ConstantPowerSource, FakeHost
from tests.store.builders import make_run
from wattwise.carbon.http import HttpClient
from wattwise.carbon.providers import ElectricityMapsProvider, electricitymaps
from wattwise.carbon.service import IntensityService
from wattwise.config import Settings
from wattwise.measure.emissions import CarbonPlan
from wattwise.measure.persist import RunWriter
from wattwise.measure.tracker import Tracker
from wattwise.store import open_store

SRC = Path(__file__).resolve().parents[1] / "src" / "wattwise"
SQL_CALLS = {"execute", "executemany", "executescript"}
SECRET = "em-PLANTED-secret-4f9a1c"  # a key that must never be written anywhere


def _module_constants(tree: ast.Module) -> set[str]:
    names: set[str] = set()
    for node in tree.body:
        targets = (
            node.targets if isinstance(node, ast.Assign) else [node.target] if isinstance(node, ast.AnnAssign) else []
        )
        names.update(t.id for t in targets if isinstance(t, ast.Name))
    return names


def _static(node: ast.expr, constants: set[str]) -> bool:
    """A string literal, a module-level constant, or a concatenation of those: SQL nobody's input can change."""
    if isinstance(node, ast.Constant):
        return isinstance(node.value, str)
    if isinstance(node, ast.Name):
        return node.id in constants
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        return _static(node.left, constants) and _static(node.right, constants)
    return False


def sql_calls() -> Iterator[tuple[Path, int, bool, str]]:
    for path in sorted(SRC.rglob("*.py")):
        source = path.read_text()
        tree = ast.parse(source)
        constants = _module_constants(tree)
        lines = source.splitlines()
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in SQL_CALLS:
                if not node.args:
                    continue
                marked = "# static SQL" in lines[node.lineno - 1]
                yield path, node.lineno, _static(node.args[0], constants) or marked, lines[node.lineno - 1].strip()


def test_every_sql_statement_is_static_and_values_are_parameters() -> None:
    calls = list(sql_calls())
    assert len(calls) > 20  # the scan sees the store's statements
    built = [f"{p.relative_to(SRC)}:{line}: {text}" for p, line, static, text in calls if not static]
    assert not built, "SQL built from values (use ? or :name parameters):\n" + "\n".join(built)


def test_the_scan_would_catch_string_built_sql(tmp_path: Path) -> None:
    tree = ast.parse('conn.execute(f"SELECT * FROM runs WHERE id = {run_id}")\nconn.execute("SELECT " + name)\n')
    calls = [n for n in ast.walk(tree) if isinstance(n, ast.Call)]
    assert not any(_static(c.args[0], set()) for c in calls)


def test_an_id_never_becomes_a_path(isolated_env: Path) -> None:
    writer = RunWriter(open_store("sqlite://:memory:"), isolated_env)
    run = make_run("okid0001").replace(id="../../../../tmp/escape")  # a record that never passed the rules
    path = writer.save_unsaved(run, [])
    assert path == isolated_env / "unsaved" / "run.json"
    assert not (isolated_env.parent.parent / "tmp" / "escape.json").exists()


@pytest.fixture
def planted(isolated_env: Path) -> Iterator[tuple[Settings, ReplayServer, io.StringIO]]:
    """A run whose intensity comes from a provider with a planted key; every wattwise log line captured."""
    server = ReplayServer("electricitymaps")
    server.serve("/v3/carbon-intensity/latest", "latest.json")
    server.script("/v3/carbon-intensity/forecast", Reply(status=401, json={"message": f"bad token {SECRET}"}))
    logs = io.StringIO()
    handler = logging.StreamHandler(logs)
    logger = logging.getLogger("wattwise")
    old_level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    settings = Settings.load(
        {
            "provider": "electricitymaps",
            "region": "DE",
            "electricitymaps_api_key": SECRET,
            "gpu": False,
            "interval_s": 0.02,
            "flush_s": 0.05,
            "rapl_root": str(isolated_env / "none"),
        }
    )
    try:
        yield settings, server, logs
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old_level)
        server.close()


def test_a_planted_api_key_is_in_no_output(planted: tuple[Settings, ReplayServer, io.StringIO], tmp_path: Path) -> None:
    settings, server, logs = planted
    client = HttpClient(settings, name="electricitymaps", label="Electricity Maps", auth_hint=electricitymaps.AUTH_HINT)
    provider = ElectricityMapsProvider(settings, base_url=server.base_url, client=client)
    plan = CarbonPlan(settings, service=IntensityService(settings, provider=provider))
    with Tracker(
        "secret", settings=settings, sources=[ConstantPowerSource({"gpu:0": 5.0})], host=FakeHost(), carbon=plan
    ) as t:
        time.sleep(0.2)
    assert t.result is not None
    assert server.requests("/v3/carbon-intensity/latest")[0].headers["auth-token"] == SECRET  # it was used
    from wattwise.cli.main import main

    outputs = [logs.getvalue(), repr(settings), str(t.result.to_dict()), " ".join(t.result.notes)]
    for args in (
        ["runs", "show", "latest", "--json", "--samples"],
        ["runs", "list"],
        ["runs", "export", "--format", "csv"],
    ):
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            assert main(args) == 0
        outputs += [out.getvalue(), err.getvalue()]
    export = tmp_path / "export.json"
    assert main(["runs", "export", "--format", "json", "--output", str(export)]) == 0
    for text in outputs:
        assert SECRET not in text
    for path in [export, *settings.home.rglob("*")]:  # the store (and its WAL), the HTTP cache, anything else
        if path.is_file():
            assert SECRET.encode() not in path.read_bytes(), path
    assert any("401" in n for n in t.result.notes)  # the refusal is reported, scrubbed


def test_files_under_home_are_private(planted: tuple[Settings, ReplayServer, io.StringIO]) -> None:
    settings, server, _ = planted
    client = HttpClient(settings, name="electricitymaps", label="Electricity Maps", auth_hint=electricitymaps.AUTH_HINT)
    provider = ElectricityMapsProvider(settings, base_url=server.base_url, client=client)
    plan = CarbonPlan(settings, service=IntensityService(settings, provider=provider))
    with Tracker(
        "private", settings=settings, sources=[ConstantPowerSource({"gpu:0": 5.0})], host=FakeHost(), carbon=plan
    ):
        time.sleep(0.1)
    writer = RunWriter(open_store("sqlite://:memory:"), settings.home)
    assert writer.save_unsaved(make_run("priv0001"), []) is not None
    found = list(settings.home.rglob("*"))
    assert any(p.name.endswith(".db") for p in found) and any("cache" in p.parts for p in found)
    assert any(p.parent.name == "unsaved" for p in found)
    for path in [settings.home, *found]:
        mode = stat.S_IMODE(path.stat().st_mode)
        assert mode & 0o077 == 0, f"{path} is {oct(mode)}: readable by others"


def test_settings_never_show_secrets(isolated_env: Path) -> None:
    settings = Settings.load({"electricitymaps_api_key": SECRET, "watttime_password": SECRET})
    assert SECRET not in repr(settings) and SECRET not in str(settings)
    assert SECRET not in json.dumps({"settings": repr(settings)})
