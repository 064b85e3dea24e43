"""Defects found by trying wattwise as a new user and a hostile tester would; each test would have caught one."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.fakes.unprivileged import NOBODY, as_unprivileged
from tests.store.builders import make_run
from tests.test_cli_run import cli_env, show_latest, wattwise
from wattwise.store import SQLiteStore, open_store

pytestmark = pytest.mark.slow


def alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rfind(")") + 2] != "Z"


def wait_for_file(path: Path, timeout: float = 20.0) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and path.read_text().strip():
            return path.read_text().strip()
        time.sleep(0.02)
    raise AssertionError(f"{path} never appeared")


# -- 2. background children ---------------------------------------------------------------------------------

BURN = "import time\\nt=time.time()\\nwhile time.time()-t<{s}: pass\\n"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="subreaper is Linux")
def test_a_background_child_is_measured_until_it_exits(isolated_env: Path) -> None:
    child = f"{sys.executable} -c \"exec('{BURN.format(s=1.5)}')\" & echo started"
    started = time.monotonic()
    out = wattwise(isolated_env, "run", "--quiet", "--", "sh", "-c", child)
    assert out.returncode == 0, out.stderr
    assert time.monotonic() - started >= 1.4  # it waited for the background process
    run = show_latest(isolated_env)
    assert run["status"] == "complete" and run["duration_s"] >= 1.4
    cpu = next(c for c in run["components"] if c["component"] == "cpu")
    assert cpu["energy_j"] > 0.5  # 1.5 s of a busy CPU is measured, not 0 J
    assert any("left 1 process(es) running in the background" in n for n in run["notes"])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="subreaper is Linux")
def test_leave_descendants_stops_with_the_command_and_says_so(isolated_env: Path, tmp_path: Path) -> None:
    pidfile = tmp_path / "bg"
    out = wattwise(
        isolated_env, "run", "--quiet", "--leave-descendants", "--", "sh", "-c", f"sleep 3 & echo $! > {pidfile}"
    )
    assert out.returncode == 0, out.stderr
    run = show_latest(isolated_env)
    assert run["duration_s"] < 2.5
    pid = int(pidfile.read_text())
    assert any(f"still running when it exited (pids {pid}" in n for n in run["notes"])
    os.kill(pid, signal.SIGTERM)


# -- 12. a command that ignores SIGTERM ----------------------------------------------------------------------


def test_a_command_ignoring_sigterm_is_killed_after_the_grace_period(isolated_env: Path) -> None:
    code = (
        "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); print('ready', flush=True); time.sleep(60)"
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "wattwise", "run", "--quiet", "--kill-grace", "1", "--", sys.executable, "-c", code],
        env=cli_env(isolated_env),
        stdout=subprocess.PIPE,
    )
    assert proc.stdout is not None and proc.stdout.readline().strip() == b"ready"
    proc.send_signal(signal.SIGTERM)
    started = time.monotonic()
    assert proc.wait(timeout=30) == 128 + signal.SIGTERM
    assert time.monotonic() - started < 10
    proc.stdout.close()
    run = show_latest(isolated_env)
    assert run["status"] == "incomplete"
    assert "did not exit within 1 s of SIGTERM and was killed (SIGKILL)" in run["error"]


def test_kill_grace_is_validated(isolated_env: Path) -> None:
    out = wattwise(isolated_env, "run", "--kill-grace", "-1", "--", "true")
    assert out.returncode == 2 and "kill_grace_s must be between 0 and 3,600 s" in out.stderr


# -- kill -9 of wattwise run: the watchdog ----------------------------------------------------------------------


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the watchdog needs /proc")
def test_kill_9_of_wattwise_run_ends_the_command_and_leaves_an_incomplete_run(
    isolated_env: Path, tmp_path: Path
) -> None:
    pidfile = tmp_path / "pids"
    script = f"sleep 60 & echo $! > {pidfile}; sleep 61"
    err = tmp_path / "stderr"
    with err.open("wb") as stderr:
        proc = subprocess.Popen(
            [sys.executable, "-m", "wattwise", "run", "--quiet", "--kill-grace", "2", "--", "sh", "-c", script],
            env=cli_env(isolated_env),
            stderr=stderr,
        )
    grandchild = int(wait_for_file(pidfile))
    time.sleep(1.0)  # the watchdog learns the tree four times a second
    proc.kill()
    proc.wait(timeout=10)
    deadline = time.monotonic() + 10
    while alive(grandchild) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not alive(grandchild), "the command outlived a killed wattwise run"
    deadline = time.monotonic() + 5
    while "watchdog" not in err.read_text() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert "wattwise: watchdog:" in err.read_text()
    run = show_latest(isolated_env)
    assert run["status"] == "incomplete" and run["ended_at"] is not None and run["duration_s"] >= 0.4  # a checkpoint
    # the epoch socket's directory it left behind is removed by the next start
    leftovers = list(Path(os.environ.get("TMPDIR", "/tmp")).glob(f"wattwise-{proc.pid}-*"))
    assert wattwise(isolated_env, "run", "--quiet", "--", "true").returncode == 0
    assert not any(p.exists() for p in leftovers)


def test_a_normal_run_leaves_no_watchdog_behind(isolated_env: Path) -> None:
    before = _watchdogs()
    assert wattwise(isolated_env, "run", "--quiet", "--", "true").returncode == 0
    time.sleep(0.3)
    assert _watchdogs() <= before


def _watchdogs() -> set[int]:
    found = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if b"wattwise: watchdog" in (entry / "cmdline").read_bytes():
                    found.add(int(entry.name))
            except OSError:
                continue
    return found


# -- 3. a valid store on a read-only file or filesystem -----------------------------------------------------------


def _store_with_a_run(home: Path) -> Path:
    db = home / "wattwise.db"
    with SQLiteStore(db) as store:
        store.save(make_run("ro000001"))
    return db


def _traversable(home: Path) -> None:
    """Let other users reach ``home`` (pytest's tmp_path lives under a 0700 directory)."""
    home.chmod(0o755)
    for parent in home.parents:
        if parent == Path("/"):
            break
        parent.chmod(parent.stat().st_mode | 0o005)


def _import_everything(home: Path, commands: list[list[str]]) -> None:
    """Run the commands once here first: the unprivileged child cannot read this Python's standard library (it
    lives under /root on these machines), so every module it needs must already be imported."""
    import contextlib
    import io

    from wattwise.cli.main import main

    os.environ["WATTWISE_HOME"] = str(home)
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        for command in commands:
            main(command)


def test_reading_commands_work_on_a_store_this_user_cannot_write(isolated_env: Path) -> None:
    db = _store_with_a_run(isolated_env)
    db.chmod(0o644)
    _traversable(isolated_env)
    before = db.read_bytes()

    commands = [["runs", "list"], ["runs", "show", "ro000001", "--json"], ["runs", "export", "--format", "json"]]
    _import_everything(isolated_env, commands)

    def check() -> str:
        os.environ["WATTWISE_HOME"] = str(isolated_env)
        from wattwise.cli.main import main

        codes = [
            main(["runs", "list"]),
            main(["runs", "show", "ro000001", "--json"]),
            main(["runs", "export", "--format", "json"]),
        ]
        return json.dumps(codes)

    assert json.loads(as_unprivileged(check)) == [0, 0, 0]
    assert db.read_bytes() == before


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to mount a read-only bind mount")
def test_reading_commands_work_on_a_read_only_filesystem(isolated_env: Path, tmp_path: Path) -> None:
    _store_with_a_run(isolated_env)
    mount = tmp_path / "ro"
    mount.mkdir()
    made = subprocess.run(["mount", "--bind", str(isolated_env), str(mount)], capture_output=True, check=False)
    if made.returncode != 0:
        pytest.skip(f"cannot bind-mount here: {made.stderr.decode().strip()}")
    try:
        remount = subprocess.run(["mount", "-o", "remount,bind,ro", str(mount)], capture_output=True, check=False)
        if remount.returncode != 0:
            pytest.skip("cannot remount read-only here")
        listed = wattwise(mount, "runs", "list")
        assert listed.returncode == 0 and "ro000001" in listed.stdout, listed.stderr
        shown = wattwise(mount, "runs", "show", "ro000001")
        assert shown.returncode == 0, shown.stderr
        assert "not a SQLite database" not in listed.stderr + shown.stderr
        written = wattwise(mount, "run", "--quiet", "--", "true")  # a writer says exactly what is wrong
        assert written.returncode != 0
        assert "read-only" in written.stderr and "move this one away" not in written.stderr
    finally:
        subprocess.run(["umount", str(mount)], check=False)


def test_a_missing_store_reads_as_empty_and_is_not_created(isolated_env: Path) -> None:
    out = wattwise(isolated_env, "runs", "list")
    assert out.returncode == 0 and "no runs stored yet" in out.stdout
    assert not (isolated_env / "wattwise.db").exists()


# -- 5 and 13. runs import ----------------------------------------------------------------------------------------


def _record(**changes: Any) -> dict[str, Any]:
    data = make_run("imp00001").to_dict()
    data.update(changes)
    return data


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"status": "weird"}, "status is 'weird'; it must be one of running, complete, incomplete, failed"),
        ({"components": [], "energy_j": 0.0, "machine_energy_j": 0.0}, "components is empty"),
        ({"schema": 99}, "schema is 99, but this wattwise reads schema 1 to 1"),
        ({"id": "../../etc/x"}, "imp.json: run id '../../etc/x' is not valid"),
        ({"id": ".hidden"}, "is not valid"),
        ({"started_at": None}, "started_at must be an ISO 8601 time with a UTC offset, not null"),
        ({"started_at": "2025-03-01T12:00:00"}, "started_at has no UTC offset"),
        ({"energy_j": 1e300}, "energy_j must be between 0 and 1e+18 J"),
        ({"intensity_g_per_kwh": 1e9}, "intensity_g_per_kwh must be between 0 and 5,000 g/kWh"),
        ({"energy_j": "12"}, "energy_j must be a finite number, not '12'"),
        ({"energy_j": 5.0}, "energy_j (5) is not the sum of the components"),
        ({"pue": 0.5}, "pue must be between 1 and 5"),
        ({"ended_at": "2025-03-01T11:00:00+00:00"}, "ended_at (2025-03-01T11:00:00+00:00) is before started_at"),
    ],
)
def test_import_refuses_what_the_store_would_refuse(
    isolated_env: Path, tmp_path: Path, changes: dict[str, Any], message: str
) -> None:
    path = tmp_path / "imp.json"
    path.write_text(json.dumps(_record(**changes)))
    out = wattwise(isolated_env, "runs", "import", str(path))
    assert out.returncode == 2, out.stderr
    assert message in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1 and "Traceback" not in out.stderr
    assert not (isolated_env / "wattwise.db").exists() or SQLiteStore(isolated_env / "wattwise.db").count() == 0


