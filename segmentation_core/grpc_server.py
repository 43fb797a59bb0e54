"""What every gRPC server of the platform shares (scoring and training): bearer-token authentication
(health checks exempt), the listen address, TLS binding and the port file."""
from __future__ import annotations

import hmac
import os
from pathlib import Path
from typing import Callable

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
