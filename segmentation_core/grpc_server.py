"""What every gRPC server of the platform shares (scoring and training): bearer-token authentication
(health checks exempt), INVALID_ARGUMENT for request bytes that are not the message, the listen address,
TLS binding and the port file."""
from __future__ import annotations

import hmac
import logging
import os
import signal
import threading
from pathlib import Path
from typing import Any, Callable, Iterator

import grpc

EXEMPT_PREFIXES = ("/grpc.health.v1.Health/",)  # probes (Kubernetes, grpc_health_probe) carry no token


class BearerTokenInterceptor(grpc.ServerInterceptor):
    """Refuse calls without metadata ``authorization: Bearer <token>`` with UNAUTHENTICATED."""

    def __init__(self, token: str) -> None:
        if not token:
            raise ValueError("an empty bearer token would accept every caller")
        self._expected = f"Bearer {token}".encode()

    def intercept_service(self, continuation: Callable, handler_call_details: grpc.HandlerCallDetails
                          ) -> grpc.RpcMethodHandler | None:
        """Pass authenticated (or exempt) calls on; answer the others with an aborting handler."""
        if handler_call_details.method.startswith(EXEMPT_PREFIXES):
            return continuation(handler_call_details)
        given = next((value for key, value in handler_call_details.invocation_metadata or ()
                      if key == "authorization"), "")
        given_bytes = given.encode() if isinstance(given, str) else bytes(given)
        if hmac.compare_digest(given_bytes, self._expected):  # constant time: no timing oracle on the token
            return continuation(handler_call_details)
        handler = continuation(handler_call_details)
        return _refusing(handler, "missing bearer token" if not given else "invalid bearer token")


def _refusing(handler: grpc.RpcMethodHandler | None, message: str) -> grpc.RpcMethodHandler:
    """A handler of the same kind as ``handler`` that ends the call with UNAUTHENTICATED."""
    def deny(_request: object, context: grpc.ServicerContext) -> None:
        context.abort(grpc.StatusCode.UNAUTHENTICATED, message)

    if handler is None or not (handler.request_streaming or handler.response_streaming):
        return grpc.unary_unary_rpc_method_handler(deny)
    if handler.request_streaming and handler.response_streaming:
        return grpc.stream_stream_rpc_method_handler(deny)
    if handler.request_streaming:
        return grpc.stream_unary_rpc_method_handler(deny)
    return grpc.unary_stream_rpc_method_handler(deny)


class MalformedRequestInterceptor(grpc.ServerInterceptor):
    """Answer request bytes that do not parse as the method's message with INVALID_ARGUMENT naming the
    message (gRPC itself answers a raising deserializer with INTERNAL); streamed requests too."""

    def intercept_service(self, continuation: Callable, handler_call_details: grpc.HandlerCallDetails
                          ) -> grpc.RpcMethodHandler | None:
        """The method's handler with a deserializer that never raises."""
        handler = continuation(handler_call_details)
        if handler is None or handler.request_deserializer is None:
            return handler
        return _tolerant(handler)


class MalformedRequest:
    """What :func:`tolerant_deserializer` hands on for bytes that are not the request message; the handler answers
    it with INVALID_ARGUMENT and :attr:`message` (gRPC itself answers a raising deserializer with INTERNAL)."""

    def __init__(self, name: str, size: int, reason: str) -> None:
        self.name, self.size, self.reason = name, size, reason

    @property
    def message(self) -> str:
        """``request: N bytes are not a valid <Message> message (<why>)``, bounded."""
        return f"request: {self.size} bytes are not a valid {self.name} message ({self.reason[:200]})"


def tolerant_deserializer(parse: Callable[[bytes], Any]) -> Callable[[bytes], Any]:
    """``parse`` (a generated ``Message.FromString``) that gives a :class:`MalformedRequest` instead of raising.

    The one tolerant deserializer of the platform: :class:`MalformedRequestInterceptor` wraps every method of
    the training service with it; the scoring service registers it directly as each method's deserializer and
    checks for MalformedRequest in its handlers, so that no interceptor sits on its hot Predict path.
    """
    name = _message_name(parse)

    def deserialize(data: bytes) -> Any:
        try:
            return parse(data)
        except Exception as exc:  # noqa: BLE001 - DecodeError, bad UTF-8 ...: all of it is malformed input
            return MalformedRequest(name, len(data), str(exc) or type(exc).__name__)
    return deserialize


def _tolerant(handler: grpc.RpcMethodHandler) -> grpc.RpcMethodHandler:
    """``handler`` whose requests that fail to parse end the call with INVALID_ARGUMENT."""
    deserialize = tolerant_deserializer(handler.request_deserializer)

    def check(request: Any, context: grpc.ServicerContext) -> Any:
        if isinstance(request, MalformedRequest):
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, request.message)
        return request

    def checked(requests: Iterator[Any], context: grpc.ServicerContext) -> Iterator[Any]:
        for request in requests:
            yield check(request, context)

    serialize = handler.response_serializer
    if handler.unary_unary:
        return grpc.unary_unary_rpc_method_handler(
            lambda request, context: handler.unary_unary(check(request, context), context), deserialize, serialize)
    if handler.unary_stream:
        return grpc.unary_stream_rpc_method_handler(
            lambda request, context: handler.unary_stream(check(request, context), context), deserialize, serialize)
    if handler.stream_unary:
        return grpc.stream_unary_rpc_method_handler(
            lambda requests, context: handler.stream_unary(checked(requests, context), context), deserialize,
            serialize)
    return grpc.stream_stream_rpc_method_handler(
        lambda requests, context: handler.stream_stream(checked(requests, context), context), deserialize, serialize)


def _message_name(parse: Callable) -> str:
    owner = getattr(parse, "__self__", None)  # a generated Message.FromString
    return getattr(owner, "__name__", "request")


def listen_address(host: str, port: int) -> str:
    """``host:port``, with an IPv6 host in brackets."""
    return f"[{host}]:{port}" if ":" in host and not host.startswith("[") else f"{host}:{port}"


def bind(server: grpc.Server, host: str, port: int, tls_cert: str = "", tls_key: str = "") -> int:
    """Add the listening port (TLS when a certificate and key are given); return the bound port."""
    address = listen_address(host, port)
    if tls_cert:
        credentials = grpc.ssl_server_credentials([(Path(tls_key).read_bytes(), Path(tls_cert).read_bytes())])
        bound = server.add_secure_port(address, credentials)
    else:
        bound = server.add_insecure_port(address)
    if not bound:
        raise OSError(f"cannot listen on {address}")
    return bound


def write_port_file(path: str, port: int) -> None:
    """Write the bound port to ``path`` atomically: readers never see a half-written port."""
    tmp = Path(f"{path}.tmp{os.getpid()}")
    tmp.write_text(f"{port}\n")
    os.replace(tmp, path)


class StopSignal:
    """SIGTERM/SIGINT caught from the moment this is made (a signal during start-up is not lost), waited on by
    polling: a signal the kernel hands to one of gRPC's threads does not wake a main thread blocked on a lock,
    so a plain ``Event.wait()`` could sleep through it for ever (seen: a trainer ignoring SIGTERM)."""

    def __init__(self, log: logging.Logger) -> None:
        self._event = threading.Event()
        self._log = log
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, self._caught)

    def _caught(self, signum: int, _frame: object) -> None:
        self._log.info("received %s", signal.Signals(signum).name)
        self._event.set()

    def wait(self, poll_seconds: float = 0.2) -> None:
        """Block until SIGTERM or SIGINT arrives."""
        while not self._event.wait(poll_seconds):
            pass
