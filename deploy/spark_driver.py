"""spark-submit's entry file for the training job: ``spark-submit [options] deploy/spark_driver.py train ...``.

spark-submit runs a Python *file*, not a module; this one runs ``python -m training_job`` with the arguments
after it (docs/spark.md). Pass ``--engine spark``; the session takes spark-submit's ``--master`` and
``--conf``. It lives in deploy/ rather than in the package: a file run as a script puts its own folder first
on ``sys.path``, and training_job's folders hold modules whose names would shadow others (``statistics``).
"""
import sys

from training_job.cli import main

if __name__ == "__main__":
    sys.exit(main())