def test_import_refuses_an_existing_id_unless_replace(isolated_env: Path, tmp_path: Path) -> None:
    path = tmp_path / "imp.json"
    path.write_text(json.dumps(_record(name="first")))
    assert wattwise(isolated_env, "runs", "import", str(path)).returncode == 0
    path.write_text(json.dumps(_record(name="second")))
    again = wattwise(isolated_env, "runs", "import", str(path))
    assert again.returncode == 2 and "already stored" in again.stderr and "--replace" in again.stderr
    assert show_latest(isolated_env)["name"] == "first"
    assert wattwise(isolated_env, "runs", "import", "--replace", str(path)).returncode == 0
    assert show_latest(isolated_env)["name"] == "second"


def test_import_is_all_or_nothing(isolated_env: Path, tmp_path: Path) -> None:
    path = tmp_path / "batch.json"
    path.write_text(json.dumps([_record(id="good0001"), _record(id="bad/0002")]))
    out = wattwise(isolated_env, "runs", "import", str(path))
    assert out.returncode == 2 and "batch.json[1]" in out.stderr
    assert wattwise(isolated_env, "runs", "list").stdout.startswith("no runs stored yet")


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("", "is not a JSON run record"),
        ("[]", "empty list"),
        ("[[[[", "is not a JSON run record"),
        ("42", "must be a JSON object"),
    ],
)
def test_import_of_a_bad_file_is_one_line(isolated_env: Path, tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "bad.json"
    path.write_text(content)
    out = wattwise(isolated_env, "runs", "import", str(path))
    assert out.returncode == 2 and message in out.stderr and "Traceback" not in out.stderr


def test_import_of_a_directory_is_one_line(isolated_env: Path, tmp_path: Path) -> None:
    out = wattwise(isolated_env, "runs", "import", str(tmp_path))
    assert out.returncode == 2 and "is a directory" in out.stderr


# -- 6, 7, 8. estimate and validation at every entry point -------------------------------------------------------


def test_inference_takes_power_w_when_the_catalogue_has_none(isolated_env: Path) -> None:
    args = ["estimate", "inference", "--hardware", "TPU-v5e", "--params", "8e9", "--tokens-per-request", "500"]
    args += ["--requests-per-day", "1e5", "--dtype", "int8", "--batch", "16"]
    without = wattwise(isolated_env, *args)
    assert without.returncode == 2 and "--power-w" in without.stderr
    with_power = wattwise(isolated_env, *args, "--power-w", "250", "--json")
    assert with_power.returncode == 0, with_power.stderr
    assert json.loads(with_power.stdout)["inputs"]["power_w"] == 250


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["estimate", "training", "--hardware", "H100-SXM", "--params", "-7e9", "--tokens", "1e9"],
            "params must be above 0",
        ),
        (
            ["estimate", "training", "--hardware", "H100-SXM", "--devices", "1", "--hours", "1", "--intensity", "1e9"],
            "intensity_g_per_kwh must be between 0 and 5,000",
        ),
        (["run", "--intensity", "1e9", "--", "true"], "intensity must be between 0 and 5,000"),
        (["run", "--epochs", "0", "--", "true"], "epochs must be a whole number from 1"),
        (["run", "--pue", "-inf", "--", "true"], "pue must be between 1 and 5"),
        (
            [
                "estimate",
                "inference",
                "--hardware",
                "H100-SXM",
                "--params",
                "8e9",
                "--tokens-per-request",
                "-5",
                "--requests-per-day",
                "1",
            ],
            "tokens_per_request must be between 1 and",
        ),
    ],
)
def test_the_same_ranges_at_every_entry_point(isolated_env: Path, args: list[str], message: str) -> None:
    out = wattwise(isolated_env, *args)
    assert out.returncode == 2, out.stderr
    assert message in out.stderr and len(out.stderr.strip().splitlines()) == 1


