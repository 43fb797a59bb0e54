"""The Spark engine of the training job: ``train --engine spark`` and ``score --engine spark``.

``session.build_session`` starts (or joins) the Spark session; everything else imports pyspark lazily.
"""
