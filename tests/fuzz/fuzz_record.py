"""Coverage-guided fuzzing of the run-record importer with atheris.

Each input goes the way ``wattwise runs import`` takes it: JSON, the strict reader, the record rules, the samples,
then the store, which already holds a run. The answer must be a stored run or one clear error, and the run that was
there must come out unchanged. Run by tests/test_fuzz.py, or by hand:
``python tests/fuzz/fuzz_record.py -max_total_time=60 tests/fuzz/corpus/record``.
"""

from __future__ import annotations

import json
import sys

import atheris

with atheris.instrument_imports():
    from wattwise.cli.runs_cmd import _samples
    from wattwise.errors import ConfigError, RunExistsError
    from wattwise.record_schema import check_run, run_from_dict
    from wattwise.store import SQLiteStore

STORE = SQLiteStore(":memory:")
KEEPER_FILE = "keeper01"


def _keeper() -> object:
    from pathlib import Path

    data = json.loads((Path(__file__).parent / "corpus" / "record" / "valid.json").read_text())
    data["id"] = KEEPER_FILE
    return data


KEEPER = run_from_dict(_keeper())
STORE.save(KEEPER)


def one_input(data: bytes) -> None:
    try:
        document = json.loads(data)
    except (ValueError, RecursionError):
        return  # the command says "not a JSON run record" before any of this
    records = document if isinstance(document, list) else [document]
    for record in records:
        try:
            run = run_from_dict(record, "fuzz")
            check_run(run, "fuzz")
            STORE.add([(run, _samples(record, "fuzz"))])
        except (ConfigError, RunExistsError) as exc:  # RecordError is a ConfigError
            if "\n" in str(exc):
                raise AssertionError(f"an error of more than one line: {exc!r}") from None
            continue
        if run.id != KEEPER.id:
            STORE.get(run.id)  # what was stored reads back
    if STORE.get(KEEPER.id) != KEEPER:
        raise AssertionError("an import changed a run that was already stored")


if __name__ == "__main__":
    atheris.Setup(sys.argv, one_input)
    atheris.Fuzz()
