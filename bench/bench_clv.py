"""CLV bench: fit time on Online Retail, the CDNOW hold-out check of Fader, Hardie and Lee (2005), and
PredictStream throughput with and without the CLV figures.

    python bench/bench_clv.py [--quick]

1. Fit: BG/NBD + Gamma-Gamma on the full Online Retail log's 4,338 customers (days), best of 3, and the
   tables the scoring side interpolates.
2. Hold-out: CDNOW 1/10 sample, calibrated on 1997-01-01..09-30 (weeks 1-39), BG/NBD's expected repeat
   purchases in weeks 40-78 per customer (exact, scipy's hyp2f1), against the purchases the customers
   made, averaged per number of calibration repeat purchases (0..7+) as in the paper's figure.
3. Throughput: the CDNOW sample model served by ``python -m scoring_service`` (a subprocess); one stream of
   the customers repeated to 500,000 rows (10,000-row batches) through ``predict_frame``, in three variants,
   alternating, median of ``--rounds`` (>= 5) rounds with the spread: "with CLV" (the recipe's table: the
   three features and the CLV inputs as the client sends them, in single precision and less those the
   service derives; the answer has the four CLV figures), "without CLV inputs" (the same model, the three
   features only: the baseline of the target) and "model without CLV" (the same three RFM columns trained
   as a customer table, same k). In the same rounds, the floor: the very request and reply bytes of a CLV
   batch and of a plain one through gRPC to a null server that answers a fixed reply (no decoding, no
   scoring), which shows what moving the extra bytes costs by itself.
4. Where the extra time of a CLV batch goes, measured in the same run: each stage of one 10,000-row batch
   timed in this process on the real code (the client's column extraction, its share per batch of the
   streamed frame, and request encoding, the server's request decoding, feature transform and segment
   scoring, CLV input check, derivation and math, response encoding, the client's response decoding into
   the result columns; CPU time, best of 7 loops), with and without the CLV inputs, the bytes of each
   message, and the wall time per batch of those bytes through the null server and end to end.
Every figure is printed with the machine's load average (``os.getloadavg``).
"""
from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # also runnable as a plain script
    sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from bench.bench_scoring import _stream_once, start_server  # noqa: E402
from segmentation_core.clv import INPUTS  # noqa: E402
from segmentation_core.recipe import clean_log, customer_table  # noqa: E402
from segmentation_core.store import ModelStore  # noqa: E402
from segmentation_core.tables import read_table  # noqa: E402
from training_job.clv_fit import exact_g, fit_bgnbd, fit_clv, fit_gamma_gamma  # noqa: E402
from training_job.config import load_config, load_preset  # noqa: E402
from training_job.train import train  # noqa: E402

DATASETS = ROOT.parent / "shared" / "datasets"


def load() -> str:
    """The 1-minute load average, for every printed figure."""
    return f"load {os.getloadavg()[0]:.2f}"


def cdnow_sample(folder: Path) -> Path:
    """CDNOW_sample.txt in the master file's layout (its header; the sample's running id dropped)."""
    header = (DATASETS / "CDNOW_master.txt").read_text().splitlines()[0]
    rows = [header] + [" ".join(line.split()[i] for i in (0, 2, 3, 4))
                       for line in (DATASETS / "CDNOW_sample.txt").read_text().splitlines()]
    path = folder / "cdnow_sample.txt"
    path.write_text("\n".join(rows) + "\n")
    return path


def cdnow_config(folder: Path) -> Path:
    """The transactions-cdnow preset plus the reference's [clv] section."""
    path = folder / "cdnow.toml"
    path.write_text((ROOT / "training_job" / "presets" / "transactions-cdnow.toml").read_text()
                    + '\n[clv]\ncalibration_end = "1997-09-30"\ntime_unit = "weeks"\n')
    return path


