"""Coverage-guided fuzzing of the CSV intensity-trace reader with atheris (libFuzzer for Python).

Every input is written as a trace file and read: the answer must be a series whose values are in the plausible
range, or one ConfigError line; any other exception is a crash. Run by tests/test_fuzz.py for a bounded time, or by
hand: ``python tests/fuzz/fuzz_trace.py -max_total_time=60 tests/fuzz/corpus/trace``.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import atheris

with atheris.instrument_imports():
    from wattwise.carbon.csvtrace import CsvTraceProvider
    from wattwise.errors import ConfigError
    from wattwise.validate import INTENSITY

PATH = Path(tempfile.mkdtemp(prefix="wattwise-fuzz-")) / "trace.csv"


def one_input(data: bytes) -> None:
    PATH.write_bytes(data)
    try:
        provider = CsvTraceProvider(PATH)
    except ConfigError as exc:
        if "\n" in str(exc):
            raise AssertionError(f"an error of more than one line: {exc!r}") from None
        return
    for point in provider.series.points:
        if not INTENSITY.contains(point.intensity_g_per_kwh):
            raise AssertionError(f"a value outside the plausible range was accepted: {point}")


if __name__ == "__main__":
    atheris.Setup(sys.argv, one_input)
    atheris.Fuzz()
