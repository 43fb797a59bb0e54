"""Spark on a real standalone cluster (issue 18 item 3): a master and two workers on loopback.

The driver runs in a child process of its own (one SparkContext per JVM: the test session's local[2] may be
running), in its own process group, killed after; the cluster fixture checks that no daemon survives.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.deploy_support import BUNDLED_DATA, ROOT
from tests.spark_cluster import live_processes_of_groups, spark_env, spark_home

#: What the driver asks of the cluster: one 1-core executor per worker, small ones.
CLUSTER_CONF = ["spark.executor.memory=512m", "spark.executor.cores=1", "spark.cores.max=2",
                "spark.driver.memory=512m", "spark.driver.host=127.0.0.1", "spark.driver.bindAddress=127.0.0.1"]

_SMOKE_JOB = r"""
import json, sys, time
import pandas as pd
from training_job.spark.session import build_session

session = build_session(None, sys.argv[1:])  # the master: spark-submit's
context = session.sparkContext
deadline = time.monotonic() + 90
while context._jsc.sc().getExecutorMemoryStatus().size() < 3 and time.monotonic() < deadline:
    time.sleep(0.5)   # the driver's block manager and one per executor

def facts(batches):
    import os, sys
    import segmentation_core
    for batch in batches:
        yield pd.DataFrame({"python": [sys.executable] * len(batch), "pid": [os.getpid()] * len(batch),
                            "value": batch["id"] * 2})

rows = session.range(0, 20000, numPartitions=8).mapInPandas(facts, "python string, pid long, value long")
summary = rows.groupBy("python").agg({"value": "sum", "pid": "count"}).toPandas()
print(json.dumps({"master": context.master, "block_managers": context._jsc.sc().getExecutorMemoryStatus().size(),
                  "pythons": summary["python"].tolist(), "sum": int(summary["sum(value)"].sum()),
                  "rows": int(summary["count(pid)"].sum())}))
session.stop()
"""


def run_driver(args: list[str], timeout: float = 300) -> subprocess.CompletedProcess:
    """A driver process in its own process group (killed whole afterwards: its JVM too)."""
    env = spark_env(PYSPARK_PYTHON=sys.executable, PYSPARK_DRIVER_PYTHON=sys.executable,
                    PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    process = subprocess.Popen(args, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True, start_new_session=True)
    try:
        out, err = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        out, err = process.communicate()
        pytest.fail(f"the driver did not finish in {timeout} s:\n{err[-3000:]}")
    finally:
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    assert not live_processes_of_groups([process.pid]), "the driver's JVM outlived it"
    return subprocess.CompletedProcess(args, process.returncode, out, err)


def spark_submit(master: str, script: Path, *args: str) -> list[str]:
    """spark-submit (the pinned pyspark's) in client mode on ``master``, the driver on this interpreter."""
    submit = spark_home() / "bin" / "spark-submit"
    conf = [item for pair in CLUSTER_CONF for item in ("--conf", pair)]
    return [str(submit), "--master", master, "--deploy-mode", "client", *conf,
            "--conf", f"spark.pyspark.driver.python={sys.executable}", str(script), *args]


@pytest.mark.slow
def test_a_job_submitted_with_spark_submit_runs_on_both_workers_with_the_project_s_interpreter(
        spark_cluster, tmp_path: Path) -> None:
    job = tmp_path / "smoke_job.py"
    job.write_text(_SMOKE_JOB)
    result = run_driver(spark_submit(spark_cluster.master_url, job, *CLUSTER_CONF))
    assert result.returncode == 0, result.stderr[-4000:] + spark_cluster.logs()
    facts = json.loads(result.stdout.strip().splitlines()[-1])
    assert facts["master"] == spark_cluster.master_url
    assert facts["block_managers"] == 3, "the driver and one executor on each of the two workers"
    assert facts["pythons"] == [sys.executable]
    assert facts["rows"] == 20000 and facts["sum"] == 2 * sum(range(20000))


def _train_args(store: Path, model: str) -> list[str]:
    return ["train", "--data", str(BUNDLED_DATA), "--preset", "transactions", "--store", str(store), "--model", model]


@pytest.mark.slow
def test_train_engine_spark_on_the_cluster_publishes_the_pandas_path_s_model(spark_cluster, tmp_path: Path) -> None:
    """`spark-submit deploy/spark_driver.py train --engine spark` (docs/spark.md) on two workers, the master
    and settings spark-submit's; the artefact verifies, and its customers get the same segments from the
    pandas path's model of the same log. (The direct `--spark-master` route: the compose spark profile.)"""
    from sklearn.metrics import adjusted_rand_score

    from segmentation_core.artefact import read_artefact
    from segmentation_core.store import ModelStore

    store = tmp_path / "store"
    result = run_driver(spark_submit(spark_cluster.master_url, ROOT / "deploy" / "spark_driver.py",
                                     *_train_args(store, "on-spark"), "--engine", "spark"), timeout=900)
    assert result.returncode == 0, result.stderr[-4000:] + spark_cluster.logs()
    # (spark-submit hands the Python driver's stderr to stdout)
    assert f"master {spark_cluster.master_url} (spark-submit's)" in result.stdout + result.stderr
    pandas = subprocess.run([sys.executable, "-m", "training_job", *_train_args(store, "on-pandas")], cwd=ROOT,
                            capture_output=True, text=True, timeout=600)
    assert pandas.returncode == 0, pandas.stderr[-3000:]

    models = ModelStore(store)
    spark, reference = (read_artefact(models.version_dir(m, models.current(m))) for m in ("on-spark", "on-pandas"))
    assert spark.manifest["model"] == "on-spark" and spark.model.k == reference.model.k >= 2
    sample = spark.load_sample()
    numeric = {k.removeprefix("num:"): v for k, v in sample.items() if k.startswith("num:")}
    categorical = {k.removeprefix("cat:"): v for k, v in sample.items() if k.startswith("cat:")}
    x, errors = reference.schema.transform_columns(numeric, categorical, len(sample["segment_id"]))
    assert not errors
    agreement = adjusted_rand_score(sample["segment_id"], reference.model.score(x).segment)
    assert agreement >= 0.99, f"ARI {agreement:.3f} between the Spark and pandas models on the Spark sample"
