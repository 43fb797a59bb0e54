#!/usr/bin/env bash
# The test suite: set up, check the generated contract code is fresh, run every test.
# Extra arguments go to pytest (e.g. ./test.sh -k store -x).
set -euo pipefail
cd "$(dirname "$0")"
scripts/setup.sh
scripts/system_packages.sh
.venv/bin/python proto/generate.py --check
mkdir -p artifacts
exec .venv/bin/python -m pytest -p no:cacheprovider -ra "$@"
