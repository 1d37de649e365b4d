#!/usr/bin/env bash
# Sourced by the other scripts: run setup.sh when .venv is missing or was set up for
# another pyproject.toml.
if [ ! -x .venv/bin/dpcc ] || ! sha256sum --quiet -c .venv/.setup-stamp >/dev/null 2>&1; then
  bash scripts/setup.sh
fi
