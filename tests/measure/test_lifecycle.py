"""A tracked Python process that is signalled, exits or is killed keeps its run (real processes, real signals)."""

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

from wattwise.store import open_store

pytestmark = [pytest.mark.slow, pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")]

# A tracked busy loop. argv: mode, ready-file. Modes: default (no handler), exit-handler (sys.exit(3) on SIGTERM),
# flag-handler (a handler that only sets a flag: the program ends its loop and returns), ignore (SIG_IGN before
# tracking), start-stop (explicit start(), never stopped), sys-exit (sys.exit(0) from inside the block), fork (a
# forked child that exits: it must not touch its parent's run).
SCRIPT = """
import os, signal, sys, time, pathlib
import wattwise
mode, ready = sys.argv[1], pathlib.Path(sys.argv[2])
stop = []
if mode == "exit-handler":
    signal.signal(signal.SIGTERM, lambda s, f: sys.exit(3))
if mode == "flag-handler":
    signal.signal(signal.SIGTERM, lambda s, f: stop.append(s))
if mode == "ignore":
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
def work(seconds):
    end = time.time() + seconds
    while time.time() < end and not stop:
        sum(range(2000))
if mode == "start-stop":
    t = wattwise.track("api", interval_s=0.05, flush_s=0.2).start()
    ready.write_text("1")
    work(float(os.environ.get("WORK_S", "30")))
    raise RuntimeError("left without stop()")
with wattwise.track("api", interval_s=0.05, flush_s=0.2) as t:
    if mode == "fork":
        pid = os.fork()
        if pid == 0:
            sys.exit(0)  # a child that exits normally: atexit must not finalise the parent's run
        os.waitpid(pid, 0)
    ready.write_text("1")
    if mode == "sys-exit":
        work(0.3)
        sys.exit(0)
    work(float(os.environ.get("WORK_S", "30")))
"""


def start(tmp_path: Path, home: Path, mode: str, **env: str) -> tuple[subprocess.Popen[bytes], Path]:
    ready = tmp_path / f"ready-{mode}"
    script = tmp_path / "tracked.py"
    script.write_text(SCRIPT)
    environ = {k: v for k, v in os.environ.items() if not k.startswith("WATTWISE_")}
    environ.update(WATTWISE_HOME=str(home), WATTWISE_GPU="0", WATTWISE_RAPL_ROOT=str(home / "none"), **env)
    err = tmp_path / f"stderr-{mode}"
    with err.open("wb") as stderr:
        proc = subprocess.Popen([sys.executable, str(script), mode, str(ready)], env=environ, stderr=stderr)
    deadline = time.monotonic() + 30
    while not ready.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            raise AssertionError(f"the tracked script did not start: {err.read_text()}")
        time.sleep(0.02)
    return proc, ready


def only_run(home: Path) -> dict[str, Any]:
    with open_store(f"sqlite:///{home / 'wattwise.db'}", read_only=True) as store:
        runs = store.list_runs(limit=None)
    assert len(runs) == 1, [r.id for r in runs]
    data: dict[str, Any] = runs[0].to_dict()
    return data


@pytest.mark.parametrize("signame", ["SIGTERM", "SIGHUP"])
def test_a_default_disposition_finalises_the_run_then_dies_by_the_signal(
    tmp_path: Path, isolated_env: Path, signame: str
) -> None:
    proc, _ = start(tmp_path, isolated_env, "default")
    time.sleep(1.0)
    signum = getattr(signal, signame)
    proc.send_signal(signum)
    assert proc.wait(timeout=30) == -signum  # the process ends exactly as it would have without wattwise
    run = only_run(isolated_env)
    assert run["status"] == "incomplete" and run["error"] == f"terminated by {signame}"
    assert run["duration_s"] >= 0.9 and run["energy_j"] > 0 and run["source"] != "none"
    assert run["ended_at"] is not None


def test_the_programs_own_handler_still_runs_and_the_run_says_why_it_ended(tmp_path: Path, isolated_env: Path) -> None:
    proc, _ = start(tmp_path, isolated_env, "exit-handler")
    time.sleep(0.8)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == 3  # the program's handler decided the exit code
    run = only_run(isolated_env)
    assert run["status"] == "incomplete" and "SIGTERM" in run["error"] and run["duration_s"] >= 0.7
    assert any(note.startswith("received SIGTERM at +") for note in run["notes"])


def test_a_handler_that_lets_the_program_finish_keeps_the_run_complete_with_a_note(
    tmp_path: Path, isolated_env: Path
) -> None:
    proc, _ = start(tmp_path, isolated_env, "flag-handler")
    time.sleep(0.5)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == 0
    run = only_run(isolated_env)
    assert run["status"] == "complete"
    assert any(note.startswith("received SIGTERM at +") for note in run["notes"])


def test_an_ignored_sigterm_stays_ignored(tmp_path: Path, isolated_env: Path) -> None:
    proc, _ = start(tmp_path, isolated_env, "ignore", WORK_S="1.5")
    time.sleep(0.3)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == 0
    assert only_run(isolated_env)["status"] == "complete"


def test_sigint_raises_keyboard_interrupt_and_the_run_is_incomplete(tmp_path: Path, isolated_env: Path) -> None:
    proc, _ = start(tmp_path, isolated_env, "default")
    time.sleep(0.5)
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=30) == -signal.SIGINT  # Python dies by SIGINT after an uncaught KeyboardInterrupt
    run = only_run(isolated_env)
    assert run["status"] == "incomplete" and "KeyboardInterrupt" in run["error"]
    traceback = (tmp_path / "stderr-default").read_text()
    assert "KeyboardInterrupt" in traceback and "/wattwise/" not in traceback  # the program's own traceback


