#!/usr/bin/env bash
# Rebuilds plotly-dashboard.min.js and bundle.json from package.json / package-lock.json (exact
# versions): needs node >= 18 and npm, and the npm registry. The result is committed, so that running
# the dashboard or building its image needs no node. After upgrading the plotly Python package:
#   npm install --save-exact plotly.js@<the version plotly.offline.get_plotlyjs_version() gives>
# then this script, then `pytest tests/test_plotly_bundle.py`.
set -euo pipefail
cd "$(dirname "$0")"
npm ci --no-audit --no-fund
node build.mjs
