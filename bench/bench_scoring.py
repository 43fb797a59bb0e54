"""Benchmark of the scoring service against issue 3's targets, all measured in one run on loopback.

    python -m bench.bench_scoring               # about 2 minutes on 2 cores
    python -m bench.bench_scoring --quick       # fewer calls and rows: a smoke run
    python -m bench.bench_scoring --peers       # also Seldon MLServer via ../shared/peers (own venv)

The model is the peers' reference: standardized features -> KMeans(6) on make_blobs(100,000 x 7, 6 centres,
random_state=0), published as a real artefact into a temporary store by ``tests/model_factory.py``. The
server runs as ``python -m scoring_service`` subprocesses. Measured:

- time from process start to health SERVING, and the server's resident memory (RSS);
- single ``Predict`` through the Python client, sequential: p50, p99, calls/s; and a bare gRPC echo of the
  same request and response sizes (a generic-handler server started by this script) for comparison;
- ``PredictStream`` rows/s with 10,000-row batches of 7 numeric features through ``predict_frame``
  (client encoding and decoding included), one stream against 1 server process, and with
  ``--workers 2`` one stream per client process (and how the server processes shared the CPU);
- the CPU a batch costs the server and the client, with scoring and against a null server, and the
  rows/s ceiling that CPU leaves on this machine's cores;
- hot swap under load: 20 versions published (by another process) while a caller loops on Predict:
  failed calls and p99 against the steady p99 measured just before.
Without ``--peers`` the MLServer figures are those of ../shared/peers/README.md, and say so.
"""
from __future__ import annotations

import argparse
import json
import logging
import multiprocessing
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from concurrent import futures
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # also runnable as a plain script
    sys.path.insert(0, str(ROOT))

import grpc  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from scoring_service.client import ScoringClient, ScoringError  # noqa: E402
from segmentation.v1 import scoring_pb2  # noqa: E402

log = logging.getLogger("bench.scoring")

PEERS = ROOT.parent / "shared" / "peers"
PEERS_VENV = ROOT / ".venv-peers"
FEATURES = [f"f{i}" for i in range(7)]
ECHO_METHOD = "/bench.Echo/Echo"
# MLServer figures of ../shared/peers/README.md (2 cores, parallel_workers=0), used without --peers.
README_MLSERVER = {"p50_ms": 1.27, "p99_ms": 2.62, "calls_per_s": 780.0, "best_rows_per_s": 1.86e6}


# ---------------------------------------------------------------------------------------------------
# Processes

