from __future__ import annotations

import re
import sqlite3
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from wattwise.errors import ConfigError, RunNotFoundError, StoreError
from wattwise.records import ComponentEnergy, IntensityStep, Sample, WindowRecord
from wattwise.store import RunStore, SQLiteStore
from wattwise.store.base import utc_iso

from .builders import T0, energised, make_run


def column(db: Path, run_id: str, name: str) -> object:
    with sqlite3.connect(db) as conn:
        row = conn.execute(f"SELECT {name} FROM runs WHERE id = ?", (run_id,)).fetchone()
    conn.close()
    assert row is not None
    return row[0]


def test_sqlite_store_implements_the_protocol(store: SQLiteStore) -> None:
    typed: RunStore = store
    assert isinstance(typed, RunStore)


def test_begin_stores_a_running_run_that_reads_back_equal(store: SQLiteStore) -> None:
    run = make_run(status="running", ended_at=None, exit_code=None)
    store.begin(run)
    assert store.get(run.id) == run


def test_begin_always_stores_status_running(store: SQLiteStore) -> None:
    store.begin(make_run(status="complete"))
    assert store.get("latest").status == "running"


def test_begin_twice_with_one_id_fails_and_keeps_the_first(store: SQLiteStore) -> None:
    first = make_run(status="running", name="first")
    store.begin(first)
    with pytest.raises(StoreError, match=r"already exists"):
        store.begin(make_run(status="running", name="second"))
    assert store.get(first.id) == first


def test_save_upserts_checkpoints_then_the_final_record(db_path: Path) -> None:
    run = make_run(status="running", ended_at=None, energy_j=0.0, co2e_g=0.0)
    with SQLiteStore(db_path) as store:
        store.begin(run)
        store.save(energised(run, 10.0).replace(duration_s=5.0))
        final = energised(run, 99.5).replace(status="complete", co2e_g=0.5, ended_at=T0 + timedelta(seconds=61))
        store.save(final)
        assert store.get(run.id) == final
        assert store.list_runs(status="running") == []
        assert store.list_runs(status="complete") == [final]
    assert column(db_path, run.id, "energy_j") == 99.5
    assert column(db_path, run.id, "status") == "complete"
    assert column(db_path, run.id, "ended_at") == utc_iso(T0 + timedelta(seconds=61))


def test_save_without_begin_inserts(store: SQLiteStore) -> None:
    run = make_run()
    store.save(run)
    assert store.get(run.id) == run


def test_runs_survive_closing_and_reopening(db_path: Path) -> None:
    run = make_run()
    with SQLiteStore(db_path) as store:
        store.save(run)
    with SQLiteStore(db_path) as store:
        assert store.get(run.id) == run


def test_save_refreshes_the_heartbeat(db_path: Path) -> None:
    now = [T0]
    with SQLiteStore(db_path, clock=lambda: now[0]) as store:
        run = make_run(status="running")
        store.begin(run)
        assert column(db_path, run.id, "heartbeat_at") == utc_iso(T0)
        now[0] = T0 + timedelta(seconds=7)
        store.save(run)
        assert column(db_path, run.id, "heartbeat_at") == utc_iso(now[0])
        now[0] = T0 + timedelta(seconds=9)
        store.append_samples(run.id, [Sample(t_s=1.0, channel="gpu:0", power_w=1.0, energy_j=1.0)])
        assert column(db_path, run.id, "heartbeat_at") == utc_iso(now[0])


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"energy_j": float("nan")}, "energy_j must be a finite number, not nan"),
        ({"pue": float("inf")}, "pue must be a finite number, not inf"),
        (
            {"components": (ComponentEnergy("x", "gpu", float("nan"), 1.0, "measured", "m"),)},
            "components[0].energy_j must be a finite number, not nan",
        ),
    ],
)
def test_non_finite_numbers_are_refused_naming_the_field(
    store: SQLiteStore, change: dict[str, Any], field: str
) -> None:
    with pytest.raises(StoreError, match=re.escape(field)):
        store.save(make_run(**change))
    assert store.list_runs() == []


