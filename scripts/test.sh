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
exec .venv/bin/python -m pytest "$@"
