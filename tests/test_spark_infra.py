"""The Spark test infrastructure (issue 18 item 3): the pinned pyspark, a Java runtime, the shared local[2] session.

Everything here runs the real engine: a JVM started by pyspark, Python workers started by Spark.
"""
from __future__ import annotations

import sys

import pandas as pd


def test_the_shared_session_runs_local_2_with_this_interpreter_on_the_workers(spark_session) -> None:
    import pyspark

    assert pyspark.__version__ == "4.3.0"
    assert spark_session.sparkContext.master == "local[2]"
    assert spark_session.conf.get("spark.ui.enabled") == "false"

    def worker_facts(batches):
        import segmentation_core  # the project's code must import on the executors

        for batch in batches:
            yield pd.DataFrame({"python": [sys.executable] * len(batch), "core": [segmentation_core.__name__] * len(batch),
                                "id": batch["id"]})

    frame = spark_session.range(0, 1000, numPartitions=4).mapInPandas(
        worker_facts, "python string, core string, id long").toPandas()
    assert len(frame) == 1000 and sorted(frame["id"]) == list(range(1000))
    assert set(frame["python"]) == {sys.executable}, "Spark's Python workers run another interpreter"
    assert set(frame["core"]) == {"segmentation_core"}


def test_an_aggregation_gives_the_numbers_pandas_gives(spark_session) -> None:
    data = pd.DataFrame({"customer": [1, 1, 2, 3, 3, 3], "amount": [10.0, 5.5, 7.25, 1.0, 2.0, 3.5]})
    got = (spark_session.createDataFrame(data).groupBy("customer").sum("amount").toPandas()
           .sort_values("customer").reset_index(drop=True))
    assert got["sum(amount)"].tolist() == [15.5, 7.25, 6.5]
