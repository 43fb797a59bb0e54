"""The feature schema and its transform: customer attributes in original units -> the clustering space.

This is the single implementation of the transform. The training job fits it and the scoring service
applies it from the artefact's JSON, so training and serving cannot drift apart.

Per numeric feature, in this order:
  1. missing (NaN, or absent from a request) -> the training median; so is a value outside the feature's
     valid range (the training configuration's ``[cleaning.valid_range]``, stored with the feature as
     ``valid_low`` / ``valid_high``): training's cleaning set such a value missing (``segmentation_core.valid_range``
     is the one definition both use), so scoring does too instead of clipping it;
  2. clip to robust bounds (original units) so a handful of extreme customers neither get a segment of
     their own nor drag a centroid;
  3. skew handling: ``log1p`` for skewed non-negative columns, Yeo-Johnson for skewed signed ones;
  4. standard scaling with the training mean and standard deviation of the transformed column.
Per categorical feature: missing (empty string or None) -> the training mode; one-hot over the training
levels (a value matches a level as written, else ignoring case when that names one level: "gold" and
Excel's "True" are "Gold" and "TRUE"), an unseen level encodes as all zeros (the implicit "other" level);
the one-hot block is weighted so that its total variance equals ``categorical_weight`` times that of one
numeric feature.
A customer missing every feature is not imputed but refused (NO_FEATURE_VALUES): there is nothing to score; so is
one with values none of which is usable - each missing, outside its valid range or an unseen level
(:func:`no_usable_values`: "no usable feature values: Spending Score (1-100) 400 is outside its valid range 1-100").
Which features of a row were imputed (missing, implausible, an unseen level) is reported on request
(``imputed=`` of :meth:`FeatureSchema.transform_columns` and :meth:`FeatureSchema.transform_row`) and turned
into the observed clustering-space columns by :meth:`FeatureSchema.partial_rows`, so that the confidence of
a partly known customer is the posterior given what is known (``segment_model``).
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, replace
from functools import cached_property
from typing import Any, Mapping, Protocol, Sequence

import numpy as np

from segmentation_core.errors import NO_FEATURE_VALUES, InputError, number_error, quoted
from segmentation_core.valid_range import outside_valid_range

try:  # the ufunc behind np.clip, without np.clip's Python-level dispatch
    from numpy._core.umath import clip as _clip
except ImportError:  # numpy < 2
    from numpy.core.umath import clip as _clip

SKEW_METHODS = ("none", "log1p", "yeo-johnson")
# |sample skewness| above which "auto" treats a column as skewed (Bulmer's "highly skewed" threshold).
SKEW_THRESHOLD = 1.0
#: How the error of a row with values, none of them usable, begins; the reasons follow (:func:`no_usable_values`).
NO_USABLE_VALUES = "no usable feature values"


def no_usable_values(reasons: Sequence[str]) -> str:
    """The error of a row whose every feature is missing, implausible (outside its valid range) or an unseen level,
    with a value present: imputing them all would score the training's typical customer. ``reasons``: why each
    present value is unusable ("Spending Score (1-100) 400 is outside its valid range 1-100")."""
    return f"{NO_USABLE_VALUES}: {'; '.join(reasons)}" if reasons else NO_FEATURE_VALUES


def unseen_reason(name: str, value: Any) -> str:
    """Why a categorical feature's ``value`` is unusable: training never saw that level."""
    return f"{name} {quoted(str(value))} is a level training never saw"


def _shown(value: float) -> str:
    """A number as written: 400, not 400.0; 2.5 as 2.5."""
    return str(int(value)) if float(value).is_integer() and abs(value) < 2**53 else repr(float(value))


@dataclass(frozen=True)
class NumericFeature:
    """A numeric feature and the parameters of its transform, fitted on the training data."""

    name: str
    impute: float
    clip_low: float
    clip_high: float
    skew: str
    yj_lambda: float
    center: float
    scale: float
    minimum: float
    maximum: float
    # The training configuration's valid range (None: that side open): a value outside is implausible and
    # treated as missing, as training's cleaning treated it. Versions trained before it have none.
    valid_low: float | None = None
    valid_high: float | None = None


@dataclass(frozen=True)
class Partial:
    """Rows of a batch with imputed features: their row numbers and, per row, which clustering-space columns
    were observed (False: a column of an imputed feature, whose value is the imputation, not the customer's)."""

    rows: np.ndarray  # int64 (p,)
    observed: np.ndarray  # bool (p, width)


