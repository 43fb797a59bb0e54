"""The one definition of an implausible value: a number outside its feature's valid range.

A training configuration's ``[cleaning.valid_range]`` gives a feature an inclusive range ``[low, high]``
(either side may be open). Training's cleaning sets a value outside it missing (``training_job.cleaning``,
a transactions model's recipe in ``segmentation_core.recipe``), and so does scoring
(``segmentation_core.features``: the range is stored with the feature), so that a value the model never saw
as such is treated as unknown on both sides instead of being clipped at scoring. Plain comparisons, no
import: it works on numpy arrays and pandas Series alike (the dashboard's image has neither transform).
"""
from __future__ import annotations

import math
from typing import Any

__all__ = ["outside_valid_range"]


def outside_valid_range(values: Any, low: float | None, high: float | None) -> Any:
    """Which ``values`` (a numpy array or a pandas Series) fall outside [low, high], bounds included as valid,
    None leaving that side open; NaN is not outside."""
    return (values < (-math.inf if low is None else low)) | (values > (math.inf if high is None else high))
