#!/usr/bin/env bash
# Set up a development environment in .venv: graphviz (for pictures), Chromium (for
# the report's browser test) and PostgreSQL (for the shared-study test), PyTorch, then
# the package with its test extras. Safe to run again.
#
# PyTorch and torchvision are installed on their own first, as TORCH_SPEC (default
# "torch==2.14.1 torchvision==0.29.1", a build that timm and segmentation-models-pytorch
# import beside; it runs on the CPU too). Set TORCH_SPEC to pick another build, e.g. a
# CPU-only one through PIP_EXTRA_INDEX_URL; the package itself asks for a range.
set -euo pipefail
cd "$(dirname "$0")/.."

# A new environment with PyTorch takes about 7 GiB (the default build carries CUDA's
# libraries). Say so before pip runs out of space half-way through an install.
has_torch=false
[ -x .venv/bin/python ] && .venv/bin/python -c "import torch, torchvision" >/dev/null 2>&1 \
  && has_torch=true
if ! $has_torch; then
  need_gib=${SETUP_SPACE_GIB:-8}
  free_kib=$(df -Pk . | awk 'NR == 2 {print $4}')
  if [ "$free_kib" -lt $((need_gib * 1024 * 1024)) ]; then
    echo "setup: $((free_kib / 1024)) MiB free on the disk of $(pwd)," \
         "but a new environment with PyTorch needs about $need_gib GiB." >&2
    echo "setup: free some space and run again (or set TORCH_SPEC to a smaller build" \
         "and SETUP_SPACE_GIB to what it needs)." >&2
    exit 1
  fi
fi

# Debian's packages: graphviz draws cells; chromium and its driver run the report's
# browser test; postgresql's server programs run the shared-study test and benchmark
missing=()
command -v dot >/dev/null 2>&1 || missing+=(graphviz)
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
command -v chromedriver >/dev/null 2>&1 || missing+=(chromium-driver)
command -v initdb >/dev/null 2>&1 || compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null \
  || missing+=(postgresql)
if [ ${#missing[@]} -gt 0 ]; then
  SUDO=""
  [ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null 2>&1 && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi

PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
if ! $has_torch; then
  # word splitting is wanted: TORCH_SPEC lists several requirements
  # shellcheck disable=SC2086
  .venv/bin/python -m pip install -q ${TORCH_SPEC:-torch==2.14.1 torchvision==0.29.1}
fi
# byte-compiled here, at install: where PYTHONDONTWRITEBYTECODE is set, nothing would
# write the .pyc files later, and every process would compile PyTorch anew
.venv/bin/python -m pip install -q -e ".[test]"
sha256sum pyproject.toml > .venv/.setup-stamp
