"""The tracker writes from its sampling thread and main thread while a CLI reads: nobody sees "locked"."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest

from wattwise.records import Sample
from wattwise.store import SQLiteStore

from .builders import T0, energised, make_run


def run_concurrently(writer: Callable[[], None], reader: Callable[[], None]) -> int:
    """Run ``writer`` in a thread and ``reader`` in a loop until it ends; return how often ``reader`` ran."""
    errors: list[BaseException] = []

    def guarded() -> None:
        try:
            writer()
        except BaseException as exc:  # re-raised by the main thread
            errors.append(exc)

    thread = threading.Thread(target=guarded)
    thread.start()
    reads = 0
    try:
        while thread.is_alive():
            reader()
            reads += 1
    finally:
        thread.join()
    if errors:
        raise errors[0]
    return reads


@pytest.mark.parametrize("shared", [True, False], ids=["one-store-two-threads", "two-stores-one-file"])
def test_a_sampling_thread_writes_while_the_main_thread_reads(db_path: Path, shared: bool) -> None:
    writer_store = SQLiteStore(db_path)
    reader_store = writer_store if shared else SQLiteStore(db_path)
    run = make_run(status="running", ended_at=None)
    writer_store.begin(run)
    for i in range(30):
        writer_store.save(make_run(f"old{i:05d}", started_at=T0 - timedelta(days=1)))

    def write() -> None:
        for tick in range(300):
            writer_store.append_samples(run.id, [Sample(tick + c / 10, f"ch{c}", 1.0, tick) for c in range(8)])
            if tick % 20 == 0:
                writer_store.save(energised(run, float(tick)))

    def read() -> None:
        assert len(reader_store.list_runs(limit=None)) == 32
        assert reader_store.get(run.id).status == "running"
        reader_store.save(make_run("cli00001", started_at=T0 - timedelta(days=2)))  # a second writer

    reader_store.save(make_run("cli00001", started_at=T0 - timedelta(days=2)))
    try:
        assert run_concurrently(write, read) > 0
        assert sum(1 for _ in reader_store.iter_samples(run.id)) == 300 * 8
    finally:
        writer_store.close()
        reader_store.close()


WRITER = """
import sys, time
from wattwise.records import Sample
from wattwise.store import SQLiteStore
with SQLiteStore(sys.argv[1]) as store:
    for tick in range(400):
        store.append_samples(sys.argv[2], [Sample(float(tick), f"ch{c}", 1.0, float(tick)) for c in range(4)])
        time.sleep(0.002)
"""


def test_a_tracker_process_writes_while_a_cli_process_reads(db_path: Path) -> None:
    run = make_run(status="running", ended_at=None)
    with SQLiteStore(db_path) as store:
        store.begin(run)
    writer = subprocess.Popen([sys.executable, "-c", WRITER, str(db_path), run.id], stderr=subprocess.PIPE)
    counts: list[int] = []
    with SQLiteStore(db_path) as cli:
        while writer.poll() is None:
            assert cli.get("latest").id == run.id
            seen = [s.t_s for s in cli.iter_samples(run.id, batch_size=100)]
            assert seen == sorted(seen)
            counts.append(len(seen))
            time.sleep(0.001)
        _, stderr = writer.communicate()
        assert writer.returncode == 0, stderr.decode()
        assert sum(1 for _ in cli.iter_samples(run.id)) == 400 * 4
    assert any(0 < count < 400 * 4 for count in counts)  # it read while the writer was writing