def test_the_python_api_applies_the_same_ranges(isolated_env: Path) -> None:
    import wattwise as ww
    from wattwise.errors import ConfigError

    with pytest.raises(ConfigError, match=r"epochs from track\(epochs=...\) must be a whole number from 1"):
        ww.track(epochs=0)
    with pytest.raises(ConfigError, match=r"intensity must be between 0 and 5,000"):
        ww.track(intensity=1e9)
    with pytest.raises(ConfigError, match=r"epochs .* must be a whole number"):
        ww.track(epochs=2.5)  # type: ignore[call-overload]


# -- 9, 10. runs list messages and user text on the terminal --------------------------------------------------------


def test_a_filter_matching_nothing_says_so_when_runs_exist(isolated_env: Path) -> None:
    _store_with_a_run(isolated_env)
    out = wattwise(isolated_env, "runs", "list", "--name", "nosuch")
    assert out.returncode == 0
    assert "no runs match --name 'nosuch'; the store holds 1 run(s)" in out.stdout
    assert "no runs stored yet" not in out.stdout


def test_names_with_escapes_and_newlines_are_shown_not_executed(isolated_env: Path) -> None:
    evil = "x\x1b[2J\x1b]0;pwned\x07\nfake-row [bold red]boom[/]"
    out = wattwise(isolated_env, "run", "--name", evil, "--", "true")
    assert out.returncode == 0, out.stderr
    listed = wattwise(isolated_env, "runs", "list")
    shown = wattwise(isolated_env, "runs", "show", "latest")
    for text in (listed.stdout, shown.stdout, out.stderr):
        assert "\x1b" not in text and "\x07" not in text
    assert "x\\x1b[2J\\x1b]0;pwned\\x07\\nfake-row [bold red]boom[/]" in shown.stdout  # shown as typed
    assert "x\\x1b[2J\\x1b]0;pwned\\x07\\nfake-row [bold" in listed.stdout  # markup shown, not applied
    assert show_latest(isolated_env)["name"] == evil  # stored exactly


