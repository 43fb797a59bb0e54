"""Time to interactive of every dashboard page, with a model trained on 1,000,000 customers.

    python -m bench.bench_dashboard                       # generate 1M customers, train, serve, measure
    python -m bench.bench_dashboard --store DIR           # measure against a store already trained
    python -m bench.bench_dashboard --customers 100000    # a smaller base

A Mall-shaped table of N customers is generated (five income x spending groups, seeded), trained by
the real training job (`python -m training_job train --preset mall`), served by the real scoring
service and shown by the real dashboard, all as processes on this machine. Headless Chromium (Debian's
chromium + chromium-driver, driven by selenium) then opens each page and reads in the page itself
`performance.now()` when the page is interactive: every Dash callback has answered and every graph is
drawn. The target is 2 s, for every visit.

Each of `--browsers` fresh browsers (new profile: empty HTTP and code caches) first waits for the
served model on the Batch page (no graph, so plotly.js is not loaded yet), then opens every page once
(the *first visit*: the Overview, first, also pays for downloading and compiling plotly.js, the
dashboard's 2.1 MB partial bundle, segmentation_core/charts/plotly_bundle, and for creating its WebGL contexts) and then
`--runs` times more (*repeat* visits, a full page load each), and then goes round the navbar `--runs` times (*click*:
Dash swaps the page in, no page load; how the dashboard is mostly used). The table gives the worst
first visit over the browsers, the medians of the repeat visits and of the clicks, and the verdict
against 2 s on the worst of them all. The machine may be shared: the load average and the CPU time
stolen by other virtual machines are printed before, during and after; run it twice before believing
a difference of 0.2 s. Headless Chromium draws WebGL on the CPU (SwiftShader), which a browser with a
GPU does not: the figures here are pessimistic for the map pages.
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.browser_support import (browser_missing_reason, chrome, dashboard_process, free_port,  # noqa: E402
                                   page_ready_script, scoring_process, wait_for_port, wait_until)

PAGES = (("/", "Overview"), ("/segments", "Segments"), ("/model", "Model"), ("/predict", "Predict"),
         ("/batch", "Batch"))
PAGE_IDS = {name: f"{name.lower()}-page" for _, name in PAGES}
BUDGET_S = 2.0
# Income x spending centres and weights of the five classic Mall segments.
CENTRES = np.array([[55, 50], [87, 82], [88, 17], [26, 21], [26, 79]], dtype=float)
WEIGHTS = (0.40, 0.20, 0.18, 0.11, 0.11)


def make_customers(rows: int, path: Path, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    group = rng.choice(len(CENTRES), rows, p=WEIGHTS)
    xy = CENTRES[group] + rng.normal(0, [9, 8], (rows, 2))
    pd.DataFrame({
        "CustomerID": np.arange(1, rows + 1), "Gender": rng.choice(["Male", "Female"], rows),
        "Age": rng.integers(18, 71, rows), "Annual Income (k$)": np.clip(xy[:, 0], 15, 140).round(),
        "Spending Score (1-100)": np.clip(xy[:, 1], 1, 100).round(),
    }).to_csv(path, index=False)
    return path


def train(data: Path, store: Path, log: Path) -> float:
    start = time.perf_counter()
    with open(log, "ab") as out:
        subprocess.run([sys.executable, "-m", "training_job", "train", "--data", str(data), "--preset", "mall",
                        "--store", str(store)], cwd=REPO, check=True, stdout=out, stderr=subprocess.STDOUT)
    return time.perf_counter() - start


def cpu_times() -> list[int]:
    """Jiffies since boot from /proc/stat's cpu line (user nice system idle iowait irq softirq steal)."""
    try:
        return [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    except (OSError, ValueError):
        return []


def machine_load(since: list[int] | None = None) -> str:
    """The load average (1, 5, 15 min) and the CPU busy and stolen since `since`, for the printout."""
    one, five, fifteen = os.getloadavg()
    text = f"load average {one:.2f} {five:.2f} {fifteen:.2f} on {os.cpu_count()} CPUs"
    now = cpu_times()
    if since and now and len(since) == len(now):
        delta = [b - a for a, b in zip(since, now)]
        total = sum(delta) or 1
        busy = total - delta[3] - delta[4]
        text += f"; CPU since start {busy / total:.0%} busy, {delta[7] / total:.0%} stolen"
    return text


TTI_SCRIPT = "return (function(){ %s })() ? performance.now() : null;" % page_ready_script()


def time_to_interactive(driver, url: str, timeout: float = 60.0) -> float:
    """Seconds from navigation start to interactive, read in the page (performance.now())."""
    driver.get(url)
    # The page is ready at the first poll that sees it ready; poll fast to keep the error small.
    ms = wait_until(lambda: driver.execute_script(TTI_SCRIPT), timeout, interval=0.02,
                    message=f"{url} to be interactive")
    return float(ms) / 1000.0


def predict_round_trip(driver, url: str) -> float:
    time_to_interactive(driver, url + "/predict")
    start = time.perf_counter()
    driver.find_element("id", "predict-button").click()
    wait_until(lambda: driver.find_elements("id", "predict-segment"), 30, interval=0.02, message="a prediction")
    wait_until(lambda: driver.execute_script(page_ready_script()), 30, interval=0.02, message="the map")
    return time.perf_counter() - start


NAVIGATE_SCRIPT = """
  window.__navigationStart = performance.now();
  document.getElementById(arguments[0]).click();
"""
NAVIGATED_SCRIPT = ("return document.getElementById(arguments[0]) && (function(){ %s })() ? "
                    "performance.now() - window.__navigationStart : null;" % page_ready_script())


def navigation_time(driver, label: str, page_id: str, timeout: float = 60.0) -> float:
    """Seconds from a click on the navbar's link to the page interactive (no page load: Dash swaps the
    page in; plotly.js and the other bundles are already there)."""
    driver.execute_script(NAVIGATE_SCRIPT, f"nav-{label.lower()}")
    ms = wait_until(lambda: driver.execute_script(NAVIGATED_SCRIPT, page_id), timeout, interval=0.02,
                    message=f"{label} to be interactive after a click")
    return float(ms) / 1000.0


def measure(url: str, runs: int) -> tuple[dict[str, dict[str, list[float]]], list[float]]:
    """One fresh browser: {page: {"first": [s], "repeat": [s, ...], "click": [s, ...]}} and the predict
    round trips."""
    visits: dict[str, dict[str, list[float]]] = {}
    with chrome() as driver:
        driver.get(url + "/batch")
        wait_until(lambda: "customers v" in driver.find_element("id", "service-state").text, 120,
                   message="the served model")
        for path, name in PAGES:
            visits[name] = {"first": [time_to_interactive(driver, url + path)]}
        for path, name in PAGES:
            visits[name]["repeat"] = [time_to_interactive(driver, url + path) for _ in range(runs)]
        for name in visits:
            visits[name]["click"] = []
        for _ in range(runs):  # round the navbar, from the page before each (the Batch page before the Overview)
            for _path, name in PAGES:
                visits[name]["click"].append(navigation_time(driver, name, PAGE_IDS[name]))
        predict = [predict_round_trip(driver, url) for _ in range(runs)]
    return visits, predict


def report(results: dict[str, dict[str, list[float]]], predict: list[float], base: str) -> int:
    """Prints the table; returns the number of pages over the budget."""
    print(f"\nTime to interactive (s), model trained on {base}; target {BUDGET_S:.1f} s for every visit")
    print(f"{'page':<10} {'first':>7} {'repeat':>7} {'worst':>7} {'click':>7}  verdict")
    over = 0
    for name, r in results.items():
        first, repeat, click = max(r["first"]), statistics.median(r["repeat"]), statistics.median(r["click"])
        worst = max(r["first"] + r["repeat"] + r["click"])
        ok = worst <= BUDGET_S
        over += not ok
        print(f"{name:<10} {first:>7.2f} {repeat:>7.2f} {worst:>7.2f} {click:>7.2f}  {'pass' if ok else 'FAIL'}")
    print("first: the worst first visit by URL (the Overview's includes compiling plotly.js); repeat: median "
          "of the\nlater visits by URL (full page loads); click: median from a click in the navbar; worst: of them all.")
    print(f"{'predict':<10} {'':>7} {statistics.median(predict):>7.2f} {max(predict):>7.2f}  "
          "(click to result and map drawn)")
    print(f"\n{len(results) - over} of {len(results)} pages within {BUDGET_S:.1f} s" +
          ("" if not over else f"; over: {', '.join(n for n, r in results.items() if max(r['first'] + r['repeat'] + r['click']) > BUDGET_S)}"))
    return over


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=1_000_000, help="customers to generate (default 1,000,000)")
    parser.add_argument("--store", type=Path, help="use this trained store instead of training one")
    parser.add_argument("--runs", type=int, default=3, help="repeat visits per page and browser (default 3)")
    parser.add_argument("--browsers", type=int, default=3,
                        help="fresh browsers, each with its own first visits (default 3)")
    parser.add_argument("--workdir", type=Path, help="where data, store and logs go (default: a temporary folder)")
    args = parser.parse_args(argv)
    reason = browser_missing_reason()
    if reason:
        print(f"cannot run: {reason}")
        return 2

    work = args.workdir or Path(tempfile.mkdtemp(prefix="bench-dashboard-"))
    work.mkdir(parents=True, exist_ok=True)
    store = args.store
    if store is None:
        data = work / "customers.csv"
        t0 = time.perf_counter()
        make_customers(args.customers, data)
        print(f"generated {args.customers:,} customers in {time.perf_counter() - t0:.1f} s")
        store = work / "store"
        print(f"trained in {train(data, store, work / 'training.log'):.1f} s (log: {work / 'training.log'})")

    started = cpu_times()
    print(machine_load(), flush=True)
    scoring_port, dash_port = free_port(), free_port()
    scoring = scoring_process(store, scoring_port, work).start()
    dashboard = dashboard_process(scoring_port, dash_port, work).start()
    results: dict[str, dict[str, list[float]]] = {name: {"first": [], "repeat": [], "click": []}
                                                  for _, name in PAGES}
    predict: list[float] = []
    try:
        wait_for_port(scoring_port, 120, scoring.proc)
        wait_for_port(dash_port, 60, dashboard.proc)
        url = f"http://127.0.0.1:{dash_port}"
        print(f"dashboard {url} -> scoring 127.0.0.1:{scoring_port}")
        for b in range(args.browsers):
            visits, trips = measure(url, args.runs)
            predict += trips
            for name, r in visits.items():
                for kind in ("first", "repeat", "click"):
                    results[name][kind] += r[kind]
            print(f"browser {b + 1}: first visits " +
                  ", ".join(f"{name} {r['first'][0]:.2f}" for name, r in visits.items()) +
                  f" ({machine_load(started)})", flush=True)
    finally:
        dashboard.stop()
        scoring.stop()

    base = f"{args.customers:,} customers" if args.store is None else f"the store {args.store}"
    over = report(results, predict, base)
    print(machine_load(started))
    return 1 if over else 0


if __name__ == "__main__":
    sys.exit(main())
