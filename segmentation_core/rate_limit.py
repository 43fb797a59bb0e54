"""Per-caller rate limits for the platform's gRPC servers: a token bucket per caller, checked by an interceptor.

A caller is its bearer token (hashed) when the call carries one, else its peer address (without the port).
A call beyond the caller's rate is answered RESOURCE_EXHAUSTED with trailing metadata ``retry-after-ms``: how
long until the bucket holds a call again (the Python client waits that long and retries). Health checks are
exempt, like they are from the token check. Each call counts once, a stream too (not its messages).
"""
from __future__ import annotations

import hashlib
import threading
import time
from typing import Callable, Iterable

import grpc

from segmentation_core.grpc_server import EXEMPT_PREFIXES

RETRY_AFTER_KEY = "retry-after-ms"
MAX_CALLERS = 10_000  # buckets kept; beyond, the full (idle) ones are dropped


class TokenBuckets:
    """One token bucket per caller key: ``rate`` calls per second, at most ``burst`` at once."""

    def __init__(self, rate: float, burst: int, clock: Callable[[], float] = time.monotonic) -> None:
        if not rate > 0 or burst < 1:
            raise ValueError(f"rate={rate} should be > 0 and burst={burst} >= 1")
        self.rate, self.burst, self._clock = rate, float(burst), clock
        self._buckets: dict[str, tuple[float, float]] = {}  # key -> (tokens, time of that count)
        self._lock = threading.Lock()

    def take(self, key: str) -> float:
        """Take one call for ``key``: 0.0 when allowed, else the seconds until one is."""
        now = self._clock()
        with self._lock:
            tokens, then = self._buckets.get(key, (self.burst, now))
            tokens = min(self.burst, tokens + (now - then) * self.rate)
            if tokens >= 1.0:
                self._buckets[key] = (tokens - 1.0, now)
                wait = 0.0
            else:
                self._buckets[key] = (tokens, now)
                wait = (1.0 - tokens) / self.rate
            if len(self._buckets) > MAX_CALLERS:
                self._drop_full(now)
        return wait

    def _drop_full(self, now: float) -> None:
        self._buckets = {k: (t, s) for k, (t, s) in self._buckets.items()
                         if t + (now - s) * self.rate < self.burst}


def caller_key(metadata: Iterable[tuple[str, str | bytes]] | None, peer: str) -> str:
    """The rate-limit key of a call: its bearer token's hash, else its peer host (``ipv4:1.2.3.4:5`` -> host)."""
    token = next((value for key, value in metadata or () if key == "authorization"), "")
    if token:
        raw = token.encode() if isinstance(token, str) else bytes(token)
        return "token:" + hashlib.sha256(raw).hexdigest()[:16]
    host = peer.rsplit(":", 1)[0] if peer.count(":") >= 2 else peer
    return "peer:" + host


class RateLimitInterceptor(grpc.ServerInterceptor):
    """Answer a caller's calls beyond ``rate`` per second (bursts of ``burst``) with RESOURCE_EXHAUSTED."""

    def __init__(self, rate: float, burst: int) -> None:
        self.buckets = TokenBuckets(rate, burst)

    def intercept_service(self, continuation: Callable, handler_call_details: grpc.HandlerCallDetails
                          ) -> grpc.RpcMethodHandler | None:
        """Wrap the method's handler with the caller's bucket check (health checks pass unchecked)."""
        handler = continuation(handler_call_details)
        if handler is None or handler_call_details.method.startswith(EXEMPT_PREFIXES):
            return handler
        metadata, method = handler_call_details.invocation_metadata, handler_call_details.method

        def check(context: grpc.ServicerContext) -> None:
            wait = self.buckets.take(caller_key(metadata, context.peer()))
            if wait:
                retry_ms = max(1, int(wait * 1000 + 0.999))
                context.set_trailing_metadata(((RETRY_AFTER_KEY, str(retry_ms)),))
                context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED,
                              f"{method.rsplit('/', 1)[-1]}: rate limit of {self.buckets.rate:g} calls/s per caller "
                              f"(--rate-limit) reached; retry in {retry_ms} ms")
        return _checked(handler, check)


def _checked(handler: grpc.RpcMethodHandler, check: Callable[[grpc.ServicerContext], None]) -> grpc.RpcMethodHandler:
    """A handler like ``handler`` that runs ``check(context)`` (which may abort) before the method."""
    def wrap(behaviour: Callable) -> Callable:
        def checked(request: object, context: grpc.ServicerContext) -> object:
            check(context)
            return behaviour(request, context)
        return checked

    kinds = (("unary_unary", grpc.unary_unary_rpc_method_handler), ("unary_stream", grpc.unary_stream_rpc_method_handler),
             ("stream_unary", grpc.stream_unary_rpc_method_handler),
             ("stream_stream", grpc.stream_stream_rpc_method_handler))
    for attribute, make in kinds:
        behaviour = getattr(handler, attribute)
        if behaviour is not None:
            return make(wrap(behaviour), request_deserializer=handler.request_deserializer,
                        response_serializer=handler.response_serializer)
    return handler
