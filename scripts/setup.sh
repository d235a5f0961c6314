#!/usr/bin/env bash
# Create .venv and install distiltune with its test and demo extras. Safe to re-run: it skips the install
# when pyproject.toml has not changed since the last one.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
stamp=".venv/.distiltune-installed"
want="$(cat pyproject.toml scripts/setup.sh | sha256sum | cut -d' ' -f1)"
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  exit 0
fi
# torch is pinned and installed first: an unpinned torch pulls a multi-GB CUDA build. Set
# DISTILTUNE_TORCH_INDEX=https://download.pytorch.org/whl/cpu to fetch the CPU wheel where PyPI would not.
torch_args=("torch==2.13.0")
if [ -n "${DISTILTUNE_TORCH_INDEX:-}" ]; then
  torch_args+=("--index-url" "$DISTILTUNE_TORCH_INDEX")
fi
.venv/bin/python -m pip install --quiet --disable-pip-version-check "${torch_args[@]}"
.venv/bin/python -m pip install --quiet --disable-pip-version-check -e ".[dev]"
echo "$want" > "$stamp"