def test_naive_datetimes_are_refused(store: SQLiteStore) -> None:
    window = WindowRecord(name="w", started_at=datetime(2025, 1, 1), duration_s=1, energy_j=1, co2e_g=0)
    with pytest.raises(StoreError, match=r"windows\[0\]\.started_at must be a time with a UTC offset"):
        store.save(make_run(windows=(window,)))
    with pytest.raises(StoreError, match=r"started_at must be a time with a UTC offset"):
        store.begin(make_run(started_at=datetime(2025, 1, 1)))


def test_undecodable_names_round_trip(store: SQLiteStore) -> None:
    run = make_run(name="caf\udce9", command=("python", "d\udcffata.py"))  # os.fsdecode of non-UTF-8 bytes
    store.save(run)
    assert store.get(run.id) == run
    assert store.list_runs(name="caf\udce9") == [run]  # filters match the exact name
    assert store.list_runs(name="caf?") == []


# --- lookup ----------------------------------------------------------------------------------------------


@pytest.fixture
def three(store: SQLiteStore) -> SQLiteStore:
    store.save(make_run("abcd1111", started_at=T0 + timedelta(hours=2), name="b"))
    store.save(make_run("abcd2222", started_at=T0, name="a"))
    store.save(make_run("ef001234", started_at=T0 + timedelta(hours=1), name="a", status="failed"))
    return store


def test_get_by_full_id_unique_prefix_and_latest(three: SQLiteStore) -> None:
    assert three.get("abcd2222").id == "abcd2222"
    assert three.get("ef00").id == "ef001234"
    assert three.get("abcd1").id == "abcd1111"
    assert three.get("latest").id == "abcd1111"  # newest start, not last written


def test_get_unknown_says_how_to_find_ids(three: SQLiteStore) -> None:
    with pytest.raises(RunNotFoundError) as caught:
        three.get("zzzz")
    assert str(caught.value) == "no run matches 'zzzz'; `wattwise runs list` shows ids"


def test_get_short_prefix_asks_for_more_characters(three: SQLiteStore) -> None:
    with pytest.raises(RunNotFoundError, match=r"no run matches 'ef0'; give at least 4 characters"):
        three.get("ef0")


def test_get_ambiguous_prefix_lists_the_matches(three: SQLiteStore) -> None:
    with pytest.raises(RunNotFoundError) as caught:
        three.get("abcd")
    assert str(caught.value).startswith("ambiguous prefix 'abcd', matches: abcd1111, abcd2222;")


def test_ambiguous_prefix_shows_at_most_five(store: SQLiteStore) -> None:
    for i in range(8):
        store.save(make_run(f"beef{i:04d}"))
    with pytest.raises(RunNotFoundError, match=r"matches: beef0000, .*, beef0004, …;"):
        store.get("beef")


def test_latest_on_an_empty_store(store: SQLiteStore) -> None:
    with pytest.raises(RunNotFoundError, match=r"no runs stored yet"):
        store.get("latest")


def test_list_runs_newest_first_with_limit_and_filters(three: SQLiteStore) -> None:
    assert [r.id for r in three.list_runs()] == ["abcd1111", "ef001234", "abcd2222"]
    assert [r.id for r in three.list_runs(limit=2)] == ["abcd1111", "ef001234"]
    assert [r.id for r in three.list_runs(limit=None)] == ["abcd1111", "ef001234", "abcd2222"]
    assert three.list_runs(limit=0) == []
    assert [r.id for r in three.list_runs(status="failed")] == ["ef001234"]
    assert [r.id for r in three.list_runs(name="a")] == ["ef001234", "abcd2222"]
    assert [r.id for r in three.list_runs(name="a", status="complete")] == ["abcd2222"]


def test_list_runs_orders_across_time_zones(store: SQLiteStore) -> None:
    from datetime import timezone

    east = timezone(timedelta(hours=9))
    store.save(make_run("late0000", started_at=(T0 + timedelta(minutes=1)).astimezone(east)))
    store.save(make_run("early000", started_at=T0))
    assert [r.id for r in store.list_runs()] == ["late0000", "early000"]