def bench_fit(repeats: int) -> None:
    """Fit time on the full Online Retail log."""
    log = clean_log(read_table(DATASETS / "online_retail.csv.gz"), load_preset("transactions").recipe())
    customers, _ = customer_table(log)
    x, t_x, T, m = (customers[c].to_numpy() for c in INPUTS)
    times = {"bgnbd": [], "gamma_gamma": [], "all": []}
    for _ in range(repeats):
        started = time.perf_counter()
        fit_bgnbd(x, t_x, T)
        times["bgnbd"].append(time.perf_counter() - started)
        started = time.perf_counter()
        fit_gamma_gamma(x, m)
        times["gamma_gamma"].append(time.perf_counter() - started)
        started = time.perf_counter()
        model = fit_clv(customers, time_unit="days", horizon_days=365, discount_rate_annual=0.1,
                        calibration_end=None)
        times["all"].append(time.perf_counter() - started)
    print(f"\n## CLV fit, Online Retail ({len(customers):,} customers, {int((x > 0).sum()):,} repeat), best of "
          f"{repeats}")
    print(f"BG/NBD {min(times['bgnbd']):.2f} s, Gamma-Gamma {min(times['gamma_gamma']):.2f} s, both + scoring "
          f"tables {min(times['all']):.2f} s ({load()})")
    print(f"BG/NBD r={model.r:.4g} alpha={model.alpha:.4g} a={model.a:.4g} b={model.b:.4g}; "
          f"Gamma-Gamma p={model.p:.4g} q={model.q:.4g} v={model.v:.4g}")


def bench_holdout(folder: Path) -> None:
    """The paper's hold-out check: weeks 40-78, per calibration frequency."""
    config = load_config(cdnow_config(folder))
    log = clean_log(read_table(cdnow_sample(folder)), config.recipe())
    calibration, _ = customer_table(log, "1997-10-01")
    model = fit_clv(calibration, time_unit="weeks", horizon_days=273, discount_rate_annual=0.0,
                    calibration_end="1997-09-30")
    x, t_x, T = (calibration[c].to_numpy() for c in INPUTS[:3])
    alive = model.p_alive(x, t_x, T)
    predicted = alive * exact_g(model.r, model.a, model.b)(x, 39.0 / (model.alpha + T))
    lines = log.lines
    holdout = lines[(lines["day"] >= "1997-10-01") & (lines["day"] <= "1998-06-30")]
    actual = holdout.drop_duplicates(["customer", "day"]).groupby("customer").size()
    actual = actual.reindex(calibration.index, fill_value=0).to_numpy()
    group = np.minimum(x, 7).astype(int)
    print(f"\n## CDNOW hold-out (weeks 40-78), {len(x):,} customers; r={model.r:.3f} alpha={model.alpha:.3f} "
          f"a={model.a:.3f} b={model.b:.3f}")
    print("| repeat purchases in weeks 1-39 | customers | actual, weeks 40-78 | BG/NBD | ")
    print("|---|---|---|---|")
    for g in range(8):
        pick = group == g
        label = f"{g}+" if g == 7 else str(g)
        print(f"| {label} | {int(pick.sum())} | {actual[pick].mean():.2f} | {predicted[pick].mean():.2f} |")
    print(f"| all | {len(x)} | {actual.sum():,} total | {predicted.sum():,.0f} total |")


def _null_server_main(port: int, reply_path: str) -> None:
    """A bare gRPC server answering every PredictStream request with the fixed reply bytes of ``reply_path``
    (a real server's answer to a 10,000-row batch): what the transport alone costs, no decoding or scoring."""
    from concurrent import futures

    import grpc

    from scoring_service import wire

    reply = Path(reply_path).read_bytes()
    answer = grpc.stream_stream_rpc_method_handler(lambda requests, context: (reply for _ in requests))
    handler = grpc.method_handlers_generic_handler(wire.SERVICE, {"PredictStream": answer})
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4),
                         options=[("grpc.max_receive_message_length", 64 << 20)])
    server.add_generic_rpc_handlers((handler,))
    server.add_insecure_port(f"127.0.0.1:{port}")
    server.start()
    server.wait_for_termination()