@dataclass(frozen=True)
class CategoricalFeature:
    """A categorical feature: its training levels (most frequent first), imputation and weight."""

    name: str
    levels: tuple[str, ...]
    impute: str
    weight: float
    shares: tuple[float, ...] = ()

    @cached_property
    def index(self) -> dict[str, int]:
        """Level -> position in the one-hot block."""
        return {level: i for i, level in enumerate(self.levels)}

    @cached_property
    def folded_index(self) -> dict[str, int]:
        """Casefolded level -> position, for the levels no other level equals ignoring case."""
        positions: dict[str, list[int]] = {}
        for i, level in enumerate(self.levels):
            positions.setdefault(level.casefold(), []).append(i)
        return {key: found[0] for key, found in positions.items() if len(found) == 1}

    def level_of(self, label: str) -> str:
        """The training level ``label`` names: itself, else the one level equal to it ignoring case, else
        ``label`` (unseen)."""
        if label in self.index:
            return label
        position = self.folded_index.get(label.casefold())
        return label if position is None else self.levels[position]

    @cached_property
    def index_with_missing(self) -> dict[str | None, int]:
        """:attr:`index` plus None (missing) -> -2."""
        return {**self.index, None: -2}


@dataclass(frozen=True)
class FitOptions:
    """How the transform is fitted; recorded in the artefact."""

    skew: str = "auto"  # auto | none | log1p | yeo-johnson
    outliers: str = "clip"  # clip | none
    iqr_fence: float = 3.0  # clip bounds: Q1 - f*IQR, Q3 + f*IQR in the skew-transformed space
    categorical_weight: float = 0.5


def _yeo_johnson(x: np.ndarray, lam: float, out: np.ndarray | None = None, nonnegative: bool = False) -> np.ndarray:
    """Yeo-Johnson power transform (the formula of scipy and sklearn); ``out`` may be ``x`` itself.

    Written as ``sign(x) * expm1(c * log1p(|x|)) / c`` with ``c = lam`` for x >= 0 and ``2 - lam`` below:
    one log and one exp over the whole array, no masked gathers (it is on the scoring hot path).
    ``nonnegative``: the caller knows no value is below 0 (e.g. clipped at a bound >= 0, as amounts and
    counts are), so ``c`` is ``lam`` everywhere and the sign needs no restoring: half the array passes.
    """
    x = np.asarray(x, dtype=np.float64)
    if nonnegative and abs(lam) >= 1e-12 and abs(lam - 2.0) >= 1e-12:  # not the log branches below
        y = np.log1p(x, out=out)
        y *= lam
        np.expm1(y, out=y)
        y /= lam
        return y
    if abs(lam) < 1e-12 or abs(lam - 2.0) < 1e-12:  # a log branch: rare, keep the plain masked form
        result = np.empty_like(x)
        pos = x >= 0
        result[pos] = np.log1p(x[pos]) if abs(lam) < 1e-12 else (np.power(x[pos] + 1.0, lam) - 1.0) / lam
        result[~pos] = (-np.log1p(-x[~pos]) if abs(lam - 2.0) < 1e-12
                        else -(np.power(1.0 - x[~pos], 2.0 - lam) - 1.0) / (2.0 - lam))
        if out is None:
            return result
        out[...] = result
        return out
    coef = np.array([lam, 2.0 - lam]).take(np.less(x, 0).view(np.uint8))  # lam, or 2 - lam below 0
    y = np.abs(x)
    np.log1p(y, out=y)
    y *= coef
    np.expm1(y, out=y)
    y /= coef
    # y >= 0 here; copysign gives x's sign (a masked np.negative costs ten times as much)
    return np.copysign(y, x, out=y if out is None else out)


def _yeo_johnson_scalar(v: float, lam: float) -> float:
    """:func:`_yeo_johnson` of one value in pure Python (same formula; numpy costs more than the math here)."""
    if abs(lam) < 1e-12 or abs(lam - 2.0) < 1e-12:
        return float(_yeo_johnson(np.array([v]), lam)[0])
    coef = 2.0 - lam if v < 0 else lam
    out = math.expm1(coef * math.log1p(abs(v))) / coef
    return -out if v < 0 else out


def _yeo_johnson_inverse(y: np.ndarray, lam: float) -> np.ndarray:
    """Inverse of :func:`_yeo_johnson`."""
    out = np.empty_like(y, dtype=np.float64)
    pos = y >= 0
    if abs(lam) < 1e-12:
        out[pos] = np.expm1(y[pos])
    else:
        out[pos] = np.power(y[pos] * lam + 1.0, 1.0 / lam) - 1.0
    if abs(lam - 2.0) < 1e-12:
        out[~pos] = -np.expm1(-y[~pos])
    else:
        out[~pos] = 1.0 - np.power(-(2.0 - lam) * y[~pos] + 1.0, 1.0 / (2.0 - lam))
    return out


def _skew_forward(x: np.ndarray, method: str, lam: float) -> np.ndarray:
    if method == "log1p":
        return np.log1p(x)
    if method == "yeo-johnson":
        return _yeo_johnson(x, lam)
    return x


def _skew_inverse(y: np.ndarray, method: str, lam: float) -> np.ndarray:
    if method == "log1p":
        return np.expm1(y)
    if method == "yeo-johnson":
        return _yeo_johnson_inverse(y, lam)
    return y