# -- 11. the config file ------------------------------------------------------------------------------------------


def test_a_config_file_that_is_a_directory_is_an_error(isolated_env: Path) -> None:
    (isolated_env).mkdir(parents=True, exist_ok=True)
    (isolated_env / "config.toml").mkdir()
    out = wattwise(isolated_env, "run", "--", "true")
    assert out.returncode == 2 and "config.toml is a directory" in out.stderr


def test_wattwise_config_naming_a_directory_says_so(isolated_env: Path, tmp_path: Path) -> None:
    out = wattwise(isolated_env, "runs", "list", WATTWISE_CONFIG=str(tmp_path))
    assert out.returncode == 2 and "is a directory" in out.stderr and "does not exist" not in out.stderr


def test_a_key_that_is_not_text_is_refused_without_echoing_it(isolated_env: Path) -> None:
    isolated_env.mkdir(parents=True, exist_ok=True)
    (isolated_env / "config.toml").write_text("electricitymaps_api_key = 123456789\n")
    out = wattwise(isolated_env, "run", "--", "true")
    assert out.returncode == 2 and "electricitymaps_api_key" in out.stderr and "must be str" in out.stderr
    assert "123456789" not in out.stderr


def test_a_home_this_user_cannot_read_is_one_line(isolated_env: Path) -> None:
    _store_with_a_run(isolated_env)
    (isolated_env / "wattwise.db").chmod(0o600)
    _traversable(isolated_env)
    _import_everything(isolated_env, [["runs", "list"]])

    def check() -> str:
        os.environ["WATTWISE_HOME"] = str(isolated_env)
        import contextlib
        import io

        from wattwise.cli.main import main

        err = io.StringIO()
        with contextlib.redirect_stderr(err):
            code = main(["runs", "list"])
        return json.dumps([code, err.getvalue()])

    if os.geteuid() == 0 and not hasattr(os, "setuid"):
        pytest.skip("no unprivileged user")
    answer = as_unprivileged(check)
    code, err = json.loads(answer) if answer.startswith("[") else (None, answer)
    assert code == 1 and "permission denied" in err and "not a SQLite database" not in err
    assert NOBODY  # the check ran as nobody when the tests run as root


