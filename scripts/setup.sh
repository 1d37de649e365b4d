#!/usr/bin/env bash
# Set up a development environment in .venv: graphviz (for pictures), PyTorch, then
# the package with its test extras. Safe to run again.
#
# PyTorch is installed on its own first, as TORCH_SPEC (default torch==2.13.0): on a
# machine without a GPU point pip at a CPU build (e.g. PIP_EXTRA_INDEX_URL), since a
# bare `torch` requirement pulls a multi-GB CUDA build.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v dot >/dev/null 2>&1; then
  SUDO=""
  [ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null 2>&1 && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq graphviz >/dev/null
fi

PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
if ! .venv/bin/python -c "import torch" >/dev/null 2>&1; then
  .venv/bin/python -m pip install -q "${TORCH_SPEC:-torch==2.13.0}"
fi
.venv/bin/python -m pip install -q -e ".[test]"
sha256sum pyproject.toml > .venv/.setup-stamp
