"""Tables of the dashboard: one builder over dash-ag-grid (sorting, paging, filters, colours by rule).

dash-ag-grid's JavaScript and CSS ship inside the Python package and are served by the dashboard itself
(`serve_locally`): the grid works without internet. Column kinds: "text", "number" (an amount, or a year for
a year-like column: `segmentation_core.number_format`), "integer" (a count), "percent". Numbers are written
here, in Python, by the dashboard's one rule (`number_format.format_number`): each row carries its cells' texts
under TEXT_KEY, which the grid shows, while sorting and filtering use the numbers.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import dash_ag_grid as dag

from segmentation_core import number_format

#: The number kind of each numeric column kind ("number" may become a year: `column_kinds`).
_KINDS = {"number": number_format.AMOUNT, "integer": number_format.COUNT, "percent": number_format.PERCENT}
#: Where a row keeps the texts of its number cells, by field.
TEXT_KEY = "_text"
#: A row's own number kind for its "number" cells (a Data page row about a year column), when it has one.
KIND_KEY = "_kind"


@dataclass(frozen=True)
class Column:
    """One column: its field in the rows, its header, its kind, and optional (condition, style) rules
    where the condition is a JavaScript expression over `params.data` (the row)."""

    field: str
    header: str
    kind: str = "text"
    styles: Sequence[tuple[str, Mapping[str, str]]] = field(default_factory=tuple)


def js_string(value: Any) -> str:
    """A Python value as a JavaScript literal, for a style condition."""
    return json.dumps(value)


def column_def(column: Column, *, filters: bool) -> dict[str, Any]:
    """The ag-grid column definition of `column`."""
    definition: dict[str, Any] = {"field": column.field, "headerName": column.header, "tooltipField": column.field}
    if column.kind in _KINDS:
        text = f"params.data.{TEXT_KEY}[{js_string(column.field)}]"
        definition["type"] = "rightAligned"
        definition["valueFormatter"] = {"function": f"params.value == null ? '' : {text}"}
        if filters:
            definition["filter"] = "agNumberColumnFilter"
    elif filters:
        definition["filter"] = "agTextColumnFilter"
    if column.styles:
        definition["cellStyle"] = {"styleConditions": [{"condition": condition, "style": dict(style)}
                                                       for condition, style in column.styles]}
    return definition


def column_kinds(rows: Sequence[Mapping[str, Any]], columns: Sequence[Column]) -> dict[str, str]:
    """The number kind of each numeric column by field: a "number" column of year-like values is YEAR."""
    kinds = {}
    for c in columns:
        if c.kind == "number":
            kinds[c.field] = number_format.number_kind(c.field, (row.get(c.field) for row in rows))
        elif c.kind in _KINDS:
            kinds[c.field] = _KINDS[c.kind]
    return kinds


def with_texts(rows: Sequence[Mapping[str, Any]], columns: Sequence[Column]) -> list[dict[str, Any]]:
    """`rows` with the text of every number cell under TEXT_KEY (a row's KIND_KEY overrides its
    "number" cells' kind)."""
    kinds = column_kinds(rows, columns)
    amounts = {c.field for c in columns if c.kind == "number"}
    texted = []
    for row in rows:
        own = row.get(KIND_KEY)
        texts = {f: number_format.format_number(row[f], own if own and f in amounts else kind)
                 for f, kind in kinds.items() if row.get(f) is not None}
        texted.append({**row, TEXT_KEY: texts})
    return texted


def data_grid(grid_id: str, rows: Sequence[Mapping[str, Any]], columns: Sequence[Column], *, page_size: int = 15,
              filters: bool = False, row_styles: Sequence[tuple[str, Mapping[str, str]]] = (),
              height: str | None = None) -> dag.AgGrid:
    """A sortable, paged grid of `rows` (dicts keyed by the columns' fields); `row_styles` are
    (condition, style) rules over whole rows."""
    options: dict[str, Any] = {"pagination": len(rows) > page_size, "paginationPageSize": page_size,
                               "paginationPageSizeSelector": False, "tooltipShowDelay": 400,
                               "enableCellTextSelection": True, "ensureDomOrder": True,
                               "suppressFieldDotNotation": True,  # a column "a.b" is a column, not a path
                               "suppressColumnVirtualisation": True}  # every column in the DOM (tests, search)
    if height is None:
        options["domLayout"] = "autoHeight"
    grid: dict[str, Any] = {}
    if row_styles:
        grid["getRowStyle"] = {"styleConditions": [{"condition": condition, "style": dict(style)}
                                                   for condition, style in row_styles]}
    return dag.AgGrid(
        id=grid_id, rowData=with_texts(rows, columns), columnDefs=[column_def(c, filters=filters) for c in columns],
        defaultColDef={"sortable": True, "resizable": True, "minWidth": 70},
        columnSize="autoSize", dashGridOptions=options, className="data-grid",
        style={"height": height} if height else {"width": "100%"}, **grid,
    )
