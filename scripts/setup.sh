#!/usr/bin/env bash
# Creates .venv/ with the locked dependencies (requirements.lock: every extra, hash-checked) and the
# project installed in editable mode. Idempotent and quick: re-installs only when requirements.lock,
# requirements.txt, constraints.txt or pyproject.toml changed.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
  echo "setup: Python 3.11 or newer is needed ($PYTHON is $("$PYTHON" --version 2>&1))" >&2
  exit 1
fi
if [ ! -x .venv/bin/python ]; then
  echo "setup: creating .venv" >&2
  "$PYTHON" -m venv .venv
fi
stamp=.venv/.installed-$(cat requirements.lock requirements.txt constraints.txt pyproject.toml | sha256sum | cut -c1-16)
if [ ! -f "$stamp" ]; then
  echo "setup: installing the locked dependencies into .venv (first run takes a minute or two)" >&2
  pip=(.venv/bin/python -m pip install --quiet --disable-pip-version-check)
  "${pip[@]}" --upgrade pip
  "${pip[@]}" --require-hashes -r requirements.lock
  # A pin added to requirements.txt/constraints.txt but not locked yet (scripts/lock.sh) still installs;
  # a test says the lock is stale.
  "${pip[@]}" -r requirements.txt -c constraints.txt
  "${pip[@]}" --no-deps --no-build-isolation -e .
  rm -f .venv/.installed-*
  touch "$stamp"
fi