def test_sigint_with_start_stop_is_stored_as_interrupted_at_exit(tmp_path: Path, isolated_env: Path) -> None:
    proc, _ = start(tmp_path, isolated_env, "start-stop")
    time.sleep(0.5)
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=30) == -signal.SIGINT
    run = only_run(isolated_env)
    assert run["status"] == "incomplete" and run["error"] == "interrupted (KeyboardInterrupt)"


def test_a_run_never_stopped_is_finalised_at_exit(tmp_path: Path, isolated_env: Path) -> None:
    proc, _ = start(tmp_path, isolated_env, "start-stop", WORK_S="0.5")
    assert proc.wait(timeout=30) == 1
    run = only_run(isolated_env)
    assert run["status"] == "incomplete" and "exited before the run was stopped" in run["error"]
    assert run["duration_s"] >= 0.4


def test_sys_exit_zero_inside_the_block_is_a_complete_run(tmp_path: Path, isolated_env: Path) -> None:
    proc, _ = start(tmp_path, isolated_env, "sys-exit")
    assert proc.wait(timeout=30) == 0
    assert only_run(isolated_env)["status"] == "complete"


def test_a_forked_child_leaves_its_parents_run_alone(tmp_path: Path, isolated_env: Path) -> None:
    proc, _ = start(tmp_path, isolated_env, "fork", WORK_S="0.5")
    assert proc.wait(timeout=30) == 0
    run = only_run(isolated_env)
    assert run["status"] == "complete" and run["duration_s"] >= 0.4


def test_kill_9_keeps_the_last_checkpoint_as_an_incomplete_run(tmp_path: Path, isolated_env: Path) -> None:
    proc, _ = start(tmp_path, isolated_env, "default")
    time.sleep(1.5)
    proc.kill()
    proc.wait(timeout=30)
    run = only_run(isolated_env)  # read-only: shown incomplete, nothing rewritten
    assert run["status"] == "incomplete" and any("marked incomplete" in n for n in run["notes"])
    assert 1.0 <= run["duration_s"] <= 1.5 + 0.2 + 0.1  # lost at most one flush interval (0.2 s)
    assert run["ended_at"] is not None
    with open_store(f"sqlite:///{isolated_env / 'wattwise.db'}", read_only=True) as store:
        samples = list(store.iter_samples(run["id"]))
    assert samples and max(s.t_s for s in samples) >= 1.0


