"""Helpers for the dashboard's browser tests and benchmark: processes on free ports, headless Chromium.

Debian's `chromium` and `chromium-driver` packages provide /usr/bin/chromium and /usr/bin/chromedriver;
selenium drives them (no browser download).
"""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator, Sequence

REPO = Path(__file__).resolve().parents[1]
CHROMIUM = Path(os.environ.get("CHROMIUM_BINARY", "/usr/bin/chromium"))
CHROMEDRIVER = Path(os.environ.get("CHROMEDRIVER", "/usr/bin/chromedriver"))
SCREENSHOTS = REPO / "artifacts" / "screenshots"
CHROME_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-dev-shm-usage",
                "--window-size=1440,1000",
                # WebGL (the maps' scattergl) on the CPU: headless with --disable-gpu has no GPU to use.
                "--enable-unsafe-swiftshader")


def browser_missing_reason() -> str | None:
    """Why browser tests cannot run here, or None."""
    if not CHROMIUM.exists():
        return f"{CHROMIUM} is absent (apt-get install chromium chromium-driver)"
    if not CHROMEDRIVER.exists():
        return f"{CHROMEDRIVER} is absent (apt-get install chromium-driver)"
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (pip install selenium)"
    return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port: int, timeout: float = 30.0, process: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"process exited with {process.returncode} before listening on {port}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port} after {timeout:.0f} s")


class Process:
    """A child process (python -m ...) with its log in a file; `stop()` ends it by its pid."""

    def __init__(self, args: Sequence[str], log_path: Path, env: dict[str, str] | None = None) -> None:
        self.args = list(args)
        self.log_path = log_path
        self._env = {**os.environ, "PYTHONPATH": str(REPO), **(env or {})}
        self.proc: subprocess.Popen | None = None

    def start(self) -> "Process":
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen([sys.executable, *self.args], cwd=REPO, stdout=log, stderr=subprocess.STDOUT,
                                     env=self._env)
        return self

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc = None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


def scoring_process(store: Path, port: int, log_dir: Path) -> Process:
    return Process(["-m", "scoring_service", "--store", str(store), "--port", str(port)],
                   log_dir / "scoring.log", env={"SCORING_METRICS_PORT": "0"})


def dashboard_process(scoring_port: int, port: int, log_dir: Path, retry_seconds: float = 1.0) -> Process:
    return Process(["-m", "dash_ui", "--scoring", f"127.0.0.1:{scoring_port}", "--port", str(port),
                    "--retry-seconds", str(retry_seconds)], log_dir / "dashboard.log")


def train_mall(store: Path, log_dir: Path) -> None:
    """Publishes a real model trained on the Mall customers by the training job's CLI."""
    train_dataset(store, log_dir, "Mall_Customers.csv", "mall")


def train_dataset(store: Path, log_dir: Path, dataset: str, preset: str, model: str | None = None) -> None:
    """Publishes a real model trained by the training job's CLI on ../shared/datasets/`dataset` with `preset`,
    under `model` (None: the default model name)."""
    data = REPO.parent / "shared" / "datasets" / dataset
    subprocess.run([sys.executable, "-m", "training_job", "train", "--data", str(data), "--preset", preset,
                    "--store", str(store), *(["--model", model] if model else [])], cwd=REPO, check=True,
                   env={**os.environ, "PYTHONPATH": str(REPO)},
                   stdout=open(log_dir / "training.log", "ab"), stderr=subprocess.STDOUT, timeout=600)


@contextmanager
def chrome(download_dir: Path | None = None) -> Iterator["object"]:
    """A headless Chromium driven by selenium, with a fresh profile; quits on exit."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="dash-ui-chrome-")
    opts = webdriver.ChromeOptions()
    opts.binary_location = str(CHROMIUM)
    for flag in CHROME_FLAGS:
        opts.add_argument(flag)
    opts.add_argument(f"--user-data-dir={profile}")
    if download_dir is not None:
        opts.add_experimental_option("prefs", {"download.default_directory": str(download_dir),
                                               "download.prompt_for_download": False})
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=opts)
    try:
        if download_dir is not None:  # headless Chromium needs to be told that downloads are allowed
            driver.execute_cdp_cmd("Browser.setDownloadBehavior",
                                   {"behavior": "allow", "downloadPath": str(download_dir)})
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def wait_until(predicate: Callable[[], object], timeout: float = 20.0, interval: float = 0.1,
               message: str = "condition") -> object:
    deadline = time.monotonic() + timeout
    last_exc: Exception | None = None
    while time.monotonic() < deadline:
        try:
            value = predicate()
            if value:
                return value
        except Exception as exc:  # noqa: BLE001 - stale elements and the like: try again
            last_exc = exc
        time.sleep(interval)
    raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {message}" + (f" ({last_exc})" if last_exc else ""))


def page_ready_script() -> str:
    """JS: true when Dash has no pending callbacks and every graph on the page is drawn."""
    return """
      const pending = document.querySelectorAll('[data-dash-is-loading="true"]').length;
      const graphs = Array.from(document.querySelectorAll('.dash-graph'));
      const drawn = graphs.every(g => g.querySelector('.main-svg, canvas'));
      const content = document.getElementById('page-content');
      return !!content && content.children.length > 0 && pending === 0 && drawn;
    """


def screenshot(driver: object, name: str) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    # A full-page picture: grow the window to the document's height first.
    height = driver.execute_script("return Math.max(document.documentElement.scrollHeight, document.body.scrollHeight, 900)")
    driver.set_window_size(1440, min(int(height) + 40, 6000))
    driver.save_screenshot(str(path))
    driver.set_window_size(1440, 1000)
    return path