def test_a_config_directory_this_user_cannot_enter_is_one_line(isolated_env: Path, tmp_path: Path) -> None:
    locked = tmp_path / "locked"
    (locked / "inner").mkdir(parents=True)
    locked.chmod(0o700)
    _traversable(tmp_path)
    locked.chmod(0o700)
    _import_everything(isolated_env, [["runs", "list"]])

    def check() -> str:
        os.environ["WATTWISE_CONFIG"] = str(locked / "inner" / "config.toml")
        import contextlib
        import io

        from wattwise.cli.main import main

        err = io.StringIO()
        with contextlib.redirect_stderr(err):
            code = main(["runs", "list"])
        return json.dumps([code, err.getvalue()])

    answer = as_unprivileged(check)
    code, err = json.loads(answer) if answer.startswith("[") else (None, answer)
    assert code == 2 and "cannot look for config file" in err, err


def test_open_store_read_only_refuses_writes(isolated_env: Path) -> None:
    db = _store_with_a_run(isolated_env)
    from wattwise.errors import StoreError

    with open_store(str(db), read_only=True) as store, pytest.raises(StoreError, match="opened read-only"):
        store.save(make_run("ro000002"))


# -- truth under sharing ------------------------------------------------------------------------------------------


def _attributed_cpu(home: Path) -> float:
    run = show_latest(home)
    return float(next(c for c in run["components"] if c["component"] == "cpu")["energy_j"])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc")
def test_identical_sleeps_get_the_same_figure_whatever_else_runs(isolated_env: Path, tmp_path: Path) -> None:
    """Two `sleep 1` runs, one beside a process that keeps a CPU busy: the CPU energy charged to the sleep is its
    share of the machine's idle power (it holds the machine) and nothing of the other process's work."""
    quiet = wattwise(isolated_env, "run", "--quiet", "--", "sleep", "1")
    assert quiet.returncode == 0, quiet.stderr
    alone = _attributed_cpu(isolated_env)
    burner = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(0.3)
        busy = wattwise(isolated_env, "run", "--quiet", "--", "sleep", "1")
    finally:
        burner.kill()
        burner.wait()
    assert busy.returncode == 0, busy.stderr
    beside = _attributed_cpu(isolated_env)
    assert alone > 0 and beside == pytest.approx(alone, rel=0.15)  # durations differ by a few ms, no more


