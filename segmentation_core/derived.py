"""Derived columns: a small, safe expression language over the table's columns.

Expressions are parsed with ``ast`` and only these nodes are evaluated: column names (``\\`Name with
spaces\\``` in back ticks), numbers, ``+ - * / // % **``, unary minus, and the functions below. There is no
attribute access, indexing, or call of anything else, so a config file cannot run code. The training job
evaluates a config's [derived] section with it, and a transactions model's recipe (segmentation_core.recipe)
evaluates the same expressions on the customers of a log being scored; ``training_job.spark.derived``
turns the same parsed expressions into Spark columns.
"""

from __future__ import annotations

import ast
import operator
import re
from collections.abc import Callable, Mapping

import numpy as np
import pandas as pd

from segmentation_core.errors import ConfigError, DataError

__all__ = ["AGGREGATES", "FUNCTIONS", "evaluate", "parse", "referenced_columns"]

_BINARY: dict[type, Callable] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
    ast.Pow: operator.pow,
}


def _days(x):
    return x.dt.total_seconds() / 86400.0 if isinstance(x, pd.Series) else x.total_seconds() / 86400.0


def _year(x):
    return x.dt.year.astype("float64") if isinstance(x, pd.Series) else float(x.year)


def _month(x):
    return x.dt.month.astype("float64") if isinstance(x, pd.Series) else float(x.month)


FUNCTIONS: dict[str, Callable] = {
    "year": _year,  # year of a date (column or scalar)
    "month": _month,
    "days": _days,  # a time difference in days (float)
    "max": lambda x: x.max(),  # a column's maximum, e.g. the last date in the file
    "min": lambda x: x.min(),
    "mean": lambda x: x.mean(),
    "abs": abs,
}

AGGREGATES = ("max", "min", "mean")  # the functions of a whole column (missing values skipped)

_BACKTICK = re.compile(r"`([^`]+)`")


def parse(name: str, expression: str) -> tuple[ast.Expression, dict[str, str]]:
    """The checked syntax tree of an expression and its back-ticked names (placeholder -> column name)."""
    aliases: dict[str, str] = {}

    def alias(match: re.Match) -> str:
        key = f"__col{len(aliases)}"
        aliases[key] = match.group(1)
        return key

    try:
        tree = ast.parse(_BACKTICK.sub(alias, expression), mode="eval")
    except SyntaxError as exc:
        raise ConfigError(f"derived.{name}: invalid expression {expression!r}: {exc.msg}") from exc
    for node in ast.walk(tree):
        allowed = (ast.Expression, ast.BinOp, ast.UnaryOp, ast.USub, ast.UAdd, ast.Name, ast.Load, ast.Constant,
                   ast.Call, *_BINARY)
        if not isinstance(node, allowed):
            raise ConfigError(f"derived.{name}: {type(node).__name__} is not allowed in {expression!r}")
        if isinstance(node, ast.Constant) and not isinstance(node.value, int | float):
            raise ConfigError(f"derived.{name}: only numbers are allowed as constants, got {node.value!r}")
        if isinstance(node, ast.Call):
            if not isinstance(node.func, ast.Name) or node.func.id not in FUNCTIONS or node.keywords:
                raise ConfigError(
                    f"derived.{name}: unknown function in {expression!r}; available: {', '.join(FUNCTIONS)}"
                )
            if len(node.args) != 1:
                raise ConfigError(f"derived.{name}: {node.func.id}() takes exactly one argument")
    return tree, aliases


def referenced_columns(name: str, expression: str) -> list[str]:
    """Column names an expression reads, in order of appearance."""
    tree, aliases = parse(name, expression)
    called = {id(n.func) for n in ast.walk(tree) if isinstance(n, ast.Call)}
    names = [n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and id(n) not in called]
    return list(dict.fromkeys(aliases.get(n, n) for n in names))


def evaluate(name: str, expression: str, columns: Mapping[str, pd.Series], index: pd.Index) -> pd.Series:
    """Evaluate one expression to a float64 column aligned with `index`."""
    tree, aliases = parse(name, expression)

    def walk(node: ast.AST):
        if isinstance(node, ast.Expression):
            return walk(node.body)
        if isinstance(node, ast.Constant):
            return node.value
        if isinstance(node, ast.Name):
            column = aliases.get(node.id, node.id)
            if column not in columns:
                raise DataError(f"derived column {name!r} = {expression!r}: no column {column!r}; the table has "
                                f"{', '.join(map(str, columns))}")
            return columns[column]
        if isinstance(node, ast.UnaryOp):
            value = walk(node.operand)
            return -value if isinstance(node.op, ast.USub) else value
        if isinstance(node, ast.BinOp):
            return _BINARY[type(node.op)](walk(node.left), walk(node.right))
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
            return FUNCTIONS[node.func.id](walk(node.args[0]))
        raise AssertionError(node)  # parse admitted only the nodes handled above

    try:
        with np.errstate(divide="ignore", invalid="ignore"):
            result = walk(tree)
    except (TypeError, AttributeError) as exc:
        # e.g. year() of a column that is not in data.date_columns, or a date added to a number
        raise DataError(f"derived column {name!r} = {expression!r}: {exc}") from exc
    if isinstance(result, pd.Series) and pd.api.types.is_timedelta64_dtype(result):
        raise DataError(f"derived column {name!r} = {expression!r} is a time difference; wrap it in days()")
    if not isinstance(result, pd.Series):
        result = pd.Series(result, index=index)
    try:
        values = result.astype("float64")
    except (TypeError, ValueError) as exc:
        raise DataError(f"derived column {name!r} = {expression!r} is not numeric ({result.dtype})") from exc
    return values.replace([np.inf, -np.inf], np.nan)