def _sample_skewness(x: np.ndarray) -> float:
    sd = x.std()
    if sd == 0:
        return 0.0
    return float(np.mean(((x - x.mean()) / sd) ** 3))


class NumericStatistics(Protocol):
    """The statistics of one column that its numeric transform is fitted from.

    :class:`ArrayStatistics` computes them with numpy on a column in memory; the training job's Spark engine
    computes the same ones on a cluster. :func:`fit_numeric` makes every decision from them, so both fit
    one transform by one set of rules. "Filled" is the column with missing values set to the median.
    """

    def present(self) -> tuple[int, int, int, float, float]:
        """(rows, present values, infinite values, minimum, maximum of the present values)."""

    def median(self) -> float:
        """Median of the present values."""

    def filled_skewness(self, median: float) -> float:
        """Sample skewness of the filled column (0 for a constant one)."""

    def head_has_more_than_two_values(self, median: float) -> bool:
        """Whether the first 5,000 rows of the filled column hold more than two distinct values."""

    def yeojohnson_lambda(self, median: float) -> float:
        """Yeo-Johnson's maximum-likelihood lambda of the filled column."""

    def transformed_range(self, median: float, method: str, lam: float) -> tuple[float, float]:
        """Minimum and maximum of the filled column after the skew transform."""

    def transformed_quartiles(self, median: float, method: str, lam: float) -> tuple[float, float]:
        """25th and 75th percentiles (numpy's linear rule) of the filled column after the skew transform."""

    def final_moments(self, median: float, low: float, high: float, method: str, lam: float) -> tuple[float, float]:
        """Mean and standard deviation (ddof 0) of the filled column clipped to [low, high], then transformed."""


class ArrayStatistics:
    """:class:`NumericStatistics` of a column held in memory (numpy)."""

    def __init__(self, values: np.ndarray) -> None:
        self.values = np.asarray(values, dtype=np.float64)
        self._filled: tuple[float, np.ndarray] | None = None

    def filled(self, median: float) -> np.ndarray:
        """The column with missing values set to ``median``."""
        if self._filled is None or self._filled[0] != median:
            self._filled = (median, np.where(np.isnan(self.values), median, self.values))
        return self._filled[1]

    def present(self) -> tuple[int, int, int, float, float]:
        present = self.values[~np.isnan(self.values)]
        if present.size == 0:
            return len(self.values), 0, 0, math.nan, math.nan
        return (len(self.values), int(present.size), int(np.count_nonzero(~np.isfinite(present))),
                float(present.min()), float(present.max()))

    def median(self) -> float:
        return float(np.median(self.values[~np.isnan(self.values)]))

    def filled_skewness(self, median: float) -> float:
        return _sample_skewness(self.filled(median))

    def head_has_more_than_two_values(self, median: float) -> bool:
        return bool(np.unique(self.filled(median)[:5000]).size > 2)

    def yeojohnson_lambda(self, median: float) -> float:
        from scipy.stats import yeojohnson  # fitting only: serving never needs scipy

        return float(yeojohnson(self.filled(median))[1])

    def transformed_range(self, median: float, method: str, lam: float) -> tuple[float, float]:
        transformed = _skew_forward(self.filled(median), method, lam)
        return float(transformed.min()), float(transformed.max())

    def transformed_quartiles(self, median: float, method: str, lam: float) -> tuple[float, float]:
        q1, q3 = np.percentile(_skew_forward(self.filled(median), method, lam), [25, 75])
        return float(q1), float(q3)

    def final_moments(self, median: float, low: float, high: float, method: str, lam: float) -> tuple[float, float]:
        final = _skew_forward(np.clip(self.filled(median), low, high), method, lam)
        return float(final.mean()), float(final.std())


def _fit_numeric(name: str, values: np.ndarray, options: FitOptions) -> NumericFeature:
    return fit_numeric(name, ArrayStatistics(values), options)


