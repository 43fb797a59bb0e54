"""The dashboard in headless Chromium, against a real scoring service serving a real model.

A model is trained on the Mall customers by the training job's CLI into a temporary store (the default
model, 'customers'), and a second one on the e-commerce table under 'ecommerce' (the navbar's model chooser); the scoring
service and the dashboard run as real processes on free ports. Screenshots of every page go to
artifacts/screenshots/ (kept by CI).
"""
from __future__ import annotations

import time
from pathlib import Path

import pandas as pd
import pytest

from tests.browser_support import (browser_missing_reason, chrome, dashboard_process, free_port,
                                   page_ready_script, scoring_process, screenshot, train_dataset, train_mall, wait_for_port,
                                   wait_until)

pytestmark = [pytest.mark.browser, pytest.mark.slow,
              pytest.mark.skipif(browser_missing_reason() is not None, reason=str(browser_missing_reason()))]

MALL_CSV = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "Mall_Customers.csv"
PAGES = [("/", "overview"), ("/segments", "segments"), ("/model", "model"), ("/predict", "predict"),
         ("/batch", "batch")]


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    """A trained store, a scoring service and a dashboard; yields a dict of what the tests need."""
    from scoring_service.client import ScoringClient

    root = tmp_path_factory.mktemp("dash-browser")
    store = root / "store"
    train_mall(store, root)
    train_dataset(store, root, "ecommerce_customer_behavior.csv", "ecommerce", model="ecommerce")
    scoring_port, dash_port = free_port(), free_port()
    scoring = scoring_process(store, scoring_port, root).start()
    dashboard = None
    try:
        wait_for_port(scoring_port, 60, scoring.proc)
        client = ScoringClient(f"127.0.0.1:{scoring_port}", timeout=10)
        wait_until(lambda: client.model_info().version, 60, message="the scoring service to serve a model")
        dashboard = dashboard_process(scoring_port, dash_port, root).start()
        wait_for_port(dash_port, 60, dashboard.proc)
        yield {"url": f"http://127.0.0.1:{dash_port}", "client": client, "scoring": scoring, "store": store,
               "dashboard": dashboard,
               "root": root, "info": client.model_info(), "scoring_port": scoring_port}
        client.close()
    finally:
        if dashboard is not None:
            dashboard.stop()
        scoring.stop()
        for proc in (scoring, dashboard):
            if proc is not None:
                print(f"--- {proc.log_path.name} (tail) ---\n{proc.log()[-3000:]}")


@pytest.fixture(scope="module")
def driver(stack):
    downloads = stack["root"] / "downloads"
    downloads.mkdir()
    with chrome(downloads) as d:
        d.downloads = downloads
        yield d


def open_page(driver, url: str, timeout: float = 30.0) -> None:
    driver.get(url)
    wait_until(lambda: driver.execute_script(page_ready_script()), timeout, message=f"{url} to be ready")


def page_text(driver) -> str:
    return driver.find_element("tag name", "body").text


def test_every_page_renders_with_the_real_segment_names(stack, driver):
    names = [s.name for s in stack["info"].segments]
    assert len(names) == stack["info"].k >= 2
    for path, name in PAGES:
        open_page(driver, stack["url"] + path)
        wait_until(lambda: all(n in driver.page_source for n in names), 20,
                   message=f"every segment name on {path}")
        badge = driver.find_element("id", "service-state").text
        assert stack["info"].version in badge and stack["info"].model in badge
        assert "Traceback" not in driver.page_source
        screenshot(driver, name)
    # The Overview shows one card per segment, the Model page the served version marked.
    open_page(driver, stack["url"] + "/")
    cards = driver.find_elements("css selector", ".segment-card .segment-name")
    assert [c.text for c in cards] == names
    open_page(driver, stack["url"] + "/model")
    served = wait_until(lambda: [r.text for r in driver.find_elements("css selector", "#model-versions-table .ag-row")
                                 if "served" in r.text], 10, message="the served version")
    assert served


