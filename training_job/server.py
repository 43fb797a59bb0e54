"""Assemble and run the training service: gRPC (TrainingService, health, reflection) over the data
folder and the job queue (``python -m training_job serve``)."""
from __future__ import annotations

import logging
import os
from concurrent import futures
from dataclasses import dataclass
from pathlib import Path

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from segmentation.v1 import training_pb2, training_pb2_grpc
from segmentation_core.grpc_server import BearerTokenInterceptor, MalformedRequestInterceptor, bind, write_port_file
from segmentation_core.settings import read_token
from segmentation_core.signing import load_signing_key
from segmentation_core.store import ModelStore
from training_job.datasets import DataFolder
from training_job.jobs import JobQueue
from training_job.servicer import TrainingService

log = logging.getLogger(__name__)

SERVICE_NAME = training_pb2.DESCRIPTOR.services_by_name["TrainingService"].full_name
CHUNK_MESSAGE_BYTES = 8 * 1024 * 1024
TOKEN_ENV = "TRAINING_TOKEN"


@dataclass(frozen=True)
class TrainerSettings:
    """How one training service runs (flags of ``python -m training_job serve``)."""

    store: Path
    data_dir: Path
    host: str = "127.0.0.1"
    port: int = 50052
    port_file: str = ""
    max_upload_mb: int = 200
    max_table_mb: int = 1024
    keep: int = 10
    threads: int = 16
    tls_cert: str = ""
    tls_key: str = ""
    token_file: str = ""
    signing_key: str = ""  # Ed25519 private key (PEM): jobs sign their versions; PublishVersion checks them

    def token(self) -> str:
        """The bearer token from --token-file or TRAINING_TOKEN; empty when auth is off."""
        return read_token(self.token_file, os.environ.get(TOKEN_ENV, ""))


class TrainingServer:
    """The training service's gRPC server and job queue; :meth:`start`, then :meth:`stop`."""

    def __init__(self, settings: TrainerSettings) -> None:
        if bool(settings.tls_cert) != bool(settings.tls_key):
            raise ValueError("--tls-cert and --tls-key go together")
        if settings.max_upload_mb < 1:
            raise ValueError(f"max_upload_mb={settings.max_upload_mb} should be >= 1")
        self.settings = settings
        self.data = DataFolder(settings.data_dir, max_bytes=settings.max_upload_mb * 1024 * 1024,
                               max_table_bytes=settings.max_table_mb * 1024 * 1024,
                               sweep_uploads=True)
        signer = load_signing_key(settings.signing_key) if settings.signing_key else None  # fails at start
        self.jobs = JobQueue(self.data, settings.store, keep=settings.keep, signing_key=settings.signing_key)
        token = settings.token()
        self.server = grpc.server(futures.ThreadPoolExecutor(settings.threads, thread_name_prefix="grpc"),
                                  interceptors=[*([BearerTokenInterceptor(token)] if token else []),
                                                MalformedRequestInterceptor()],
                                  options=[("grpc.max_receive_message_length", CHUNK_MESSAGE_BYTES),
                                           ("grpc.so_reuseport", 0)])
        training_pb2_grpc.add_TrainingServiceServicer_to_server(
            TrainingService(self.data, self.jobs, ModelStore(settings.store),
                            verify_key=signer.verify_key if signer else None), self.server)
        self.health = health.HealthServicer()
        health_pb2_grpc.add_HealthServicer_to_server(self.health, self.server)
        reflection.enable_server_reflection((SERVICE_NAME, health_pb2.DESCRIPTOR.services_by_name["Health"].full_name,
                                             reflection.SERVICE_NAME), self.server)
        self.port = 0
        self._auth = bool(token)

    def start(self) -> "TrainingServer":
        """Bind, start the job worker, then report SERVING."""
        s = self.settings
        self.port = bind(self.server, s.host, s.port, s.tls_cert, s.tls_key)
        self.server.start()
        self.jobs.start()
        for name in ("", SERVICE_NAME):
            self.health.set(name, health_pb2.HealthCheckResponse.SERVING)
        log.info("training service listening on %s:%d (tls %s, token %s), store %s, data %s", s.host, self.port,
                 "on" if s.tls_cert else "off", "on" if self._auth else "off", s.store, s.data_dir)
        if s.port_file:
            write_port_file(s.port_file, self.port)
        return self

    def stop(self, grace: float = 2.0) -> None:
        """Stop taking calls and stop the worker (a running job is stopped and reads FAILED)."""
        self.health.enter_graceful_shutdown()
        self.jobs.stop()
        self.server.stop(grace).wait()
        log.info("training service stopped")

    def wait(self) -> None:
        """Block until the server has stopped."""
        self.server.wait_for_termination()
