"""Would callers' requests stop working if a version replaced the served one? The input schema of a version and
the breaking changes between two.

A version's *input schema* is what a caller sends to Predict and PredictStream: its numeric and categorical
feature names and, for a transaction-log model with CLV, the four CLV inputs (their time unit, and which of them
a batch may leave out for the service to derive). The scoring service treats a request as follows
(segmentation_core.features, scoring_service.customer_value):

- a feature left out is imputed (numbers: training median; categories: training mode);
- a feature name the model does not have is refused ("unknown numeric feature 'Monetary'"), and so is a
  feature sent in the other map (a numeric one in ``categories``);
- a category level training never saw encodes as "other", not an error;
- the CLV inputs are taken only by a model with CLV, all four or none (a batch may leave out the derivable ones).

So, callers being assumed to send every feature of the served version:

- **breaking**: a feature removed or renamed (requests sending it are refused), a feature whose kind changed
  (numeric <-> categorical), the CLV inputs no longer taken (the new version has no CLV), their time unit
  changed (days <-> weeks: the numbers would be read in the wrong unit, silently), a CLV input a batch could
  leave out that it no longer can;
- **not breaking, but worth a warning**: a feature added (callers do not send it yet: imputed until they do);
- **neither**: category levels, transform parameters, segments, CLV newly taken.

:func:`breaking_changes` lists the first kind; ``ModelStore.set_current`` refuses a version with any unless told
to allow them (:class:`~segmentation_core.errors.SchemaChangeError`).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, Mapping

from segmentation_core.clv import INPUTS as CLV_INPUTS, derivable_inputs
from segmentation_core.errors import quoted

NAMES_SHOWN = 8  # feature names one change lists before "and N more": the message must stay one bounded line


@dataclass(frozen=True)
class InputSchema:
    """What a caller sends to one version: feature names by kind and, with CLV, the inputs' unit and derivable ones."""

    numeric: tuple[str, ...]
    categorical: tuple[str, ...]
    clv_time_unit: str | None = None  # None: the version takes no CLV inputs
    clv_derivable: frozenset[str] = frozenset()

    @classmethod
    def from_manifest(cls, manifest: Mapping[str, Any]) -> "InputSchema":
        """The input schema of a version's manifest; raises ValueError when the manifest has no feature schema."""
        try:
            schema = manifest["feature_schema"]
            numeric = tuple(str(f["name"]) for f in schema["numeric"])
            categorical = tuple(str(c["name"]) for c in schema["categorical"])
        except (KeyError, TypeError) as exc:
            raise ValueError(f"no readable feature schema in the manifest ({exc!r})") from exc
        clv = manifest.get("clv")
        if not isinstance(clv, Mapping):
            return cls(numeric, categorical)
        recipe = manifest.get("recipe")
        derivable = derivable_inputs(numeric, counts_days=not recipe.get("invoice")) \
            if isinstance(recipe, Mapping) else frozenset()
        return cls(numeric, categorical, str(clv.get("time_unit", "days")), derivable)


def _names(names: Iterable[str]) -> str:
    listed = list(names)
    shown = ", ".join(quoted(n) for n in listed[:NAMES_SHOWN])
    return shown + (f" and {len(listed) - NAMES_SHOWN} more" if len(listed) > NAMES_SHOWN else "")


def breaking_changes(served: InputSchema, candidate: InputSchema) -> list[str]:
    """What would make requests that work with ``served`` fail (or be misread) with ``candidate``; empty when
    every such request still works. Each item names the features and what callers would see."""
    changes = []
    kinds = {**{n: "numeric" for n in candidate.numeric}, **{n: "categorical" for n in candidate.categorical}}
    for kind, names in (("numeric", served.numeric), ("categorical", served.categorical)):
        removed = [n for n in names if n not in kinds]
        if removed:
            changes.append(f"{kind} feature(s) {_names(removed)} removed (requests sending them would be refused: "
                           f"unknown {kind} feature)")
        moved = [n for n in names if kinds.get(n, kind) != kind]
        if moved:
            other = "categorical" if kind == "numeric" else "numeric"
            changes.append(f"{_names(moved)} changed from {kind} to {other} (requests sending them as {kind} "
                           "would be refused)")
    if served.clv_time_unit is not None:
        if candidate.clv_time_unit is None:
            changes.append(f"the CLV inputs ({', '.join(CLV_INPUTS)}) no longer taken: the new version has no CLV "
                           "(requests sending them would be refused)")
        elif candidate.clv_time_unit != served.clv_time_unit:
            changes.append(f"the CLV inputs' time unit changed from {served.clv_time_unit} to "
                           f"{candidate.clv_time_unit} (LastPurchaseTime and CustomerAge would be read in the wrong "
                           "unit)")
        else:
            lost = sorted(served.clv_derivable - candidate.clv_derivable)
            if lost:
                changes.append(f"CLV input(s) {_names(lost)} no longer derived (batches leaving them out would be "
                               "refused)")
    return changes


def added_features(served: InputSchema, candidate: InputSchema) -> list[str]:
    """The candidate's features the served version does not have: callers do not send them yet (imputed)."""
    known = set(served.numeric) | set(served.categorical)
    return [n for n in (*candidate.numeric, *candidate.categorical) if n not in known]


def describe_inputs(schema: InputSchema) -> str:
    """What a caller sends to a version, in words: "numeric 'Recency', 'Frequency'; categorical 'Gender'"."""
    parts = [f"{kind} {_names(names)}" for kind, names in (("numeric", schema.numeric),
                                                          ("categorical", schema.categorical)) if names]
    if schema.clv_time_unit is not None:
        parts.append(f"the CLV inputs in {schema.clv_time_unit}")
    return "; ".join(parts) or "no features"
