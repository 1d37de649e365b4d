#!/usr/bin/env bash
# The test suite, slow tests included, warnings as errors (pyproject.toml), in parallel:
# one pytest-xdist worker per core (TEST_WORKERS sets another number; 0 runs in this
# process). Sets up .venv first when it is missing. Prints the 15 slowest tests and the
# peak resident memory of each test process. pytest's own exit code is kept: 5 (no test
# ran) fails the run.
#
#   bash scripts/test.sh                 ruff, mypy, then every test
#   bash scripts/test.sh --quick         ruff, then the tests that neither train nor start
#                                        servers or processes (-m "not slow"): for editing
#   bash scripts/test.sh tests/search    other arguments go to pytest
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/ensure-env.sh

quick=false
args=()
for arg in "$@"; do
  case "$arg" in
    --quick) quick=true ;;
    *) args+=("$arg") ;;
  esac
done

.venv/bin/ruff check dpcdsl backends tests benchmarks scripts
$quick || .venv/bin/mypy

marks=()
$quick && marks=(-m "not slow")
# the peak of any process of the run (pytest, its workers and what the tests start)
exec .venv/bin/python scripts/peak.py .venv/bin/python -m pytest -n "${TEST_WORKERS:-auto}" --dist loadgroup \
  --durations=15 "${marks[@]}" "${args[@]}"
