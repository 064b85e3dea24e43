"""The coverage-guided fuzzers of tests/fuzz/ run for a bounded time (WATTWISE_FUZZ_SECONDS each, 20 by default):
the CSV trace reader, the config loader and the record importer. A crash fails the test with its input."""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        importlib.util.find_spec("atheris") is None,
        reason="atheris is not installed (the test extra installs it on x86_64 Linux)",
    ),
]

FUZZ = Path(__file__).resolve().parent / "fuzz"
SECONDS = int(os.environ.get("WATTWISE_FUZZ_SECONDS", "20"))


@pytest.mark.parametrize("target", ["trace", "config", "record"])
def test_fuzzer_finds_no_crash(target: str, tmp_path: Path) -> None:
    corpus = tmp_path / "corpus"
    shutil.copytree(FUZZ / "corpus" / target, corpus)  # libFuzzer adds what it finds to the first corpus folder
    env = {k: v for k, v in os.environ.items() if not k.startswith("WATTWISE_")}
    env["WATTWISE_HOME"] = str(tmp_path / "home")
    done = subprocess.run(
        [
            sys.executable,
            str(FUZZ / f"fuzz_{target}.py"),
            f"-max_total_time={SECONDS}",
            "-rss_limit_mb=2048",
            f"-artifact_prefix={tmp_path}/",
            str(corpus),
        ],
        capture_output=True,
        text=True,
        timeout=SECONDS + 120,
        cwd=tmp_path,
        env=env,
        check=False,
    )
    crashes = sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(("crash-", "oom-", "timeout-")))
    assert done.returncode == 0 and not crashes, f"{crashes}\n{done.stderr[-3000:]}"
    runs = next((line for line in done.stderr.splitlines() if line.startswith("Done ")), "")
    assert runs, done.stderr[-2000:]
    print(f"fuzz_{target}: {runs}")