def fit_numeric(name: str, stats: NumericStatistics, options: FitOptions) -> NumericFeature:
    """Fit one numeric feature's transform from its column's statistics (the one set of fitting rules)."""
    rows, count, infinite, minimum, maximum = stats.present()
    if count == 0:
        raise InputError(f"column {name!r} has no values: every row is missing", field=name)
    if infinite:
        raise InputError(f"column {name!r} holds an infinite value", field=name)
    median = stats.median()
    filled_min = min(minimum, median) if count < rows else minimum
    filled_max = max(maximum, median) if count < rows else maximum
    method = options.skew
    if method == "auto":
        skewed = abs(stats.filled_skewness(median)) > SKEW_THRESHOLD and stats.head_has_more_than_two_values(median)
        method = ("log1p" if filled_min >= 0 else "yeo-johnson") if skewed else "none"
    if method == "log1p" and filled_min < 0:
        raise InputError(f"column {name!r} has negative values; log1p needs values >= 0 (use yeo-johnson)",
                         field=name)
    lam = 1.0
    if method == "yeo-johnson":
        lam = stats.yeojohnson_lambda(median)
    low_t, high_t = stats.transformed_range(median, method, lam)
    if options.outliers == "clip":
        q1, q3 = stats.transformed_quartiles(median, method, lam)
        iqr = q3 - q1
        if iqr > 0:
            low_t = max(low_t, float(q1 - options.iqr_fence * iqr))
            high_t = min(high_t, float(q3 + options.iqr_fence * iqr))
    clip_low = float(_skew_inverse(np.array([low_t]), method, lam)[0])
    clip_high = float(_skew_inverse(np.array([high_t]), method, lam)[0])
    # Round-tripping through the inverse can step outside the data range by an ulp; keep it inside.
    clip_low, clip_high = max(clip_low, filled_min), min(clip_high, filled_max)
    center, scale = stats.final_moments(median, clip_low, clip_high, method, lam)
    return NumericFeature(
        name=name, impute=median, clip_low=clip_low, clip_high=clip_high, skew=method, yj_lambda=lam,
        center=center, scale=scale if scale > 0 else 1.0, minimum=minimum, maximum=maximum,
    )


def _fit_categorical(name: str, values: Sequence[Any], options: FitOptions) -> CategoricalFeature:
    labels = [_category_label(v) for v in values]
    present = [v for v in labels if v is not None]
    if not present:
        raise InputError(f"column {name!r} has no values: every row is missing", field=name)
    uniques, counts = np.unique(np.array(present, dtype=object), return_counts=True)
    order = sorted(range(len(uniques)), key=lambda i: (-counts[i], str(uniques[i])))
    levels = tuple(str(uniques[i]) for i in order)
    counts = np.array([counts[i] for i in order], dtype=np.float64)
    counts[0] += len(labels) - len(present)  # missing values are imputed with the mode
    shares = counts / len(labels)
    spread = float(np.sum(shares * (1.0 - shares)))
    # Scale the one-hot block so its total variance is categorical_weight x one standardized column.
    weight = math.sqrt(options.categorical_weight / spread) if spread > 0 else 0.0
    return CategoricalFeature(name=name, levels=levels, impute=levels[0], weight=weight,
                              shares=tuple(float(s) for s in shares))


def _category_label(value: Any) -> str | None:
    """A category value as the string the schema matches on; None for missing: None, NaN, pandas' NA or empty text.
    Text is a level as written, "None" and "NA" included (an education level, North America), as the table reader
    reads a text column (``segmentation_core.tables.MISSING_TOKENS``)."""
    if value is None or type(value).__name__ == "NAType":  # pandas' NA, without importing pandas
        return None
    if isinstance(value, (float, np.floating)) and math.isnan(value):
        return None
    if isinstance(value, (bool, np.bool_)):
        return "TRUE" if value else "FALSE"
    text = str(value).strip()
    return text or None


