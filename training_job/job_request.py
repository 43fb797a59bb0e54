"""A training request of the TrainingService (a dict with the TrainingRequest message's field names) turned
into a TrainingConfig: the one place that reads preset / config_toml / columns / k / algorithm."""
from __future__ import annotations

import dataclasses
import tomllib
from typing import Any, Mapping, Sequence

import pandas as pd

from segmentation_core.store import validate_model_name
from training_job.config import (ALGORITHMS, PRESETS, TrainingConfig, apply_overrides, check_k, check_k_range,
                                 config_from_dict, load_preset, parse_k)
from training_job.errors import ConfigError
from segmentation_core.recipe import CUSTOMER_COLUMNS
from training_job.schema_inference import infer_schema

__all__ = ["check_request", "config_for_request"]

DEFAULT_MODEL = "customers"


def check_request(request: Mapping[str, Any], columns: Sequence[str], rows: int | None = None) -> None:
    """Refuse a request that cannot run, naming the field (ConfigError); ``columns`` and ``rows`` are the
    table's (a customer is at least one row, so a k of ``rows`` or more cannot be trained)."""
    preset, toml = request.get("preset", ""), request.get("config_toml", "")
    if preset and toml:
        raise ConfigError("preset and config_toml: give one, not both")
    if preset and preset != "auto" and preset not in PRESETS:
        raise ConfigError(f"preset: unknown preset {preset!r}; shipped presets: {', '.join(PRESETS)} (or 'auto')")
    config = _parse_toml(toml) if toml else None
    try:
        validate_model_name(request.get("model") or DEFAULT_MODEL)
    except ValueError as exc:
        raise ConfigError(f"model: {exc}") from None
    algorithm = request.get("algorithm", "")
    if algorithm and algorithm not in ALGORITHMS:
        raise ConfigError(f"algorithm: expected one of {', '.join(ALGORITHMS)}; got {algorithm!r}")
    k, k_min, _ = _k_settings(request)
    fewest = int(k) if k is not None and k != "auto" else k_min
    if rows is not None and fewest and fewest >= rows:
        field = "k" if k is not None and k != "auto" else "k_min"
        raise ConfigError(f"{field}: {fewest} segments need more than {fewest} customers; "
                          f"the table has {rows} rows")
    transactions = (config is not None and config.data.kind == "transactions") or preset in ("transactions",)
    known = set(CUSTOMER_COLUMNS) if transactions else set(map(str, columns))
    for field in ("numeric_columns", "categorical_columns"):
        unknown = [c for c in request.get(field, []) if c not in known]
        if unknown:
            where = "the per-customer features" if transactions else "the table"
            raise ConfigError(f"{field}: column {unknown[0]!r} is not in {where} "
                              f"(columns: {', '.join(sorted(known))})")


def config_for_request(request: Mapping[str, Any], frame: pd.DataFrame) -> TrainingConfig:
    """The TrainingConfig a request asks for, on this table (auto infers from ``frame``)."""
    preset, toml = request.get("preset", ""), request.get("config_toml", "")
    if toml:
        config = _parse_toml(toml)
    elif preset in ("", "auto"):
        config = infer_schema(frame)
    else:
        config = load_preset(preset)
    numeric, categorical = list(request.get("numeric_columns", [])), list(request.get("categorical_columns", []))
    if numeric or categorical:
        data = dataclasses.replace(config.data, numeric=tuple(numeric), categorical=tuple(categorical))
        config = dataclasses.replace(config, data=data)
    k, k_min, k_max = _k_settings(request)
    if k_min or k_max:
        model = dataclasses.replace(config.model, k_min=k_min or config.model.k_min,
                                    k_max=k_max or config.model.k_max)
        config = dataclasses.replace(config, model=model)
    return apply_overrides(config, k=k, algorithm=request.get("algorithm") or None)


def _k_settings(request: Mapping[str, Any]) -> tuple[str | None, int, int]:
    """The request's k, k_min and k_max (None / 0: the configuration's), checked by the configuration's rules."""
    k = str(request.get("k", "") or "").strip() or None
    if k is not None:
        parse_k(k, "k")
    k_min, k_max = int(request.get("k_min", 0) or 0), int(request.get("k_max", 0) or 0)
    if k_min and k_max:
        check_k_range(k_min, k_max, ("k_min", "k_max"))
    elif k_min or k_max:
        check_k(k_min or k_max, "k_min" if k_min else "k_max")
    return k, k_min, k_max


def _parse_toml(text: str) -> TrainingConfig:
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config_toml: invalid TOML: {exc}") from None
    try:
        return config_from_dict(raw, source="config_toml")
    except ConfigError as exc:
        raise ConfigError(f"config_toml: {exc}") from None