def _transport_once(request: bytes, reply_path: Path, batches: int) -> tuple[float, float, float]:
    """rows/s of ``batches`` copies of one pre-encoded 10,000-row request against the null server answering
    the reply of ``reply_path``, and the CPU per batch in us of the server and this process."""
    import grpc

    from bench.bench_scoring import _free_port, cpu_s
    from scoring_service import wire

    port = _free_port()
    proc = subprocess.Popen([sys.executable, str(Path(__file__).resolve()), "--null-server", str(port),
                             "--null-reply", str(reply_path)], cwd=ROOT)
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}", options=[("grpc.max_receive_message_length", 64 << 20),
                                                                  ("grpc.max_send_message_length", 64 << 20)]) as ch:
            grpc.channel_ready_future(ch).result(timeout=30)
            call = wire.predict_stream_method(ch)
            for _ in call(iter([request] * 4)):  # warm the connection
                pass
            cpu_before, own_before, started = cpu_s(proc.pid), time.process_time(), time.perf_counter()
            for reply in call(iter([request] * batches)):
                wire.decode_batch_response(reply)
            elapsed = time.perf_counter() - started
            return (batches * 10_000 / elapsed, (cpu_s(proc.pid) - cpu_before) / batches * 1e6,
                    (time.process_time() - own_before) / batches * 1e6)
    finally:
        proc.terminate()
        proc.wait()


def _best_us(fn: Callable[[], object], loops: int = 30, repeats: int = 7) -> float:
    """CPU time of one call of ``fn`` in us (this process's CPU clock: a load that preempts it does not count):
    the best of ``repeats`` means over ``loops`` calls."""
    best = math.inf
    for _ in range(repeats):
        started = time.process_time()
        for _ in range(loops):
            fn()
        best = min(best, (time.process_time() - started) / loops)
    return best * 1e6


STAGES = ("client: columns of the frame (its share)", "client: encode request", "server: decode request",
          "server: features + segment", "server: CLV check + math", "server: encode response",
          "client: decode response")


WHOLE_ANSWER = "server: its whole answer (the server stages, column checks, metrics, drift accounting)"


def _service(store: ModelStore, model: str) -> object:
    """The ScoringService the server runs (default settings: drift accounting on), over ``store``."""
    from scoring_service.drift_monitor import DriftMonitor
    from scoring_service.metrics import ServiceMetrics
    from scoring_service.registry import Registry
    from scoring_service.servicer import ScoringService
    from scoring_service.settings import Settings
    from segmentation_core.drift import DriftThresholds

    settings = Settings()
    registry = Registry(store, model)
    registry.poll()
    drift = DriftMonitor(settings.drift_window_rows, settings.drift_window_minutes * 60.0,
                         DriftThresholds(min_rows=settings.drift_min_rows), settings.drift_sample_rate)
    return ScoringService(registry, ServiceMetrics(), drift)