@dataclass(frozen=True)
class FeatureSchema:
    """The customer features a model expects, with the fitted transform into clustering space."""

    numeric: tuple[NumericFeature, ...]
    categorical: tuple[CategoricalFeature, ...]
    options: FitOptions = field(default_factory=FitOptions)

    # ---- fitting -----------------------------------------------------------------------------------
    @classmethod
    def fit(cls, frame: Any, numeric: Sequence[str], categorical: Sequence[str],
            options: FitOptions | None = None) -> "FeatureSchema":
        """Fit the transform on a training table (pandas DataFrame or mapping of columns)."""
        return cls.fit_statistics({n: ArrayStatistics(np.asarray(frame[n], dtype=np.float64)) for n in numeric},
                                  {c: list(frame[c]) for c in categorical}, options)

    @classmethod
    def fit_statistics(cls, numeric: Mapping[str, NumericStatistics], categorical: Mapping[str, Sequence[Any]],
                       options: FitOptions | None = None) -> "FeatureSchema":
        """Fit the transform from each numeric column's statistics (in memory or on a cluster) and the
        categorical columns' values."""
        options = options or FitOptions()
        if options.skew not in ("auto", *SKEW_METHODS):
            raise ValueError(f"skew={options.skew!r} should be one of auto, {', '.join(SKEW_METHODS)}")
        if options.outliers not in ("clip", "none"):
            raise ValueError(f"outliers={options.outliers!r} should be 'clip' or 'none'")
        if not numeric and not categorical:
            raise ValueError("a feature schema needs at least one feature")
        nums = tuple(fit_numeric(n, stats, options) for n, stats in numeric.items())
        cats = tuple(_fit_categorical(c, values, options) for c, values in categorical.items())
        return cls(numeric=nums, categorical=cats, options=options)

    def with_valid_ranges(self, ranges: Mapping[str, Sequence[float | None]]) -> "FeatureSchema":
        """This schema with each numeric feature named in ``ranges`` (feature -> (low, high), None: open) given
        that valid range: training's ``[cleaning.valid_range]``, so that scoring treats what cleaning set
        missing as missing. Names that are not numeric features are ignored."""
        def ranged(f: NumericFeature) -> NumericFeature:
            if f.name not in ranges:
                return f
            low, high = ranges[f.name]
            return replace(f, valid_low=None if low is None else float(low),
                           valid_high=None if high is None else float(high))
        return replace(self, numeric=tuple(ranged(f) for f in self.numeric))

    # ---- description -------------------------------------------------------------------------------
    @property
    def feature_names(self) -> list[str]:
        """Input feature names: numeric first, then categorical."""
        return [f.name for f in self.numeric] + [f.name for f in self.categorical]

    @property
    def width(self) -> int:
        """Number of columns of the clustering space."""
        return len(self.numeric) + sum(len(c.levels) for c in self.categorical)

    @property
    def categorical_blocks(self) -> list[slice]:
        """Each categorical feature's one-hot block of clustering-space columns, in order."""
        blocks, start = [], len(self.numeric)
        for c in self.categorical:
            blocks.append(slice(start, start + len(c.levels)))
            start += len(c.levels)
        return blocks

    @property
    def column_names(self) -> list[str]:
        """Names of the clustering-space columns (one-hot columns as ``feature=level``)."""
        return [f.name for f in self.numeric] + [f"{c.name}={lvl}" for c in self.categorical for lvl in c.levels]

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form, stored in the manifest."""
        def numeric(f: NumericFeature) -> dict[str, Any]:  # a side left open is not written (older readers)
            return {k: v for k, v in asdict(f).items() if v is not None or k not in ("valid_low", "valid_high")}
        return {
            "numeric": [numeric(f) for f in self.numeric],
            "categorical": [{**asdict(c), "levels": list(c.levels), "shares": list(c.shares)}
                            for c in self.categorical],
            "options": asdict(self.options),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "FeatureSchema":
        """Rebuild from :meth:`to_dict` output; raises ValueError on a malformed schema."""
        try:
            nums = tuple(NumericFeature(**{k: (v if k in ("name", "skew") or v is None else float(v))
                                           for k, v in f.items()})
                         for f in data["numeric"])
            cats = tuple(CategoricalFeature(name=c["name"], levels=tuple(c["levels"]), impute=c["impute"],
                                            weight=float(c["weight"]), shares=tuple(c.get("shares", ())))
                         for c in data["categorical"])
            options = FitOptions(**data.get("options", {}))
        except (KeyError, TypeError) as exc:
            raise ValueError(f"malformed feature schema: {exc}") from exc
        for f in nums:
            if f.skew not in SKEW_METHODS or not f.scale > 0:
                raise ValueError(f"malformed feature schema: numeric feature {f.name!r}")
        return cls(numeric=nums, categorical=cats, options=options)

    # ---- transform: batches ------------------------------------------------------------------------
    def transform_columns(self, numeric: Mapping[str, np.ndarray], categorical: Mapping[str, Sequence[Any]],
                          n_rows: int, category_codes: dict[str, np.ndarray] | None = None,
                          imputed: dict[str, np.ndarray] | None = None) -> tuple[np.ndarray, dict[int, str]]:
        """Transform columns of ``n_rows`` customers; returns the matrix and {row: error} for rows it cannot score.

        A feature absent from the mappings is treated as missing on every row (imputed); a row missing every
        feature is an error (:data:`NO_FEATURE_VALUES`): there is nothing to score, and so is a row whose every
        value is unusable (:func:`no_usable_values`: missing, outside its valid range, an unseen level). Rows with an
        error get zeros in the matrix and must not be reported as scored. ``category_codes``, if given,
        receives per categorical column present the level index of each row before imputation (-1: a level
        training never saw, -2: missing), for the drift accounting. ``imputed``, if given, receives per feature
        imputed on some row a boolean mask of those rows (missing, outside the feature's valid range, or a
        category level training never saw); :meth:`partial_rows` turns it into what :meth:`SegmentModel.score
        <segmentation_core.segment_model.SegmentModel.score>` needs. A value outside its valid range is
        imputed whether or not ``imputed`` is given.
        """
        # Built feature-major so every step works on contiguous rows; returned as an (n, d) view. The
        # numeric block is filled first, then each step runs once over the whole block (per-row bounds
        # and constants broadcast), so a batch costs a handful of numpy calls, not a handful per column.
        out = np.empty((self.width, n_rows), dtype=np.float64)
        errors: dict[int, str] = {}
        m = len(self.numeric)
        block = out[:m]
        c = self._numeric_constants
        columns = [numeric.get(name) for name in c["names"]]
        # Rows without any feature value, once known to be possible (else None): the numeric columns decide
        # it for every row on the common path (one sent and no NaN), the categorical ones then narrow it.
        empty: np.ndarray | None = None
        # Per numeric feature, its unusable rows (missing, not finite, outside the valid range) once it has any;
        # a row unusable in every feature is refused (:data:`NO_USABLE_VALUES`). Implausible rows keep their values.
        unusable: list[np.ndarray | None] = [None] * m
        implausible: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        if m and all(type(x) is np.ndarray and x.dtype == np.float64 and x.shape == (n_rows,) for x in columns):
            np.concatenate(columns, out=block.reshape(-1))  # the common case: every column, one call
        else:
            if n_rows and all(col is None for col in columns):
                empty = np.ones(n_rows, dtype=bool)
            for j, f in enumerate(self.numeric):
                col = columns[j]
                if col is None:
                    block[j].fill(f.impute)
                    unusable[j] = np.ones(n_rows, dtype=bool)
                    if imputed is not None and n_rows:
                        imputed[f.name] = np.ones(n_rows, dtype=bool)
                else:
                    x = np.asarray(col, dtype=np.float64)
                    if x.shape != (n_rows,):
                        raise InputError(f"column {f.name!r} has {x.size} values, expected {n_rows}", field=f.name)
                    block[j] = x
        if m and n_rows:
            # One sum tells whether every value is finite (NaN and inf propagate; an overflow of huge
            # finite values only sends the batch down the exact per-column check below).
            with np.errstate(invalid="ignore", over="ignore"):  # inf - inf, huge + huge: the check's business
                total = np.add.reduce(block, axis=None)
            if not math.isfinite(total):
                if empty is None:
                    empty = np.ones(n_rows, dtype=bool)
                for j, f in enumerate(self.numeric):
                    x = block[j]
                    if columns[j] is not None:
                        empty &= np.isnan(x)
                    not_finite = ~np.isfinite(x)
                    if not_finite.any():  # rare: keep the common path free of masks and copies
                        for row in np.flatnonzero(np.isinf(x)):
                            errors.setdefault(int(row), number_error(f.name, x[row]))
                        x[not_finite] = f.impute
                        if columns[j] is not None:
                            unusable[j] = not_finite
                        if imputed is not None and columns[j] is not None:
                            imputed[f.name] = not_finite
            for j, low, high in c["valid"]:  # implausible values are missing, as training's cleaning made them
                x = block[j]
                outside = outside_valid_range(x, low, high)
                if outside.any():
                    implausible[j] = (outside, x[outside])
                    unusable[j] = outside if unusable[j] is None else unusable[j] | outside
                    x[outside] = self.numeric[j].impute
                    if imputed is not None:
                        name = self.numeric[j].name
                        imputed[name] = imputed[name] | outside if name in imputed else outside
            _clip(block, c["low"], c["high"], out=block)
            for j in c["log1p"]:
                np.log1p(block[j], out=block[j])
            for j, lam, nonnegative in c["yeo_johnson"]:
                _yeo_johnson(block[j], lam, out=block[j], nonnegative=nonnegative)
            block -= c["center"]
            block /= c["scale"]
        # Rows no numeric feature can place, once possible (else None): the categorical ones then narrow it.
        hopeless: np.ndarray | None = None
        if n_rows and all(mask is not None for mask in unusable):
            hopeless = np.ones(n_rows, dtype=bool)
            for mask in unusable:
                hopeless &= mask  # type: ignore[operator]
            if not hopeless.any():
                hopeless = None
        unseen_rows: dict[str, tuple[np.ndarray, Sequence[Any]]] = {}
        row0 = len(self.numeric)
        for c in self.categorical:
            width = len(c.levels)
            block = out[row0:row0 + width]
            block.fill(0.0)
            values = categorical.get(c.name)
            index = c.index
            if values is None:
                block[index[c.impute]] = c.weight
                if imputed is not None and n_rows:
                    imputed[c.name] = np.ones(n_rows, dtype=bool)
            else:
                if len(values) != n_rows:
                    raise InputError(f"column {c.name!r} has {len(values)} values, expected {n_rows}",
                                     field=c.name)
                if category_codes is None and empty is None and imputed is None and hopeless is None:
                    codes = np.fromiter((index.get(_category_label(v) or c.impute, -1) for v in values),
                                        dtype=np.int64, count=n_rows)
                else:  # missing kept apart (-2) for the caller or the empty rows, then imputed
                    lookup = c.index_with_missing
                    codes = np.fromiter((lookup.get(_category_label(v), -1) for v in values), dtype=np.int64,
                                        count=n_rows)
                unseen = np.flatnonzero(codes == -1)
                if unseen.size:  # rare: a level written in another case, or one training never saw
                    for row in unseen:
                        label = _category_label(values[row])
                        if label is not None:
                            codes[row] = c.folded_index.get(label.casefold(), -1)
                if category_codes is not None:
                    category_codes[c.name] = codes
                if category_codes is not None or empty is not None or imputed is not None or hopeless is not None:
                    missing = codes == -2
                    if empty is not None:
                        empty &= missing
                    if hopeless is not None:
                        hopeless &= missing | (codes == -1)
                        unseen_rows[c.name] = (codes == -1, values)
                    if missing.any():
                        codes = np.where(missing, index[c.impute], codes)
                    if imputed is not None and (unseen.size or missing.any()):
                        imputed[c.name] = missing | (codes == -1)
                known = np.flatnonzero(codes >= 0)
                block[codes[known], known] = c.weight
            row0 += width
        if empty is not None and empty.any():
            for row in np.flatnonzero(empty).tolist():
                errors.setdefault(row, NO_FEATURE_VALUES)
        if hopeless is not None and hopeless.any():  # rare: values present, none usable
            where = {j: np.cumsum(mask) - 1 for j, (mask, _) in implausible.items()}
            for row in np.flatnonzero(hopeless).tolist():
                if row in errors:
                    continue
                reasons = [self._implausible_reason(j, float(implausible[j][1][where[j][row]]))
                           for j in sorted(implausible) if implausible[j][0][row]]
                reasons += [unseen_reason(name, values[row]) for name, (mask, values) in unseen_rows.items()
                            if mask[row]]
                errors[row] = no_usable_values(reasons)
        matrix = out.T
        for row in errors:
            matrix[row] = 0.0
        return matrix, errors

    def transform_frame(self, frame: Any, imputed: dict[str, np.ndarray] | None = None) -> np.ndarray:
        """Transform a pandas DataFrame with every feature column; raises InputError on an unscorable row.
        ``imputed``: as for :meth:`transform_columns`."""
        missing = [n for n in self.feature_names if n not in frame.columns]
        if missing:
            raise InputError(f"missing feature column(s): {', '.join(map(repr, missing))}", field=missing[0])
        numeric = {}
        for f in self.numeric:
            try:
                numeric[f.name] = np.asarray(frame[f.name], dtype=np.float64)
            except (TypeError, ValueError) as exc:
                raise InputError(f"column {f.name!r} is not numeric: {exc}", field=f.name) from exc
        categorical = {c.name: list(frame[c.name]) for c in self.categorical}
        matrix, errors = self.transform_columns(numeric, categorical, len(frame), imputed=imputed)
        if errors:
            row = min(errors)
            raise InputError(f"row {row}: {errors[row]}", row=row)
        return matrix

    def partial_rows(self, imputed: Mapping[str, np.ndarray], n_rows: int,
                     errors: Mapping[int, str] | None = None) -> Partial | None:
        """The rows with an imputed feature (``imputed`` as :meth:`transform_columns` fills it; for one row,
        ``{name: np.ones(1, bool)}`` per imputed name), rows in ``errors`` left out, with the clustering-space
        columns observed on each; None when every row is complete."""
        if not imputed:
            return None
        any_imputed = np.zeros(n_rows, dtype=bool)
        for mask in imputed.values():
            any_imputed |= mask
        if errors:
            any_imputed[np.fromiter(errors, dtype=np.int64, count=len(errors))] = False
        rows = np.flatnonzero(any_imputed)
        if not rows.size:
            return None
        observed = np.ones((rows.size, self.width), dtype=bool)
        for name, mask in imputed.items():
            columns = self._columns_of[name]
            observed[:, columns] &= ~mask[rows, None]
        return Partial(rows, observed)

    def observed_columns(self, imputed: Sequence[str]) -> np.ndarray:
        """(width,) bool: the clustering-space columns of a row whose ``imputed`` features (names, as
        :meth:`transform_row` gives them) are not known."""
        observed = np.ones(self.width, dtype=bool)
        for name in imputed:
            observed[self._columns_of[name]] = False
        return observed

    @cached_property
    def _columns_of(self) -> dict[str, slice]:
        """Feature name -> its clustering-space columns."""
        columns = {f.name: slice(j, j + 1) for j, f in enumerate(self.numeric)}
        columns.update({c.name: block for c, block in zip(self.categorical, self.categorical_blocks)})
        return columns

    # ---- transform: one customer, pure Python (faster than numpy for a single row) ------------------
    def transform_row(self, numbers: Mapping[str, float], categories: Mapping[str, str],
                      imputed: list[str] | None = None) -> list[float]:
        """Transform one customer; raises InputError naming the field for an unknown or unscorable value.
        ``imputed``, if given, receives the names of the features imputed (as :meth:`transform_columns`)."""
        numbers = dict(numbers)  # one conversion of a protobuf map; its lookups cost more than a dict's
        if not self._numeric_names.issuperset(numbers):
            for name in numbers:
                if name not in self._numeric_names:
                    raise InputError(self.misplaced_feature_message(name, "numeric"), field=name)
        if categories and not self._categorical_names.issuperset(categories):
            for name in categories:
                if name not in self._categorical_names:
                    raise InputError(self.misplaced_feature_message(name, "categorical"), field=name)
        row: list[float] = []
        get = numbers.get
        present = usable = False
        reasons: list[str] = []
        for name, impute, low, high, skew, lam, center, scale, valid_low, valid_high in self._row_plan:
            v = get(name)
            if v is None or v != v:  # absent or NaN -> imputed
                v = impute
                if imputed is not None:
                    imputed.append(name)
            elif v in (math.inf, -math.inf):
                raise InputError(number_error(name, v), field=name)
            else:
                present = True
                if v < valid_low or v > valid_high:  # implausible: missing, as training's cleaning made it
                    reasons.append(self._implausible_reason(len(row), v))
                    v = impute
                    if imputed is not None:
                        imputed.append(name)
                else:
                    usable = True
            v = low if v < low else high if v > high else v
            if skew == "log1p":
                v = math.log1p(v)
            elif skew == "yeo-johnson":
                v = _yeo_johnson_scalar(v, lam)
            row.append((v - center) / scale)
        for c in self.categorical:
            label = _category_label(categories.get(c.name))
            present = present or label is not None
            level = c.level_of(label or c.impute)
            if label is not None:
                if level in c.index:
                    usable = True
                else:
                    reasons.append(unseen_reason(c.name, label))
            if imputed is not None and (label is None or level not in c.index):
                imputed.append(c.name)
            row.extend(c.weight if lvl == level else 0.0 for lvl in c.levels)
        if not present:
            raise InputError(NO_FEATURE_VALUES, field="customer")
        if not usable:
            raise InputError(no_usable_values(reasons), field="customer")
        return row

    def _implausible_reason(self, j: int, value: float) -> str:
        """Why numeric feature ``j``'s ``value`` (outside its valid range) is unusable."""
        f = self.numeric[j]
        if f.valid_low is not None and f.valid_high is not None:
            rule = f"is outside its valid range {_shown(f.valid_low)}-{_shown(f.valid_high)}"
        elif f.valid_low is not None:
            rule = f"is below its valid minimum {_shown(f.valid_low)}"
        else:
            rule = f"is above its valid maximum {_shown(f.valid_high)}"
        return f"{f.name} {_shown(value)} {rule}"

    @cached_property
    def _numeric_constants(self) -> dict[str, Any]:
        """Per-feature constants of the numeric block as (m, 1) columns, and the rows of each skew method."""
        def column(attr: str) -> np.ndarray:
            return np.array([[getattr(f, attr)] for f in self.numeric], dtype=np.float64).reshape(-1, 1)
        return {"names": [f.name for f in self.numeric], "low": column("clip_low"), "high": column("clip_high"),
                "center": column("center"), "scale": column("scale"),
                "log1p": [j for j, f in enumerate(self.numeric) if f.skew == "log1p"],
                "valid": [(j, f.valid_low, f.valid_high) for j, f in enumerate(self.numeric)
                          if f.valid_low is not None or f.valid_high is not None],
                # clipped at a bound >= 0, a column has no negative value left: the transform's cheap branch
                "yeo_johnson": [(j, f.yj_lambda, f.clip_low >= 0) for j, f in enumerate(self.numeric)
                                if f.skew == "yeo-johnson"]}

    @cached_property
    def _row_plan(self) -> tuple[tuple[Any, ...], ...]:
        """The numeric features' parameters as plain tuples, for :meth:`transform_row`."""
        return tuple((f.name, f.impute, f.clip_low, f.clip_high, f.skew, f.yj_lambda, f.center, f.scale,
                      -math.inf if f.valid_low is None else f.valid_low,
                      math.inf if f.valid_high is None else f.valid_high)
                     for f in self.numeric)

    @cached_property
    def _numeric_names(self) -> frozenset[str]:
        return frozenset(f.name for f in self.numeric)

    @cached_property
    def _categorical_names(self) -> frozenset[str]:
        return frozenset(c.name for c in self.categorical)

    def misplaced_feature_message(self, name: str, sent_as: str) -> str:
        """Why ``name``, sent as a ``sent_as`` ("numeric" or "categorical") feature, is refused: a feature of
        the other kind, or no feature at all. The one wording of single Predict and of PredictStream."""
        numeric = sent_as == "numeric"
        expected = sorted(self._numeric_names if numeric else self._categorical_names)
        other = self._categorical_names if numeric else self._numeric_names
        if name in other:
            actual = "categorical" if numeric else "numeric"
            return (f"{quoted(name)} is a {actual} feature sent as {sent_as}; the model expects {sent_as} "
                    f"features {expected}")
        return f"unknown {sent_as} feature {quoted(name)}; the model expects {sent_as} features {expected}"

    # ---- back to original units ---------------------------------------------------------------------
    def numeric_to_original(self, matrix: np.ndarray) -> np.ndarray:
        """Map the numeric block of clustering-space points (e.g. centroids) back to original units."""
        out = np.empty((matrix.shape[0], len(self.numeric)))
        for j, f in enumerate(self.numeric):
            out[:, j] = _skew_inverse(matrix[:, j] * f.scale + f.center, f.skew, f.yj_lambda)
        return out
