"""Shared pytest fixtures."""

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def datasets_dir() -> Path:
    """The shared public datasets (../shared/datasets relative to the repository)."""
    path = Path(__file__).resolve().parents[1].parent / "shared" / "datasets"
    if not path.is_dir():
        pytest.skip(f"datasets not found at {path}")
    return path



# ---- scoring service (tests/test_scoring_server.py) ------------------------------------------------------
@pytest.fixture()
def scoring_server_factory():
    """Start in-process scoring servers on ephemeral ports: ``factory(store_dir, **settings)``; all stopped after."""
    from tests.server_support import start_server

    started = []

    def factory(store: Path, wait_serving: bool = True, **overrides):
        server = start_server(store, wait_serving=wait_serving, metrics_port=0, **overrides)
        started.append(server)
        return server

    yield factory
    for server in started:
        server.stop(grace=0.5)


def self_signed_certificate(folder: Path, name: str, alt_names: str) -> tuple[Path, Path]:
    """A self-signed certificate for ``name`` and ``alt_names`` (openssl's subjectAltName, e.g. "DNS:x,IP:127.0.0.1")
    written into ``folder``, and its key; skips the test when openssl is not installed."""
    import shutil
    import subprocess

    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                    "-nodes", "-keyout", str(key), "-out", str(cert), "-days", "1", "-subj", f"/CN={name}",
                    "-addext", f"subjectAltName={alt_names}"], check=True, capture_output=True)
    return cert, key


@pytest.fixture(scope="session")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for localhost and 127.0.0.1, and its key (openssl CLI)."""
    return self_signed_certificate(tmp_path_factory.mktemp("tls"), "localhost", "DNS:localhost,IP:127.0.0.1")


# ---- Apache Spark (issue 18: train/score --engine spark) -------------------------------------------------
#: The one local Spark of the test session (training_job.spark.session's defaults: small driver, no UI), with
#: fewer shuffle partitions, on loopback.
SPARK_TEST_CONF = {
    "spark.sql.shuffle.partitions": "4",
    "spark.default.parallelism": "4",
    "spark.driver.host": "127.0.0.1",
    "spark.driver.bindAddress": "127.0.0.1",
}


def spark_unavailable_reason() -> str | None:
    """Why Spark cannot start here (no Java runtime, no pyspark), or None when it can."""
    import importlib.util
    import os
    import shutil

    java_home = os.environ.get("JAVA_HOME")
    if not (java_home and Path(java_home, "bin", "java").exists()) and shutil.which("java") is None:
        return "no Java runtime (install openjdk-17-jre-headless: scripts/system_packages.sh does, as root)"
    if importlib.util.find_spec("pyspark") is None:
        return "pyspark is not installed (scripts/setup.sh installs the pinned one)"
    return None


@pytest.fixture(scope="session")
def spark_session():
    """A SparkSession on local[2] shared by the whole test session; skips when Java is missing; stopped at the end."""
    import logging
    import os

    from training_job.spark.session import build_session

    reason = spark_unavailable_reason()
    if reason:
        pytest.skip(reason)
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    session = build_session("local[2]", SPARK_TEST_CONF)  # the engine's own builder: workers run sys.executable
    yield session
    session.stop()
    # py4j logs "Closing down clientserver connection" from __del__ at interpreter exit, after pytest has
    # closed the streams the handlers write to ("--- Logging error ---"): keep its INFO lines out.
    logging.getLogger("py4j").setLevel(logging.WARNING)


@pytest.fixture(scope="session")
def spark_cluster(tmp_path_factory: pytest.TempPathFactory):
    """A Spark standalone cluster on loopback (a master and two 1-core, 1 GB workers), shared by the session.

    Its daemons' process groups are killed at the end, and the teardown fails if any process of them is left.
    """
    from tests.spark_cluster import StandaloneCluster, live_processes_of_groups

    reason = spark_unavailable_reason()
    if reason:
        pytest.skip(reason)
    cluster = StandaloneCluster(tmp_path_factory.mktemp("spark-cluster")).start()
    yield cluster
    groups = cluster.process_groups()
    cluster.stop()
    left = live_processes_of_groups(groups)
    assert not left, f"processes of the Spark cluster survived its stop: {left}"
