"""The analyst's whole loop in a real browser against real processes (scoring service, training service,
dashboard): upload Mall_Customers.csv, see it profiled, train with the suggested preset, watch it, compare,
publish, and find the five mall segments served; then a run with k auto, whose k the Model page shows."""
from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pytest

from tests.browser_support import (
    Process, browser_missing_reason, chrome, free_port, page_ready_script, screenshot, scoring_process, wait_for_port,
    wait_until,
)

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(browser_missing_reason() is not None, reason=str(browser_missing_reason()))]

MALL_CSV = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "Mall_Customers.csv"


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    """An empty store, a scoring service on it, a training service and a dashboard using both."""
    root = tmp_path_factory.mktemp("workbench")
    store = root / "store"
    store.mkdir()
    scoring_port, trainer_port, dash_port = free_port(), free_port(), free_port()
    scoring = scoring_process(store, scoring_port, root).start()
    trainer = Process(["-m", "training_job", "serve", "--store", str(store), "--data-dir", str(root / "data"),
                       "--port", str(trainer_port)], root / "trainer.log").start()
    dashboard = Process(["-m", "dash_ui", "--scoring", f"127.0.0.1:{scoring_port}", "--trainer",
                         f"127.0.0.1:{trainer_port}", "--port", str(dash_port), "--retry-seconds", "1"],
                        root / "dashboard.log").start()
    try:
        for port, proc in ((scoring_port, scoring), (trainer_port, trainer), (dash_port, dashboard)):
            wait_for_port(port, 60, proc.proc)
        yield {"url": f"http://127.0.0.1:{dash_port}", "store": store}
    finally:
        for proc in (dashboard, trainer, scoring):
            proc.stop()
            print(f"--- {proc.log_path.name} (tail) ---\n{proc.log()[-3000:]}", file=sys.stderr)


@pytest.fixture(scope="module")
def driver(stack):
    with chrome() as d:
        yield d


def _open(driver, url: str) -> None:
    driver.get(url)
    wait_until(lambda: driver.execute_script(page_ready_script()), 60, message=f"{url} to be ready")


def _text(driver, element_id: str) -> str:
    return driver.find_element("id", element_id).text


def _click(driver, element_id: str) -> None:
    """Click a button or link by id (scrolled into view first: the pages are longer than the window)."""
    wait_until(lambda: driver.execute_script(page_ready_script()), 60, message="the page to settle")
    element = driver.find_element("id", element_id)
    driver.execute_script("arguments[0].scrollIntoView({block: 'center'}); arguments[0].click();", element)


def _choose(driver, dropdown: str, label: str) -> None:
    """Choose the option shown as `label` in a Dash dropdown: open it, click the option, close it."""
    from selenium.webdriver.common.keys import Keys

    _click(driver, dropdown)
    option = wait_until(lambda: [o for o in driver.find_elements("css selector", ".dash-dropdown-option")
                                 if o.text.strip() == label], 10, message=f"the option {label}")[0]
    driver.execute_script("arguments[0].click();", option)
    driver.find_element("tag name", "body").send_keys(Keys.ESCAPE)
    wait_until(lambda: label in _text(driver, dropdown), 10, message=f"{label} chosen")


def _train(driver, stack, *, k_auto: bool = False, k: int | None = None, preset: str = "",
           numeric: tuple[str, ...] = ()) -> str:
    """Submit on the Train page (the suggested preset or the one shown as `preset`; k as the preset says, auto,
    or fixed at `k`; the preset's numeric columns or `numeric`); wait for the job to end; return the Compare
    link's job summary."""
    _open(driver, stack["url"] + "/train")
    wait_until(lambda: "200 rows" in _text(driver, "train-dataset"), 30, message="the dataset on the Train page")
    if preset:
        _choose(driver, "train-preset", preset)
    for column in numeric:
        _choose(driver, "train-numeric", column)
    if k_auto:
        driver.find_element("css selector", "#train-k-mode input[value='auto']").click()
    if k is not None:
        driver.find_element("css selector", "#train-k-mode input[value='fixed']").click()
        driver.find_element("id", "train-k").clear()
        driver.find_element("id", "train-k").send_keys(str(k))
    _click(driver, "train-submit")
    message = wait_until(lambda: "Submitted as" in _text(driver, "train-message") and _text(driver, "train-message"),
                         30, message="the job id")
    job_id = message.split("Submitted as ")[1].rstrip(".")
    wait_until(lambda: _text(driver, "train-job") == job_id and (driver.find_elements("id", "train-done")
                                                                 or driver.find_elements("id", "train-failed")),
               300, 0.5, message=f"{job_id} to end")
    assert not driver.find_elements("id", "train-failed"), _text(driver, "train-failed")
    assert _text(driver, "train-state") == "succeeded"
    assert driver.find_element("css selector", "#train-progress .progress-bar").text == "100%"
    return _text(driver, "train-done")


