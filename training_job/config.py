"""The training configuration: frozen dataclasses loaded from TOML, validated once, with errors naming the key.

A configuration file has these tables (every key is optional unless marked; defaults shown)::

    [data]
    kind = "customers"         # "customers": one row per customer; "transactions": a log aggregated to RFM
    id_column = "auto"         # customer id column; "auto" infers it; "" means none (ids are row numbers)
    numeric = []               # numeric feature columns (raw, [derived], or RFM outputs for transactions)
    categorical = []           # categorical feature columns (compared as text)
    date_columns = []          # columns parsed as dates, usable in [derived] expressions
    date_format = "auto"       # "auto" (ISO, YYYYMMDD, or dd-mm/mm-dd decided from the values), "dayfirst",
                               # "monthfirst", or a strftime format such as "%d-%m-%Y"
    drop = []                  # columns deliberately ignored (documentation; they are never features)

    [derived]                  # name = expression; new numeric columns computed before feature selection
    Age = "year(max(Dt_Customer)) - Year_Birth"
    # Expressions: column names (`back ticks` for names with spaces), numbers, + - * / // % **, and the
    # functions year(), month(), days() (a time difference in days), max(), min(), mean(), abs(). Nothing
    # else is evaluated: see segmentation_core.derived.

    [cleaning]
    duplicates = "drop"        # "drop": drop exact duplicate rows and later rows of a repeated id; "keep"
    missing = "impute"         # "impute": leave NaN/None for the feature transform; "drop": drop the row
    [cleaning.missing_columns] # per-column override of `missing`
    Income = "drop"
    [cleaning.valid_range]     # column = [low, high], inclusive; "" leaves a side open: Income = ["", 300000]
    Age = [16, 100]            # values outside are implausible: set missing, counted, then `missing` applies
                               # (a raw column is checked before [derived] uses it, a derived one after)
    [cleaning.recode.Marital_Status]   # column -> {old value = new value}, applied before anything else
    YOLO = "Single"

    [transactions]             # only for kind = "transactions"
    customer_id = "CustomerID"
    invoice = "InvoiceNo"      # "" when the log has no invoice: each (customer, day) is one purchase
    date = "InvoiceDate"
    quantity = "Quantity"      # "" when absent
    price = "UnitPrice"        # line value = quantity * price ...
    amount = ""                # ... unless `amount` names a column holding the line value itself
    cancellation_prefix = "C"  # invoices starting with this are cancellations; "" to disable
    keep_zero_value = false    # keep lines whose value is exactly 0 (free items); negatives always dropped
    snapshot_date = "auto"     # "auto": the day after the last transaction; or an ISO date

    [clv]                      # customer lifetime value (BG/NBD + Gamma-Gamma), fitted for transaction logs
    horizon_days = 365         # CLV and expected purchases over this many days
    discount_rate_annual = 0.1 # future value discounted monthly at this annual rate
    calibration_end = ""       # "" fits on the whole log; an ISO date fits on purchases up to that day only
    time_unit = "days"         # "days" or "weeks": the unit the models' times are fitted in

    [model]
    algorithm = "kmeans"       # kmeans | minibatch-kmeans | gmm
    k = "auto"                 # "auto" or a whole number from 2 to 20 (training_job.limits.MAX_K)
    k_min = 2
    k_max = 10                 # at most 20
    business_k_range = [4, 8]  # optional: the k a business can use; natural groups outside it, or
                               # none at all, give a partition inside it (explained-variance elbow)
    seed = 0

    [preprocessing]
    skew = "auto"              # auto | none | log1p | yeo-johnson
    outliers = "clip"          # clip | none
    categorical_weight = 1.0   # > 0

    [naming]
    style = "profile"          # profile | mall | rfm
    [naming.labels]            # feature column -> business label for names and descriptions
    "Total Spending" = "spending"
    [naming.names]             # generated segment name -> your name
    "Affluent Light Spenders" = "Careful Spenders"

Unknown keys are errors (a typo must not silently fall back to a default).
"""

from __future__ import annotations

import dataclasses
import logging
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

from segmentation_core.recipe import TIME_UNITS, Recipe
from training_job.algorithms import ALGORITHMS as ALGORITHM_REGISTRY
from training_job.errors import ConfigError
from training_job.limits import MAX_K, MIN_K

