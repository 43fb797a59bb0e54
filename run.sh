#!/usr/bin/env bash
# Quick start: set up, train on the bundled data (if the store has no model), serve it and open the
# dashboard. Ctrl-C stops everything. Options: see `./run.sh --help`.
set -euo pipefail
cd "$(dirname "$0")"
scripts/setup.sh
exec .venv/bin/python deploy/run_local.py "$@"
