"""Issue 18: the pandas path against Spark ``local[2]`` on transaction logs of 10M, 50M and 100M rows.

Two steps, each its own command, because generating takes minutes and the runs take long:

    .venv/bin/python bench/bench_spark.py generate --out /tmp/bench-spark [--sizes 10M,50M,100M]
    .venv/bin/python bench/bench_spark.py run --out /tmp/bench-spark [--sizes ...] [--engines pandas,spark]
        [--memory-limit-gb 16] [--driver-memory 2g] [--timeout 5400]

``generate`` writes one Parquet file per size (``transactions-<size>.parquet``, row groups of 1M rows),
chunk by chunk (numpy + pyarrow, never the whole log in memory), in the Online Retail layout the
``transactions`` preset reads: InvoiceNo (text, ``C`` prefix for a cancellation), StockCode, Quantity,
InvoiceDate (timestamp), UnitPrice, CustomerID (nullable integer), Country. The log is realistic enough for
RFM: one customer per 40 rows; heavy-tailed activity (log-normal weights); each customer active in a window
of three years; invoices of ~9 lines (geometric); Zipf-like product popularity with a price per product;
2 % cancelled invoices (negative quantities), 1 % invoices without a customer id, 0.3 % exact duplicate
lines, a few zero prices. The same seed gives the same file. It checks the free disk first and refuses,
saying how much it needs, when the files would leave less than ``--reserve-gb`` free.

``run`` trains each log with ``python -m training_job train --preset transactions`` (a fresh store per
run) for each engine, in its own process group, and samples the whole process tree every 0.5 s with psutil:
peak Python RSS (the job and Spark's Python workers), peak JVM RSS (the Spark driver; local mode has no
separate executors), and their peak sum, with the wall time and the load average (``uptime``) before and
after. The pandas path runs under RLIMIT_AS (``--memory-limit-gb``, lowered to what the machine has free
less 2 GB) and is reported as stopped, with the point it reached, when it runs out, instead of letting the
machine run out. Spark runs with a bounded driver (``spark.driver.memory``, default 2g); its local dir
(shuffle files, disk caches: about 10 GB at 100M rows, so check the free disk of ``--out``) is a folder under
``--out`` removed after each run. Results are
printed as a table and appended as JSON lines to ``<out>/results.jsonl``; each run's own output (the training
job's progress, Spark's errors) is kept in ``<out>/train-<engine>-<size>.log``.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

REPO = Path(__file__).resolve().parents[1]
ROWS_PER_CUSTOMER = 40
CHUNK_ROWS = 1_000_000
#: Measured on the generated files (about 6 bytes a row, zstd); doubled for the disk check.
BYTES_PER_ROW = 12
PRODUCTS = 4_000
START = np.datetime64("2019-01-01T00:00:00", "s")
SPAN_DAYS = 3 * 365
COUNTRIES = np.array(["United Kingdom", "Germany", "France", "EIRE", "Spain", "Netherlands", "Belgium",
                      "Switzerland", "Portugal", "Australia", "Norway", "Italy", "Sweden", "Poland", "USA"])
COUNTRY_WEIGHTS = np.array([0.82, 0.035, 0.03, 0.025, 0.012, 0.01, 0.009, 0.008, 0.008, 0.007, 0.007,
                            0.007, 0.006, 0.004, 0.002])
SCHEMA = pa.schema([("InvoiceNo", pa.string()), ("StockCode", pa.string()), ("Quantity", pa.int64()),
                    ("InvoiceDate", pa.timestamp("s")), ("UnitPrice", pa.float64()),
                    ("CustomerID", pa.int64()), ("Country", pa.string())])


# ---- generating the logs -------------------------------------------------------------------------------

def parse_size(text: str) -> int:
    """'10M' -> 10_000_000, '500k' -> 500_000, '1234' -> 1234."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([kKmM]?)\s*", text)
    if not match:
        raise SystemExit(f"--sizes: {text!r} is not a row count like 10M, 500k or 1234")
    return int(float(match.group(1)) * {"": 1, "k": 1_000, "m": 1_000_000}[match.group(2).lower()])


def size_label(rows: int) -> str:
    """10_000_000 -> '10M'."""
    return f"{rows // 1_000_000}M" if rows % 1_000_000 == 0 else f"{rows}"


def log_path(out: Path, rows: int) -> Path:
    """Where the log of ``rows`` rows is written."""
    return out / f"transactions-{size_label(rows)}.parquet"


