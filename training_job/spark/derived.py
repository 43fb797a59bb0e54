"""[derived] columns on the cluster, with the pandas path's own code: each expression is evaluated per Arrow
batch by ``segmentation_core.derived.evaluate`` (``mapInPandas``), so row-wise results equal the pandas path's
to the last bit (division by zero, numpy's ``//`` and ``%``, overflows: all as pandas has them).

``max``, ``min`` and ``mean`` are over the whole table, not a batch: each is computed first on the cluster
(innermost first, missing values skipped, as pandas skips them) and enters the expression as a number. A mean
is summed in another order than pandas sums it: it may differ in the last bits.
``year``, ``month`` and ``days`` need dates, which a log's per-customer table does not have: a DataError
before anything runs, as the pandas path raises.
"""
from __future__ import annotations

import ast
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Iterator, Mapping

from segmentation_core.derived import AGGREGATES, parse, referenced_columns
from segmentation_core.errors import DataError

if TYPE_CHECKING:  # pragma: no cover
    from pyspark.sql import DataFrame

__all__ = ["add_derived", "apply_valid_ranges"]


def add_derived(table: "DataFrame", derived: Mapping[str, str]) -> "DataFrame":
    """The table with the [derived] columns added in order (a later one may use an earlier one): one pass over
    the table for all of them, plus one per whole-table aggregate (the table is then kept for the next)."""
    pending: list[_Column] = []
    for name, expression in derived.items():
        _check(table, name, expression)
        tree, aliases = parse(name, expression)
        scalars: dict[str, float] = {}
        while (call := _innermost_aggregate(tree)) is not None:
            if pending:  # the aggregate may read them: add them first, and keep the result for the passes ahead
                table, pending = _with_columns(table, pending).persist(), []
            placeholder = f"__agg{len(scalars)}"
            argument = _Column("__value", ast.unparse(ast.Expression(call.args[0])), aliases, dict(scalars))
            scalars[placeholder] = _aggregate(_with_columns(table, [argument]), call.func.id)  # type: ignore[attr-defined]
            _replace(tree, call, ast.Name(id=placeholder, ctx=ast.Load()))
        pending.append(_Column(name, ast.unparse(tree), aliases, scalars))
    return _with_columns(table, pending) if pending else table


def apply_valid_ranges(table: "DataFrame", ranges: Mapping[str, Any]) -> "DataFrame":
    """Values outside a column's valid [low, high] (None: that side open) made missing, as
    ``Recipe.features`` does on the pandas path; columns without a range are left as they are."""
    from pyspark.sql import functions as F

    columns = []
    for name in table.columns:
        column = F.col(f"`{name}`")
        if name in ranges:
            low, high = ranges[name]
            outside = F.lit(False)
            if low is not None:
                outside = outside | (column < low)
            if high is not None:
                outside = outside | (column > high)
            column = F.when(~F.coalesce(outside, F.lit(False)), column)
        columns.append(column.alias(name))
    return table.select(*columns)


def _check(table: "DataFrame", name: str, expression: str) -> None:
    tree, _ = parse(name, expression)
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and node.func.id not in (*AGGREGATES, "abs"):  # type: ignore[attr-defined]
            raise DataError(f"derived column {name!r} = {expression!r}: {node.func.id}() needs a date, "  # type: ignore[attr-defined]
                            "and a log's per-customer columns are numbers")
    missing = [c for c in referenced_columns(name, expression) if c not in table.columns]
    if missing:
        raise DataError(f"derived column {name!r} = {expression!r}: no column {missing[0]!r}; the per-customer "
                        f"table has {', '.join(table.columns)}")


def _innermost_aggregate(tree: ast.AST) -> ast.Call | None:
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and node.func.id in AGGREGATES and _innermost_aggregate(node.args[0]) is None:  # type: ignore[attr-defined]
            return node
    return None


def _replace(tree: ast.AST, old: ast.AST, new: ast.AST) -> None:
    for parent in ast.walk(tree):
        for field, value in ast.iter_fields(parent):
            if value is old:
                setattr(parent, field, new)
            elif isinstance(value, list):
                value[:] = [new if item is old else item for item in value]


def _aggregate(table: "DataFrame", function: str) -> float:
    """max/min/mean of the ``__value`` column, missing values skipped (NaN when all are)."""
    from pyspark.sql import functions as F

    value = table.agg({"max": F.max, "min": F.min, "mean": F.avg}[function](F.col("__value"))).first()[0]
    return math.nan if value is None else float(value)


@dataclass(frozen=True)
class _Column:
    """A column to add: its name and expression text (placeholders for back-ticked names and aggregates)."""

    name: str
    text: str
    aliases: dict[str, str]
    scalars: dict[str, float]


def _with_columns(table: "DataFrame", added: list[_Column]) -> "DataFrame":
    """The table with the columns added in order, evaluated per Arrow batch by the pandas path's code."""
    from pyspark.sql.types import DoubleType, StructField, StructType

    from segmentation_core.derived import evaluate

    names = {c.name for c in added}
    schema = StructType([*[f for f in table.schema.fields if f.name not in names],
                         *[StructField(c.name, DoubleType(), True) for c in added]])

    def per_batch(batches: Iterator[Any]) -> Iterator[Any]:
        for batch in batches:
            numbers = {c: batch[c].astype("float64") for c in batch.columns if batch[c].dtype.kind in "biuf"}
            for column in added:
                values = numbers | {key: numbers[name] for key, name in column.aliases.items()} | column.scalars
                numbers[column.name] = batch[column.name] = evaluate(column.name, column.text, values, batch.index)
            yield batch[[f.name for f in schema.fields]]

    return table.mapInPandas(per_batch, schema)
