#!/usr/bin/env bash
# The test suite, slow tests included, warnings as errors (pyproject.toml). Sets up
# .venv first when it is missing. pytest's own exit code is kept: 5 (no test ran)
# fails the run.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/ensure-env.sh

.venv/bin/ruff check dpcdsl backends tests benchmarks
.venv/bin/mypy
.venv/bin/python -m pytest "$@"
