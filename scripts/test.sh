#!/usr/bin/env bash
# Runs the whole suite. Tests that need real services use them when REDIS_URL / DATABASE_URL are set
# (as .ci/run sets them) and are skipped with a visible reason otherwise.
set -euo pipefail
cd "$(dirname "$0")/.."
# Test runs keep their own runtime folder so they never touch the demo's database or broker.
export AUTORIZA_VAR_DIR="${AUTORIZA_TEST_VAR_DIR:-$PWD/var/test}"
mkdir -p "$AUTORIZA_VAR_DIR"
# The layer contracts (pyproject.toml [tool.importlinter]) hold before any test runs.
.venv/bin/lint-imports --no-cache >/dev/null || { .venv/bin/lint-imports --no-cache; exit 1; }
# Two processes (pytest-xdist; tests/parallel.py gives each its own folder, Redis database and test
# database): most tests wait on a browser, a server or a worker, so two share the machine well.
# AUTORIZA_TEST_PROCESSES=0 runs everything in this one process.
PROCESSES="${AUTORIZA_TEST_PROCESSES:-2}"
if [ "$PROCESSES" -gt 0 ]; then
  exec .venv/bin/python -m pytest -p tests.parallel -n "$PROCESSES" --dist loadgroup "$@"
fi
exec .venv/bin/python -m pytest "$@"
