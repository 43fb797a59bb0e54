"""The partial plotly.js bundle shared by the dashboard and the training report: plotly.js's core and the
trace types the charts draw (plotly_bundle/plotly-dashboard.min.js, 2.1 MB; 0.7 MB gzipped) instead of the
full plotly.min.js (4.8 MB) that the plotly Python package ships.

Built by `plotly_bundle/build.sh` (esbuild, from the npm `plotly.js` of the same version as the plotly
Python package's; `bundle.json` records it) and committed: running neither program needs node. The
dashboard serves it where dcc.Graph loads plotly.js from (`dash_ui.plotly_bundle`); the report inlines it,
gzipped (`training_job.report`). tests/test_plotly_bundle.py checks the version, the bytes and that every
trace type drawn is in it.
"""
from __future__ import annotations

import gzip
import hashlib
import json
from functools import lru_cache
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent / "plotly_bundle"
BUNDLE = HERE / "plotly-dashboard.min.js"
MANIFEST = HERE / "bundle.json"


@lru_cache(maxsize=1)
def manifest() -> dict[str, Any]:
    """bundle.json: the plotly.js version, the trace types, the size and sha256 of the bundle."""
    return json.loads(MANIFEST.read_text())


@lru_cache(maxsize=1)
def code() -> tuple[bytes, str]:
    """The bundle's bytes and their sha256."""
    data = BUNDLE.read_bytes()
    return data, hashlib.sha256(data).hexdigest()


@lru_cache(maxsize=1)
def gzipped() -> bytes:
    """The bundle gzipped (0.7 MB, in 0.2 s once per process; reproducible: no time stamp)."""
    return gzip.compress(code()[0], compresslevel=9, mtime=0)
