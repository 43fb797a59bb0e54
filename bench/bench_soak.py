"""Soak: a real scoring server under mixed load for a long while (issue 16 item 5).

    python -m bench.bench_soak                    # 10 minutes (--minutes N), a publish every 30 s
    python -m bench.bench_soak --quick            # 20 s, a publish every 4 s: the suite's smoke run

One ``python -m scoring_service`` subprocess serves the Mall test model from a temporary store. At once:

- Predict: ``--predict-threads`` callers, each at most ``--predict-rate`` calls/s (the generated stub, so that
  no client retry hides a failure);
- PredictStream: ``--stream-threads`` callers, each a stream of 1,000-row batches (``--stream-batches`` per
  stream, then a new stream), at most ``--batch-rate`` batches/s;
- WatchModel: ``--watchers`` long watches, each of which must see every published version, plus one watch
  re-opened after each version it sees;
- a publish (a new version made CURRENT) every ``--publish-every`` seconds, by this process.

Reported: the server's RSS every ``--sample-every`` seconds, its growth after warm-up (the first quarter of
the run, or the first five publishes if longer: the server keeps the previous versions in its pinned-version
cache, ``--pinned-cache`` 4, so memory rises until they are all held), failed calls (every error counts, with
its status code), and Predict and stream-batch p99 per minute; the 1-minute load average beside each minute.
The machine is shared: the load column says how busy it was. Exit status 1 when a target is missed.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import tempfile
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # also runnable as a plain script
    sys.path.insert(0, str(ROOT))

import grpc  # noqa: E402
import numpy as np  # noqa: E402

from bench.bench_scoring import rss_mb, start_server  # noqa: E402
from segmentation.v1 import scoring_pb2 as pb  # noqa: E402
from segmentation.v1 import scoring_pb2_grpc  # noqa: E402

log = logging.getLogger("bench.soak")
NUMERIC = ("Age", "Annual Income (k$)", "Spending Score (1-100)")
BATCH_ROWS = 1000
RSS_GROWTH_LIMIT = 0.05


@dataclass
class Tally:
    """Thread-safe counts and latencies, bucketed by minute since the start."""

    started: float
    lock: threading.Lock = field(default_factory=threading.Lock)
    ok: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    failed: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    failures: list[str] = field(default_factory=list)
    latency: dict[tuple[str, int], list[float]] = field(default_factory=lambda: defaultdict(list))

    def record(self, kind: str, seconds: float) -> None:
        """One successful call (or stream batch) of ``kind`` that took ``seconds``."""
        minute = int((time.monotonic() - self.started) // 60)
        with self.lock:
            self.ok[kind] += 1
            self.latency[(kind, minute)].append(seconds)

    def fail(self, kind: str, error: BaseException) -> None:
        """One failed call of ``kind``."""
        code = error.code().name if isinstance(error, grpc.RpcError) else type(error).__name__
        with self.lock:
            self.failed[kind] += 1
            if len(self.failures) < 20:
                self.failures.append(f"{kind}: {code}: {str(error)[:200]}")


def _customers(n: int, seed: int) -> tuple[dict[str, np.ndarray], list[str]]:
    rng = np.random.default_rng(seed)
    numeric = {"Age": rng.uniform(18, 70, n), "Annual Income (k$)": rng.uniform(15, 140, n),
               "Spending Score (1-100)": rng.uniform(1, 100, n)}
    return numeric, list(rng.choice(["Male", "Female"], n))


def _pace(rate: float, next_at: float) -> float:
    """Sleep until ``next_at`` and return the next slot at ``rate`` per second (no catching up after a stall)."""
    now = time.monotonic()
    if next_at > now:
        time.sleep(next_at - now)
    return max(next_at, now) + 1.0 / rate


def predict_loop(stub: Any, tally: Tally, stop: threading.Event, rate: float, seed: int) -> None:
    """Predict one customer at a time, at most ``rate`` calls/s."""
    numeric, gender = _customers(512, seed)
    requests = [pb.PredictRequest(customer=pb.Customer(
        id=f"c{i}", numbers={k: float(v[i]) for k, v in numeric.items()}, categories={"Gender": gender[i]}))
        for i in range(512)]
    next_at, i = time.monotonic(), 0
    while not stop.is_set():
        next_at = _pace(rate, next_at)
        t0 = time.perf_counter()
        try:
            stub.Predict(requests[i % 512], timeout=10)
            tally.record("Predict", time.perf_counter() - t0)
        except grpc.RpcError as exc:
            tally.fail("Predict", exc)
        i += 1


def stream_loop(stub: Any, tally: Tally, stop: threading.Event, rate: float, batches: int, seed: int) -> None:
    """Open a PredictStream, send ``batches`` 1,000-row batches at most ``rate``/s, check each answer, repeat."""
    numeric, gender = _customers(BATCH_ROWS, seed)
    request = pb.PredictBatchRequest(
        numeric=[pb.NumericColumn(name=k, values=v.tolist()) for k, v in numeric.items()],
        categorical=[pb.CategoricalColumn(name="Gender", values=gender)])
    while not stop.is_set():
        sent: dict[str, float] = {}

        def requests(sent: dict[str, float] = sent) -> Iterator[pb.PredictBatchRequest]:
            next_at = time.monotonic()
            for b in range(batches):
                if stop.is_set():
                    return
                next_at = _pace(rate, next_at)
                sent[str(b)] = time.perf_counter()
                message = pb.PredictBatchRequest()
                message.CopyFrom(request)
                message.batch_id = str(b)
                yield message

        try:
            for response in stub.PredictStream(requests(), timeout=batches / rate + 60):
                if len(response.segment_id) != BATCH_ROWS or response.row_errors or response.batch_error:
                    raise RuntimeError(f"batch {response.batch_id}: {len(response.segment_id)} rows, "
                                       f"{len(response.row_errors)} row errors {response.batch_error!r}")
                tally.record("PredictStream batch", time.perf_counter() - sent.pop(response.batch_id))
        except Exception as exc:  # noqa: BLE001 - every failure is counted, none ends the caller
            tally.fail("PredictStream", exc)


def watch_loop(stub: Any, tally: Tally, stop: threading.Event, seen: list[str], reopen: bool) -> None:
    """Watch the default model; append every version announced to ``seen``; with ``reopen``, a new watch after
    each change."""
    while not stop.is_set():
        call = stub.WatchModel(pb.WatchModelRequest())
        stop_hook = threading.Thread(target=lambda c=call: (stop.wait(), c.cancel()), daemon=True)
        stop_hook.start()
        try:
            for count, info in enumerate(call, 1):
                if not seen or seen[-1] != info.version:
                    seen.append(info.version)
                tally.record("WatchModel message", 0.0)
                if reopen and count >= 2:  # a change after the first answer: re-open the watch
                    call.cancel()
        except grpc.RpcError as exc:
            if exc.code() != grpc.StatusCode.CANCELLED:
                tally.fail("WatchModel", exc)
                time.sleep(0.5)


def publish_loop(store: Path, stop: threading.Event, every: float, published: list[tuple[float, str]],
                 started: float) -> None:
    """Publish a new version of the test model every ``every`` seconds."""
    from segmentation_core.store import ModelStore
    from tests import model_factory

    next_at = time.monotonic() + every
    while not stop.wait(max(0.0, next_at - time.monotonic())):
        version = model_factory.publish(ModelStore(store), data="mall", k=5)
        published.append((time.monotonic() - started, version))
        log.info("published %s", version)
        next_at += every


def soak(seconds: float, *, publish_every: float, predict_threads: int, predict_rate: float,
         stream_threads: int, batch_rate: float, stream_batches: int, watchers: int,
         sample_every: float) -> dict[str, Any]:
    """Run the soak and return its figures (see the module docstring)."""
    from segmentation_core.store import ModelStore
    from tests import model_factory

    with tempfile.TemporaryDirectory(prefix="bench-soak-") as tmp:
        work = Path(tmp)
        store = work / "store"
        model_factory.publish(ModelStore(store), data="mall", k=5)
        server = start_server(store, work)
        channel = grpc.insecure_channel(server.target)
        stub = scoring_pb2_grpc.ScoringServiceStub(channel)
        started = time.monotonic()
        tally, stop = Tally(started), threading.Event()
        published: list[tuple[float, str]] = [(0.0, "v0001")]
        seen: list[list[str]] = [[] for _ in range(watchers)]
        reopened: list[str] = []
        threads = [threading.Thread(target=predict_loop, args=(stub, tally, stop, predict_rate, i))
                   for i in range(predict_threads)]
        threads += [threading.Thread(target=stream_loop, args=(stub, tally, stop, batch_rate, stream_batches, 100 + i))
                    for i in range(stream_threads)]
        threads += [threading.Thread(target=watch_loop, args=(stub, tally, stop, seen[i], False))
                    for i in range(watchers)]
        threads.append(threading.Thread(target=watch_loop, args=(stub, tally, stop, reopened, True)))
        threads.append(threading.Thread(target=publish_loop, args=(store, stop, publish_every, published, started)))
        samples: list[tuple[float, float, float]] = []  # (seconds, RSS MiB, 1-minute load)
        try:
            for t in threads:
                t.daemon = True
                t.start()
            while (elapsed := time.monotonic() - started) < seconds:
                samples.append((elapsed, rss_mb(server.proc.pid), os.getloadavg()[0]))
                if server.proc.poll() is not None:
                    raise RuntimeError(f"the server exited with {server.proc.returncode}")
                time.sleep(min(sample_every, max(0.0, seconds - elapsed)))
            samples.append((time.monotonic() - started, rss_mb(server.proc.pid), os.getloadavg()[0]))
            time.sleep(1.0)  # the last publish's announcement reaches every watcher
        finally:
            stop.set()
            for t in threads:
                t.join(timeout=15)
            channel.close()
            server.stop()
        alive = [t.name for t in threads if t.is_alive()]
    return _figures(seconds, publish_every, tally, samples, published, seen, reopened, alive)


def _figures(seconds: float, publish_every: float, tally: Tally, samples: list[tuple[float, float, float]],
             published: list[tuple[float, str]], seen: list[list[str]], reopened: list[str],
             alive: list[str]) -> dict[str, Any]:
    warmup = max(seconds / 4, 5 * publish_every) if seconds >= 8 * publish_every else seconds / 4
    after = [rss for t, rss, _ in samples if t >= warmup]
    base = after[0] if after else float("nan")
    per_minute = []
    for minute in range(int(np.ceil(seconds / 60))):
        row: dict[str, Any] = {"minute": minute + 1}
        for kind in ("Predict", "PredictStream batch"):
            lat = tally.latency.get((kind, minute), [])
            row[kind] = {"calls": len(lat), "p99_ms": float(np.percentile(lat, 99) * 1e3) if lat else None}
        loads = [load for t, _, load in samples if minute * 60 <= t < (minute + 1) * 60]
        row["load_1min"] = round(float(np.mean(loads)), 2) if loads else None
        per_minute.append(row)
    versions = [v for _, v in published]
    return {
        "seconds": seconds, "publish_every_s": publish_every, "warmup_s": warmup,
        "calls_ok": dict(tally.ok), "calls_failed": dict(tally.failed), "failures": tally.failures,
        "failed_total": sum(tally.failed.values()),
        "rss_mb": [(round(t, 1), round(rss, 1), round(load, 2)) for t, rss, load in samples],
        "rss_after_warmup_mb": base, "rss_end_mb": after[-1] if after else float("nan"),
        "rss_max_after_warmup_mb": max(after) if after else float("nan"),
        "rss_growth": (max(after) - base) / base if after else float("nan"),
        "per_minute": per_minute, "versions_published": versions,
        "watchers_saw_every_version": all(set(versions) <= set(w) for w in seen),
        "watch_reopen_saw_last": bool(reopened) and reopened[-1] == versions[-1],
        "threads_left_running": alive,
    }


def report(figures: dict[str, Any]) -> bool:
    """Print the figures; True when every target is met."""
    print(f"soak: {figures['seconds']:.0f} s, a publish every {figures['publish_every_s']:.0f} s "
          f"({len(figures['versions_published'])} versions), warm-up {figures['warmup_s']:.0f} s")
    print(f"calls ok: {json.dumps(figures['calls_ok'])}")
    print(f"calls failed: {figures['failed_total']} {json.dumps(figures['calls_failed'])}")
    for line in figures["failures"]:
        print(f"  {line}")
    print(f"{'minute':>6} {'Predict calls':>13} {'p99 ms':>8} {'batches':>8} {'p99 ms':>8} {'load':>6}")
    for row in figures["per_minute"]:
        p, s = row["Predict"], row["PredictStream batch"]
        fmt = lambda v: f"{v:8.2f}" if v is not None else f"{'-':>8}"  # noqa: E731
        print(f"{row['minute']:>6} {p['calls']:>13} {fmt(p['p99_ms'])} {s['calls']:>8} {fmt(s['p99_ms'])} "
              f"{row['load_1min'] if row['load_1min'] is not None else '-':>6}")
    rss = figures["rss_mb"]
    step = max(1, len(rss) // 12)
    print("RSS MiB (s: MiB @ load): " + ", ".join(f"{t:.0f}: {m:.0f} @ {load}" for t, m, load in rss[::step]))
    growth = figures["rss_growth"]
    print(f"RSS after warm-up {figures['rss_after_warmup_mb']:.1f} MiB, max {figures['rss_max_after_warmup_mb']:.1f}, "
          f"end {figures['rss_end_mb']:.1f}: growth {growth:+.1%} (target < {RSS_GROWTH_LIMIT:.0%})")
    print(f"every watcher saw every version: {figures['watchers_saw_every_version']}; "
          f"re-opened watch saw the last: {figures['watch_reopen_saw_last']}")
    ok = (figures["failed_total"] == 0 and growth < RSS_GROWTH_LIMIT and figures["watchers_saw_every_version"]
          and figures["watch_reopen_saw_last"] and not figures["threads_left_running"])
    print("PASS" if ok else "FAIL")
    return ok


def main(argv: list[str] | None = None) -> int:
    """Parse arguments, run the soak, print the report (and JSON with --json)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=10.0, help="how long (default 10)")
    parser.add_argument("--quick", action="store_true", help="20 s, a publish every 4 s (the suite's smoke run)")
    parser.add_argument("--publish-every", type=float, default=30.0, help="seconds between publishes (default 30)")
    parser.add_argument("--predict-threads", type=int, default=2)
    parser.add_argument("--predict-rate", type=float, default=100.0, help="Predict calls/s per thread")
    parser.add_argument("--stream-threads", type=int, default=1)
    parser.add_argument("--batch-rate", type=float, default=5.0, help="1,000-row batches/s per stream")
    parser.add_argument("--stream-batches", type=int, default=50, help="batches per stream before a new one")
    parser.add_argument("--watchers", type=int, default=4)
    parser.add_argument("--sample-every", type=float, default=5.0, help="seconds between RSS samples")
    parser.add_argument("--json", type=Path, help="also write the figures to this JSON file")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    seconds, publish_every, sample_every = args.minutes * 60, args.publish_every, args.sample_every
    if args.quick:
        seconds, publish_every, sample_every = 20.0, 4.0, 1.0
    print(f"load before: {os.getloadavg()}")
    figures = soak(seconds, publish_every=publish_every, predict_threads=args.predict_threads,
                   predict_rate=args.predict_rate, stream_threads=args.stream_threads, batch_rate=args.batch_rate,
                   stream_batches=args.stream_batches, watchers=args.watchers, sample_every=sample_every)
    figures["load_after"] = os.getloadavg()
    print(f"load after: {figures['load_after']}")
    if args.json:
        args.json.write_text(json.dumps(figures, indent=1))
    return 0 if report(figures) else 1


if __name__ == "__main__":
    sys.exit(main())