def test_list_runs_by_order_region_and_offset(store: SQLiteStore) -> None:
    store.save(make_run("small000", energy_j=10.0, region="FR", started_at=T0))
    store.save(make_run("large000", energy_j=900.0, region="DE", started_at=T0 + timedelta(minutes=1)))
    store.save(make_run("middle00", energy_j=50.0, region="DE", started_at=T0 + timedelta(minutes=2)))
    by_energy = store.list_runs(order_by="energy_j")
    assert [r.id for r in by_energy] == ["large000", "middle00", "small000"]
    assert [r.id for r in store.list_runs(order_by="energy_j", descending=False)] == [
        "small000",
        "middle00",
        "large000",
    ]
    assert [r.id for r in store.list_runs(region="DE")] == ["middle00", "large000"]
    assert [r.id for r in store.list_runs(order_by="energy_j", offset=1, limit=1)] == ["middle00"]
    assert store.list_runs(offset=5) == []


def test_list_runs_by_part_of_a_name_and_pages_with_a_status(store: SQLiteStore) -> None:
    for i in range(6):
        store.save(make_run(f"page{i:04d}", name=f"Train-{i}" if i % 2 else f"eval-{i}", started_at=T0 + timedelta(i)))
    assert [r.id for r in store.list_runs(name_contains="train")] == ["page0005", "page0003", "page0001"]
    assert [r.id for r in store.list_runs(status="complete", offset=2, limit=2)] == ["page0003", "page0002"]
    assert store.list_runs(name_contains="%") == []  # no pattern syntax: the text itself


def test_an_empty_file_reads_as_an_empty_store(tmp_path: Path) -> None:
    path = tmp_path / "empty.db"
    path.write_bytes(b"")
    with SQLiteStore(str(path), read_only=True) as reader:
        assert reader.list_runs() == [] and any("empty" in note for note in reader.notes)
    assert path.read_bytes() == b""


@pytest.mark.parametrize(("order_by", "offset"), [("energy_j; DROP TABLE runs", 0), ("rowid", 0), ("name", -1)])
def test_list_runs_refuses_unknown_orders_and_negative_offsets(store: SQLiteStore, order_by: str, offset: int) -> None:
    store.save(make_run("abcd0000"))
    with pytest.raises(ConfigError):
        store.list_runs(order_by=order_by, offset=offset)
    assert store.count() == 1


def test_the_intensity_series_survives_a_write_and_a_read(store: SQLiteStore) -> None:
    steps = (
        IntensityStep(T0, 3600.0, 320.5),
        IntensityStep(T0 + timedelta(hours=1), 3600.0, 280.0, forecast=True),
    )
    store.save(make_run("series00", intensity_series=steps))
    assert store.get("series00").intensity_series == steps


def test_an_absurd_intensity_in_the_series_is_refused(store: SQLiteStore) -> None:
    with pytest.raises(StoreError, match=r"intensity_series\[0\].intensity_g_per_kwh"):
        store.save(make_run("series01", intensity_series=(IntensityStep(T0, 3600.0, 1e9),)))


@pytest.mark.parametrize(("limit", "status"), [(-1, None), (10, "done")])
def test_list_runs_rejects_bad_arguments(store: SQLiteStore, limit: int, status: str | None) -> None:
    with pytest.raises(ConfigError):
        store.list_runs(limit=limit, status=status)


# --- samples ---------------------------------------------------------------------------------------------


def test_samples_come_back_ordered_by_time_then_channel(store: SQLiteStore) -> None:
    run = make_run(status="running")
    store.begin(run)
    store.append_samples(run.id, [Sample(2.0, "gpu:0", 300.0, 600.0), Sample(1.0, "gpu:0", 290.0, 290.0)])
    store.append_samples(run.id, [Sample(1.0, "cpu:package-0", 40.0, 40.0), Sample(2.0, "cpu:package-0", 41.0, 81.0)])
    assert [(s.t_s, s.channel) for s in store.iter_samples(run.id)] == [
        (1.0, "cpu:package-0"),
        (1.0, "gpu:0"),
        (2.0, "cpu:package-0"),
        (2.0, "gpu:0"),
    ]


