"""The Monitoring page in headless Chromium, against a real scoring service whose traffic drifts.

A model trained by the training job on the Mall customers, a scoring service and the dashboard run as real
processes. 10,000 rows drawn from the training table are scored: the page shows a stable verdict; then
10,000 rows with the annual income x 1.5: without a reload, the page shows that feature's PSI as major
and the "retrain recommended" banner naming it, and the metrics endpoint exports the same PSI.
Screenshots go to artifacts/screenshots/monitoring-*.png.
"""
from __future__ import annotations

import re
import urllib.request
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.browser_support import (browser_missing_reason, chrome, dashboard_process, free_port, page_ready_script,
                                   scoring_process, screenshot, train_mall, wait_for_port, wait_until)

pytestmark = [pytest.mark.browser, pytest.mark.slow,
              pytest.mark.skipif(browser_missing_reason() is not None, reason=str(browser_missing_reason()))]

MALL_CSV = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "Mall_Customers.csv"
INCOME = "Annual Income (k$)"


def _metrics_port(log: str) -> int:
    match = re.search(r"metrics on port (\d+)", log)
    assert match, "the scoring service logged no metrics port"
    return int(match.group(1))


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    from scoring_service.client import ScoringClient

    root = tmp_path_factory.mktemp("monitoring-browser")
    store = root / "store"
    train_mall(store, root)
    scoring_port, dash_port = free_port(), free_port()
    scoring = scoring_process(store, scoring_port, root)
    scoring._env["SCORING_DRIFT_WINDOW_ROWS"] = "10000"
    scoring.start()
    dashboard = None
    try:
        wait_for_port(scoring_port, 60, scoring.proc)
        client = ScoringClient(f"127.0.0.1:{scoring_port}", timeout=10)
        wait_until(lambda: client.model_info().version, 60, message="the scoring service to serve a model")
        dashboard = dashboard_process(scoring_port, dash_port, root).start()
        wait_for_port(dash_port, 60, dashboard.proc)
        yield {"url": f"http://127.0.0.1:{dash_port}", "client": client, "scoring": scoring}
        client.close()
    finally:
        if dashboard is not None:
            dashboard.stop()
        scoring.stop()


def _rows(seed: int) -> pd.DataFrame:
    frame = pd.read_csv(MALL_CSV).rename(columns={"Genre": "Gender"})
    rng = np.random.default_rng(seed)
    return frame.iloc[rng.integers(0, len(frame), 10_000)].reset_index(drop=True)


def _verdict(driver) -> str:
    return driver.find_element("id", "monitoring-verdict").text


def test_the_monitoring_page_shows_a_shifted_feature_by_itself(stack):
    client = stack["client"]
    client.predict_frame(_rows(seed=21), batch_rows=1000)
    with chrome() as driver:
        driver.get(stack["url"] + "/monitoring")
        wait_until(lambda: driver.execute_script(page_ready_script()), 30, message="the Monitoring page")
        wait_until(lambda: _verdict(driver) == "Stable", 20, message="a stable verdict")
        assert "10,000" in driver.find_element("id", "monitoring-rows").get_attribute("textContent")
        psi_text = driver.find_element("id", "monitoring-psi").text
        assert INCOME in psi_text and "(stable)" in psi_text and "(major)" not in psi_text
        screenshot(driver, "monitoring-stable")

        shifted = _rows(seed=22)
        shifted[INCOME] = shifted[INCOME] * 1.5
        client.predict_frame(shifted, batch_rows=1000)
        wait_until(lambda: _verdict(driver) == "Retrain recommended", 30,
                   message="the retrain banner without a reload")
        reasons = driver.find_element("id", "monitoring-reasons").text
        assert reasons.startswith(f"feature '{INCOME}': PSI") and "major" in reasons
        wait_until(lambda: "(major)" in driver.find_element("id", "monitoring-psi").text, 10,
                   message="the major PSI bar")
        histogram = driver.find_element("id", "monitoring-histogram").text
        assert INCOME in histogram and "live" in histogram and "training" in histogram
        wait_until(lambda: driver.execute_script(page_ready_script()), 20, message="no refresh in flight")
        screenshot(driver, "monitoring-retrain")

    report = client.drift_report()
    psi = {f.feature: f.psi for f in report.features}
    assert psi[INCOME] > 0.25 and max(v for k, v in psi.items() if k != INCOME) < 0.1
    port = _metrics_port(stack["scoring"].log())
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    line = next(row for row in text.splitlines() if row.startswith("scoring_drift_psi{") and INCOME in row)
    assert float(line.rsplit(" ", 1)[1]) == pytest.approx(psi[INCOME])