#: JS: the titles, subplot titles, annotations, legends and axis titles of each chart that its mode bar covers.
UNDER_THE_MODE_BAR = """
  const covered = [];
  for (const plot of document.querySelectorAll('.js-plotly-plot')) {
    const bar = plot.querySelector('.modebar');
    if (!bar) continue;
    const b = bar.getBoundingClientRect();
    for (const t of plot.querySelectorAll('.gtitle, .annotation-text, .legend .bg, .g-xtitle, .g-ytitle')) {
      const r = t.getBoundingClientRect();
      if (r.width && r.left < b.right && r.right > b.left && r.top < b.bottom && r.bottom > b.top)
        covered.push((plot.closest('[id]') || plot).id + ': ' + (t.textContent || 'legend').slice(0, 60));
    }
  }
  return covered;
"""


def test_no_chart_title_or_legend_lies_under_the_mode_bar(stack, driver):
    # Headless Chromium reports no hover, like a touch screen: plotly then shows the mode bar for good,
    # displayModeBar "hover" or not. Whatever a chart's title says, it stays clear of the bar.
    for path in ("/", "/segments", "/model", "/predict", "/monitoring"):
        open_page(driver, stack["url"] + path)
        assert driver.execute_script("return matchMedia('(hover: none)').matches")
        assert driver.find_elements("css selector", ".modebar")
        assert driver.execute_script(UNDER_THE_MODE_BAR) == [], path


def test_the_navbar_swaps_pages_in_without_a_page_load(stack, driver):
    open_page(driver, stack["url"] + "/batch")  # the page comes with the layout (no route callback)
    driver.execute_script("window.__sameDocument = true")
    for label in ("Overview", "Segments", "Model", "Predict", "Batch", "Overview"):
        driver.find_element("id", f"nav-{label.lower()}").click()
        wait_until(lambda label=label: driver.find_elements("id", f"{label.lower()}-page")
                   and driver.execute_script(page_ready_script()), 20, message=f"{label} after a click")
        assert stack["info"].segments[0].name in driver.page_source
    assert driver.execute_script("return window.__sameDocument === true")


def _choose_model(driver, label: str) -> None:
    """Choose the option shown as `label` in the navbar's model chooser."""
    from selenium.webdriver.common.keys import Keys

    driver.execute_script("arguments[0].click();", driver.find_element("id", "model-choice"))
    option = wait_until(lambda: [o for o in driver.find_elements("css selector", ".dash-dropdown-option")
                                 if o.text.strip() == label], 10, message=f"the option {label}")[0]
    driver.execute_script("arguments[0].click();", option)
    driver.find_element("tag name", "body").send_keys(Keys.ESCAPE)


def _card_names(driver) -> list[str]:
    return [c.text for c in driver.find_elements("css selector", "#overview-cards .segment-name")]


def test_the_navbar_chooses_another_model_and_the_pages_follow_it(stack, driver):
    mall, ecommerce = stack["info"], stack["client"].model_info("ecommerce")
    mall_names, ecommerce_names = [s.name for s in mall.segments], [s.name for s in ecommerce.segments]
    assert not set(mall_names) & set(ecommerce_names)
    open_page(driver, stack["url"] + "/")
    assert _card_names(driver) == mall_names
    chooser = wait_until(lambda: driver.find_element("id", "model-chooser").is_displayed(), 10,
                         message="the model chooser (the store has two models)")
    assert chooser
    driver.execute_script("window.__sameDocument = true")
    _choose_model(driver, f"ecommerce {ecommerce.version}")
    wait_until(lambda: _card_names(driver) == ecommerce_names, 20, message="the Overview of the ecommerce model")
    assert driver.current_url == f"{stack['url']}/?model=ecommerce"
    assert f"ecommerce {ecommerce.version}: {ecommerce.k} segments" in page_text(driver)
    # The navbar's links keep the choice: Segments shows the same model, and so does a reload of its link.
    driver.find_element("id", "nav-segments").click()
    wait_until(lambda: driver.current_url == f"{stack['url']}/segments?model=ecommerce"
               and f"ecommerce {ecommerce.version}: profiles" in page_text(driver), 20, message="Segments of ecommerce")
    assert "active" in driver.find_element("id", "nav-segments").get_attribute("class")
    assert driver.execute_script("return window.__sameDocument === true")  # no page load
    screenshot(driver, "model-chooser")
    open_page(driver, f"{stack['url']}/predict?model=ecommerce")
    assert f"Scored by ecommerce {ecommerce.version}" in page_text(driver)
    # Back to the default model.
    open_page(driver, f"{stack['url']}/?model=ecommerce")
    _choose_model(driver, f"customers {mall.version}")
    wait_until(lambda: _card_names(driver) == mall_names, 20, message="the Overview of the default model")
    open_page(driver, f"{stack['url']}/?model=nope")
    text = wait_until(lambda: driver.find_element("id", "unknown-model").text, 20, message="the unknown-model card")
    assert "There is no model named 'nope' in the store. Models: customers, ecommerce." in text


