#!/usr/bin/env bash
# Installs what the tests need into .venv and runs the whole suite, lint and type checks.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
# From Debian where they are missing (as root): a C compiler, for the stand-in NVML library the tests compile
# (tests/fakes/libnvml), a single-node Slurm with munge, which tests/cluster starts on 127.0.0.1 and stops, and
# Chromium with its driver, which tests/dashboard starts headless to render the dashboard and the HTML reports, and
# PostgreSQL, whose server tests/store starts on 127.0.0.1 (a fresh cluster, stopped by pid) to run the store's
# tests on both engines
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  missing=()
  command -v cc >/dev/null 2>&1 || missing+=(gcc libc6-dev)
  command -v slurmctld >/dev/null 2>&1 || missing+=(slurm-wlm munge)
  command -v chromium >/dev/null 2>&1 || missing+=(chromium)
  command -v chromedriver >/dev/null 2>&1 || missing+=(chromium-driver)
  compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null || missing+=(postgresql)
  if [ ${#missing[@]} -gt 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  fi
fi
[ -x .venv/bin/python ] || "$PY" -m venv .venv
# torch first, pinned to the version with a local CPU wheel on these machines: the reduce extra's range is then
# met and pip fetches no CUDA build
.venv/bin/python -m pip install -q --disable-pip-version-check torch==2.13.0
.venv/bin/python -m pip install -q --disable-pip-version-check -e '.[test,reduce,schedule,ray,dashboard,postgres,huggingface,lightning,keras,mlflow]'
.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/mypy
.venv/bin/python -m pytest -q "$@"
