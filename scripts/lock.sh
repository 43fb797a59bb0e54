#!/usr/bin/env bash
# Writes requirements.lock: every package of every extra of pyproject.toml, at the versions the tests run
# with (constraints.txt), with the hashes of all their files on PyPI (uv pip compile; markers for CPython
# 3.11 on Linux). Then brings .venv/ to it and regenerates the images' deploy/requirements-*.txt from it.
# Run it after adding or changing a dependency (README "Dependencies"); needs PyPI, not a Docker engine.
set -euo pipefail
cd "$(dirname "$0")/.."
UV_VERSION=0.13.8
TOOLS=.venv-tools
if [ "$("$TOOLS/bin/uv" --version 2>/dev/null | awk '{print $2}')" != "$UV_VERSION" ]; then
  echo "lock: installing uv $UV_VERSION into $TOOLS/" >&2
  python3 -m venv "$TOOLS"
  "$TOOLS/bin/pip" install --quiet --disable-pip-version-check "uv==$UV_VERSION"
fi
"$TOOLS/bin/uv" pip compile pyproject.toml --all-extras --constraint constraints.txt --generate-hashes \
  --python-version 3.11 --python-platform x86_64-manylinux_2_28 --annotation-style line --no-strip-extras \
  --custom-compile-command scripts/lock.sh --quiet --output-file requirements.lock
scripts/setup.sh
.venv/bin/python deploy/component_requirements.py
echo "lock: wrote requirements.lock and deploy/requirements-*.txt" >&2
