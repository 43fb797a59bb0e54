"""Real scoring servers for tests: in-process, on loopback ports, with a short store poll."""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Callable, Sequence

import grpc

from scoring_service.server import ScoringServer
from scoring_service.settings import Settings
from segmentation.v1 import scoring_pb2 as pb

MALL_CUSTOMER = pb.PredictRequest(customer=pb.Customer(numbers={"Age": 30.0}))
"""A Predict request every model trained on the mall data scores (the others imputed): the probe of which version
answers. An empty request is refused (no feature values: nothing to score)."""


def wait_for(predicate: Callable[[], object], timeout: float = 15.0) -> None:
    """Poll ``predicate`` until it is true; fail after ``timeout`` seconds (never a fixed sleep)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.02)


def start_server(store: Path, *, port: int = 0, wait_serving: bool = True, freeze_gc: bool = False,
                 interceptors: Sequence[grpc.ServerInterceptor] = (), **overrides: Any) -> ScoringServer:
    """A started server on 127.0.0.1 (``port`` 0: any free one; a stopped server's port to restart it);
    with ``wait_serving``, returns once the default model is served. ``overrides`` are Settings fields."""
    settings = Settings(store=Path(store), port=port, metrics_port=overrides.pop("metrics_port", -1),
                        poll_interval=0.05, grace=1.0, **overrides).validate()
    deadline = time.monotonic() + 10
    while True:
        try:
            server = ScoringServer(settings, freeze_gc=freeze_gc, interceptors=interceptors).start()
            break
        except (OSError, RuntimeError):  # a stopped server's port, taken meanwhile: retry, then fail (no hang)
            if not port or time.monotonic() > deadline:
                raise
            time.sleep(0.1)
    if wait_serving:
        try:
            wait_for(lambda: settings.model in server.registry.list_served(), timeout=20)
        except AssertionError:
            server.stop(grace=0)
            raise TimeoutError("the scoring server loaded no model within 20 s") from None
    return server


def target(server: ScoringServer) -> str:
    """The loopback address of a server."""
    return f"127.0.0.1:{server.port}"