def test_segments_page_is_bookmarkable_by_segment(stack, driver):
    last = stack["info"].segments[-1]
    open_page(driver, f"{stack['url']}/segments?segment={last.id}")
    value = driver.find_element("css selector", "#segments-segment").text
    assert last.name in value
    assert f"{last.name} vs all customers" in driver.page_source


def test_a_prediction_through_the_form(stack, driver):
    open_page(driver, stack["url"] + "/predict")
    numbers = {f.name: f for f in stack["info"].numeric_features}
    customer = {name: round(f.minimum + 0.9 * (f.maximum - f.minimum), 1) for name, f in numbers.items()}
    for name, value in customer.items():
        field = driver.find_element("css selector", f"input[name='{name}']")
        field.clear()
        field.send_keys(str(value))
    # A value outside the training range gets a validation message (and still scores).
    first = next(iter(numbers.values()))
    field = driver.find_element("css selector", f"input[name='{first.name}']")
    field.clear()
    field.send_keys(str(first.maximum + 100))
    driver.find_element("id", "predict-button").click()
    wait_until(lambda: "Outside the training range" in page_text(driver), 10, message="the range warning")
    field.clear()
    field.send_keys(str(customer[first.name]))
    driver.find_element("id", "predict-button").click()
    expected = stack["client"].predict(customer)
    from segmentation_core.number_format import format_percent

    want = (expected.segment_name, format_percent(expected.confidence))  # as the page writes it

    def shown() -> tuple[str, str]:
        return (driver.find_element("id", "predict-segment").text.strip(),
                driver.find_element("id", "predict-confidence").text)

    # The out-of-range customer's answer stays on the page until this one's arrives (a fixed sleep
    # raced it on a loaded machine): wait for these values, and say what was shown if they never come.
    try:
        wait_until(lambda: shown() == want, 15, message=f"the prediction {want}")
    except TimeoutError as exc:
        raise AssertionError(f"the page shows {shown()}, the service answers {want}") from exc
    wait_until(lambda: "This customer (" in driver.page_source, 10, message="the customer on the map")
    screenshot(driver, "predict-result")


def _upload(driver, path: Path) -> None:
    driver.find_element("css selector", "#batch-upload input[type=file]").send_keys(str(path))