__all__ = [
    "PRESETS",
    "CleaningConfig",
    "DataConfig",
    "ModelConfig",
    "NamingConfig",
    "PreprocessingConfig",
    "ClvConfig",
    "TrainingConfig",
    "TransactionsConfig",
    "apply_overrides",
    "check_k",
    "check_k_range",
    "config_from_dict",
    "load_config",
    "load_preset",
    "parse_k",
]

logger = logging.getLogger(__name__)

PRESET_DIR = Path(__file__).resolve().parent / "presets"
PRESETS: tuple[str, ...] = tuple(sorted(p.stem for p in PRESET_DIR.glob("*.toml")))

KINDS = ("customers", "transactions")
ALGORITHMS = tuple(ALGORITHM_REGISTRY)
SKEW = ("auto", "none", "log1p", "yeo-johnson")
OUTLIERS = ("clip", "none")
STYLES = ("profile", "mall", "rfm")
DUPLICATES = ("drop", "keep")
MISSING = ("impute", "drop")


def _frozen(mapping: Mapping | None = None) -> Mapping:
    return MappingProxyType(dict(mapping or {}))


@dataclass(frozen=True)
class DataConfig:
    """What the input table is and which of its columns are features."""

    kind: str = "customers"
    """"customers" (one row per customer) or "transactions" (a purchase log aggregated per customer)."""
    id_column: str | None = "auto"
    """Customer id column; "auto" to infer one; None for no id (ids become 1-based row numbers)."""
    numeric: tuple[str, ...] = ()
    """Numeric feature columns, in order: raw columns, [derived] names, or RFM outputs."""
    categorical: tuple[str, ...] = ()
    """Categorical feature columns, compared as text."""
    date_columns: tuple[str, ...] = ()
    """Columns parsed as dates (for [derived] expressions)."""
    date_format: str = "auto"
    """"auto", "dayfirst", "monthfirst" or a strftime format."""
    drop: tuple[str, ...] = ()
    """Columns deliberately ignored (e.g. constants); recorded in the report."""


@dataclass(frozen=True)
class CleaningConfig:
    """Rules for duplicates, missing values, implausible values and value recoding."""

    duplicates: str = "drop"
    """"drop" exact duplicate rows and repeated ids (keeping the first), or "keep"."""
    missing: str = "impute"
    """"impute" (leave missing for the feature transform) or "drop" (drop the row)."""
    missing_columns: Mapping[str, str] = field(default_factory=_frozen)
    """Per-column override of `missing`."""
    valid_range: Mapping[str, tuple[float | None, float | None]] = field(default_factory=_frozen)
    """Column -> inclusive (low, high); None is an open side. Values outside become missing."""
    recode: Mapping[str, Mapping[str, str]] = field(default_factory=_frozen)
    """Column -> {old value: new value}, applied to the raw text before anything else."""

    def missing_rule(self, column: str) -> str:
        """The missing-value rule for one column."""
        return self.missing_columns.get(column, self.missing)


@dataclass(frozen=True)
class TransactionsConfig:
    """Column names and rules of a transaction log (kind = "transactions")."""

    customer_id: str = "CustomerID"
    invoice: str | None = "InvoiceNo"
    """None: each (customer, day) counts as one purchase."""
    date: str = "InvoiceDate"
    quantity: str | None = "Quantity"
    price: str | None = "UnitPrice"
    amount: str | None = None
    """Column holding the line value; when set, quantity * price is not used."""
    cancellation_prefix: str = "C"
    keep_zero_value: bool = False
    """Keep lines of value exactly 0; negative values and quantities are always dropped."""
    snapshot_date: str = "auto"
    """"auto" (the day after the last transaction) or an ISO date."""


@dataclass(frozen=True)
class ClvConfig:
    """Customer lifetime value: horizon, discounting and the calibration period of the BG/NBD fit."""

    horizon_days: int = 365
    discount_rate_annual: float = 0.1
    calibration_end: str | None = None
    """None: fit on the whole log; an ISO date: fit on purchases up to and including that day."""
    time_unit: str = "days"
    """"days" or "weeks"."""


@dataclass(frozen=True)
class ModelConfig:
    """Clustering algorithm and the search over k."""

    algorithm: str = "kmeans"
    k: int | str = "auto"
    """"auto" or a fixed number of segments (``limits.MIN_K`` to ``limits.MAX_K``)."""
    k_min: int = 2
    k_max: int = 10
    business_k_range: tuple[int, int] | None = None
    """The numbers of segments a business can use. Under "auto", natural groups inside it are kept;
    otherwise the base is partitioned inside it (``k_rule.choose_k_in_range``). Only its part inside the
    searched k_min..k_max counts."""
    seed: int = 0


