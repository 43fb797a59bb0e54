"""Tables of the dashboard: one builder over dash-ag-grid (sorting, paging, filters, colours by rule).

dash-ag-grid's JavaScript and CSS ship inside the Python package and are served by the dashboard itself
(`serve_locally`): the grid works without internet. Column kinds: "text", "number" (four significant
digits), "integer" (thousands separated), "percent" (one decimal).
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import dash_ag_grid as dag

_FORMATS = {
    "number": "d3.format('.4~g')(params.value)",
    "integer": "d3.format(',d')(params.value)",
    "percent": "d3.format('.1%')(params.value)",
}


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
    if column.kind in _FORMATS:
        definition["type"] = "rightAligned"
        definition["valueFormatter"] = {"function": f"params.value == null ? '' : {_FORMATS[column.kind]}"}
        if filters:
            definition["filter"] = "agNumberColumnFilter"
    elif filters:
        definition["filter"] = "agTextColumnFilter"
    if column.styles:
        definition["cellStyle"] = {"styleConditions": [{"condition": condition, "style": dict(style)}
                                                       for condition, style in column.styles]}
    return definition


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
        id=grid_id, rowData=list(rows), columnDefs=[column_def(c, filters=filters) for c in columns],
        defaultColDef={"sortable": True, "resizable": True, "minWidth": 70},
        columnSize="autoSize", dashGridOptions=options, className="data-grid",
        style={"height": height} if height else {"width": "100%"}, **grid,
    )