def test_the_summary_shows_network_energy_kept_out_of_the_total(isolated_env: Path) -> None:
    from wattwise.records import ComponentEnergy
    from wattwise.report.terminal import run_summary

    net = ComponentEnergy("network", "network", 0.0, 360.0, "estimated", "network-model")
    run = make_run().replace(components=(*make_run().components, net))
    from rich.console import Console

    console = Console(width=200, record=True)
    console.print(run_summary(run))
    text = console.export_text()
    assert "360 J for the machine's traffic, not in the total" in text


# -- found by review ----------------------------------------------------------------------------------------------


@pytest.mark.skipif(os.geteuid() != 0, reason="unshare needs root")
def test_wattwise_run_as_process_1_of_a_pid_namespace_returns(isolated_env: Path) -> None:
    """A container without an init: the watchdog would be adopted by wattwise itself; it is not started there."""
    probe = subprocess.run(["unshare", "--pid", "--fork", "--mount-proc", "true"], capture_output=True, check=False)
    if probe.returncode != 0:
        pytest.skip(f"unshare not permitted here: {probe.stderr.decode().strip()}")
    argv = ["unshare", "--pid", "--fork", "--mount-proc", sys.executable, "-m", "wattwise", "run", "--quiet", "--"]
    started = time.monotonic()
    out = subprocess.run(
        [*argv, "true"], env=cli_env(isolated_env), capture_output=True, text=True, timeout=60, check=False
    )
    assert out.returncode == 0, out.stderr
    assert time.monotonic() - started < 20
    run = show_latest(isolated_env)
    assert run["status"] == "complete" and not any("background" in n for n in run["notes"])


def test_planted_temp_names_cannot_crash_a_run(isolated_env: Path, tmp_path: Path) -> None:
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    for name in ("wattwise-99999999999999999999-x", "wattwise-²-x", "wattwise-1-x"):
        (tmp / name).mkdir()
    (tmp / "wattwise-2-y").symlink_to(tmp_path)
    out = wattwise(isolated_env, "run", "--quiet", "--", "true", TMPDIR=str(tmp))
    assert out.returncode == 0 and "Traceback" not in out.stderr, out.stderr
    assert (tmp / "wattwise-1-x").exists()  # pid 1 is alive: its folder is left
    assert tmp_path.exists()


def test_a_background_process_ignoring_sigterm_is_named_as_such(isolated_env: Path, tmp_path: Path) -> None:
    script = "trap '' TERM; (trap '' TERM; exec sleep 30) & echo ready; wait"
    proc = subprocess.Popen(
        [sys.executable, "-m", "wattwise", "run", "--quiet", "--kill-grace", "1", "--", "sh", "-c", script],
        env=cli_env(isolated_env),
        stdout=subprocess.PIPE,
    )
    assert proc.stdout is not None and proc.stdout.readline().strip() == b"ready"
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == 128 + signal.SIGTERM
    proc.stdout.close()
    assert "was killed (SIGKILL)" in show_latest(isolated_env)["error"]


def test_an_impossible_epoch_count_from_the_command_is_ignored_not_fatal(isolated_env: Path) -> None:
    code = "import wattwise; wattwise.report_epoch(planned=10**200); wattwise.report_epoch()"
    out = wattwise(isolated_env, "run", "--quiet", "--", sys.executable, "-c", code)
    assert out.returncode == 0, out.stderr
    run = show_latest(isolated_env)
    assert run["status"] == "complete" and run["energy_j"] > 0
    assert any("ignored a planned epoch count" in n for n in run["notes"])


def test_bad_window_names_fail_at_once_and_the_run_survives(isolated_env: Path) -> None:
    import wattwise as ww
    from wattwise.errors import ConfigError

    with ww.track("w", gpu=False, interval_s=0.05, flush_s=0.2) as t:
        with pytest.raises(ConfigError, match="a window name is text of 1 to 1,000 characters"):
            t.begin_window("")
        with pytest.raises(ConfigError, match="a window name"):
            t.begin_window("x" * 100_001)
        with t.window("ok"):
            pass
    assert t.result is not None and [w.name for w in t.result.windows] == ["ok"]
    assert show_latest(isolated_env)["status"] == "complete"