def test_the_saved_record_is_private_and_importable(tmp_path: Path, isolated_env: Path) -> None:
    """A store that refuses the final record: the file under unsaved/ is 0600 in a 0700 folder, holds the samples,
    and `runs import` brings both back."""
    from tests.fakes.power import ConstantPowerSource, FakeHost
    from tests.fakes.store import FailingStore
    from wattwise.config import Settings
    from wattwise.errors import StoreError
    from wattwise.measure.tracker import Tracker

    settings = Settings.load({"gpu": False, "interval_s": 0.02, "flush_s": 5.0})
    inner = open_store(settings.db_url)
    t = Tracker("x", settings=settings, sources=[ConstantPowerSource({"gpu:0": 5.0})], host=FakeHost())
    t._store, t._owns_store = FailingStore(inner), False  # the tracker's own store fails at the end
    with pytest.raises(StoreError, match="unsaved"), t:
        time.sleep(0.2)
    inner.close()
    assert t.result is not None
    path = settings.home / "unsaved" / f"{t.result.id}.json"
    assert path.stat().st_mode & 0o777 == 0o600 and path.parent.stat().st_mode & 0o777 == 0o700
    data = json.loads(path.read_text())
    assert data["samples"]
    from wattwise.cli.main import main

    assert main(["runs", "import", str(path)]) == 0
    with open_store(settings.db_url, read_only=True) as store:
        assert store.get(t.result.id).status == "complete"
        assert len(list(store.iter_samples(t.result.id))) == len(data["samples"])


CHAIN = """
import os, signal, sys, time
import wattwise
flag = []
signal.signal(signal.SIGTERM, lambda s, f: flag.append(s))  # the program's graceful-shutdown flag
with wattwise.track("chain", interval_s=0.05, flush_s=0.2):
    previous = signal.getsignal(signal.SIGTERM)
    def library(s, f):  # a library (Lightning, Ray, submitit) chaining to the handler it found
        previous(s, f)
    signal.signal(signal.SIGTERM, library)
    time.sleep(0.2)
os.kill(os.getpid(), signal.SIGTERM)  # after the run: the chain must still reach the program's handler
time.sleep(0.2)
print(flag)
"""


