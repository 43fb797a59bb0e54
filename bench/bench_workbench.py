"""The workbench against issue 13's targets, on real processes over loopback:

1. ProfileData of the full Online Retail log (541,909 rows, ../shared/datasets): < 5 s. Measured cold (the
   first ProfileData of the dataset: the profile computed from the table parsed at upload) and warm (read
   back); the upload itself (which parses the CSV once) is timed apart.
2. Upload throughput over loopback (TrainingClient, 1 MiB chunks): a CSV of --upload-mb MB made of the
   Online Retail lines, timed to the answer (stream + hash + parse + Parquet cache).
3. With --dashboard: the same CSV sent through the dashboard's upload route (POST /upload/data, as the
   browser does); the dashboard's peak RSS (VmHWM) must stay < 500 MB. Then the time to interactive of the
   Data page (the Online Retail profile drawn: 8 columns, heatmap, RFM features) and the Train page in
   headless Chromium (first visit and repeats): < 2 s.

    .venv/bin/python bench/bench_workbench.py [--upload-mb 200] [--dashboard] [--runs 3]
Report `uptime` beside the figures: the machine is shared.
"""
from __future__ import annotations

import argparse
import gzip
import http.client
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
RETAIL = REPO.parent / "shared" / "datasets" / "online_retail.csv.gz"

from tests.browser_support import Process, free_port, wait_for_port  # noqa: E402
from training_job.client import TrainingClient  # noqa: E402


def big_csv(path: Path, megabytes: int) -> int:
    """A CSV of about ``megabytes`` MB: the Online Retail header, then its lines repeated."""
    raw = gzip.decompress(RETAIL.read_bytes())
    header, _, body = raw.partition(b"\n")
    with open(path, "wb") as out:
        out.write(header + b"\n")
        while out.tell() < megabytes * 1_000_000:
            out.write(body if body.endswith(b"\n") else body + b"\n")
    return path.stat().st_size


def peak_rss_mb(pid: int) -> float:
    """The peak resident set (VmHWM) of a process, in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def post_file(port: int, path: Path) -> tuple[int, bytes]:
    """POST a file's bytes as the body of /upload/data, streamed from disk."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=900)
    with open(path, "rb") as body:
        conn.request("POST", f"/upload/data?filename={path.name}", body=body,
                     headers={"Content-Length": str(path.stat().st_size), "Content-Type": "text/csv"})
        answer = conn.getresponse()
        return answer.status, answer.read()


def page_times(url: str, dataset_id: str, runs: int) -> None:
    """Time to interactive of /data (with the dataset's profile) and /train, in headless Chromium."""
    from bench.bench_dashboard import time_to_interactive
    from tests.browser_support import browser_missing_reason, chrome

    if browser_missing_reason():
        print(f"pages not timed: {browser_missing_reason()}")
        return
    with chrome() as driver:
        driver.get(url + "/data")
        driver.execute_script("window.sessionStorage.setItem('wb-dataset', JSON.stringify(arguments[0]));",
                              dataset_id)
        for path in ("/data", "/train"):
            times = [time_to_interactive(driver, url + path) for _ in range(1 + runs)]
            print(f"{path}: interactive in {times[0]:.2f} s (first), repeats "
                  f"{', '.join(f'{t:.2f}' for t in times[1:])} s (target 2 s); load {os.getloadavg()[0]:.1f}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--upload-mb", type=int, default=200)
    parser.add_argument("--dashboard", action="store_true", help="also upload through the dashboard's route, "
                                                                  "and time the Data and Train pages")
    parser.add_argument("--runs", type=int, default=3, help="repeat visits per page")
    args = parser.parse_args()
    print(f"load before: {os.getloadavg()}")
    with tempfile.TemporaryDirectory(prefix="bench-workbench-") as tmp:
        root = Path(tmp)
        port = free_port()
        trainer = Process(["-m", "training_job", "serve", "--store", str(root / "store"), "--data-dir",
                           str(root / "data"), "--port", str(port), "--max-upload-mb", "400"],
                          root / "trainer.log").start()
        dashboard = None
        try:
            wait_for_port(port, 60, trainer.proc)
            client = TrainingClient(f"127.0.0.1:{port}", timeout=600)
            start = time.perf_counter()
            retail = client.upload(RETAIL)
            upload_s = time.perf_counter() - start
            start = time.perf_counter()
            profile = client.profile(retail.dataset_id)
            cold = time.perf_counter() - start
            start = time.perf_counter()
            client.profile(retail.dataset_id)
            warm = time.perf_counter() - start
            print(f"Online Retail: upload {retail.size_bytes / 1e6:.1f} MB (gzip) + parse {upload_s:.2f} s; "
                  f"ProfileData cold {cold:.2f} s (server-side {profile.seconds:.2f} s), warm {warm:.3f} s; "
                  f"{profile.rows:,} rows, {profile.customers:,} customers, preset {profile.suggested_preset}; "
                  f"load {os.getloadavg()[0]:.1f}")
            csv = root / "big.csv"
            size = big_csv(csv, args.upload_mb)
            start = time.perf_counter()
            big = client.upload(csv)
            seconds = time.perf_counter() - start
            print(f"upload over loopback: {size / 1e6:.0f} MB CSV ({big.rows:,} rows) answered in {seconds:.1f} s = "
                  f"{size / 1e6 / seconds:.1f} MB/s (stream + sha256 + parse + Parquet cache); "
                  f"load {os.getloadavg()[0]:.1f}")
            if args.dashboard:
                dash_port = free_port()
                dashboard = Process(["-m", "dash_ui", "--scoring", "127.0.0.1:1", "--trainer", f"127.0.0.1:{port}",
                                     "--port", str(dash_port)], root / "dashboard.log").start()
                wait_for_port(dash_port, 60, dashboard.proc)
                before = peak_rss_mb(dashboard.proc.pid)
                start = time.perf_counter()
                status, body = post_file(dash_port, csv)
                seconds = time.perf_counter() - start
                print(f"through the dashboard's route: HTTP {status} in {seconds:.1f} s; dashboard peak RSS "
                      f"{before:.0f} MB before, {peak_rss_mb(dashboard.proc.pid):.0f} MB after (limit 500); "
                      f"answer {body[:120]!r}; load {os.getloadavg()[0]:.1f}")
                page_times(f"http://127.0.0.1:{dash_port}", retail.dataset_id, args.runs)
            client.close()
        finally:
            if dashboard is not None:
                dashboard.stop()
            trainer.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