def stage_times(store: ModelStore, model: str, frame: pd.DataFrame, n: int = 10_000
                ) -> tuple[dict[str, float], bytes, bytes]:
    """Each stage of one ``n``-row batch of ``frame`` through the client and the server code, in us of CPU (this
    process), and the request and reply bytes: the same calls a stream makes (the client's column extraction of
    the whole frame, its share per batch; FrameStream's encode and absorb; the servicer's answer)."""
    from scoring_service import customer_value, wire
    from scoring_service.client.frames import FrameJob, Schema, frame_job
    from scoring_service.client.stream import FrameStream
    from scoring_service.registry import load_version
    from scoring_service.servicer import _StreamAnswers

    loaded = load_version(store, model, store.current(model))
    art, batch = loaded.artefact, frame.head(n)
    schema = Schema(model, loaded.version, tuple(f.name for f in art.schema.numeric), (),
                    tuple(loaded.segment_names), art.clv is not None, loaded.clv_derivable,
                    art.clv.unit_days if art.clv is not None else 1)  # as Schema.from_info builds it
    job = frame_job(batch, schema, n)
    request = wire.encode_batch_request(job.numeric, batch_id="0", single=job.single)
    decoded = wire.decode_batch_request(request)
    clv_model = art.clv if any(name in decoded.numeric for name in INPUTS) else None

    def features() -> object:
        x, _errors = art.schema.transform_columns(decoded.numeric, decoded.categorical, n)
        return art.model.score(x)

    scores = features()
    figures = customer_value.batch_figures(clv_model, decoded.numeric, n, {}, loaded.clv_derivable) \
        if clv_model else None

    def encode_reply() -> bytes:
        return wire.encode_batch_response(batch_id="0", model=model, version=loaded.version, row_count=n,
                                          segment_id=scores.segment, distance=scores.distance,
                                          confidence=scores.confidence, outlier=scores.outlier, row_errors={},
                                          clv=figures)

    reply = encode_reply()
    answers = _StreamAnswers(_service(store, model))  # the servicer's whole answer, as a stream's helper runs it
    answers.answer(request)
    stream = FrameStream(None, schema, n, 1, None)  # type: ignore[arg-type]  # absorb only: no channel needed
    target = FrameJob(batch.index, {}, {}, {}, 1)
    times = {
        STAGES[0]: _best_us(lambda: frame_job(frame, schema, n), loops=2, repeats=3) * n / len(frame),
        STAGES[1]: _best_us(lambda: wire.encode_batch_request({k: v[0:n] for k, v in job.numeric.items()}, {},
                                                              batch_id="0", single=job.single)),
        STAGES[2]: _best_us(lambda: wire.decode_batch_request(request)),
        STAGES[3]: _best_us(features),
        STAGES[4]: _best_us(lambda: customer_value.batch_figures(clv_model, decoded.numeric, n, {},
                                                                 loaded.clv_derivable)) if clv_model else 0.0,
        STAGES[5]: _best_us(encode_reply),
        STAGES[6]: _best_us(lambda: stream._absorb(wire.decode_batch_response(reply), target, 0, n)),
        WHOLE_ANSWER: _best_us(lambda: answers.answer(request)),
    }
    return times, request, reply


def _rfm_config(folder: Path, features: list[str], k: int) -> Path:
    """A customer-table config over the same RFM columns and k as the CDNOW model: a model without CLV."""
    path = folder / "rfm.toml"
    path.write_text(f'[data]\nnumeric = {features!r}\n\n[model]\nalgorithm = "kmeans"\nk = {k}\nseed = 0\n\n'
                    '[preprocessing]\nskew = "auto"\noutliers = "clip"\n'.replace("'", '"'))
    return path


def _row(name: str, runs: list[tuple[float, float, float]]) -> tuple[float, str]:
    rates = np.array([r[0] for r in runs])
    median = float(np.median(rates))
    spread = f"{rates.min():,.0f} - {rates.max():,.0f}"
    return median, (f"| {name} | {median:,.0f} | {spread} | {np.median([r[1] for r in runs]):,.0f} us | "
                    f"{np.median([r[2] for r in runs]):,.0f} us |")


