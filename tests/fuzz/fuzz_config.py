"""Coverage-guided fuzzing of the config-file loader with atheris: any file is Settings in range or one ConfigError.

Run by tests/test_fuzz.py, or by hand: ``python tests/fuzz/fuzz_config.py -max_total_time=60 tests/fuzz/corpus/config``.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import atheris

with atheris.instrument_imports():
    from wattwise import validate
    from wattwise.config import Settings
    from wattwise.errors import ConfigError

PATH = Path(tempfile.mkdtemp(prefix="wattwise-fuzz-")) / "config.toml"
ENV = {"WATTWISE_HOME": str(PATH.parent / "home")}


def one_input(data: bytes) -> None:
    PATH.write_bytes(data)
    try:
        settings = Settings.load(env=ENV, config_file=PATH)
    except ConfigError as exc:
        if "\n" in str(exc):
            raise AssertionError(f"an error of more than one line: {exc!r}") from None
        return
    if settings.pue is not None and not validate.PUE.contains(settings.pue):
        raise AssertionError(f"pue {settings.pue} accepted")
    if not validate.INTERVAL_S.contains(settings.interval_s):
        raise AssertionError(f"interval_s {settings.interval_s} accepted")


if __name__ == "__main__":
    atheris.Setup(sys.argv, one_input)
    atheris.Fuzz()
