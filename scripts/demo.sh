#!/usr/bin/env bash
# Quickstart 1: set up (first run only) and run the offline demo. Extra arguments go to `distiltune demo`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export HF_HUB_OFFLINE="${HF_HUB_OFFLINE:-1}" HF_DATASETS_OFFLINE="${HF_DATASETS_OFFLINE:-1}"
exec .venv/bin/distiltune demo "$@"