@dataclass(frozen=True)
class Population:
    """The customers of one log: activity weights, active windows (days from START), countries."""

    ids: np.ndarray
    cumulative_weight: np.ndarray
    first_day: np.ndarray
    active_days: np.ndarray
    country: np.ndarray
    product_price: np.ndarray
    product_cumulative: np.ndarray
    product_codes: pa.Array
    country_names: pa.Array

    @classmethod
    def make(cls, rows: int, seed: int) -> "Population":
        """A population sized for a log of ``rows`` rows."""
        rng = np.random.default_rng(seed)
        n = max(rows // ROWS_PER_CUSTOMER, 10)
        weight = rng.lognormal(0.0, 1.2, n)
        first = rng.uniform(0, SPAN_DAYS * 0.9, n)
        # Some customers stay to the end, others churn after a while: the recency spread RFM needs.
        stays = rng.random(n) < 0.45
        length = np.where(stays, SPAN_DAYS - first, np.minimum(rng.exponential(240, n) + 1, SPAN_DAYS - first))
        popularity = 1.0 / np.arange(1, PRODUCTS + 1) ** 0.9
        price = np.round(rng.lognormal(1.0, 0.8, PRODUCTS), 2)
        price[rng.random(PRODUCTS) < 0.002] = 0.0  # a few free items (the cleaning drops value <= 0)
        codes = pa.array([f"{20000 + i}" + ("ABC"[i % 3] if i % 7 == 0 else "") for i in range(PRODUCTS)])
        return cls(ids=np.arange(12_000, 12_000 + n, dtype=np.int64),
                   cumulative_weight=np.cumsum(weight) / weight.sum(),
                   first_day=first, active_days=length,
                   country=rng.choice(len(COUNTRIES), n, p=COUNTRY_WEIGHTS / COUNTRY_WEIGHTS.sum()),
                   product_price=price,
                   product_cumulative=np.cumsum(popularity) / popularity.sum(),
                   product_codes=codes, country_names=pa.array(COUNTRIES))


def make_chunk(pop: Population, rows: int, rng: np.random.Generator, first_invoice: int) -> tuple[pa.Table, int]:
    """``rows`` log lines of whole invoices (the last one cut); returns the table and the next invoice number."""
    invoices = rows // 9 + 16
    lines = rng.geometric(1 / 9, invoices)
    while lines.sum() < rows:  # rare: draw more invoices until the chunk is full
        lines = np.concatenate([lines, rng.geometric(1 / 9, invoices // 4 + 16)])
    keep = np.searchsorted(np.cumsum(lines), rows) + 1
    lines = lines[:keep]
    lines[-1] -= lines.sum() - rows
    invoices = len(lines)
    customer = np.minimum(np.searchsorted(pop.cumulative_weight, rng.random(invoices)), len(pop.ids) - 1)
    day = pop.first_day[customer] + rng.random(invoices) * pop.active_days[customer]
    seconds = (np.floor(day) * 86_400 + rng.integers(8 * 3600, 20 * 3600, invoices)).astype("int64")
    cancelled = rng.random(invoices) < 0.02
    anonymous = rng.random(invoices) < 0.01
    number = np.arange(first_invoice, first_invoice + invoices)

    per_line = np.repeat(np.arange(invoices), lines)
    product = np.minimum(np.searchsorted(pop.product_cumulative, rng.random(rows)), PRODUCTS - 1)
    quantity = rng.geometric(0.3, rows).astype("int64")
    bulk = rng.random(rows) < 0.05
    quantity[bulk] *= 12
    quantity[cancelled[per_line]] *= -1
    # 0.3 % of lines repeated exactly (a line keyed twice), in place of the line after them.
    duplicate = np.flatnonzero(rng.random(rows - 1) < 0.003)
    for array in (product, quantity):
        array[duplicate + 1] = array[duplicate]
    per_line[duplicate + 1] = per_line[duplicate]

    invoice_text = pc.cast(pa.array(number[per_line]), pa.string())
    invoice_text = pc.if_else(pa.array(cancelled[per_line]), pc.binary_join_element_wise("C", invoice_text, ""),
                              invoice_text)
    customer_id = pa.array(pop.ids[customer[per_line]], mask=anonymous[per_line])
    table = pa.Table.from_arrays([
        invoice_text,
        pop.product_codes.take(pa.array(product)),
        pa.array(quantity),
        pa.array(START.astype("int64") + seconds[per_line], pa.int64()).cast(pa.timestamp("s")),
        pa.array(pop.product_price[product]),
        customer_id,
        pop.country_names.take(pa.array(pop.country[customer[per_line]])),
    ], schema=SCHEMA)
    return table, first_invoice + invoices


def generate(rows: int, path: Path, seed: int = 0) -> float:
    """Write a log of ``rows`` rows to ``path`` (atomically: a temporary name, then a rename); returns seconds."""
    started = time.perf_counter()
    pop = Population.make(rows, seed)
    rng = np.random.default_rng([seed, rows])
    partial = path.with_name(path.name + ".partial")
    invoice = 536_000
    with pq.ParquetWriter(partial, SCHEMA, compression="zstd") as writer:
        for begin in range(0, rows, CHUNK_ROWS):
            table, invoice = make_chunk(pop, min(CHUNK_ROWS, rows - begin), rng, invoice)
            writer.write_table(table, row_group_size=CHUNK_ROWS)
    partial.replace(path)
    return time.perf_counter() - started


def check_disk(out: Path, rows: list[int], reserve_gb: float) -> None:
    """Refuse (SystemExit with the figures) when the logs would leave less than ``reserve_gb`` free."""
    need = sum(BYTES_PER_ROW * r for r in rows if not log_path(out, r).exists())
    free = shutil.disk_usage(out).free
    if free - need < reserve_gb * 1e9:
        raise SystemExit(f"bench_spark: not enough disk in {out}: the logs need about {need / 1e9:.1f} GB, "
                         f"{free / 1e9:.1f} GB are free and {reserve_gb:.0f} GB must stay free "
                         "(--reserve-gb); use --out on a larger disk or fewer --sizes")


# ---- measuring a training run --------------------------------------------------------------------------

@dataclass
class RunResult:
    """One training run: what it took and how it ended."""

    engine: str
    rows: int
    ok: bool
    seconds: float
    peak_python_mb: float
    peak_jvm_mb: float
    peak_total_mb: float
    load_before: str
    load_after: str
    limit: str
    stopped: str = ""


def _load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def _available_bytes() -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) * 1024
    return 0


def measure(command: list[str], *, engine: str, rows: int, limit_bytes: int | None, timeout: float,
            limit_text: str, log_file: Path | None = None) -> RunResult:
    """Run ``command`` in its own process group, sampling the RSS of its process tree; kill the group after.
    The run's output goes to ``log_file`` (kept, for its progress and Spark's own errors) or a temporary file."""
    import psutil

    def preexec() -> None:
        os.setsid()
        if limit_bytes:
            resource.setrlimit(resource.RLIMIT_AS, (limit_bytes, limit_bytes))

    load_before = _load()
    started = time.perf_counter()
    log = open(log_file, "w+b") if log_file else tempfile.TemporaryFile()
    child = subprocess.Popen(command, cwd=REPO, stdout=log, stderr=subprocess.STDOUT, preexec_fn=preexec,
                             env={**os.environ, "PYTHONUNBUFFERED": "1"})
    root = psutil.Process(child.pid)
    peak_py = peak_jvm = peak_total = 0
    timed_out = False
    try:
        while child.poll() is None:
            if time.perf_counter() - started > timeout:
                timed_out = True
                break
            py = jvm = 0
            try:
                tree = [root, *root.children(recursive=True)]
            except psutil.NoSuchProcess:
                tree = []
            for proc in tree:
                try:
                    rss = proc.memory_info().rss
                    if proc.name().startswith("java"):
                        jvm += rss
                    else:
                        py += rss
                except psutil.NoSuchProcess:
                    pass
            peak_py, peak_jvm, peak_total = max(peak_py, py), max(peak_jvm, jvm), max(peak_total, py + jvm)
            time.sleep(0.5)
    finally:
        seconds = time.perf_counter() - started
        # The whole group: the job, the Spark driver JVM, its Python workers. No stray JVM survives a run.
        try:
            os.killpg(child.pid, signal.SIGKILL if timed_out else signal.SIGTERM)
        except ProcessLookupError:
            pass
        child.wait()
        # Give the JVM its shutdown (it deletes Spark's local dirs: a 100M-row run leaves ~9 GB when cut short).
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and _group_alive(child.pid):
            time.sleep(0.5)
        try:
            os.killpg(child.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    log.seek(0)
    output = log.read().decode("utf-8", "replace")
    log.close()
    ok = child.returncode == 0 and not timed_out
    stopped = ""
    if not ok:
        lines = [line for line in output.splitlines() if line.strip()]
        reason = "timed out" if timed_out else f"exit {child.returncode}"
        memory = [line for line in lines if "MemoryError" in line or "Cannot allocate" in line
                  or "OutOfMemory" in line or "bad_alloc" in line]
        stopped = f"{reason}: {(memory or lines or ['no output'])[-1].strip()[:300]}"
        progress = [line for line in lines if "stage" in line.lower() or "read" in line.lower()]
        if progress:
            stopped += f" | last progress: {progress[-1].strip()[:200]}"
    mb = 1024 * 1024
    return RunResult(engine=engine, rows=rows, ok=ok, seconds=round(seconds, 1),
                     peak_python_mb=round(peak_py / mb), peak_jvm_mb=round(peak_jvm / mb),
                     peak_total_mb=round(peak_total / mb), load_before=load_before, load_after=_load(),
                     limit=limit_text, stopped=stopped)


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def train_command(engine: str, data: Path, store: Path, driver_memory: str, spark_conf: list[str] = ()
                  ) -> list[str]:
    """The training job's command line for one engine."""
    command = [sys.executable, "-m", "training_job", "train", "--data", str(data), "--preset", "transactions",
               "--store", str(store), "--model", "bench"]
    if engine == "spark":  # pandas is the default engine
        command += ["--engine", "spark", "--spark-master", "local[2]", "--spark-conf", f"spark.driver.memory={driver_memory}"]
        command += [item for pair in spark_conf for item in ("--spark-conf", pair)]
    return command


def run(args: argparse.Namespace) -> int:
    """Train every generated log with every engine; print and record the figures."""
    out = Path(args.out)
    results = []
    for rows in [parse_size(s) for s in args.sizes.split(",")]:
        data = log_path(out, rows)
        if not data.exists():
            raise SystemExit(f"bench_spark: {data} not found; run `bench_spark.py generate --out {out}` first")
        for engine in args.engines.split(","):
            limit_bytes, limit_text = None, ""
            if engine == "pandas":
                limit_bytes = min(int(args.memory_limit_gb * 2**30), _available_bytes() - 2 * 2**30)
                limit_text = f"RLIMIT_AS {limit_bytes / 2**30:.1f} GiB"
            else:
                limit_text = " ".join([f"spark.driver.memory={args.driver_memory}", *args.spark_conf])
            with tempfile.TemporaryDirectory(dir=out) as store, \
                    tempfile.TemporaryDirectory(dir=out, prefix="spark-local-") as scratch:
                # Spark's shuffle files and disk caches (about 10 GB at 100M rows) go to a folder removed after
                # the run, beside the logs, unless --spark-conf names one.
                spark_conf = list(args.spark_conf)
                if not any(item.startswith("spark.local.dir=") for item in spark_conf):
                    spark_conf.append(f"spark.local.dir={scratch}")
                result = measure(train_command(engine, data, Path(store), args.driver_memory, spark_conf),
                                 engine=engine, rows=rows, limit_bytes=limit_bytes, timeout=args.timeout,
                                 limit_text=limit_text, log_file=out / f"train-{engine}-{size_label(rows)}.log")
            results.append(result)
            print(_row(result), flush=True)
            with (out / "results.jsonl").open("a") as handle:
                handle.write(json.dumps({**asdict(result), "at": time.strftime("%Y-%m-%dT%H:%M:%SZ",
                                                                                 time.gmtime())}) + "\n")
    return 0 if all(r.ok or r.engine == "pandas" for r in results) else 1


def _row(r: RunResult) -> str:
    status = "ok" if r.ok else f"STOPPED ({r.stopped})"
    return (f"{size_label(r.rows):>5} rows  {r.engine:<6} {r.seconds:8.1f} s  python {r.peak_python_mb:6.0f} MB  "
            f"jvm {r.peak_jvm_mb:6.0f} MB  total {r.peak_total_mb:6.0f} MB  [{r.limit}]  "
            f"load {r.load_before} -> {r.load_after}  {status}")


def main(argv: list[str] | None = None) -> int:
    """Parse the command line and generate or run."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    gen = sub.add_parser("generate", help="write the transaction logs as Parquet")
    gen.add_argument("--out", required=True, help="folder of the logs (created)")
    gen.add_argument("--sizes", default="10M,50M,100M")
    gen.add_argument("--seed", type=int, default=0)
    gen.add_argument("--reserve-gb", type=float, default=10.0, help="disk that must stay free")
    go = sub.add_parser("run", help="train the logs with each engine and report time and peak memory")
    go.add_argument("--out", required=True)
    go.add_argument("--sizes", default="10M,50M,100M")
    go.add_argument("--engines", default="pandas,spark")
    go.add_argument("--memory-limit-gb", type=float, default=16.0, help="RLIMIT_AS of the pandas path")
    go.add_argument("--driver-memory", default="2g", help="spark.driver.memory of the Spark runs")
    go.add_argument("--spark-conf", action="append", default=[], metavar="KEY=VALUE",
                    help="more Spark settings for the Spark runs (repeatable)")
    go.add_argument("--timeout", type=float, default=5400.0, help="seconds before a run is stopped")
    args = parser.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if args.command == "run":
        return run(args)
    sizes = [parse_size(s) for s in args.sizes.split(",")]
    check_disk(out, sizes, args.reserve_gb)
    for rows in sizes:
        path = log_path(out, rows)
        if path.exists():
            print(f"{path}: exists, kept", flush=True)
            continue
        load = _load()
        seconds = generate(rows, path, args.seed)
        print(f"{path}: {rows:,} rows, {path.stat().st_size / 1e9:.2f} GB in {seconds:.0f} s "
              f"(load {load} -> {_load()})", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