def test_a_large_batch_streams_in_order_across_batches(store: SQLiteStore) -> None:
    run = make_run(status="running")
    store.begin(run)
    channels = ["gpu:0", "gpu:1", "cpu:package-0", "dram:package-0"]
    batch = [Sample(float(i // 4), channels[i % 4], float(i), float(i)) for i in range(100_000)]
    batch += [Sample(5.0, "gpu:0", -1.0, -1.0)]  # a duplicate (t_s, channel): kept, after the first
    store.append_samples(run.id, batch[::-1])
    streamed = store.iter_samples(run.id, batch_size=777)
    first = next(streamed)
    assert first == Sample(0.0, "cpu:package-0", 2.0, 2.0)
    rest = list(streamed)
    assert len(rest) + 1 == len(batch)
    keys = [(s.t_s, s.channel) for s in [first, *rest]]
    assert keys == sorted(keys)
    dupes = [s for s in rest if s.t_s == 5.0 and s.channel == "gpu:0"]
    assert dupes == [Sample(5.0, "gpu:0", -1.0, -1.0), Sample(5.0, "gpu:0", 20.0, 20.0)]  # reversed insert


def test_streaming_does_not_hold_the_store(store: SQLiteStore) -> None:
    run = make_run(status="running")
    store.begin(run)
    store.append_samples(run.id, [Sample(float(t), "gpu:0", 1.0, float(t)) for t in range(10)])
    seen = []
    for sample in store.iter_samples(run.id, batch_size=3):
        seen.append(sample.t_s)
        if sample.t_s == 4.0:  # the tracker keeps writing while a reader streams
            store.append_samples(run.id, [Sample(100.0, "gpu:0", 1.0, 100.0)])
            assert store.list_runs()[0].id == run.id
    assert seen == [*map(float, range(10)), 100.0]


def test_samples_of_an_unknown_run(store: SQLiteStore) -> None:
    with pytest.raises(RunNotFoundError, match=r"begin\(\) it before appending samples"):
        store.append_samples("nope", [Sample(1.0, "gpu:0", 1.0, 1.0)])
    with pytest.raises(RunNotFoundError, match=r"no run matches 'nope'"):
        store.iter_samples("nope")


def test_a_non_finite_sample_stores_nothing_of_its_batch(store: SQLiteStore) -> None:
    run = make_run(status="running")
    store.begin(run)
    with pytest.raises(StoreError, match=r"'gpu:1' at t_s=2.0 is not finite"):
        store.append_samples(run.id, [Sample(1.0, "gpu:0", 1.0, 1.0), Sample(2.0, "gpu:1", float("nan"), 1.0)])
    assert list(store.iter_samples(run.id)) == []
    store.append_samples(run.id, [])  # nothing to do
    assert list(store.iter_samples(run.id)) == []


# --- lifecycle -------------------------------------------------------------------------------------------


def test_closed_store_says_so(db_path: Path) -> None:
    store = SQLiteStore(db_path)
    store.close()
    store.close()
    with pytest.raises(StoreError, match=r"is closed"):
        store.list_runs()
    with SQLiteStore(db_path) as other:
        assert other.path == db_path
    with pytest.raises(StoreError, match=r"is closed"):
        other.get("latest")


def test_one_damaged_record_does_not_hide_the_others(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "runs.db"
    with SQLiteStore(path) as store:
        store.begin(make_run("20260101-000000-aaaaaa"))
        store.begin(make_run("20260101-000001-bbbbbb", started_at=T0 + timedelta(seconds=1)))
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE runs SET record = '{}' WHERE id = '20260101-000000-aaaaaa'")
    with SQLiteStore(path) as store, caplog.at_level("WARNING"):
        runs = store.list_runs()
    assert [r.id for r in runs] == ["20260101-000001-bbbbbb"]
    assert "skipped run 20260101-000000-aaaaaa" in caplog.text