def bench_throughput(folder: Path, rows: int, repeats: int) -> None:
    """PredictStream rows/s with the CLV inputs (and so figures) and without them, two ways, what the transport
    alone costs for those very messages, and where the extra time of a CLV batch goes."""
    store = ModelStore(folder / "store")
    config = load_config(cdnow_config(folder))
    train(cdnow_sample(folder), config, store, model_name="customers")
    customers, _ = customer_table(clean_log(read_table(folder / "cdnow_sample.txt"), config.recipe()))
    frame = pd.concat([customers.reset_index(drop=True)] * (-(-rows // len(customers))), ignore_index=True).head(rows)
    features = list(config.data.numeric)
    manifest = store.version_dir("customers", store.current("customers")) / "manifest.json"
    k = len(json.loads(manifest.read_text())["segments"])
    frame[features].to_csv(folder / "rfm.csv", index=False)
    train(folder / "rfm.csv", load_config(_rfm_config(folder, features, k)), store, model_name="rfm")
    with_clv, without = frame[features + list(INPUTS)], frame[features]
    names = ["with CLV: CDNOW model, 3 features + 4 CLV inputs, 4 CLV figures back",
             "without CLV inputs: the same model, 3 features",
             f"model without CLV: the same 3 RFM columns as a customer table, k={k}",
             "null server, the CLV batch's request and reply bytes", "null server, the plain batch's bytes"]
    load_before = load()
    stages, messages = {}, {}
    for name, data in ((names[0], with_clv), (names[1], without)):
        stages[name], request, reply = stage_times(store, "customers", data)
        (folder / f"reply-{len(messages)}.bin").write_bytes(reply)
        messages[name] = (request, folder / f"reply-{len(messages)}.bin")
    load_stages = load()
    server = start_server(store.root, folder)
    results: dict[str, list] = {name: [] for name in names}
    try:
        for _ in range(repeats):  # alternating, so that a load change hits every variant alike
            for name, (data, model) in zip(names, ((with_clv, "customers"), (without, "customers"), (without, "rfm"))):
                results[name].append(_stream_once(server.target, data, 10_000, server.proc.pid, model=model))
            for name, (request, reply_path) in zip(names[3:], messages.values()):
                results[name].append(_transport_once(request, reply_path, rows // 10_000))
    finally:
        server.stop()
    print(f"\n## PredictStream, {rows:,} rows in 10,000-row batches, median of {repeats} alternating rounds "
          f"({load_before} before, {load()} after)")
    print("| request | rows/s (median) | spread (min - max) | server CPU per batch | client CPU per batch |")
    print("|---|---|---|---|---|")
    medians = {}
    for name, runs in results.items():
        medians[name], line = _row(name, runs)
        print(line)
    print(f"with CLV / without CLV inputs (same model): {medians[names[0]] / medians[names[1]]:.3f}; "
          f"with CLV / model without CLV: {medians[names[0]] / medians[names[2]]:.3f}; "
          f"transport alone, CLV / plain bytes: {medians[names[3]] / medians[names[4]]:.3f}")
    per_batch = {name: 10_000 / rate * 1e6 for name, rate in medians.items()}  # us of wall time per batch
    with_name, plain_name = names[0], names[1]
    print(f"\n## Where a CLV batch's extra time goes (10,000 rows; stages: CPU time in this process, best of 7, "
          f"{load_stages}; wall per batch from the medians above)")
    print("| stage | without CLV inputs, us | with CLV, us | extra, us |")
    print("|---|---|---|---|")
    for stage in STAGES:
        a, b = stages[plain_name][stage], stages[with_name][stage]
        print(f"| {stage} | {a:,.0f} | {b:,.0f} | {b - a:+,.0f} |")
    a, b = (sum(stages[name][stage] for stage in STAGES) for name in (plain_name, with_name))
    print(f"| all stages (CPU, client + server) | {a:,.0f} | {b:,.0f} | {b - a:+,.0f} |")
    a, b = stages[plain_name][WHOLE_ANSWER], stages[with_name][WHOLE_ANSWER]
    print(f"| {WHOLE_ANSWER} | {a:,.0f} | {b:,.0f} | {b - a:+,.0f} |")
    (req_a, reply_a), (req_b, reply_b) = ((len(r), p.stat().st_size) for r, p in (messages[plain_name],
                                                                                   messages[with_name]))
    print(f"| bytes on the socket: request + reply | {req_a:,} + {reply_a:,} B | {req_b:,} + {reply_b:,} B | "
          f"{req_b + reply_b - req_a - reply_a:+,} B |")
    a, b = per_batch[names[4]], per_batch[names[3]]
    print(f"| wall per batch, those bytes through gRPC to the null server | {a:,.0f} | {b:,.0f} | {b - a:+,.0f} |")
    a, b = per_batch[plain_name], per_batch[with_name]
    print(f"| wall per batch, end to end (the real server) | {a:,.0f} | {b:,.0f} | {b - a:+,.0f} |")


def main() -> None:
    """Run the three parts."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1 fit repeat, 100,000 rows")
    parser.add_argument("--throughput-only", action="store_true", help="only part 3")
    parser.add_argument("--rounds", type=int, default=5, help="alternating throughput rounds (median reported)")
    parser.add_argument("--null-server", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--null-reply", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.null_server:
        _null_server_main(args.null_server, args.null_reply)
        return
    repeats = 1 if args.quick else 3
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        if not args.throughput_only:
            bench_fit(repeats)
            bench_holdout(folder)
        bench_throughput(folder, 100_000 if args.quick else 500_000, max(5, args.rounds))


if __name__ == "__main__":
    main()