def _publish_on_compare_page(driver, stack) -> None:
    _click(driver, "train-compare-link")
    wait_until(lambda: driver.find_elements("id", "compare-new-k"), 30, message="the comparison")
    wait_until(lambda: driver.find_element("id", "compare-publish").is_enabled(), 30, message="Publish enabled")
    _click(driver, "compare-publish")
    # The callback's confirmation, or the page drawn again for the new served version saying so.
    wait_until(lambda: driver.find_elements("id", "compare-published") or driver.find_elements("id", "compare-served"),
               30, message="the publish confirmation")


def _column(driver, grid: str, field: str) -> list[str]:
    """A dash-ag-grid column as shown: its header, then its cells."""
    header = driver.find_element("css selector", f"#{grid} .ag-header-cell[col-id='{field}']").text
    return [header] + [c.text for c in driver.find_elements("css selector", f"#{grid} .ag-cell[col-id='{field}']")]


def _upload(driver, stack) -> None:
    """Upload Mall_Customers.csv on the Data page and wait for its profile."""
    _open(driver, stack["url"] + "/data")
    driver.find_element("id", "data-file").send_keys(str(MALL_CSV))
    _click(driver, "data-upload-button")
    wait_until(lambda: driver.find_elements("id", "data-rows"), 60, message="the profile")


def test_upload_profile_train_compare_publish(stack, driver):
    _upload(driver, stack)
    assert _text(driver, "data-rows") == "200" and _text(driver, "data-columns") == "5"
    assert _text(driver, "data-suggested-preset") == "mall"
    wait_until(lambda: driver.find_elements("css selector", "#data-heatmap .main-svg"), 30, message="the heatmap")
    assert "Uploaded Mall_Customers.csv: 200 rows, 5 columns" in _text(driver, "data-upload-message")
    screenshot(driver, "workbench-data")

    done = _train(driver, stack, k_auto=False)
    assert "k = 5" in done and "kept, not served" in done
    screenshot(driver, "workbench-train")
    _publish_on_compare_page(driver, stack)
    screenshot(driver, "workbench-compare")

    names = ["Careful Spenders", "Target Group", "Sensible Customers", "Careless Customers", "Standard Customers"]
    _open(driver, stack["url"] + "/")
    wait_until(lambda: all(n in driver.find_element("tag name", "body").text for n in names), 60,
               message="the five mall segments on the Overview")


def test_a_second_run_with_k_auto_is_served_with_its_k(stack, driver):
    done = _train(driver, stack, k_auto=True)
    k = int(done.split("k = ")[1].split(",")[0])
    _publish_on_compare_page(driver, stack)
    assert _text(driver, "compare-ari") != "n/a"  # compared with the version served before
    _open(driver, stack["url"] + "/model")
    wait_until(lambda: _text(driver, "model-k") == str(k), 60, message=f"the Model page to show k = {k}")


def test_after_publish_compare_shows_the_candidate_served_beside_the_version_it_replaced(stack, driver):
    _train(driver, stack, k=3)  # unlike the served version: its figures differ from the candidate's
    _click(driver, "train-compare-link")
    wait_until(lambda: driver.find_elements("id", "compare-new-k"), 30, message="the comparison")
    wait_until(lambda: driver.find_element("id", "compare-publish").is_enabled(), 30, message="Publish enabled")
    before = _column(driver, "compare-quality", "served")
    assert before[1:] != _column(driver, "compare-quality", "new")[1:]
    old = re.search(r"v\d{4}", before[0]).group()
    _click(driver, "compare-publish")
    for when in ("published", "reloaded"):
        if when == "reloaded":
            _open(driver, stack["url"] + "/compare")
        wait_until(lambda: driver.find_elements("id", "compare-served"), 30, message=f"{when}: 'now served'")
        assert _text(driver, "compare-state") == "served" and f"it replaced {old}" in _text(driver, "compare-served")
        assert _column(driver, "compare-quality", "served") == [f"{old} (replaced)", *before[1:]], when
        assert not driver.find_element("id", "compare-publish").is_enabled()


