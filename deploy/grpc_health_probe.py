"""A standard gRPC health check (``grpc.health.v1.Health/Check``) as a command and as functions.

``python grpc_health_probe.py [HOST:PORT] [--service NAME] [--timeout S] [--wait S]`` exits 0 when the
server answers SERVING, 1 otherwise (the reason on stderr), so that a container health check, a script
or a test can ask the scoring service the same question Kubernetes or ``grpc_health_probe`` would.
The target defaults to ``127.0.0.1:$SCORING_PORT`` (50051), which is right inside the scoring container.
Needs only grpcio and grpcio-health-checking (both in the scoring image).
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from typing import Callable

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

SERVING = "SERVING"


def check(target: str, service: str = "", timeout: float = 2.0) -> str:
    """The serving status name of ``service`` at ``target`` ("" = the whole server), or why there is none."""
    with grpc.insecure_channel(target) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        try:
            reply = stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=timeout)
        except grpc.RpcError as exc:
            return f"{exc.code().name}: {exc.details()}"
    return health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)


def wait_until_serving(target: str, timeout: float, service: str = "",
                       alive: Callable[[], bool] = lambda: True, interval: float = 0.2) -> str:
    """Poll ``check`` until SERVING; raise TimeoutError after ``timeout`` s, RuntimeError if ``alive()`` fails."""
    deadline = time.monotonic() + timeout
    status = "not asked yet"
    while time.monotonic() < deadline:
        if not alive():
            raise RuntimeError(f"the server at {target} exited before it was SERVING (last status: {status})")
        status = check(target, service, timeout=min(2.0, max(0.1, deadline - time.monotonic())))
        if status == SERVING:
            return status
        time.sleep(interval)
    raise TimeoutError(f"{target} was not SERVING within {timeout:.0f} s (last status: {status})")


def main(argv: list[str] | None = None) -> int:
    """Command line; exit 0 when SERVING, 1 otherwise."""
    default_target = f"127.0.0.1:{os.environ.get('SCORING_PORT', '50051')}"
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("target", nargs="?", default=default_target, help=f"HOST:PORT (default {default_target})")
    parser.add_argument("--service", default="", help="service name to ask about (default: the whole server)")
    parser.add_argument("--timeout", type=float, default=2.0, help="seconds for one check (default 2)")
    parser.add_argument("--wait", type=float, default=0.0, help="keep asking for up to this many seconds")
    args = parser.parse_args(argv)
    try:
        if args.wait > 0:
            wait_until_serving(args.target, args.wait, args.service)
            status = SERVING
        else:
            status = check(args.target, args.service, args.timeout)
    except (TimeoutError, RuntimeError) as exc:
        print(f"not serving: {exc}", file=sys.stderr)
        return 1
    if status != SERVING:
        print(f"{args.target}: {status}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