@dataclass(frozen=True)
class PreprocessingConfig:
    """Options of the feature transform (applied in segmentation_core)."""

    skew: str = "auto"
    outliers: str = "clip"
    categorical_weight: float = 1.0


@dataclass(frozen=True)
class NamingConfig:
    """How segments are named."""

    style: str = "profile"
    names: Mapping[str, str] = field(default_factory=_frozen)
    """Generated name -> the name to publish."""
    labels: Mapping[str, str] = field(default_factory=_frozen)
    """Feature column -> its business label, used in segment names and descriptions ('Total Spending' ->
    'spending'); a column without one gets a label derived from its name (training_job.name_terms)."""


@dataclass(frozen=True)
class TrainingConfig:
    """The whole training configuration."""

    data: DataConfig = field(default_factory=DataConfig)
    derived: Mapping[str, str] = field(default_factory=_frozen)
    """New numeric column name -> expression, evaluated in order."""
    cleaning: CleaningConfig = field(default_factory=CleaningConfig)
    transactions: TransactionsConfig = field(default_factory=TransactionsConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    preprocessing: PreprocessingConfig = field(default_factory=PreprocessingConfig)
    naming: NamingConfig = field(default_factory=NamingConfig)
    source: str = "<defaults>"
    """Where this configuration came from (a file, a preset name, or "auto")."""
    clv: ClvConfig = field(default_factory=ClvConfig)
    k_overridden: bool = False
    """Whether model.k was given by the user (--k, a request's k) over the configuration's (apply_overrides)."""

    def k_set_by(self) -> str:
        """Who fixed model.k, for the report and log: "the preset (mall)" when a shipped preset's k stands,
        else "the user" (the command line, a request, or the user's own configuration file)."""
        if self.source.startswith("preset:") and not self.k_overridden:
            return f"the preset ({self.source.removeprefix('preset:')})"
        return "the user"

    def recipe(self) -> Recipe:
        """The feature recipe of a transactions model, as the artefact stores it."""
        tx = self.transactions
        return Recipe(customer_id=tx.customer_id, date=tx.date, invoice=tx.invoice, quantity=tx.quantity,
                      price=tx.price, amount=tx.amount, cancellation_prefix=tx.cancellation_prefix,
                      keep_zero_value=tx.keep_zero_value, drop_duplicates=self.cleaning.duplicates == "drop",
                      date_format=self.data.date_format, snapshot_date=tx.snapshot_date,
                      time_unit=self.clv.time_unit, derived=dict(self.derived),
                      valid_range={name: list(bounds) for name, bounds in self.cleaning.valid_range.items()
                                   if name in self.data.numeric or name in self.derived})

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able copy (for the manifest and logs)."""
        return _plain(self)


def _plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    return value


def load_config(path: Path) -> TrainingConfig:
    """Load and validate a TOML training configuration."""
    path = Path(path)
    try:
        with path.open("rb") as handle:
            raw = tomllib.load(handle)
    except FileNotFoundError as exc:
        raise ConfigError(f"{path}: configuration file not found") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML: {exc}") from exc
    try:
        return config_from_dict(raw, source=str(path))
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from exc


def load_preset(name: str) -> TrainingConfig:
    """Load a shipped preset by name (see PRESETS)."""
    if name not in PRESETS:
        raise ConfigError(f"unknown preset {name!r}; shipped presets: {', '.join(PRESETS)} (or 'auto')")
    config = load_config(PRESET_DIR / f"{name}.toml")
    return dataclasses.replace(config, source=f"preset:{name}")


def apply_overrides(
    config: TrainingConfig, *, k: int | str | None = None, algorithm: str | None = None
) -> TrainingConfig:
    """Return a copy of `config` with command-line overrides (None leaves a value as configured)."""
    model = config.model
    if k is not None:
        model = dataclasses.replace(model, k=parse_k(k, "--k"))
        config = dataclasses.replace(config, k_overridden=True)
    if algorithm is not None:
        model = dataclasses.replace(model, algorithm=_choice(algorithm, ALGORITHMS, "--algorithm"))
    _check_model(model)
    return dataclasses.replace(config, model=model)


def config_from_dict(raw: Mapping[str, Any], *, source: str = "<dict>") -> TrainingConfig:
    """Build a validated TrainingConfig from parsed TOML (a nested dict)."""
    sections = {"data", "derived", "cleaning", "transactions", "model", "preprocessing", "naming", "clv"}
    _no_unknown(raw, sections, "")
    data = _data(_table(raw, "data"))
    derived = _derived(_table(raw, "derived"))
    cleaning = _cleaning(_table(raw, "cleaning"))
    transactions = _transactions(_table(raw, "transactions"))
    model = _model(_table(raw, "model"))
    preprocessing = _preprocessing(_table(raw, "preprocessing"))
    naming = _naming(_table(raw, "naming"))
    clv = _clv(_table(raw, "clv"))
    config = TrainingConfig(data, derived, cleaning, transactions, model, preprocessing, naming, source, clv)
    _cross_check(config)
    return config


# --- section parsers: each validates types and choices and names the offending key -------------------------


def _data(t: Mapping[str, Any]) -> DataConfig:
    _no_unknown(t, {f.name for f in dataclasses.fields(DataConfig)}, "data")
    id_column = _opt_str(t, "id_column", "data", default="auto")
    return DataConfig(
        kind=_choice(t.get("kind", "customers"), KINDS, "data.kind"),
        id_column=id_column,
        numeric=_names(t, "numeric", "data"),
        categorical=_names(t, "categorical", "data"),
        date_columns=_names(t, "date_columns", "data"),
        date_format=_str(t, "date_format", "data", default="auto"),
        drop=_names(t, "drop", "data"),
    )


def _derived(t: Mapping[str, Any]) -> Mapping[str, str]:
    for name, expression in t.items():
        if not isinstance(expression, str) or not expression.strip():
            raise ConfigError(f"derived.{name}: expected an expression string, got {expression!r}")
    return _frozen(t)


def _cleaning(t: Mapping[str, Any]) -> CleaningConfig:
    _no_unknown(t, {f.name for f in dataclasses.fields(CleaningConfig)}, "cleaning")
    missing_columns = _table(t, "missing_columns", "cleaning")
    for column, rule in missing_columns.items():
        _choice(rule, MISSING, f"cleaning.missing_columns.{column}")
    ranges = {}
    for column, bounds in _table(t, "valid_range", "cleaning").items():
        ranges[column] = _range(bounds, f"cleaning.valid_range.{column}")
    recode = {}
    for column, table in _table(t, "recode", "cleaning").items():
        if not isinstance(table, Mapping):
            raise ConfigError(f"cleaning.recode.{column}: expected a table of old = new values, got {table!r}")
        for old, new in table.items():
            if not isinstance(new, str):
                raise ConfigError(f"cleaning.recode.{column}.{old}: expected a string, got {new!r}")
        recode[column] = _frozen(table)
    return CleaningConfig(
        duplicates=_choice(t.get("duplicates", "drop"), DUPLICATES, "cleaning.duplicates"),
        missing=_choice(t.get("missing", "impute"), MISSING, "cleaning.missing"),
        missing_columns=_frozen(missing_columns),
        valid_range=_frozen(ranges),
        recode=_frozen(recode),
    )


def _transactions(t: Mapping[str, Any]) -> TransactionsConfig:
    _no_unknown(t, {f.name for f in dataclasses.fields(TransactionsConfig)}, "transactions")
    default = TransactionsConfig()
    keep_zero = t.get("keep_zero_value", False)
    if not isinstance(keep_zero, bool):
        raise ConfigError(f"transactions.keep_zero_value: expected true or false, got {keep_zero!r}")
    snapshot = _str(t, "snapshot_date", "transactions", default="auto")
    if snapshot != "auto":
        try:
            from datetime import date

            date.fromisoformat(snapshot)
        except ValueError as exc:
            raise ConfigError(f"transactions.snapshot_date: expected 'auto' or an ISO date, got {snapshot!r}") from exc
    config = TransactionsConfig(
        customer_id=_str(t, "customer_id", "transactions", default=default.customer_id),
        invoice=_opt_str(t, "invoice", "transactions", default=default.invoice),
        date=_str(t, "date", "transactions", default=default.date),
        quantity=_opt_str(t, "quantity", "transactions", default=default.quantity),
        price=_opt_str(t, "price", "transactions", default=default.price),
        amount=_opt_str(t, "amount", "transactions", default=None),
        cancellation_prefix=_str(t, "cancellation_prefix", "transactions", default="C", empty_ok=True),
        keep_zero_value=keep_zero,
        snapshot_date=snapshot,
    )
    if config.amount is None and (config.quantity is None or config.price is None):
        raise ConfigError("transactions: set either `amount` or both `quantity` and `price`")
    return config


def _model(t: Mapping[str, Any]) -> ModelConfig:
    _no_unknown(t, {f.name for f in dataclasses.fields(ModelConfig)}, "model")
    model = ModelConfig(
        algorithm=_choice(t.get("algorithm", "kmeans"), ALGORITHMS, "model.algorithm"),
        k=parse_k(t.get("k", "auto"), "model.k"),
        k_min=_int(t, "k_min", "model", 2),
        k_max=_int(t, "k_max", "model", 10),
        business_k_range=_k_range(t.get("business_k_range"), "model.business_k_range"),
        seed=_int(t, "seed", "model", 0),
    )
    _check_model(model)
    return model


def _preprocessing(t: Mapping[str, Any]) -> PreprocessingConfig:
    _no_unknown(t, {f.name for f in dataclasses.fields(PreprocessingConfig)}, "preprocessing")
    weight = t.get("categorical_weight", 1.0)
    if isinstance(weight, bool) or not isinstance(weight, int | float) or weight <= 0:
        raise ConfigError(f"preprocessing.categorical_weight: expected a number > 0, got {weight!r}")
    return PreprocessingConfig(
        skew=_choice(t.get("skew", "auto"), SKEW, "preprocessing.skew"),
        outliers=_choice(t.get("outliers", "clip"), OUTLIERS, "preprocessing.outliers"),
        categorical_weight=float(weight),
    )


def _naming(t: Mapping[str, Any]) -> NamingConfig:
    _no_unknown(t, {"style", "names", "labels"}, "naming")
    names = _table(t, "names", "naming")
    for old, new in names.items():
        if not isinstance(new, str) or not new.strip():
            raise ConfigError(f"naming.names.{old}: expected a non-empty string, got {new!r}")
    labels = _table(t, "labels", "naming")
    for column, label in labels.items():
        if not isinstance(label, str) or not label.strip():
            raise ConfigError(f"naming.labels.{column}: expected a non-empty string, got {label!r}")
    return NamingConfig(style=_choice(t.get("style", "profile"), STYLES, "naming.style"), names=_frozen(names),
                        labels=_frozen({c: label.strip() for c, label in labels.items()}))


def _clv(t: Mapping[str, Any]) -> ClvConfig:
    _no_unknown(t, {f.name for f in dataclasses.fields(ClvConfig)}, "clv")
    horizon = _int(t, "horizon_days", "clv", 365)
    if horizon < 1:
        raise ConfigError(f"clv.horizon_days: expected an integer >= 1, got {horizon}")
    rate = t.get("discount_rate_annual", 0.1)
    if isinstance(rate, bool) or not isinstance(rate, int | float) or not 0 <= rate < 1:
        raise ConfigError(f"clv.discount_rate_annual: expected a number in [0, 1), got {rate!r}")
    end = _opt_str(t, "calibration_end", "clv", default=None)
    if end is not None:
        try:
            from datetime import date

            date.fromisoformat(end)
        except ValueError as exc:
            raise ConfigError(f"clv.calibration_end: expected \"\" or an ISO date, got {end!r}") from exc
    return ClvConfig(horizon_days=horizon, discount_rate_annual=float(rate), calibration_end=end,
                     time_unit=_choice(t.get("time_unit", "days"), tuple(TIME_UNITS), "clv.time_unit"))


def _cross_check(config: TrainingConfig) -> None:
    features = config.data.numeric + config.data.categorical
    unknown_labels = sorted(set(config.naming.labels) - set(features))
    if unknown_labels and features:
        raise ConfigError(f"naming.labels: {unknown_labels} are not feature columns (numeric/categorical: "
                          f"{list(features)})")
    repeated = sorted({name for name in features if features.count(name) > 1})
    if repeated:
        raise ConfigError(f"data: column(s) listed more than once in numeric/categorical: {repeated}")
    dropped = sorted(set(features) & set(config.data.drop))
    if dropped:
        raise ConfigError(f"data.drop: column(s) {dropped} are also listed as features")
    clash = sorted(set(config.derived) & set(config.data.categorical))
    if clash:
        raise ConfigError(f"derived: {clash} are numeric expressions but listed in data.categorical")


# --- small typed getters ----------------------------------------------------------------------------------


def _table(t: Mapping[str, Any], key: str, where: str = "") -> Mapping[str, Any]:
    value = t.get(key, {})
    if not isinstance(value, Mapping):
        raise ConfigError(f"{_key(where, key)}: expected a table ([{_key(where, key)}]), got {value!r}")
    return value


def _no_unknown(t: Mapping[str, Any], allowed: set[str], where: str) -> None:
    unknown = sorted(set(t) - allowed)
    if unknown:
        raise ConfigError(
            f"{_key(where, unknown[0])}: unknown key; [{where or 'top level'}] accepts {', '.join(sorted(allowed))}"
        )


def _key(where: str, key: str) -> str:
    return f"{where}.{key}" if where else key


def _str(t: Mapping[str, Any], key: str, where: str, *, default: str, empty_ok: bool = False) -> str:
    value = t.get(key, default)
    if not isinstance(value, str) or (not value.strip() and not empty_ok):
        raise ConfigError(f"{_key(where, key)}: expected a non-empty string, got {value!r}")
    return value


def _opt_str(t: Mapping[str, Any], key: str, where: str, *, default: str | None) -> str | None:
    value = t.get(key, default)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise ConfigError(f"{_key(where, key)}: expected a string (\"\" for none), got {value!r}")
    return value


def _names(t: Mapping[str, Any], key: str, where: str) -> tuple[str, ...]:
    value = t.get(key, [])
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise ConfigError(f"{_key(where, key)}: expected a list of column names, got {value!r}")
    return tuple(value)


def _int(t: Mapping[str, Any], key: str, where: str, default: int) -> int:
    value = t.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"{_key(where, key)}: expected an integer, got {value!r}")
    return value


def _choice(value: Any, choices: tuple[str, ...], key: str) -> str:
    if value not in choices:
        raise ConfigError(f"{key}: expected one of {', '.join(choices)}; got {value!r}")
    return value


def parse_k(value: Any, key: str) -> int | str:
    """"auto" or a number of segments a model can have, from TOML, a flag or a request field; else
    ConfigError naming ``key``."""
    if value == "auto":
        return "auto"
    if isinstance(value, str) and value.strip().isdecimal():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"{key}: expected 'auto' or a whole number from {MIN_K} to {MAX_K}, got {value!r}")
    return check_k(value, key)


def check_k(value: int, key: str) -> int:
    """``value`` when a model can have that many segments (``MIN_K`` to ``MAX_K``), else ConfigError naming
    ``key``."""
    if value < MIN_K:
        raise ConfigError(f"{key}: expected a number of segments >= {MIN_K}, got {value}")
    if value > MAX_K:
        raise ConfigError(f"{key}: {value} segments is more than the {MAX_K} a model can have; "
                          f"choose {MIN_K} to {MAX_K}")
    return value


def check_k_range(k_min: int, k_max: int, keys: tuple[str, str] = ("model.k_min", "model.k_max")) -> None:
    """Refuse a k search range outside ``MIN_K``..``MAX_K`` or upside down (ConfigError naming the key)."""
    check_k(k_min, keys[0])
    check_k(k_max, keys[1])
    if k_max < k_min:
        raise ConfigError(f"{keys[1]}: {k_max} is below {keys[0]} {k_min}")


def _range(bounds: Any, key: str) -> tuple[float | None, float | None]:
    def bound(b: Any) -> float | None:
        if b == "":
            return None
        if isinstance(b, bool) or not isinstance(b, int | float):
            raise ConfigError(f"{key}: bounds must be numbers (or \"\" for an open side), got {b!r}")
        return float(b)

    if not isinstance(bounds, list) or len(bounds) != 2:
        raise ConfigError(f"{key}: expected [low, high], got {bounds!r}")
    low, high = bound(bounds[0]), bound(bounds[1])
    if low is not None and high is not None and low > high:
        raise ConfigError(f"{key}: low {low:g} is above high {high:g}")
    return low, high


def _check_model(model: ModelConfig) -> None:
    check_k_range(model.k_min, model.k_max)
    if model.business_k_range is not None:
        lo, hi = model.business_k_range
        if not 2 <= lo <= hi:
            raise ConfigError(f"model.business_k_range: expected [low, high] with 2 <= low <= high, got [{lo}, {hi}]")


def _k_range(value: Any, key: str) -> tuple[int, int] | None:
    if value is None:
        return None
    if (not isinstance(value, list) or len(value) != 2
            or any(isinstance(v, bool) or not isinstance(v, int) for v in value)):
        raise ConfigError(f"{key}: expected two integers [low, high], got {value!r}")
    return int(value[0]), int(value[1])