def test_a_csv_upload_scored_and_its_results_downloaded(stack, driver, tmp_path):
    frame = pd.read_csv(MALL_CSV).head(60).rename(columns={"Genre": "Gender"})
    frame["CustomerID"] = frame["CustomerID"].astype(str)
    frame.loc[0, "CustomerID"] = "=HYPERLINK(\"http://x\")"  # must come back neutralized
    feature = stack["info"].numeric_features[0].name
    frame[feature] = frame[feature].astype(object)
    frame.loc[4, feature] = "abc"  # a bad row: line 6 of the file
    upload = tmp_path / "mall.csv"
    frame.to_csv(upload, index=False)

    open_page(driver, stack["url"] + "/batch")
    _upload(driver, upload)
    report = wait_until(lambda: driver.find_element("id", "batch-report-alert").text, 20,
                        message="the validation report")
    assert "60 rows" in report and "line 6" in report and "'abc'" in report
    screenshot(driver, "batch-report")
    driver.find_element("id", "batch-score").click()
    wait_until(lambda: driver.find_elements("id", "batch-results-title"), 60, message="the results")
    title = driver.find_element("id", "batch-results-title").text
    assert "60 rows scored" in title and "1 with an error" in title
    assert driver.find_element("id", "batch-progress").text.strip() == "100%"
    # The results grid (dash-ag-grid): numbers to four significant digits, the bad row's error in it.
    distances = wait_until(lambda: [c.text for c in driver.find_elements(
        "css selector", "#batch-results-table .ag-cell[col-id=distance]") if c.text], 10, message="the grid's rows")
    assert all(len(text.replace("0.", "").replace(".", "").lstrip("0")) <= 4 for text in distances), distances
    assert any("abc" in c.get_attribute("textContent") for c in driver.find_elements("css selector", "#batch-results-table .ag-cell[col-id=error]"))
    # Everything the page loaded (dash-ag-grid's code and styles included) came from the dashboard itself.
    loaded = driver.execute_script("return performance.getEntriesByType('resource').map(e => e.name)")
    assert loaded and all(url.startswith(stack["url"]) for url in loaded), [u for u in loaded if not u.startswith(stack["url"])]
    assert any("dash_ag_grid" in url for url in loaded)
    screenshot(driver, "batch-results")

    driver.find_element("id", "batch-download-button").click()
    # Named after the upload and the answering version (was scored-customers.csv for every file).
    downloaded = driver.downloads / f"mall-scored-{stack['info'].model}-{stack['info'].version}.csv"
    wait_until(lambda: downloaded.exists() and downloaded.stat().st_size > 0, 20, message="the download")
    time.sleep(0.5)
    scored = pd.read_csv(downloaded, dtype={"CustomerID": str})
    assert len(scored) == 60
    assert scored.loc[0, "CustomerID"].startswith("'=HYPERLINK")
    assert scored.loc[4, "segment_id"] == -1 and "abc" in scored.loc[4, "error"]
    good = frame.drop(index=4)
    expected = stack["client"].predict_frame(good)
    assert list(scored.drop(index=4)["segment_name"]) == list(expected["segment_name"])


def test_an_upload_without_the_feature_columns_is_refused_with_a_report(stack, driver, tmp_path):
    upload = tmp_path / "wrong.csv"
    pd.DataFrame({"name": ["a", "b"], "city": ["x", "y"]}).to_csv(upload, index=False)
    open_page(driver, stack["url"] + "/batch")
    _upload(driver, upload)
    missing = wait_until(lambda: driver.find_element("id", "batch-missing-columns").text, 20,
                         message="the missing columns")
    for f in stack["info"].numeric_features:
        assert f.name in missing
    assert driver.find_element("id", "batch-score").get_attribute("disabled")


def _peak_rss_mb(pid: int) -> float:
    """The process's resident memory high-water mark (VmHWM), MiB."""
    status = Path(f"/proc/{pid}/status").read_text()
    return int(next(line for line in status.splitlines() if line.startswith("VmHWM:")).split()[1]) / 1024


def test_a_50_mb_csv_upload_keeps_the_dashboard_under_500_mb(stack, driver, tmp_path):
    """Issue 16 item 6: the Batch page's upload streams to POST /upload/batch (it was dcc.Upload: the file as
    base64 in the browser, the request and the callback; a 51 MB CSV peaked at 1.48 GB RSS). Streamed, read and
    validated, the dashboard process's peak RSS stays under 500 MB. (Scoring 2 million rows from the
    dashboard is not measured here: that is the client CLI's job.)"""
    import numpy as np

    rows = 2_180_000  # about 51 MB (49 MiB), as the review's file
    rng = np.random.default_rng(7)
    frame = pd.DataFrame({"CustomerID": np.char.add("C", np.arange(rows).astype(str)),
                          "Gender": rng.choice(["Male", "Female"], rows), "Age": rng.integers(18, 70, rows),
                          "Annual Income (k$)": rng.integers(15, 140, rows),
                          "Spending Score (1-100)": rng.integers(1, 100, rows)})
    upload = tmp_path / "big.csv"
    frame.to_csv(upload, index=False)
    del frame
    size_mb = upload.stat().st_size / 2**20
    assert 48 <= size_mb <= 50, size_mb  # under the page's 50 MiB limit
    pid = stack["dashboard"].proc.pid
    open_page(driver, stack["url"] + "/batch")
    before = _peak_rss_mb(pid)
    _upload(driver, upload)
    report = wait_until(lambda: driver.find_element("id", "batch-report-alert").text, 120,
                        message="the validation report of the 50 MB file")
    assert f"{rows:,} rows" in report
    assert not driver.find_element("id", "batch-score").get_attribute("disabled")
    after_upload = _peak_rss_mb(pid)
    print(f"dashboard peak RSS: {before:.0f} MiB before, {after_upload:.0f} MiB after streaming, reading and "
          f"validating a {size_mb:.1f} MiB CSV of {rows:,} rows")
    assert after_upload * 2**20 < 500e6, after_upload  # 500 MB (476.8 MiB)