def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _tree_pids(root: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as fh:
                    text = fh.read()
            except OSError:
                continue
            children.setdefault(int(text[text.rfind(")") + 2:].split()[1]), []).append(int(entry))
    out, stack = [], [root]
    while stack:
        pid = stack.pop()
        out.append(pid)
        stack.extend(children.get(pid, []))
    return out


def cpu_s(pid: int) -> float:
    """CPU time (user + system, seconds) used so far by a process and its descendants (from /proc): what a
    server spends per call or batch, much steadier than wall time on a machine shared with other work."""
    return sum(_own_cpu_s(p) for p in _tree_pids(pid))


def _own_cpu_s(pid: int) -> float:
    """CPU time (user + system, seconds) of one process alone; 0 once it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            text = fh.read()
    except OSError:
        return 0.0
    fields = text[text.rfind(")") + 2:].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_mb(pid: int) -> float:
    """Resident memory of a process and its descendants, MiB (from /proc)."""
    total = 0
    for p in _tree_pids(pid):
        try:
            with open(f"/proc/{p}/status") as fh:
                for line in fh:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
        except OSError:
            pass
    return total / 1024


@dataclass
class Server:
    """A ``python -m scoring_service`` subprocess."""

    proc: subprocess.Popen
    target: str
    ready_s: float
    log_path: Path

    def stop(self) -> None:
        """SIGTERM (graceful drain), then SIGKILL if it lingers."""
        self.proc.terminate()
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def start_server(store: Path, workdir: Path, workers: int = 1) -> Server:
    """Start the service on a free loopback port; returns once health says SERVING."""
    port = _free_port()
    log_path = workdir / f"server-w{workers}-{port}.log"
    env = {**os.environ, "OPENBLAS_NUM_THREADS": os.environ.get("OPENBLAS_NUM_THREADS", "1")}
    started = time.perf_counter()
    with open(log_path, "wb") as fh:
        proc = subprocess.Popen([sys.executable, "-m", "scoring_service", "--store", str(store), "--host", "127.0.0.1",
                                 "--port", str(port), "--metrics-port", "-1", "--workers", str(workers),
                                 "--log-format", "text", "--log-level", "WARNING"],
                                cwd=ROOT, stdout=fh, stderr=subprocess.STDOUT, env=env)
    target = f"127.0.0.1:{port}"
    with ScoringClient(target, timeout=1.0) as client:
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"server exited with {proc.returncode}:\n{log_path.read_text()[-3000:]}")
            try:
                if client.health() == "SERVING":
                    break
            except ScoringError:
                pass
            if time.perf_counter() - started > 60:
                proc.kill()
                raise RuntimeError("server not SERVING after 60 s")
            time.sleep(0.005)
    return Server(proc, target, time.perf_counter() - started, log_path)


# ---------------------------------------------------------------------------------------------------
# Measures

def _pct(samples: np.ndarray, q: float) -> float:
    return float(np.percentile(samples, q))


def latency(call: Callable[[], Any], calls: int, warmup: int) -> dict[str, float]:
    """p50/p99 (ms) and calls/s of ``calls`` sequential calls after ``warmup``."""
    for _ in range(warmup):
        call()
    lat = np.empty(calls)
    clock = time.perf_counter
    started = clock()
    for i in range(calls):
        t0 = clock()
        call()
        lat[i] = clock() - t0
    wall = clock() - started
    return {"p50_ms": _pct(lat, 50) * 1e3, "p99_ms": _pct(lat, 99) * 1e3, "calls_per_s": calls / wall}


def best_of(runs: list[dict[str, float]]) -> dict[str, float]:
    """Median of each figure over repeated runs."""
    return {k: float(np.median([r[k] for r in runs])) for k in runs[0]}


def customer(x: np.ndarray) -> dict[str, float]:
    return {name: float(v) for name, v in zip(FEATURES, x)}


def _requests(rows: np.ndarray) -> list[scoring_pb2.PredictRequest]:
    out = []
    for r in rows[:64]:
        request = scoring_pb2.PredictRequest()
        request.customer.numbers.update(customer(r))
        out.append(request)
    return out


def unary(target: str, echo_target: str, rows: np.ndarray, calls: int, warmup: int,
          repeats: int, pids: dict[str, int] | None = None) -> dict[str, dict[str, float]]:
    """Sequential single calls, interleaved run by run so that a change of machine load hits all alike:
    ``predict`` (the Python client), ``stub`` (generated stub, prebuilt requests: the server's share) and
    ``echo`` (a bare gRPC handler answering the same response bytes; request built and parsed the same way).
    With ``pids`` (server process by call name), also the server's CPU time per call (``server_cpu_us``)."""
    from segmentation.v1 import scoring_pb2_grpc

    people = [customer(r) for r in rows[:64]]
    requests = _requests(rows)
    with ScoringClient(target) as client, grpc.insecure_channel(target) as plain, \
            grpc.insecure_channel(echo_target) as echo_channel:
        stub = scoring_pb2_grpc.ScoringServiceStub(plain)
        echo_method = echo_channel.unary_unary(ECHO_METHOD,
                                               request_serializer=scoring_pb2.PredictRequest.SerializeToString,
                                               response_deserializer=scoring_pb2.PredictResponse.FromString)
        counter = iter(range(1 << 62))
        calls_by_name: dict[str, Callable[[], Any]] = {
            "predict": lambda: client.predict(people[next(counter) & 63]),
            "stub": lambda: stub.Predict(requests[next(counter) & 63], timeout=5.0),
            "echo": lambda: echo_method(requests[next(counter) & 63], timeout=5.0),
        }
        runs: dict[str, list[dict[str, float]]] = {name: [] for name in calls_by_name}
        for _ in range(repeats):
            for name, call in calls_by_name.items():
                pid = (pids or {}).get(name)
                before = cpu_s(pid) if pid else 0.0
                run = latency(call, calls, warmup)
                if pid:
                    run["server_cpu_us"] = (cpu_s(pid) - before) / (calls + warmup) * 1e6
                runs[name].append(run)
    return {name: best_of(r) for name, r in runs.items()}


def echo_server_main(port: int, payload: bytes) -> None:
    """A bare gRPC server: unary Echo answers ``payload``; PredictStream answers a fixed 10,000-row reply."""
    from scoring_service import wire

    n = 10_000
    rng = np.random.default_rng(0)
    reply = wire.encode_batch_response(batch_id="0", model="customers", version="v0001", row_count=n,
                                       segment_id=rng.integers(0, 6, n), distance=rng.random(n),
                                       confidence=rng.random(n), outlier=np.zeros(n, dtype=bool),
                                       segment_names=[f"Segment {i}" for i in range(6)])

    def null_stream(requests: Any, context: grpc.ServicerContext) -> Any:
        for _ in requests:
            yield reply

    handler = grpc.method_handlers_generic_handler("bench.Echo", {
        "Echo": grpc.unary_unary_rpc_method_handler(lambda request, context: payload)})
    stream_handler = grpc.method_handlers_generic_handler("segmentation.v1.ScoringService", {
        "PredictStream": grpc.stream_stream_rpc_method_handler(null_stream)})
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    server.add_generic_rpc_handlers((handler, stream_handler))
    server.add_insecure_port(f"127.0.0.1:{port}")
    server.start()
    server.wait_for_termination()


class EchoServer:
    """The bare gRPC server of :func:`echo_server_main`, in a subprocess of its own (no shared GIL)."""

    def __init__(self, response: bytes) -> None:
        self.port = _free_port()
        self.target = f"127.0.0.1:{self.port}"
        self.proc = subprocess.Popen([sys.executable, str(Path(__file__).resolve()), "--echo-server", str(self.port),
                                      "--echo-hex", response.hex()], cwd=ROOT)
        with grpc.insecure_channel(self.target) as channel:
            grpc.channel_ready_future(channel).result(timeout=30)

    def stop(self) -> None:
        """Terminate the subprocess."""
        self.proc.terminate()
        self.proc.wait()


def _stream_once(target: str, frame: pd.DataFrame, batch_rows: int, pid: int | None = None,
                 model: str | None = None) -> tuple[float, float, float]:
    """rows/s of one predict_frame (of ``model``: default the server's), and the CPU time per batch in us of
    the server (0 without ``pid``) and of this client process."""
    batches = -(-len(frame) // batch_rows)
    with ScoringClient(target, timeout=30, model=model) as client:
        client.predict_frame(frame.head(batch_rows * 2), batch_rows=batch_rows)  # warm the connection
        cpu_before, own_before = (cpu_s(pid) if pid else 0.0), time.process_time()
        started = time.perf_counter()
        result = client.predict_frame(frame, batch_rows=batch_rows)
        elapsed = time.perf_counter() - started
        own = (time.process_time() - own_before) / batches * 1e6
        cpu = (cpu_s(pid) - cpu_before) / batches * 1e6 if pid else 0.0
    assert len(result) == len(frame) and (result["segment_id"] >= 0).all()
    return len(frame) / elapsed, cpu, own


def _stream_worker(args: tuple[str, int, int, int]) -> tuple[float, float, float]:
    target, rows, batch_rows, seed = args
    frame = _blob_frame(rows, seed)
    with ScoringClient(target, timeout=30) as client:
        client.predict_frame(frame.head(batch_rows * 2), batch_rows=batch_rows)
        started = time.time()
        client.predict_frame(frame, batch_rows=batch_rows)
        return started, time.time(), float(rows)


def _client_ceiling(target: str, frame: pd.DataFrame, repeats: int, pid: int) -> tuple[float, float, float]:
    """rows/s of the client against the null server (no scoring: a fixed reply per batch), and the CPU time
    per batch in us of that server and of this client: what gRPC and the client alone cost per 10k-row batch."""
    from scoring_service.client import FrameStream
    from scoring_service.client.frames import Schema

    schema = Schema("customers", "v0001", tuple(FEATURES), (), tuple(f"Segment {i}" for i in range(6)))
    rates, cpus, owns = [], [], []
    batches = -(-len(frame) // 10_000)
    with ScoringClient(target, timeout=30) as client:
        for _ in range(repeats + 1):
            cpu_before, own_before, started = cpu_s(pid), time.process_time(), time.perf_counter()
            for _frame, _result in FrameStream(client.channel, schema, 10_000, 8, None).score([frame]):
                pass
            rates.append(len(frame) / (time.perf_counter() - started))
            cpus.append((cpu_s(pid) - cpu_before) / batches * 1e6)
            owns.append((time.process_time() - own_before) / batches * 1e6)
    return float(np.median(rates[1:])), float(np.median(cpus[1:])), float(np.median(owns[1:]))


def stream(target: str, frame: pd.DataFrame, batch_rows: int, repeats: int, pid: int | None = None,
           cpu_out: list[float] | None = None) -> float:
    """rows/s of one PredictStream (median of repeats); with ``pid`` and ``cpu_out``, appends the median
    CPU time per batch (us) of the server and of the client to ``cpu_out``."""
    runs = [_stream_once(target, frame, batch_rows, pid) for _ in range(repeats)]
    if cpu_out is not None:
        cpu_out += [float(np.median([run[1] for run in runs])), float(np.median([run[2] for run in runs]))]
    return float(np.median([run[0] for run in runs]))


def stream_parallel(target: str, rows: int, batch_rows: int, clients: int,
                    server_pid: int | None = None) -> tuple[float, list[float]]:
    """Aggregate rows/s of ``clients`` client processes, one stream each (overlapping wall time), and
    each server process's share of the servers' CPU meanwhile (with ``server_pid``, the first of a
    --workers group): the kernel gives each connection to one process, sometimes both to the same one."""
    workers = _tree_pids(server_pid) if server_pid else []
    before = [_own_cpu_s(p) for p in workers]
    with multiprocessing.get_context("spawn").Pool(clients) as pool:
        spans = pool.map(_stream_worker, [(target, rows, batch_rows, i) for i in range(clients)])
    used = [_own_cpu_s(p) - b for p, b in zip(workers, before)]
    shares = [u / sum(used) for u in used] if sum(used) > 0 else []
    wall = max(s[1] for s in spans) - min(s[0] for s in spans)
    return sum(s[2] for s in spans) / wall, shares


def _ceiling(cpu_us_per_batch: float, cores: int, batch_rows: int = 10_000) -> float:
    """Rows/s that ``cores`` fully busy CPUs allow when every batch costs ``cpu_us_per_batch`` (client and
    server together): the bound of any number of streams and server processes on this machine."""
    return cores * batch_rows / (cpu_us_per_batch * 1e-6) if cpu_us_per_batch > 0 else float("inf")


def _blob_frame(rows: int, seed: int = 0) -> pd.DataFrame:
    from sklearn.datasets import make_blobs

    x, _ = make_blobs(n_samples=rows, n_features=7, centers=6, random_state=seed)
    return pd.DataFrame(x, columns=FEATURES)


def publisher_main(store: Path, versions: int, interval: float) -> None:
    """Publish ``versions`` new versions of 'customers' (the fit is cached after the first), then exit."""
    from segmentation_core.store import ModelStore
    from tests import model_factory

    model_factory._fit("blobs", 6, "kmeans", 0)  # fit before the clock: the swap, not the fit, is measured
    print("ready", flush=True)
    sys.stdin.readline()
    for _ in range(versions):
        model_factory.publish(ModelStore(store), "customers", data="blobs", k=6)
        time.sleep(interval)
    print("done", flush=True)


def hot_swap(target: str, store: Path, rows: np.ndarray, versions: int, interval: float,
             steady_calls: int) -> dict[str, float]:
    """Failed calls and p99 while ``versions`` versions are published, against the steady p99 before."""
    people = [customer(r) for r in rows[:64]]
    with ScoringClient(target) as client:
        state = {"i": 0}

        def call() -> None:
            state["i"] += 1
            client.predict(people[state["i"] & 63])

        steady = latency(call, steady_calls, 200)
        publisher = subprocess.Popen([sys.executable, str(Path(__file__).resolve()), "--publish", str(store),
                                      "--publish-versions", str(versions), "--publish-interval", str(interval)],
                                     cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        assert publisher.stdout.readline().strip() == "ready"
        before = client.model_info().version
        publisher.stdin.write("go\n")
        publisher.stdin.flush()
        lat: list[float] = []
        failures: list[str] = []
        finished = threading.Event()
        threading.Thread(target=lambda: (publisher.wait(), finished.set()), daemon=True).start()
        deadline = time.monotonic() + versions * (interval + 5) + 30
        clock = time.perf_counter
        # Keep calling until the publisher is done and one more second for the last swap to land.
        end_after: float | None = None
        while time.monotonic() < deadline:
            if finished.is_set() and end_after is None:
                end_after = time.monotonic() + 1.0
            if end_after is not None and time.monotonic() > end_after:
                break
            t0 = clock()
            try:
                call()
            except ScoringError as exc:
                failures.append(str(exc))
            lat.append(clock() - t0)
        after = client.model_info().version
    swap = np.asarray(lat)
    if failures:
        log.warning("hot swap: %d failed calls, first: %s", len(failures), failures[0])
    return {"versions": float(versions), "calls": float(len(lat)), "failed": float(len(failures)),
            "steady_p99_ms": steady["p99_ms"], "swap_p99_ms": _pct(swap, 99) * 1e3,
            "swap_p50_ms": _pct(swap, 50) * 1e3, "served_before": before, "served_after": after}


# ---------------------------------------------------------------------------------------------------
# Peers

def run_peers(quick: bool) -> dict[str, float]:
    """MLServer measured by ../shared/peers/run_mlserver_bench.sh in its own virtualenv (created if needed)."""
    python = PEERS_VENV / "bin" / "python"
    if not python.exists():
        log.info("creating %s (MLServer pins protobuf 6: it cannot share .venv)", PEERS_VENV)
        subprocess.run(["python3", "-m", "venv", str(PEERS_VENV)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", "-r", str(PEERS / "requirements-peers.txt")],
                       check=True)
    if not (PEERS / "mlserver" / "model.joblib").exists():
        subprocess.run([str(python), "train_model.py"], cwd=PEERS, check=True)
    env = {**os.environ, "VENV": str(PEERS_VENV)}
    common = ["--repeats", "1", "--seconds", "3" if quick else "5", "--calls", "1000" if quick else "2000"]
    out: dict[str, float] = {}
    for encoding, extra in (("contents", []), ("raw", ["--skip-latency"])):
        label = f"bench_scoring_{encoding}"
        done = subprocess.run(["bash", str(PEERS / "run_mlserver_bench.sh"), label, "0", "--encoding", encoding,
                               *common, *extra], env=env, capture_output=True, text=True, timeout=900)
        log.info("MLServer (%s): %s", encoding, done.stdout.strip().splitlines()[-3:])
        if done.returncode != 0:
            raise RuntimeError(f"MLServer bench failed:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
        result = json.loads((PEERS / "results" / f"B_{label}_{encoding}.json").read_text())
        if "latency_p50_us" in result:
            out["p50_ms"] = result["latency_p50_us"]["median"] / 1e3
            out["p99_ms"] = result["latency_p99_us"]["median"] / 1e3
            out["calls_per_s"] = result["latency_calls_per_s"]["median"]
        for key in ("tput_seq_rows_per_s", "tput_conc4_rows_per_s"):
            if key in result:
                out["best_rows_per_s"] = max(out.get("best_rows_per_s", 0.0), result[key]["median"])
    return out


# ---------------------------------------------------------------------------------------------------
# Report

@dataclass
class Report:
    """Measured figures and the targets they are checked against."""

    figures: dict[str, Any] = field(default_factory=dict)
    lines: list[tuple[str, str, str, bool | None]] = field(default_factory=list)

    def check(self, name: str, value: str, target: str, ok: bool | None) -> None:
        self.lines.append((name, value, target, ok))

    def render(self) -> str:
        width = max(len(n) for n, *_ in self.lines)
        out = []
        for name, value, target, ok in self.lines:
            mark = "" if ok is None else ("PASS" if ok else "MISS")
            out.append(f"{name:<{width}}  {value:>22}  {target:<28} {mark}")
        return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    """Run every measure and print the figures with their targets."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer calls and rows (smoke run)")
    parser.add_argument("--peers", action="store_true", help="also measure MLServer via ../shared/peers")
    parser.add_argument("--json", type=Path, help="also write the figures to this JSON file")
    parser.add_argument("--echo-server", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--echo-hex", default="", help=argparse.SUPPRESS)
    parser.add_argument("--publish", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--publish-versions", type=int, default=20, help=argparse.SUPPRESS)
    parser.add_argument("--publish-interval", type=float, default=0.25, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.echo_server:
        echo_server_main(args.echo_server, bytes.fromhex(args.echo_hex))
        return 0
    if args.publish:
        publisher_main(args.publish, args.publish_versions, args.publish_interval)
        return 0
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    calls, repeats = (1000, 1) if args.quick else (3000, 3)
    stream_rows = 500_000 if args.quick else 2_000_000
    report = Report()
    figures = report.figures
    figures["load_before"] = os.getloadavg()[0]
    peers = README_MLSERVER
    if args.peers:
        peers = run_peers(args.quick)
    figures["mlserver"] = {**peers, "source": "measured" if args.peers else "peers README"}

    from segmentation_core.store import ModelStore
    from tests import model_factory

    with tempfile.TemporaryDirectory(prefix="bench-scoring-") as tmp:
        work = Path(tmp)
        store = work / "store"
        log.info("publishing the reference model (KMeans(6) on make_blobs 100k x 7)")
        model_factory.publish(ModelStore(store), "customers", data="blobs", k=6)
        frame = _blob_frame(stream_rows)
        rows = frame.to_numpy()

        server = start_server(store, work, workers=1)
        echo_server = None
        try:
            figures["serving_s"] = server.ready_s
            with ScoringClient(server.target) as client:
                client.predict(customer(rows[0]))
                response = scoring_pb2.PredictResponse(
                    id="", model="customers", version="v0001",
                    prediction=scoring_pb2.Prediction(segment_id=3, segment_name=client.model_info().segments[3].name,
                                                      distance=1.2345, confidence=0.9876, outlier=True)).SerializeToString()
            echo_server = EchoServer(response)
            log.info("unary: Predict (client, stub) and bare echo, %d calls x %d, interleaved", calls, repeats)
            single = unary(server.target, echo_server.target, rows, calls, 300, repeats,
                           pids={"predict": server.proc.pid, "stub": server.proc.pid, "echo": echo_server.proc.pid})
            figures["predict"], figures["predict_bare_stub"], figures["echo"] = \
                single["predict"], single["stub"], single["echo"]
            log.info("stream: %d rows in 10,000-row batches, 1 server process", stream_rows)
            cpu: list[float] = []
            figures["stream_w1_rows_per_s"] = stream(server.target, frame, 10_000, repeats, server.proc.pid, cpu)
            figures["stream_w1_server_cpu_us_per_batch"], figures["stream_w1_client_cpu_us_per_batch"] = cpu
            (figures["client_stream_ceiling_rows_per_s"], figures["null_server_cpu_us_per_batch"],
             figures["null_client_cpu_us_per_batch"]) = _client_ceiling(echo_server.target, frame, repeats,
                                                                         echo_server.proc.pid)
            figures["rss_mb_after_load"] = rss_mb(server.proc.pid)
            log.info("hot swap: 20 versions under load")
            figures["hot_swap"] = hot_swap(server.target, store, rows, 20, 0.25, calls)
        finally:
            server.stop()
            if echo_server is not None:
                echo_server.stop()

        server2 = start_server(store, work, workers=2)
        try:
            figures["serving_s_w2"] = server2.ready_s
            log.info("stream: 1 and 2 client processes against 2 server processes")
            figures["stream_w2_one_stream_rows_per_s"] = stream(server2.target, frame, 10_000, repeats)
            figures["stream_w2_two_streams_rows_per_s"], figures["stream_w2_cpu_shares"] = \
                stream_parallel(server2.target, stream_rows, 10_000, 2, server2.proc.pid)
            figures["rss_mb_w2"] = rss_mb(server2.proc.pid)
        finally:
            server2.stop()

    figures["load_after"] = os.getloadavg()[0]
    p, e, swap = figures["predict"], figures["echo"], figures["hot_swap"]
    src = "" if args.peers else " (README)"
    report.check("time to SERVING", f"{figures['serving_s']:.2f} s", "<= 2 s", figures["serving_s"] <= 2)
    report.check("server RSS (1 process)", f"{figures['rss_mb_after_load']:.0f} MB", "< 200 MB",
                 figures["rss_mb_after_load"] < 200)
    report.check("Predict p50", f"{p['p50_ms']:.3f} ms", "<= 0.6 ms", p["p50_ms"] <= 0.6)
    report.check("Predict p99", f"{p['p99_ms']:.3f} ms", "<= 1.2 ms", p["p99_ms"] <= 1.2)
    report.check("Predict calls/s", f"{p['calls_per_s']:,.0f}", "", None)
    report.check(f"  x MLServer{src} ({peers['calls_per_s']:,.0f}/s)", f"{p['calls_per_s'] / peers['calls_per_s']:.2f}x",
                 ">= 2x", p["calls_per_s"] >= 2 * peers["calls_per_s"])
    report.check("bare echo p50 / p99", f"{e['p50_ms']:.3f} / {e['p99_ms']:.3f} ms", "", None)
    b = figures["predict_bare_stub"]
    report.check("Predict, generated stub, p50 / p99", f"{b['p50_ms']:.3f} / {b['p99_ms']:.3f} ms",
                 "(server share, no client)", None)
    report.check("  server CPU per call: Predict / echo", f"{b['server_cpu_us']:.0f} / {e['server_cpu_us']:.0f} us",
                 "(stub calls; /proc, steadier than wall)", None)
    report.check("  Predict p50 / echo p50", f"{p['p50_ms'] / e['p50_ms']:.2f}", "<= 1.20", p["p50_ms"] <= 1.2 * e["p50_ms"])
    report.check("  Predict calls/s / echo", f"{p['calls_per_s'] / e['calls_per_s']:.2f}", ">= 0.80 (info)", None)
    cores = os.cpu_count() or 1
    s1 = figures["stream_w1_rows_per_s"]
    report.check("stream, 1 process", f"{s1 / 1e6:.2f} M rows/s", ">= 6 M rows/s", s1 >= 6e6)
    server_cpu, client_cpu = figures["stream_w1_server_cpu_us_per_batch"], figures["stream_w1_client_cpu_us_per_batch"]
    report.check("  CPU per 10k-row batch: server + client", f"{server_cpu:.0f} + {client_cpu:.0f} us",
                 "(/proc and process_time)", None)
    report.check(f"  ceiling: {cores} cores / that CPU", f"{_ceiling(server_cpu + client_cpu, cores) / 1e6:.2f} M rows/s",
                 "(no stream can beat it)", None)
    report.check(f"  x MLServer best{src} ({peers['best_rows_per_s'] / 1e6:.2f} M)",
                 f"{s1 / peers['best_rows_per_s']:.2f}x", ">= 3x", s1 >= 3 * peers["best_rows_per_s"])
    s2a, s2b = figures["stream_w2_one_stream_rows_per_s"], figures["stream_w2_two_streams_rows_per_s"]
    report.check("stream, 2 processes, 1 stream", f"{s2a / 1e6:.2f} M rows/s", "", None)
    report.check("stream, 2 processes, 2 streams", f"{s2b / 1e6:.2f} M rows/s", ">= 7.5 M (10 M - 25%)", s2b >= 7.5e6)
    shares = " / ".join(f"{share:.0%}" for share in figures["stream_w2_cpu_shares"])
    report.check("  server processes' shares of the CPU", shares or "n/a",
                 "(the kernel assigns connections: one process may get both)", None)
    report.check("hot swap: failed calls", f"{swap['failed']:.0f} of {swap['calls']:.0f}", "0", swap["failed"] == 0)
    report.check("hot swap: p99 / steady p99", f"{swap['swap_p99_ms']:.2f} / {swap['steady_p99_ms']:.2f} ms",
                 "<= 2x", swap["swap_p99_ms"] <= 2 * swap["steady_p99_ms"])
    report.check("hot swap: served version", f"{swap['served_before']} -> {swap['served_after']}", "", None)
    report.check("client-only stream ceiling (null server)",
                 f"{figures['client_stream_ceiling_rows_per_s'] / 1e6:.2f} M rows/s", "", None)
    null_cpu, null_client = figures["null_server_cpu_us_per_batch"], figures["null_client_cpu_us_per_batch"]
    report.check("  CPU per batch: null server + client", f"{null_cpu:.0f} + {null_client:.0f} us",
                 "(gRPC and the client alone)", None)
    report.check(f"  ceiling: {cores} cores / that CPU", f"{_ceiling(null_cpu + null_client, cores) / 1e6:.2f} M rows/s",
                 "(before any scoring)", None)
    report.check("load average before / after", f"{figures['load_before']:.1f} / {figures['load_after']:.1f}",
                 f"(~0 on an idle {os.cpu_count()}-core machine)", None)
    print(report.render())
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2, default=float))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