# -- found by the hostile test ------------------------------------------------------------------------------------


def test_commands_start_with_sigpipe_at_its_default(isolated_env: Path) -> None:
    out = wattwise(isolated_env, "run", "--quiet", "--", "grep", "SigIgn", "/proc/self/status")
    mask = int(out.stdout.split()[-1], 16)
    assert not mask & (1 << (signal.SIGPIPE - 1)) and not mask & (1 << (signal.SIGXFSZ - 1)), out.stdout
    piped = subprocess.run(
        f"{sys.executable} -m wattwise run --quiet -- yes | head -1",
        shell=True,
        env=cli_env(isolated_env),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert "Broken pipe" not in piped.stderr


def test_sigusr1_is_passed_on_to_the_command_and_the_run_goes_on(isolated_env: Path) -> None:
    code = (
        "import signal, sys, time\n"
        "signal.signal(signal.SIGUSR1, lambda s, f: (print('checkpointed', flush=True), sys.exit(0)))\n"
        "print('ready', flush=True); time.sleep(30)\n"
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "wattwise", "run", "--quiet", "--", sys.executable, "-c", code],
        env=cli_env(isolated_env),
        stdout=subprocess.PIPE,
    )
    assert proc.stdout is not None and proc.stdout.readline().strip() == b"ready"
    proc.send_signal(signal.SIGUSR1)
    assert proc.stdout.readline().strip() == b"checkpointed"
    assert proc.wait(timeout=30) == 0
    proc.stdout.close()
    run = show_latest(isolated_env)
    assert run["status"] == "complete" and any(
        n.startswith("SIGUSR1 was passed on to the command") for n in run["notes"]
    )


def test_ctrl_c_stops_waiting_for_background_processes(isolated_env: Path) -> None:
    import pty

    from tests.test_cli_signals import finish

    pid, master = pty.fork()
    if pid == 0:
        os.execve(
            sys.executable,
            [
                sys.executable,
                "-m",
                "wattwise",
                "run",
                "--quiet",
                "--kill-grace",
                "2",
                "--",
                "sh",
                "-c",
                "sleep 100 & echo started",
            ],
            cli_env(isolated_env),
        )
    time.sleep(2.5)  # the command has exited; wattwise waits for `sleep 100`
    os.write(master, b"\x03")
    started = time.monotonic()
    code = finish(pid, master)
    assert time.monotonic() - started < 10
    assert code == 0
    run = show_latest(isolated_env)
    assert run["status"] == "incomplete" and "SIGINT" in run["error"]


def test_an_import_out_of_range_in_utc_is_one_line_and_nothing_is_stored(isolated_env: Path, tmp_path: Path) -> None:
    path = tmp_path / "batch.json"
    path.write_text(
        json.dumps([_record(id="good0001"), _record(id="bad00002", started_at="9999-12-31T23:59:59-23:59")])
    )
    out = wattwise(isolated_env, "runs", "import", str(path))
    assert out.returncode == 2 and "is out of range in UTC" in out.stderr and "Traceback" not in out.stderr
    assert wattwise(isolated_env, "runs", "list").stdout.startswith("no runs stored yet")


def test_an_import_with_an_existing_id_stores_nothing_of_the_file(isolated_env: Path, tmp_path: Path) -> None:
    first = tmp_path / "first.json"
    first.write_text(json.dumps(_record(id="old00001")))
    assert wattwise(isolated_env, "runs", "import", str(first)).returncode == 0
    batch = tmp_path / "batch.json"
    batch.write_text(json.dumps([_record(id="new00001"), _record(id="old00001")]))
    out = wattwise(isolated_env, "runs", "import", str(batch))
    assert out.returncode == 2 and "already stored" in out.stderr
    listed = wattwise(isolated_env, "runs", "list", "--json")
    assert [r["id"] for r in json.loads(listed.stdout)] == ["old00001"]


