#!/usr/bin/env bash
# Installs what the tests need into .venv and runs the whole suite, lint and type checks.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
# the tests compile a stand-in NVML library (tests/fakes/libnvml): a C compiler, from Debian where it is missing
if ! command -v cc >/dev/null 2>&1 && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq gcc libc6-dev >/dev/null
fi
[ -x .venv/bin/python ] || "$PY" -m venv .venv
# torch first, pinned to the version with a local CPU wheel on these machines: the reduce extra's range is then
# met and pip fetches no CUDA build
.venv/bin/python -m pip install -q --disable-pip-version-check torch==2.13.0
.venv/bin/python -m pip install -q --disable-pip-version-check -e '.[test,reduce]'
.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/mypy
.venv/bin/python -m pytest -q "$@"
