"""Raw transaction logs on the caller's side: a transactions model's own recipe aggregates the log to one
row per customer (segmentation_core.recipe, the implementation training used), then the rows stream to the
service as any customer table does. Used by the client CLI and the dashboard's Batch page."""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Callable, Sequence

import pandas as pd

from scoring_service.client.types import ModelInfo
from scoring_service.client.protocol import ScoringClientProtocol
from segmentation_core import scored
from segmentation_core.scored import scored_table
from segmentation_core.recipe import Recipe, TransactionReport, aggregate, check_features, is_log_table

__all__ = ["LogScore", "is_log", "is_log_table", "recipe_of", "score_log"]


@dataclass(frozen=True)
class LogScore:
    """A scored log: one row per customer (id, the recipe's per-customer columns, the results) and the report."""

    result: pd.DataFrame
    report: TransactionReport

    @property
    def as_of(self) -> str:
        """The as-of date the log was aggregated at."""
        return str(self.report.snapshot_date)


def recipe_of(info: ModelInfo) -> Recipe | None:
    """The model's recipe (from the manifest the service sends), or None for a customer-table model."""
    if not info.recipe_columns or not info.manifest_json:
        return None
    stored = json.loads(info.manifest_json).get("recipe")
    return Recipe.from_dict(stored) if stored else None


def is_log(info: ModelInfo, columns: Sequence[object]) -> bool:
    """Whether a table with ``columns`` is a raw log for this model: it has the log's customer id and date
    columns and is not already a table of the model's features."""
    recipe = recipe_of(info)
    return recipe is not None and is_log_table(recipe, [f.name for f in info.numeric_features], columns)


def score_log(client: ScoringClientProtocol, frame: pd.DataFrame, *, model: str | None = None, version: str | None = None,
              as_of: str | None = None, batch_rows: int = 10_000, inputs: str = scored.DEFAULT_INPUTS,
              progress: Callable[[int, int], None] | None = None) -> LogScore:
    """Aggregate a raw log with the model's recipe, score the customers (with CLV when the model has it); the
    result in the layout of every scored file (``segmentation_core.scored``: the log's customer id column, the
    ``inputs`` kept of the per-customer columns, the results, the CLV figures, ``as_of``)."""
    info = client.model_info(model, version)
    recipe = recipe_of(info)
    if recipe is None:
        raise ValueError(f"model {info.model} {info.version} was not trained on a transaction log: it scores "
                         "customer tables")
    check_features([f.name for f in info.numeric_features], f"{info.model} {info.version}", recipe)
    table, report = aggregate(frame, recipe, as_of)
    customers = table.reset_index()
    results = client.predict_frame(customers.drop(columns=["customer"]), batch_rows=batch_rows, progress=progress,
                                  model=info.model, version=info.version)
    numeric = [f.name for f in info.numeric_features]
    features = [*numeric, *(f.name for f in info.categorical_features)]
    result = scored_table(customers, results, id_name="customer", id_output=recipe.customer_id, features=features,
                          numeric=numeric, inputs=inputs, as_of=str(report.snapshot_date))
    result.attrs.update(results.attrs)
    return LogScore(result=result, report=report)