def test_a_library_chaining_to_our_handler_still_reaches_the_programs_own(tmp_path: Path, isolated_env: Path) -> None:
    script = tmp_path / "chain.py"
    script.write_text(CHAIN)
    env = {k: v for k, v in os.environ.items() if not k.startswith("WATTWISE_")}
    env.update(WATTWISE_HOME=str(isolated_env), WATTWISE_GPU="0", WATTWISE_RAPL_ROOT=str(isolated_env / "none"))
    out = subprocess.run(
        [sys.executable, str(script)], env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert out.returncode == 0 and out.stdout.strip() == "[15]", (out.returncode, out.stdout, out.stderr)


FORKED = """
import os, signal, sys, time
import wattwise
with wattwise.track("parent", interval_s=0.05, flush_s=0.2):
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:
        with wattwise.track("child", interval_s=0.05, flush_s=0.2):
            os.write(write_end, b"1")
            while True:
                sum(range(2000))
    os.read(read_end, 1)
    time.sleep(0.5)
    os.kill(pid, signal.SIGTERM)
    print(os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]))
"""


def test_a_forked_child_finalises_its_own_run_on_sigterm(tmp_path: Path, isolated_env: Path) -> None:
    script = tmp_path / "forked.py"
    script.write_text(FORKED)
    env = {k: v for k, v in os.environ.items() if not k.startswith("WATTWISE_")}
    env.update(WATTWISE_HOME=str(isolated_env), WATTWISE_GPU="0", WATTWISE_RAPL_ROOT=str(isolated_env / "none"))
    out = subprocess.run(
        [sys.executable, str(script)], env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert out.returncode == 0 and out.stdout.strip() == str(-signal.SIGTERM), out.stderr
    with open_store(f"sqlite:///{isolated_env / 'wattwise.db'}", read_only=True) as store:
        runs = {run.name: run for run in store.list_runs(limit=None)}
    assert runs["child"].status == "incomplete" and runs["child"].error == "terminated by SIGTERM"
    assert runs["parent"].status == "complete"


def test_a_checkpoint_after_the_final_save_is_ignored(isolated_env: Path) -> None:
    from tests.store.builders import make_run
    from wattwise.measure.persist import RunWriter

    with open_store("sqlite://:memory:") as store:
        writer = RunWriter(store, isolated_env)
        final = make_run("late0001")
        writer.final(final)
        assert writer.checkpoint(final.replace(status="running", ended_at=None)) is False
        assert store.get("late0001") == final


FORK_AFTER = """
import os, sys, time, wattwise
with wattwise.track("parent-run", interval_s=0.05, flush_s=0.2) as t:
    time.sleep(0.3)
    if os.fork() == 0:
        time.sleep(0.5)
        sys.exit(7)  # the child leaves the with block too: it must not store anything
print(t.result.status, flush=True)
time.sleep(1.0)
"""


def test_a_child_forked_inside_the_block_never_overwrites_the_parents_run(tmp_path: Path, isolated_env: Path) -> None:
    script = tmp_path / "fork_after.py"
    script.write_text(FORK_AFTER)
    env = {k: v for k, v in os.environ.items() if not k.startswith("WATTWISE_")}
    env.update(WATTWISE_HOME=str(isolated_env), WATTWISE_GPU="0", WATTWISE_RAPL_ROOT=str(isolated_env / "none"))
    out = subprocess.run(
        [sys.executable, str(script)], env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert out.returncode == 0 and out.stdout.strip() == "complete", out.stderr
    run = only_run(isolated_env)
    assert run["status"] == "complete" and run["error"] is None and run["exit_code"] is None


STUCK_IN_C = """
import hashlib, wattwise
data = b"x" * 300_000_000
with wattwise.track("c", interval_s=0.1, flush_s=1.0):
    print("ready", flush=True)
    for _ in range(200):
        hashlib.sha256(data).hexdigest()  # releases the GIL, and no signal interrupts it
"""


def test_sigterm_ends_a_process_stuck_in_a_long_c_call_at_once(tmp_path: Path, isolated_env: Path) -> None:
    script = tmp_path / "stuck.py"
    script.write_text(STUCK_IN_C)
    env = {k: v for k, v in os.environ.items() if not k.startswith("WATTWISE_")}
    env.update(WATTWISE_HOME=str(isolated_env), WATTWISE_GPU="0", WATTWISE_RAPL_ROOT=str(isolated_env / "none"))
    proc = subprocess.Popen([sys.executable, str(script)], env=env, stdout=subprocess.PIPE)
    assert proc.stdout is not None and proc.stdout.readline().strip() == b"ready"
    time.sleep(1.0)
    sent = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=60) == -signal.SIGTERM
    proc.stdout.close()
    assert time.monotonic() - sent < 1.0  # not after the current hash (about a second each here, 200 of them)
    run = only_run(isolated_env)
    assert run["status"] == "incomplete" and run["error"] == "terminated by SIGTERM"


def test_an_interrupted_final_save_is_done_again_at_exit(isolated_env: Path) -> None:
    from tests.fakes.power import ConstantPowerSource, FakeHost
    from wattwise.config import Settings
    from wattwise.measure.tracker import Tracker
    from wattwise.records import Run

    class Interrupting:
        """A store whose first final save is interrupted by Ctrl-C, as a KeyboardInterrupt inside stop() would."""

        def __init__(self, inner: object) -> None:
            self.inner = inner
            self.interrupted = False

        def __getattr__(self, name: str) -> object:
            return getattr(self.inner, name)

        def save(self, run: Run) -> None:
            if run.status != "running" and not self.interrupted:
                self.interrupted = True
                raise KeyboardInterrupt
            self.inner.save(run)  # type: ignore[attr-defined]

    settings = Settings.load({"gpu": False, "interval_s": 0.05, "flush_s": 0.2})
    inner = open_store(settings.db_url)
    store = Interrupting(inner)
    t = Tracker("x", settings=settings, sources=[ConstantPowerSource({"cpu": 1.0})], host=FakeHost(), store=store)  # type: ignore[arg-type]
    t.start()
    time.sleep(0.2)
    with pytest.raises(KeyboardInterrupt):
        t.stop()
    t.finalise("the process exited before the run was stopped")  # what the exit hook does
    assert inner.get(t.run_id or "").status == "complete"
    inner.close()