def test_the_train_page_reopened_says_which_settings_the_job_runs_with(stack, driver):
    _open(driver, stack["url"] + "/train")
    wait_until(lambda: "200 rows" in _text(driver, "train-dataset"), 30, message="the dataset on the Train page")
    driver.find_element("css selector", "#train-k-mode input[value='fixed']").click()
    driver.find_element("id", "train-k").clear()
    driver.find_element("id", "train-k").send_keys("4")
    _click(driver, "train-submit")
    job_id = wait_until(lambda: "Submitted as" in _text(driver, "train-message") and _text(driver, "train-message"),
                        30, message="the job id").split("Submitted as ")[1].rstrip(".")
    _open(driver, stack["url"] + "/train")  # the form is drawn again with its defaults
    wait_until(lambda: _text(driver, "train-job-settings").startswith(job_id), 30, message="the job's settings")
    assert "preset mall, k 4 (fixed), " in _text(driver, "train-job-settings")


def test_the_data_page_shows_the_served_models_training_data(stack, driver):
    _open(driver, stack["url"] + "/data")
    driver.execute_script("window.sessionStorage.clear();")  # a new session: nothing uploaded yet
    _open(driver, stack["url"] + "/data")
    wait_until(lambda: driver.find_elements("id", "data-served-title"), 30, message="the served model's data")
    assert _text(driver, "data-rows") == "200" and _text(driver, "data-suggested-preset") == "mall"


def test_roll_back_asks_first_and_undoes_a_promote_only_when_confirmed(stack, driver):
    # Rolling back changes what every caller is served at once: the Model page asks first, and a "Cancel"
    # changes nothing. It undoes the last change of the served version, as `python -m training_job rollback`
    # does: after an operator's `promote v0001`, it serves again the version served before (was: disabled, "no
    # older version", v0001 being the oldest). (The runs above left several versions, the last one served.)
    from selenium.webdriver.support import expected_conditions
    from selenium.webdriver.support.ui import WebDriverWait

    from segmentation_core.store import ModelStore

    store = ModelStore(stack["store"])
    served, oldest = store.current("customers"), store.versions("customers")[0]
    assert served != oldest
    store.promote("customers", oldest)  # an operator on the command line
    wait_until(lambda: _open(driver, stack["url"] + "/model") or f"{oldest} is served since" in driver.page_source,
               60, message=f"{oldest} served on the page")
    _click(driver, "model-rollback")
    question = WebDriverWait(driver, 10).until(expected_conditions.alert_is_present())
    assert f"from {oldest} to {served}?" in question.text
    question.dismiss()
    assert _text(driver, "model-version-message") == "" and store.current("customers") == oldest
    _click(driver, "model-rollback")
    WebDriverWait(driver, 10).until(expected_conditions.alert_is_present()).accept()
    wait_until(lambda: store.current("customers") == served, 30, message=f"{served} served")
    _open(driver, stack["url"] + "/model")
    wait_until(lambda: f"{served} is served since" in driver.page_source, 30, message="the served note")
    screenshot(driver, "model-rolled-back")


