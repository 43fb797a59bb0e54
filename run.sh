#!/usr/bin/env bash
# Quick start: set up, train on the bundled data (if the store has no model), serve it and open the
# dashboard. Ctrl-C stops everything. Options: see `./run.sh --help`.
set -euo pipefail
cd "$(dirname "$0")"
for arg in "$@"; do  # --help needs only the standard library: answer before building the virtualenv
  case "$arg" in -h|--help) exec python3 deploy/run_local.py --help ;; esac
done
scripts/setup.sh
exec .venv/bin/python deploy/run_local.py "$@"
