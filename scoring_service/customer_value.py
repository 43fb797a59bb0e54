"""The CLV part of a scoring request: the four CLV inputs taken from a customer's numbers or a batch's
columns (in single precision, segmentation_core.clv.PRECISION), checked, and turned into the CLV figures with
the version's numpy model (segmentation_core.clv)."""
from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np

from scoring_service.errors import InvalidRequest
from segmentation_core.clv import (
    DERIVED_FROM, INPUTS, PRECISION, ClvModel, all_valid, derive_input, describe_problem, input_problems,
)

__all__ = ["INPUT_NAMES", "batch_figures", "customer_figures"]

INPUT_NAMES = frozenset(INPUTS)


def _require_all(present: list[str], derived: Sequence[str] = (), derivable: frozenset[str] = frozenset()) -> None:
    if len(present) + len(derived) != len(INPUTS):
        missing = [name for name in INPUTS if name not in present and name not in derived]
        hint = "".join(f"; {name} may be left out when the batch has {' and '.join(DERIVED_FROM[name])}"
                       for name in INPUTS if name in derivable and name in missing)
        raise InvalidRequest(f"CLV inputs: {', '.join(present)} given without {', '.join(missing)}; send all four "
                             f"({', '.join(INPUTS)}) or none{hint}", field=missing[0])


def customer_figures(clv: ClvModel, numbers: Mapping[str, float], features: frozenset[str]
                     ) -> tuple[Mapping[str, float], tuple[float, ...] | None]:
    """Split one customer's numbers into the features and the CLV figures (None without CLV inputs)."""
    present = [name for name in INPUTS if name in numbers]
    if not present:
        return numbers, None
    _require_all(present)
    values = [np.array([numbers[name]], dtype=PRECISION) for name in INPUTS]
    problem = int(input_problems(*values)[0])
    if problem >= 0:
        raise InvalidRequest(describe_problem(problem, float(values[problem][0])), field=INPUTS[problem])
    figures = clv.predict(*values)
    rest = {name: value for name, value in numbers.items() if name not in INPUT_NAMES or name in features}
    return rest, tuple(float(f[0]) for f in figures)


def batch_figures(clv: ClvModel, numeric: Mapping[str, np.ndarray], n: int, errors: dict[int, str],
                  derivable: frozenset[str] = frozenset()) -> list[np.ndarray] | None:
    """The CLV figure columns of a batch (float32; None without CLV input columns); adds invalid rows to
    ``errors``. ``derivable``: the inputs the batch may leave out (segmentation_core.clv.derivable_inputs)."""
    present = [name for name in INPUTS if name in numeric]
    if not present:
        return None
    derived = [name for name in INPUTS if name not in numeric and name in derivable
               and all(source in numeric for source in DERIVED_FROM[name])]
    _require_all(present, derived, derivable)
    # aligned single-precision copies (the decoded columns are views at any offset of the request's bytes,
    # which slows every numpy pass over them)
    columns = [derive_input(name, numeric, clv.unit_days) if name in derived
               else np.array(numeric[name], dtype=PRECISION) for name in INPUTS]
    if all_valid(*columns):  # the usual batch: a few reductions instead of the per-row checks
        figures = list(clv.predict(*columns))
        if errors:  # rows refused for their features
            rows = np.fromiter(errors, dtype=np.int64, count=len(errors))
            for f in figures:
                f[rows] = np.nan
        return figures
    problems = input_problems(*columns)
    bad = np.flatnonzero(problems >= 0)
    for row in bad.tolist():
        if row not in errors:
            name = INPUTS[problems[row]]
            errors[row] = describe_problem(int(problems[row]), float(columns[problems[row]][row])) + (
                f" (left out: derived from {' and '.join(DERIVED_FROM[name])})" if name in derived else "")
    if bad.size:  # score the valid rows only, on harmless stand-ins, then blank the invalid ones
        for c in columns:
            c[bad] = 0.0
    figures = list(clv.predict(*columns))
    if errors:
        rows = np.fromiter(errors, dtype=np.int64, count=len(errors))
        for f in figures:
            f[rows] = np.nan
    return figures