def test_the_model_page_opens_and_downloads_the_served_versions_training_report(stack, driver):
    # The dashboard talks only gRPC: the report comes from the training service's GetReport, through the
    # dashboard's report route, into a new tab (sandboxed) or as a download.
    import urllib.request

    from segmentation_core.store import ModelStore
    from segmentation_core.wording import structure_sentence

    store = ModelStore(stack["store"])
    served = store.current("customers")
    on_disk = (store.version_dir("customers", served) / "report.html").read_bytes()
    _open(driver, stack["url"] + "/model")
    link = wait_until(lambda: driver.find_element("id", "model-report-link"), 30, message="the report link")
    assert link.text == "Open the training report" and link.get_attribute("target") == "_blank"
    assert link.get_attribute("href") == f"{stack['url']}/report/customers/{served}"
    manifest = json.loads((store.version_dir("customers", served) / "manifest.json").read_text())
    assert _text(driver, "model-structure") == f"The segments are {structure_sentence(manifest['k_search']['structure'])}"
    download = driver.find_element("id", "model-report-download").get_attribute("href")
    with urllib.request.urlopen(download, timeout=30) as reply:
        assert reply.headers["Content-Disposition"] == f'attachment; filename="customers-{served}-report.html"'
        assert reply.read() == on_disk
    _click(driver, "model-report-link")
    wait_until(lambda: len(driver.window_handles) == 2, 30, message="the report's tab")
    driver.switch_to.window(driver.window_handles[1])
    try:
        wait_until(lambda: driver.title == f"Training report: customers {served}", 30, message="the report")
        # Its charts draw inside the sandbox (the page inflates its own plotly.js and runs it).
        wait_until(lambda: len(driver.find_elements("css selector", ".chart .main-svg")) >= 3, 60,
                   message="the report's charts")
        wait_until(lambda: "Standard Customers" in driver.find_element("id", "chart-map").text, 30,
                   message="the map's legend")
        assert "WebGL is not supported" not in driver.find_element("id", "chart-map").text
        # Mall's 200 customers give 100 rows per half: too few to calibrate 4 or more segments.
        warnings = driver.find_elements("id", "warnings")
        shown = warnings[0].text.splitlines()[1:] if warnings else []
        assert shown == manifest["warnings"]
        if manifest["k_search"]["chosen_k"] >= 4:
            assert shown[-1].startswith("Confidence not calibrated (100 rows per half, fewer than 30 per segment)")
        assert driver.find_element("css selector", "th[title='data.rows_in']").text == "Rows read"
        screenshot(driver, "model-report")
    finally:
        driver.close()
        driver.switch_to.window(driver.window_handles[0])
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(f"{stack['url']}/report/customers/v0999", timeout=30)
    assert err.value.code == 404 and "has no version &#x27;v0999&#x27;" in err.value.read().decode()


