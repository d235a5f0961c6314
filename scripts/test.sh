#!/usr/bin/env bash
# Quickstart 2: set up (first run only), lint (ruff, and the import layers of pyproject.toml), and run the test suite. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/ruff check src tests benchmarks
.venv/bin/lint-imports --no-cache
exec .venv/bin/python -m pytest "$@"
