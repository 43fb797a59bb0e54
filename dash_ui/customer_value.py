"""What a transaction-log model adds to the pages: lifetime value per segment and basket metrics per segment
(frames the tests read, and the cards that show them). Pages call these only for a model that has them."""
from __future__ import annotations

from typing import Any

import dash_bootstrap_components as dbc
import pandas as pd
from dash import html

from dash_ui.grid import Column, data_grid
from dash_ui.models import ModelView
from segmentation_core.clv import dropout_caveat

CLV_COLUMNS = (("segment", "Segment", "text"), ("customers", "Customers", "integer"),
               ("mean_clv", "Mean CLV", "number"), ("total_clv", "Total CLV", "number"),
               ("share_of_clv", "Share of value", "percent"), ("mean_p_alive", "Mean P(alive)", "percent"),
               ("mean_expected_purchases", "Expected purchases", "number"),
               ("mean_expected_order_value", "Expected order value", "number"))
BASKET_COLUMNS = (("segment", "Segment", "text"), ("metric", "Basket metric", "text"), ("mean", "Mean", "number"),
                  ("median", "Median", "number"), ("min", "Min", "number"), ("max", "Max", "number"))
BASKET_LABELS = {"AvgBasketValue": "Average basket value", "AvgItemsPerPurchase": "Items per purchase",
                 "TenureDays": "Tenure (days)", "PurchaseIntervalDays": "Days between purchases"}


def clv_frame(view: ModelView) -> pd.DataFrame:
    """One row per segment (by id), then all customers: size and the lifetime value figures."""
    rows = []
    for s in view.segments:
        if s.clv is not None:
            rows.append({"segment_id": s.id, "segment": s.name, "customers": s.size,
                         **{c: getattr(s.clv, c) for c, _, _ in CLV_COLUMNS[2:]}})
    if view.clv is not None and view.clv.base is not None:
        rows.append({"segment_id": -1, "segment": "All customers", "customers": view.training_customers,
                     **{c: getattr(view.clv.base, c) for c, _, _ in CLV_COLUMNS[2:]}})
    return pd.DataFrame(rows, columns=["segment_id", *[c for c, _, _ in CLV_COLUMNS]])


def basket_frame(view: ModelView) -> pd.DataFrame:
    """One row per (segment, basket metric): mean, median, min, max."""
    rows = [{"segment_id": s.id, "segment": s.name, "metric": BASKET_LABELS.get(b.feature, b.feature),
             "mean": b.mean, "median": b.median, "min": b.min, "max": b.max}
            for s in view.segments for b in s.basket]
    return pd.DataFrame(rows, columns=["segment_id", *[c for c, _, _ in BASKET_COLUMNS]])


def _grid(grid_id: str, frame: pd.DataFrame, spec: tuple, view: ModelView) -> Any:
    colour_rules = [(f"params.data.segment_id === {s.id}", {"color": s.colour, "fontWeight": "600"})
                    for s in view.segments]
    columns = [Column(c, header, kind, styles=colour_rules if c == "segment" else ()) for c, header, kind in spec]
    records = frame.astype(object).where(frame.notna(), None).to_dict("records")
    return data_grid(grid_id, records, columns)


def clv_card(view: ModelView, grid_id: str) -> Any:
    """A card with the lifetime value table (None for a model without CLV)."""
    if view.clv is None:
        return None
    clv = view.clv
    period = f"up to {clv.calibration_end}" if clv.calibration_end else "of the whole log"
    note = (f"BG/NBD + Gamma-Gamma, fitted on purchases {period}; CLV over {clv.horizon_days} days, discounted at {clv.discount_rate_annual:.0%} a year. Expected "
            f"purchases and P(alive) as of training. {dropout_caveat(clv.bgnbd)}")
    return dbc.Card(dbc.CardBody([
        html.H4("Customer lifetime value by segment", className="card-title"),
        html.P(note, className="text-muted small"),
        _grid(grid_id, clv_frame(view), CLV_COLUMNS, view),
    ]), className="section-card", id=f"{grid_id}-card")


def basket_card(view: ModelView, grid_id: str) -> Any:
    """A card with the basket metrics per segment (None for a model without them)."""
    frame = basket_frame(view)
    if frame.empty:
        return None
    return dbc.Card(dbc.CardBody([
        html.H4("Basket metrics by segment", className="card-title"),
        html.P("Per customer, from the transaction log: spend and items per purchase, days from first to last "
               "purchase, and mean days between purchase days (customers who bought on one day only have none).",
               className="text-muted small"),
        _grid(grid_id, frame, BASKET_COLUMNS, view),
    ]), className="section-card", id=f"{grid_id}-card")