def test_a_saved_record_cannot_be_imported_twice(isolated_env: Path, tmp_path: Path) -> None:
    checkpoint = make_run("twice001", status="running", ended_at=None, host="h", pid=7)
    with SQLiteStore(isolated_env / "wattwise.db") as store:
        store.save(checkpoint)
    final = make_run("twice001", status="incomplete", host="h", pid=7, notes=("ended by SIGTERM",))
    data = final.to_dict()
    data["samples"] = [{"t_s": 1.0, "channel": "cpu", "power_w": 1.0, "energy_j": 1.0}]
    path = tmp_path / "saved.json"
    path.write_text(json.dumps(data))
    assert wattwise(isolated_env, "runs", "import", str(path)).returncode == 0  # completes its own checkpoint
    again = wattwise(isolated_env, "runs", "import", str(path))
    assert again.returncode == 2 and "already stored" in again.stderr
    with SQLiteStore(isolated_env / "wattwise.db", read_only=True) as store:
        assert len(list(store.iter_samples("twice001"))) == 1


BIG = "1" + "0" * 400


@pytest.mark.parametrize(
    ("args", "env"),
    [
        (["run", "--epochs", BIG, "--", "true"], {}),
        (["run", "--", "true"], {"WATTWISE_EPOCHS": BIG}),
        (["run", "--", "true"], {"WATTWISE_KILL_GRACE_S": BIG}),
        (["estimate", "training", "--hardware", "H100-SXM", "--devices", BIG, "--hours", "1"], {}),
        (
            ["estimate", "training", "--hardware", "H100-SXM", "--params", "1e9", "--tokens", "1e9", "--seq-len", BIG],
            {},
        ),
    ],
)
def test_huge_integers_are_one_line(isolated_env: Path, args: list[str], env: dict[str, str]) -> None:
    out = wattwise(isolated_env, *args, **env)
    assert out.returncode == 2 and "Traceback" not in out.stderr and len(out.stderr.strip().splitlines()) == 1
    assert "… (401 chars)" in out.stderr or "(got inf)" in out.stderr  # never 400 digits in the message


def test_huge_integers_in_python_are_config_errors(isolated_env: Path) -> None:
    import wattwise as ww
    from wattwise.errors import ConfigError

    with pytest.raises(ConfigError):
        ww.track(epochs=10**400)
    with pytest.raises(ConfigError):
        ww.track(interval_s=10**400)


@pytest.mark.parametrize("damage", ["random", "truncated"])
def test_a_damaged_store_is_one_line_for_readers(isolated_env: Path, damage: str) -> None:
    db = _store_with_a_run(isolated_env)
    if damage == "random":
        db.write_bytes(os.urandom(5000))
    else:
        data = db.read_bytes()
        db.write_bytes(data[: len(data) // 2] + os.urandom(len(data) // 4))
    for args in (["runs", "list"], ["runs", "show", "latest"], ["runs", "export", "--format", "json"]):
        out = wattwise(isolated_env, *args)
        assert out.returncode == 1 and "Traceback" not in out.stderr, out.stderr
        assert "not a readable SQLite database" in out.stderr or "not a SQLite database" in out.stderr


@pytest.mark.parametrize(("key", "value"), [("db", "sqlite:////tmp/x\\u0000y.db"), ("trace", "/tmp/\\u0000x.csv")])
def test_a_nul_byte_in_a_path_is_one_line(isolated_env: Path, key: str, value: str) -> None:
    isolated_env.mkdir(parents=True, exist_ok=True)
    (isolated_env / "config.toml").write_text(f'{key} = "{value}"\n')
    out = wattwise(isolated_env, "run", "--", "true")
    assert out.returncode == 2 and "Traceback" not in out.stderr and key in out.stderr


@pytest.mark.parametrize("setting", ["WATTWISE_CPU_TDP_W", "WATTWISE_MEMORY_W_PER_GB", "WATTWISE_NETWORK_KWH_PER_GB"])
def test_zero_coefficients_are_refused(isolated_env: Path, setting: str) -> None:
    out = wattwise(isolated_env, "run", "--", "true", **{setting: "0"})
    assert out.returncode == 2 and "must be above 0" in out.stderr


def test_an_in_memory_store_is_refused_for_a_run(isolated_env: Path) -> None:
    for url in ("sqlite://", "sqlite:///:memory:"):
        out = wattwise(isolated_env, "run", "--db", url, "--", "true")
        assert out.returncode == 2 and "in-memory store" in out.stderr
