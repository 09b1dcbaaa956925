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
PYTEST=(.venv/bin/python -m pytest)
PROCESSES="${AUTORIZA_TEST_PROCESSES:-2}"
if [ "$PROCESSES" -le 0 ]; then
  exec "${PYTEST[@]}" "$@"  # AUTORIZA_TEST_PROCESSES=0: everything in this one process
fi
PARALLEL=(-p tests.parallel -n "$PROCESSES" --dist loadgroup)
if [ "$#" -gt 0 ]; then
  # A narrowed run: in parallel, the `faults` tests one after another in one process (tests/conftest.py).
  exec "${PYTEST[@]}" "${PARALLEL[@]}" "$@"
fi
# The whole suite, in two parts. First every test but the `faults` ones, in parallel (pytest-xdist;
# tests/parallel.py gives each process its own folder, Redis database and test database): most tests
# wait on a browser, a server or a worker, so two processes share the machine well. Then the `faults`
# tests (killed workers, broker crashes, 100 enrollments under SII faults, fair scheduling) alone,
# in one process: they measure time and start workers of their own, so they get the machine to
# themselves. Both parts always run; the suite fails if either does.
status=0
"${PYTEST[@]}" "${PARALLEL[@]}" -m "not faults" || status=$?
"${PYTEST[@]}" -m faults || { rc=$?; [ "$status" -ne 0 ] || status=$rc; }
exit "$status"