def test_banner_while_the_service_is_stopped_and_recovery_after(stack, driver):
    open_page(driver, stack["url"] + "/")
    scoring = stack["scoring"]
    scoring.stop()
    try:
        alert = wait_until(lambda: driver.find_element("id", "service-alert").text, 30, message="the banner")
        assert "unreachable" in alert.lower() or "no model" in alert.lower()
        assert "Retrying" in alert
        assert "unreachable" in driver.find_element("id", "service-state").text
        assert "Traceback" not in driver.page_source
        wait_until(lambda: driver.execute_script(page_ready_script()), 20, message="the page to settle")
        assert "Loading ..." not in page_text(driver)  # the cached model and sample still draw
        screenshot(driver, "service-down")
        # Navigating while it is down shows the cached model or a waiting card, never an error page.
        open_page(driver, stack["url"] + "/predict")
        driver.find_element("id", "predict-button").click()
        wait_until(lambda: driver.find_element("id", "predict-error").text, 20, message="the prediction error")
    finally:
        scoring.start()
    wait_for_port(stack["scoring_port"], 60, scoring.proc)
    wait_until(lambda: not driver.find_elements("id", "service-alert"), 60, message="the banner to go")
    badge = driver.find_element("id", "service-state").text
    assert stack["info"].version in badge
    open_page(driver, stack["url"] + "/")
    assert all(s.name in driver.page_source for s in stack["info"].segments)
    screenshot(driver, "service-recovered")


def test_a_new_version_served_updates_the_pages_by_itself(stack, driver):
    open_page(driver, stack["url"] + "/")
    before = stack["info"].version
    train_mall(stack["store"], stack["root"])  # publishes the next version; the service swaps it in
    notice = wait_until(lambda: driver.find_element("id", "model-update-alert").text, 60,
                        message="the new-version notice")
    new = stack["client"].model_info().version
    assert new != before and new in notice and before in notice
    assert new in driver.find_element("id", "service-state").text
    wait_until(lambda: f"{stack['info'].model} {new}" in driver.find_element("id", "overview-page").text, 20,
               message="the page to show the new version")
    screenshot(driver, "new-version")


def test_a_service_without_a_model_shows_a_banner_until_one_is_published(stack, driver, tmp_path):
    store = tmp_path / "empty-store"
    store.mkdir()
    scoring_port, dash_port = free_port(), free_port()
    scoring = scoring_process(store, scoring_port, tmp_path).start()
    dashboard = dashboard_process(scoring_port, dash_port, tmp_path).start()
    try:
        wait_for_port(scoring_port, 60, scoring.proc)
        wait_for_port(dash_port, 60, dashboard.proc)
        driver.get(f"http://127.0.0.1:{dash_port}/")
        alert = wait_until(lambda: driver.find_element("id", "service-alert").text, 30, message="the banner")
        assert "serves no model yet" in alert
        assert driver.find_element("id", "waiting-card").is_displayed()
        assert "no model" in driver.find_element("id", "service-state").text
        screenshot(driver, "service-no-model")
        train_mall(store, tmp_path)
        wait_until(lambda: driver.find_elements("id", "overview-page"), 60, message="the overview once a model is served")
        assert not driver.find_elements("id", "service-alert")
        assert all(s.name in driver.page_source for s in stack["info"].segments)
    finally:
        dashboard.stop()
        scoring.stop()