def test_a_publish_that_would_break_callers_shows_why_and_publishes_only_when_confirmed(stack, driver):
    # A version trained on Age alone, over a served mall model on income x spending: every caller sending those
    # would be refused. Compare shows the training service's refusal and offers "Publish anyway", which asks
    # first (as Roll back does); a Cancel changes nothing.
    from selenium.webdriver.support import expected_conditions
    from selenium.webdriver.support.ui import WebDriverWait

    from segmentation_core.store import ModelStore

    store = ModelStore(stack["store"])
    served = store.current("customers")
    _upload(driver, stack)  # this session's dataset (a test above starts a new session)
    done = _train(driver, stack, preset="auto (inferred)", numeric=("Age",))
    candidate = re.search(r"customers (v\d{4})", done).group(1)
    _click(driver, "train-compare-link")
    wait_until(lambda: driver.find_element("id", "compare-publish").is_enabled(), 30, message="Publish enabled")
    _click(driver, "compare-publish")
    wait_until(lambda: driver.find_elements("id", "compare-refused"), 30, message="the refusal")
    refusal = _text(driver, "compare-refusal")
    removed = "numeric feature(s) 'Annual Income (k$)', 'Spending Score (1-100)' removed"
    assert refusal.startswith(f"customers {candidate} was not made CURRENT: its input schema would break the callers "
                              f"of the served {served}: {removed}"), refusal
    # In the dashboard's words (was: the command line's "train --model NAME", "--allow-breaking-schema").
    assert refusal.endswith(f"train this table under another Model name on the Train page; or, once callers send "
                            f"what {candidate} expects, choose Publish anyway."), refusal
    assert "--" not in refusal and store.current("customers") == served
    # Compare links the candidate's training report (the Model page links the served version's).
    link = driver.find_element("id", "compare-report-link")
    assert link.get_attribute("href") == f"{stack['url']}/report/customers/{candidate}"
    assert link.get_attribute("target") == "_blank"
    screenshot(driver, "compare-publish-refused")
    _click(driver, "compare-publish-anyway")
    question = WebDriverWait(driver, 10).until(expected_conditions.alert_is_present())
    assert f"Publish customers {candidate} although it breaks the callers of {served}?" in question.text
    question.dismiss()
    assert not driver.find_elements("id", "compare-published") and store.current("customers") == served
    _click(driver, "compare-publish-anyway")
    WebDriverWait(driver, 10).until(expected_conditions.alert_is_present()).accept()
    wait_until(lambda: store.current("customers") == candidate, 30, message=f"{candidate} served")
    wait_until(lambda: driver.find_elements("id", "compare-published") or driver.find_elements("id", "compare-served"),
               30, message="the publish confirmation")

    # The Model page can undo it: Roll back crosses the same change the other way (Age removed), so it is refused
    # in rollback words and offers "Roll back anyway", which asks first (was: refused, only the CLI override named).
    def refused(kind: str) -> str:
        _click(driver, f"model-{kind}")
        if kind == "rollback":
            WebDriverWait(driver, 10).until(expected_conditions.alert_is_present()).accept()
        wait_until(lambda: driver.find_elements("id", "model-refused"), 30, message=f"the {kind} refusal")
        return _text(driver, "model-refusal")

    def served_on_the_model_page(version: str) -> None:
        wait_until(lambda: _open(driver, stack["url"] + "/model") or f"{version} is served since" in driver.page_source,
                   60, message=f"{version} served on the Model page")

    served_on_the_model_page(candidate)
    text = refused("rollback")
    assert text == (f"customers was not rolled back to {served}: its input schema would break the callers of the "
                    f"served {candidate}: numeric feature(s) 'Age' removed (requests sending them would be refused: "
                    f"unknown numeric feature). {candidate} stays served. Callers may already send what {candidate} "
                    f"expects; once they send what {served} expects, choose Roll back anyway."), text
    assert store.current("customers") == candidate
    screenshot(driver, "model-rollback-refused")
    _click(driver, "model-rollback-anyway")
    question = WebDriverWait(driver, 10).until(expected_conditions.alert_is_present())
    assert f"Roll back customers to {served} although it breaks the callers of {candidate}?" in question.text
    question.dismiss()
    assert store.current("customers") == candidate
    _click(driver, "model-rollback-anyway")
    WebDriverWait(driver, 10).until(expected_conditions.alert_is_present()).accept()
    wait_until(lambda: store.current("customers") == served, 30, message=f"{served} served again")
    # The page redraws for the version now served; what the rollback did stays said (was: gone with the redraw),
    # and after a reload too.
    for when in ("redrawn", "reloaded"):
        if when == "reloaded":
            _open(driver, stack["url"] + "/model")
        wait_until(lambda: f"{served} is served since" in driver.page_source, 60, message=f"{when}: the served note")
        done = wait_until(lambda: driver.find_elements("id", "model-version-done-alert"), 30,
                          message=f"{when}: the rollback's note")[0]
        assert done.text == f"customers {served} is now served (rolled back).", when
    screenshot(driver, "model-rolled-back-anyway")

    # The Model page's Publish of the kept candidate: refused in publish words, "Publish anyway" after a confirm.
    _click(driver, "model-version-choice")
    option = wait_until(lambda: [o for o in driver.find_elements("css selector", ".dash-dropdown-option")
                                 if o.text.strip().startswith(f"{candidate} - ")], 10, message=f"the option {candidate}")
    driver.execute_script("arguments[0].click();", option[0])
    text = refused("publish")
    assert text.startswith(f"customers {candidate} was not made CURRENT: its input schema would break the callers of "
                           f"the served {served}: {removed}") and text.endswith("choose Publish anyway."), text
    _click(driver, "model-publish-anyway")
    question = WebDriverWait(driver, 10).until(expected_conditions.alert_is_present())
    assert f"Publish customers {candidate} although it breaks the callers of {served}?" in question.text
    question.accept()
    wait_until(lambda: store.current("customers") == candidate, 30, message=f"{candidate} served again")
    served_on_the_model_page(candidate)
    done = wait_until(lambda: driver.find_elements("id", "model-version-done-alert"), 30, message="the publish's note")
    assert done[0].text == f"customers {candidate} is now served."
