"""A standard gRPC health check (``grpc.health.v1.Health/Check``) as a command and as functions.

``python grpc_health_probe.py [HOST:PORT] [--service NAME] [--timeout S] [--wait S] [--env-prefix P]
[--tls-ca FILE] [--server-name NAME] [--plaintext]`` exits 0 when the server answers SERVING, 1 otherwise
(the reason on stderr), so that a container health check, a Kubernetes exec probe, a script or a test can ask
the scoring or training service the same question Kubernetes or ``grpc_health_probe`` would.

It reads the environment of the service it runs beside (``--env-prefix``: ``SCORING_`` by default,
``TRAINING_`` for the training service): the target defaults to ``127.0.0.1:$<P>PORT`` (50051), and when
``<P>TLS_CERT`` is set the service speaks TLS only, so the probe does too. It then trusts ``--tls-ca`` or,
without it, the service's own certificate (right for a self-signed one), and checks the certificate against
``--server-name`` or, without it, the target's host when the certificate names it, else the certificate's
first DNS name (inside a pod the probe dials 127.0.0.1, which a certificate for ``scoring.ns.svc`` does not
name). Health checks are exempt from the services' bearer token: no token is needed.
Needs only grpcio and grpcio-health-checking (both in the images); ``cryptography`` (in the scoring and
training images) to read the certificate's names.
"""
from __future__ import annotations

import argparse
import ipaddress
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Mapping

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

SERVING = "SERVING"


@dataclass(frozen=True)
class Tls:
    """How the probe speaks TLS: the root certificates it trusts and the name the server's certificate must
    carry ("" = the target's host)."""

    root_certificates: bytes
    server_name: str = ""


def certificate_names(pem: bytes) -> list[str]:
    """The DNS names and IP addresses of the first certificate in ``pem`` (subjectAltName, else the CN)."""
    from cryptography import x509
    from cryptography.x509.oid import NameOID

    cert = x509.load_pem_x509_certificate(pem)
    try:
        alt = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        names = [*alt.get_values_for_type(x509.DNSName), *map(str, alt.get_values_for_type(x509.IPAddress))]
    except x509.ExtensionNotFound:
        names = []
    return names or [str(a.value) for a in cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)]


def tls_for(target: str, server_cert: str = "", ca: str = "", server_name: str = "") -> Tls | None:
    """The TLS settings for probing ``target``, a server that uses the certificate chain in ``server_cert``
    (None: plaintext, when neither ``server_cert`` nor ``ca`` is given)."""
    if not (server_cert or ca):
        return None
    roots = Path(ca or server_cert).read_bytes()
    if not server_name and server_cert:
        host = target.rsplit(":", 1)[0].strip("[]")
        names = certificate_names(Path(server_cert).read_bytes())
        dns = [n for n in names if not _is_address(n)]
        server_name = "" if host in names or not names else (dns or names)[0]
    return Tls(roots, server_name)


def _is_address(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


def _channel(target: str, tls: Tls | None) -> grpc.Channel:
    if tls is None:
        return grpc.insecure_channel(target)
    options = [("grpc.ssl_target_name_override", tls.server_name)] if tls.server_name else []
    return grpc.secure_channel(target, grpc.ssl_channel_credentials(root_certificates=tls.root_certificates),
                               options=options)


def check(target: str, service: str = "", timeout: float = 2.0, tls: Tls | None = None) -> str:
    """The serving status name of ``service`` at ``target`` ("" = the whole server), or why there is none."""
    with _channel(target, tls) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        try:
            reply = stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=timeout)
        except grpc.RpcError as exc:
            return f"{exc.code().name}: {exc.details()}"
    return health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)


def wait_until_serving(target: str, timeout: float, service: str = "",
                       alive: Callable[[], bool] = lambda: True, interval: float = 0.2,
                       tls: Tls | None = None) -> str:
    """Poll ``check`` until SERVING; raise TimeoutError after ``timeout`` s, RuntimeError if ``alive()`` fails."""
    deadline = time.monotonic() + timeout
    status = "not asked yet"
    while time.monotonic() < deadline:
        if not alive():
            raise RuntimeError(f"the server at {target} exited before it was SERVING (last status: {status})")
        status = check(target, service, timeout=min(2.0, max(0.1, deadline - time.monotonic())), tls=tls)
        if status == SERVING:
            return status
        time.sleep(interval)
    raise TimeoutError(f"{target} was not SERVING within {timeout:.0f} s (last status: {status})")


def main(argv: list[str] | None = None, environ: Mapping[str, str] | None = None) -> int:
    """Command line; exit 0 when SERVING, 1 otherwise (2: a usage error or an unreadable certificate)."""
    env = os.environ if environ is None else environ
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--env-prefix", default="SCORING_")
    prefix = pre.parse_known_args(argv)[0].env_prefix
    default_target = f"127.0.0.1:{env.get(f'{prefix}PORT', '50051')}"
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("target", nargs="?", default=default_target, help=f"HOST:PORT (default {default_target})")
    parser.add_argument("--service", default="", help="service name to ask about (default: the whole server)")
    parser.add_argument("--timeout", type=float, default=2.0, help="seconds for one check (default 2)")
    parser.add_argument("--wait", type=float, default=0.0, help="keep asking for up to this many seconds")
    parser.add_argument("--env-prefix", default="SCORING_",
                        help="the service's variables: <P>PORT, <P>TLS_CERT (default SCORING_; TRAINING_ for the "
                             "training service)")
    parser.add_argument("--tls-ca", default="", help="CA certificate (PEM) to trust; turns TLS on (default: the "
                                                     "service's own <P>TLS_CERT, when set)")
    parser.add_argument("--server-name", default="", help="the name the server's certificate must carry (default: "
                                                          "the target's host if the certificate names it, else its "
                                                          "first DNS name)")
    parser.add_argument("--plaintext", action="store_true", help="no TLS, whatever <P>TLS_CERT says")
    args = parser.parse_args(argv)
    try:
        tls = None if args.plaintext else tls_for(args.target, env.get(f"{prefix}TLS_CERT", ""), args.tls_ca,
                                                   args.server_name)
    except (OSError, ValueError) as exc:
        print(f"cannot set up TLS: {exc}", file=sys.stderr)
        return 2
    try:
        if args.wait > 0:
            wait_until_serving(args.target, args.wait, args.service, tls=tls)
            status = SERVING
        else:
            status = check(args.target, args.service, args.timeout, tls=tls)
    except (TimeoutError, RuntimeError) as exc:
        print(f"not serving: {exc}", file=sys.stderr)
        return 1
    if status != SERVING:
        print(f"{args.target}: {status}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
