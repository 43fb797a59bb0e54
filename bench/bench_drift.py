"""Overhead of the drift accounting on PredictStream and Predict: the same runs with and without it.

    python -m bench.bench_drift              # about a minute on 2 cores
    python -m bench.bench_drift --rounds 9   # more alternating rounds

Two ``python -m scoring_service`` processes serve the same model (bench_scoring's: KMeans(6) on make_blobs
100,000 x 7, published with its drift reference by ``tests/model_factory.py``), one with the accounting on
(``--drift-window-rows 50000``, ``--drift-sample-rate`` as ``--sample-rate``) and one with it off (``--drift-window-rows 0``). Each round
measures both, in alternating order, so a change of machine load hits both alike:

- the server's own work per 10,000-row batch (decode, transform, score, account, encode: all but the gRPC
  transport), in this process, from ``time.process_time`` over 100 batches: the steadiest figure, and an
  upper bound of the relative overhead (the transport's share is left out of the denominator);
- PredictStream: rows/s of one ``predict_frame`` of ``--rows`` rows in 10,000-row batches, and the server's
  CPU time per batch (from /proc, in 10 ms ticks);
- Predict: calls/s and p50 of sequential calls through the generated stub, and the server's CPU per call.

Reported: the median of the rounds for each side, the overhead of the medians, and the spread (min..max of
the per-round overheads), with the load average before and after.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import grpc  # noqa: E402
import numpy as np  # noqa: E402

from bench.bench_scoring import _blob_frame, _requests, _stream_once, cpu_s, latency, start_server  # noqa: E402
from segmentation.v1 import scoring_pb2_grpc  # noqa: E402


def _load() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def _start(store: Path, workdir: Path, **flags: object):
    """A server whose flags are set through their SCORING_* variables (every server flag reads one)."""
    variables = {f"SCORING_{name.upper()}": str(value) for name, value in flags.items()}
    previous = {name: os.environ.get(name) for name in variables}
    os.environ.update(variables)
    try:
        return start_server(store, workdir)
    finally:
        for name, value in previous.items():
            if value is None:
                os.environ.pop(name)
            else:
                os.environ[name] = value


def _predict_run(target: str, pid: int, requests: list, calls: int) -> dict[str, float]:
    with grpc.insecure_channel(target) as channel:
        stub = scoring_pb2_grpc.ScoringServiceStub(channel)
        counter = iter(range(1 << 62))
        before = cpu_s(pid)
        run = latency(lambda: stub.Predict(requests[next(counter) & 63], timeout=5.0), calls, warmup=200)
        run["server_cpu_us"] = (cpu_s(pid) - before) / (calls + 200) * 1e6
    return run


def handler_rounds(store: Path, rounds: int, batches: int, sample_rate: float,
                   frame_columns: dict) -> dict[str, list[float]]:
    """The server's own work per 10,000-row PredictStream batch (decode, transform, score, account, encode:
    everything but the gRPC transport), in this process, with and without the accounting, alternating; us."""
    from scoring_service import wire
    from scoring_service.drift_monitor import DriftMonitor
    from scoring_service.metrics import ServiceMetrics
    from scoring_service.registry import Registry
    from scoring_service.servicer import ScoringService, _StreamAnswers
    from segmentation_core.store import ModelStore

    registry = Registry(ModelStore(store), "customers")
    registry.poll()
    request = wire.encode_batch_request({k: v[:10_000] for k, v in frame_columns.items()})
    services = {"on": ScoringService(registry, ServiceMetrics(), DriftMonitor(50_000, 3600.0, sample_rate=sample_rate)),
                "off": ScoringService(registry, ServiceMetrics(), DriftMonitor(0, 3600.0))}
    out: dict[str, list[float]] = {"on": [], "off": []}
    for i in range(rounds):
        for side in (("on", "off") if i % 2 == 0 else ("off", "on")):
            answers = _StreamAnswers(services[side])
            answers.answer(request)
            started = time.process_time()
            for _ in range(batches):
                answers.answer(request)
            out[side].append((time.process_time() - started) / batches * 1e6)
    return out


def _summary(on: list[float], off: list[float], higher_is_better: bool) -> dict[str, float]:
    """Medians, the overhead of the medians in % (positive = the accounting costs), and its per-round spread."""
    def overhead(a: float, b: float) -> float:
        return (b / a - 1) * 100 if higher_is_better else (a / b - 1) * 100
    rounds = [overhead(a, b) for a, b in zip(on, off)]
    return {"on_median": float(np.median(on)), "off_median": float(np.median(off)),
            "overhead_pct": overhead(float(np.median(on)), float(np.median(off))),
            "round_min_pct": float(min(rounds)), "round_max_pct": float(max(rounds))}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7, help="alternating rounds (>= 5 for the report)")
    parser.add_argument("--rows", type=int, default=2_000_000, help="rows per PredictStream run")
    parser.add_argument("--calls", type=int, default=2000, help="Predict calls per run")
    parser.add_argument("--sample-rate", type=float, default=20_000.0,
                        help="the accounting server's --drift-sample-rate (0: bin every row)")
    parser.add_argument("--json", type=Path, help="also write the figures to this JSON file")
    args = parser.parse_args(argv)
    from segmentation_core.store import ModelStore
    from tests import model_factory

    load_before = _load()
    with tempfile.TemporaryDirectory(prefix="bench-drift-") as tmp:
        store = Path(tmp) / "store"
        model_factory.publish(ModelStore(store), data="blobs", k=6, reference=True)
        blob = _blob_frame(20_000, seed=2)
        handler = handler_rounds(store, args.rounds, 100, args.sample_rate,
                                 {c: blob[c].to_numpy() for c in blob.columns})
        servers = {"on": _start(store, Path(tmp), drift_window_rows=50_000, drift_sample_rate=args.sample_rate),
                   "off": _start(store, Path(tmp), drift_window_rows=0)}
        try:
            frame = _blob_frame(args.rows, seed=1)
            requests = _requests(frame.to_numpy())
            stream = {"on": [], "off": []}
            stream_cpu = {"on": [], "off": []}
            predict = {"on": [], "off": []}
            predict_cpu = {"on": [], "off": []}
            for i in range(args.rounds):
                for side in (("on", "off") if i % 2 == 0 else ("off", "on")):
                    s = servers[side]
                    rate, cpu, _own = _stream_once(s.target, frame, 10_000, s.proc.pid)
                    stream[side].append(rate)
                    stream_cpu[side].append(cpu)
                    run = _predict_run(s.target, s.proc.pid, requests, args.calls)
                    predict[side].append(run["calls_per_s"])
                    predict_cpu[side].append(run["server_cpu_us"])
        finally:
            for s in servers.values():
                s.stop()
    figures = {
        "rounds": args.rounds, "sample_rate": args.sample_rate, "rows_per_run": args.rows, "calls_per_run": args.calls,
        "load_before": load_before, "load_after": _load(),
        "handler_cpu_us_per_batch": _summary(handler["on"], handler["off"], False),
        "stream_rows_per_s": _summary(stream["on"], stream["off"], True),
        "stream_server_cpu_us_per_batch": _summary(stream_cpu["on"], stream_cpu["off"], False),
        "predict_calls_per_s": _summary(predict["on"], predict["off"], True),
        "predict_server_cpu_us_per_call": _summary(predict_cpu["on"], predict_cpu["off"], False),
    }
    print(f"drift accounting overhead (--drift-sample-rate {args.sample_rate:g}), {args.rounds} alternating rounds (load {figures['load_before']} -> "
          f"{figures['load_after']})")
    for name, f in figures.items():
        if isinstance(f, dict):
            print(f"  {name:32s} on {f['on_median']:12.1f}  off {f['off_median']:12.1f}  overhead "
                  f"{f['overhead_pct']:+5.1f}%  (rounds {f['round_min_pct']:+.1f}% .. {f['round_max_pct']:+.1f}%)")
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
