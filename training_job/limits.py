"""The limits of the number of segments k, stated once.

The configuration and the training request are validated against them (``training_job.config``), the
training job warns with them (``training_job.train``), and the dashboard's form reads them through
``training_job.client``. Standard library only: the dashboard's image carries this file beside the client.
"""
from __future__ import annotations

__all__ = ["MAX_K", "MIN_CUSTOMERS_PER_SEGMENT", "MIN_K", "few_customers_warning"]

MIN_K = 2
"""The fewest segments: one segment is no segmentation."""

MAX_K = 20
"""The most segments a model can have: a fixed k, and the top of the k search (``k_max``).

Chosen so that the artefact always fits its manifest (``segmentation_core.artefact.MAX_MANIFEST_BYTES``,
1 MiB). The manifest grows with k in two ways (measured on marketing_campaign.csv): each segment's profile,
about 250 bytes per feature, and the k search's valley test, one record of about 210 bytes per pair of
segments at every k searched, C(k_max + 1, 3) pairs for a search of 2..k_max (1,330 up to 20; 124,750 at a
fixed k of 500, 28 MB). With 100 features, a search of 2..20 that chooses 20 writes 0.28 MB of pairs and
0.51 MB of segment profiles, 1.00 MB in all with the rest; so 20 fits any table of up to 100 features,
where 25 would fit only about 50 and 30 none (its pairs alone take 0.97 MB).
"""

MIN_CUSTOMERS_PER_SEGMENT = 10
"""Fewer customers per segment than this on average: the job warns (in its log and report) and still trains."""


def few_customers_warning(customers: int, k: int) -> str | None:
    """The warning for ``k`` segments of ``customers`` customers, or None when there are enough per segment."""
    if customers >= MIN_CUSTOMERS_PER_SEGMENT * k:
        return None
    return (f"{k} segments of {customers:,} customers leave {customers / k:.1f} customers per segment on "
            f"average (fewer than {MIN_CUSTOMERS_PER_SEGMENT}): such small segments describe a handful of "
            f"customers each, not groups to market to; consider a smaller k")
