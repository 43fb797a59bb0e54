"""The training run: table -> features -> k -> model -> named segments -> published artefact."""
from __future__ import annotations

import dataclasses
import hashlib
import logging
import platform
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

import joblib
import numpy as np
import pandas as pd
from sklearn.metrics import calinski_harabasz_score, davies_bouldin_score, silhouette_score

from segmentation_core.artefact import Signer, write_artefact
from segmentation_core.clv import ClvModel
from segmentation_core.errors import SchemaChangeError
from segmentation_core.features import FeatureSchema, FitOptions
from segmentation_core.recipe import BASKET_COLUMNS, customer_table
from segmentation_core.reference import build_reference
from segmentation_core.segment_model import SegmentModel, calibrate
from segmentation_core.sklearn_pipeline import build_pipeline
from segmentation_core.store import ModelStore, validate_model_name
from training_job.algorithms import algorithm_named
from training_job.cleaning import CleaningReport
from training_job.clv_fit import customer_figures, fit_clv, segment_summary
from training_job.comparison import compare_with_current
from training_job.confidence import fit_temperature
from training_job.config import TrainingConfig
from segmentation_core.tables import read_table
from training_job.errors import DataError
from training_job.k_selection import KSearchResult, search_k, stability_score
from training_job.limits import few_customers_warning
from training_job.naming import describe_segments, short_history_warning
from training_job.profiling import profile_table
from training_job.progress import Stages
from training_job.report import write_report
from training_job.segments import base_profile, basket_profiles, plot_sample, relabel, segment_order, segment_profiles
from training_job.table_prep import PreparedTable, prepare_table

log = logging.getLogger(__name__)

QUALITY_SAMPLE = 10_000


@dataclass(frozen=True)
class TrainingResult:
    """What a training run published (or kept without making it CURRENT: ``published`` False; ``refusal`` says why
    when it was to be published but its input schema would break the served version's callers)."""

    model: str
    version: str
    path: Path
    k: int
    segment_names: list[str]
    manifest: dict[str, Any]
    published: bool = True
    refusal: str = ""


@dataclass
class TrainingListener:
    """Callbacks a caller (the training service's job process) gets while a run goes on; all optional."""

    on_stage: Callable[[str], Any] | None = None
    """A stage starts: read, clean, features, k-search, fit, stability, describe, profile, compare, publish."""
    on_tick: Callable[[str, int, int], Any] | None = None
    """(stage, steps done, steps in all), during the k search."""
    on_k_row: Callable[[dict[str, Any]], Any] | None = None
    """One k's metrics, as soon as the k search has computed them."""


def fingerprint(path: Path) -> str:
    """sha256 of the input file's bytes, so a manifest names exactly the data it was trained on."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return "sha256:" + digest.hexdigest()


def _library_versions() -> dict[str, str]:
    import scipy
    import sklearn

    return {"python": platform.python_version(), "numpy": np.__version__, "pandas": pd.__version__,
            "scikit-learn": sklearn.__version__, "scipy": scipy.__version__, "joblib": joblib.__version__}


def _k_values(config: TrainingConfig, n_customers: int) -> list[int]:
    model = config.model
    if model.k != "auto":
        k = int(model.k)
        if k >= n_customers:
            raise DataError(f"--k {k} needs more than {k} customers; the data has {n_customers} after cleaning")
        return [k]
    if n_customers <= model.k_min:
        raise DataError(f"the data has {n_customers} customers after cleaning; choosing among "
                        f"k={model.k_min}..{model.k_max} segments needs more than {model.k_min}")
    k_max = min(model.k_max, n_customers - 1)
    if k_max < model.k_max:
        log.warning("k_max lowered from %d to %d: only %d customers", model.k_max, k_max, n_customers)
    return list(range(model.k_min, k_max + 1))


def _business_range(config: TrainingConfig, k_values: list[int]) -> tuple[int, int] | None:
    """The preset's business range of k, cut to the ks searched (None under a fixed k or outside them)."""
    wanted = config.model.business_k_range
    if config.model.k != "auto" or wanted is None:
        return None
    lo, hi = max(wanted[0], k_values[0]), min(wanted[1], k_values[-1])
    if lo > hi:
        log.warning("business k range %d-%d ignored: the search covers k=%d..%d", *wanted, k_values[0], k_values[-1])
        return None
    if (lo, hi) != tuple(wanted):
        log.warning("business k range %d-%d cut to %d-%d, the part the search covers", *wanted, lo, hi)
    return lo, hi


def log_features(schema: FeatureSchema) -> None:
    """Log each numeric feature's fitted transform (skew handling, clip bounds, imputed value)."""
    for f in schema.numeric:
        log.info("feature %-28s skew=%-11s clip=[%.4g, %.4g] impute=%.4g", f.name, f.skew, f.clip_low,
                 f.clip_high, f.impute)


def choose_k(config: TrainingConfig, x: np.ndarray, n: int, stages: Stages, listener: TrainingListener,
             schema: FeatureSchema) -> tuple[KSearchResult, tuple[int, int] | None]:
    """The k search stage on the rows ``x`` of ``n`` customers transformed by ``schema``, and the business
    range it used (both engines run it on the driver)."""
    k_values = _k_values(config, n)
    with stages("k-search", total=len(k_values)) as tick:
        business = _business_range(config, k_values)
        search = search_k(x, k_values, algorithm=config.model.algorithm, seed=config.model.seed,
                          progress=lambda i, total: tick(i), on_row=listener.on_k_row, business_range=business,
                          categorical_blocks=schema.categorical_blocks, k_set_by=config.k_set_by())
    log.info("k=%d (%s, %s): %s", search.chosen_k, search.rule, search.structure, search.rule_explanation)
    return search, business


def history_days(cleaning: CleaningReport) -> int | None:
    """The days a transaction log covers (None for a customer table): how far recency can reach."""
    return cleaning.transactions.history_days() if cleaning.transactions is not None else None


def job_warnings(customers: int, k: int, history: int | None) -> list[str]:
    """What the analyst is warned of (both engines), logged now and kept in the manifest's ``warnings`` for
    the report: too few customers per segment, a log too short for recency to mean lapsing."""
    found = [w for w in (few_customers_warning(customers, k), short_history_warning(history)) if w]
    for warning in found:
        log.warning("%s", warning)
    return found


def _quality(x: np.ndarray, segment: np.ndarray, seed: int) -> dict[str, float]:
    rng = np.random.default_rng(seed)
    pick = rng.choice(len(x), size=min(QUALITY_SAMPLE, len(x)), replace=False)
    xs, ls = x[pick], segment[pick]
    if len(np.unique(ls)) < 2:
        return {}
    return {"silhouette": float(silhouette_score(xs, ls)),
            "calinski_harabasz": float(calinski_harabasz_score(xs, ls)),
            "davies_bouldin": float(davies_bouldin_score(xs, ls))}


def train(data: Path, config: TrainingConfig, store: ModelStore, model_name: str = "customers",
          keep: int = 10, progress: Callable[[str], Any] | None = None, *, frame: pd.DataFrame | None = None,
          publish: bool = True, listener: TrainingListener | None = None,
          data_name: str | None = None, signer: Signer | None = None,
          allow_breaking_schema: bool = False) -> TrainingResult:
    """Run the whole training job and publish the model (``publish`` False: keep it, CURRENT stays);
    raises DataError on unusable data. ``frame``: the table already read from ``data``; ``data_name``: the
    name to show for the data (default: the file name); ``signer``: signs the manifest (signed artefacts).
    A version whose input schema would break the served version's callers is kept, not published (the result's
    ``refusal`` says why), unless ``allow_breaking_schema``."""
    validate_model_name(model_name)
    listener = listener or TrainingListener(on_stage=progress)
    stages = Stages(listener.on_stage, on_tick=listener.on_tick)
    started = time.monotonic()
    with stages("read"):
        if frame is None:
            frame = read_table(Path(data))
        data_fingerprint = fingerprint(Path(data))
    with stages("clean"):
        table: PreparedTable = prepare_table(frame, config)
        table.report.log_summary()
    features = table.features
    numeric, categorical = list(table.numeric), list(table.categorical)
    n = len(features)
    with stages("features"):
        pre = config.preprocessing
        options = FitOptions(skew=pre.skew, outliers=pre.outliers, categorical_weight=pre.categorical_weight)
        try:
            # values cleaning set missing as implausible are missing at scoring too
            schema = FeatureSchema.fit(features, numeric, categorical, options).with_valid_ranges(
                config.cleaning.valid_range)
            x = schema.transform_frame(features)
        except ValueError as exc:
            raise DataError(str(exc)) from exc
        log_features(schema)
    search, business = choose_k(config, x, n, stages, listener, schema)
    k = search.chosen_k
    history = history_days(table.report)
    warnings = job_warnings(n, k, history)
    algorithm, seed = config.model.algorithm, config.model.seed
    with stages("fit"):
        estimator = search.chosen_model
        algo = algorithm_named(algorithm)
        raw = estimator.predict(x)
        order = segment_order(raw, algo.centres(estimator))
        gmm_params = algo.reorder(estimator, order)  # its labels are now segment ids
        centroids = algo.centres(estimator)
        segment = relabel(raw, order)
        model: SegmentModel = calibrate(algorithm, x, segment, np.asarray(centroids), gmm_params)
        # The service's math must reproduce the pipeline's predict exactly; check on the training rows.
        served = model.score(x).segment
        if not np.array_equal(served, segment):
            mismatch = int(np.count_nonzero(served != segment))
            raise RuntimeError(f"serving math disagrees with the estimator on {mismatch} training rows")
    with stages("confidence"):
        confidence = fit_temperature(x, k, algorithm, seed, np.asarray(centroids))
        model = dataclasses.replace(model, temperature=confidence.temperature,
                                    smoothing=confidence.smoothing)
    with stages("stability"):
        stability = stability_score(x, k, algorithm=algorithm, seed=seed) if k >= 2 else float("nan")
    with stages("describe"):
        quality = {**_quality(x, segment, seed), "stability": float(stability)}
        descriptions = describe_segments(features, segment, numeric, categorical, style=config.naming.style,
                                         overrides=dict(config.naming.names),
                                         display_labels=dict(config.naming.labels), history_days=history)
        profiles = segment_profiles(features, segment, schema, np.asarray(centroids))
        for profile, description, threshold in zip(profiles, descriptions, model.outlier_threshold):
            profile.update(description.to_dict())
            profile["outlier_distance"] = float(threshold)
        sample = plot_sample(features, table.ids, x, segment, np.asarray(centroids), schema, seed)
        reference = build_reference(schema, model, {f: np.asarray(features[f], dtype=np.float64) for f in numeric},
                                    {c: list(features[c]) for c in categorical})
    with stages("profile"):
        data_profile = profile_table(frame, name=data_name or Path(data).name, config=config)
    with stages("compare"):
        comparison = compare_with_current(store, model_name, features, segment)
    manifest = build_manifest(
        model_name=model_name, data={"path": str(data), "name": data_name or Path(data).name,
                                     "fingerprint": data_fingerprint, "rows_in": int(len(frame)), "customers": int(n)},
        config=config, schema=schema, estimator=estimator, search=search, business=business, quality=quality,
        confidence=confidence, cleaning=table.report.to_dict(), base=base_profile(features, numeric, categorical),
        profiles=profiles, reference=reference.to_dict(), data_profile=data_profile, comparison=comparison,
        warnings=warnings)
    clv = None
    if config.data.kind == "transactions":
        manifest["recipe"] = config.recipe().to_dict()
        basket_columns = [c for c in BASKET_COLUMNS if table.customers[c].notna().any()]
        manifest["base"]["basket"], per_segment = basket_profiles(table.customers, segment, k, basket_columns)
        for profile, basket in zip(profiles, per_segment):
            profile["basket"] = basket
        with stages("clv"):
            clv = fit_clv_summary(config, lambda as_of: customer_table(table.log, as_of)[0], table.customers,
                                  lambda fitted, seg, k: _clv_summary(fitted, table.customers, seg, k),
                                  segment, k, profiles)
    pipeline = build_pipeline(schema, estimator, model)
    with stages("publish"):
        version, refusal = publish_version(store, model_name, manifest, model, sample, pipeline, clv, keep=keep,
                                           publish=publish, signer=signer, allow_breaking_schema=allow_breaking_schema)
    path = store.version_dir(model_name, version)
    published = publish and not refusal
    log.info("%s %s %s (k=%d) to %s in %.1f s", "published" if published else "kept (not CURRENT)", model_name,
             version, k, path, time.monotonic() - started)
    return TrainingResult(model=model_name, version=version, path=path, k=int(k),
                          segment_names=[p["name"] for p in profiles], manifest=manifest, published=published,
                          refusal=refusal)


def build_manifest(*, model_name: str, data: dict[str, Any], config: TrainingConfig, schema: FeatureSchema,
                   estimator: Any, search: Any, business: tuple[int, int] | None, quality: dict[str, float],
                   confidence: Any, cleaning: dict[str, Any], base: dict[str, Any], profiles: list[dict[str, Any]],
                   reference: dict[str, Any], data_profile: dict[str, Any], comparison: dict[str, Any],
                   warnings: list[str]) -> dict[str, Any]:
    """The manifest of a trained model (every engine's): what ``write_artefact`` stores as manifest.json
    (``warnings``: ``job_warnings``' and the confidence's when it was not calibrated, shown at the top of the
    report)."""
    return {
        "model": model_name,
        "version": None,
        "created_at": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "data": data,
        "libraries": _library_versions(),
        "config": config.to_dict(),
        "feature_schema": schema.to_dict(),
        "algorithm": {"name": config.model.algorithm, "params": _estimator_params(estimator)},
        "k_search": {"rule": search.rule, "explanation": search.rule_explanation, "chosen_k": int(search.chosen_k),
                     "structure": search.structure, "business_k_range": list(business) if business else None,
                     "rows": search.rows},
        "quality": quality,
        "confidence": confidence.to_dict(),
        "cleaning": cleaning,
        "base": base,
        "segments": profiles,
        "reference": reference,
        "profile": data_profile,
        "comparison": comparison,
        "warnings": [*warnings, *([confidence.warning] if confidence.warning else [])],
    }


def publish_version(store: ModelStore, model_name: str, manifest: dict[str, Any], model: SegmentModel,
                    sample: dict[str, np.ndarray], pipeline: Any, clv: ClvModel | None, *, keep: int,
                    publish: bool, signer: Signer | None = None, allow_breaking_schema: bool = False
                    ) -> tuple[str, str]:
    """Write the artefact through the store (atomically) and return its version id (every engine's) and, when it
    was to be published but the store refused to make it CURRENT because its input schema would break the
    served version's callers (SchemaChangeError), the refusal's message (the version is then kept), else ""."""
    def write(folder: Path, version: str) -> None:
        manifest["version"] = version
        write_artefact(folder, manifest, model, sample,
                       write_pipeline=lambda p: joblib.dump(pipeline, p, compress=3),
                       write_report=lambda p, m: write_report(m, _sample_frame(sample), p), clv=clv,
                       signer=signer)

    try:
        return store.publish(model_name, write, keep=keep, make_current=publish,
                             allow_breaking_schema=allow_breaking_schema), ""
    except SchemaChangeError as exc:
        log.warning("%s", exc)
        return exc.candidate, str(exc)


def fit_clv_summary(config: TrainingConfig, calibration_table: Callable[[pd.Timestamp], pd.DataFrame],
                    customers: pd.DataFrame, summarize: Callable[..., dict[str, Any]], segment: Any, k: int,
                    profiles: list[dict[str, Any]]) -> ClvModel | None:
    """Fit CLV on the calibration period (``calibration_table(as_of)``) or on ``customers`` (the whole log), and
    add per-segment figures (``summarize(figures, segment, k)``); None if it cannot be fitted."""
    settings = config.clv
    try:
        if settings.calibration_end:
            calibration = calibration_table(pd.Timestamp(settings.calibration_end) + pd.Timedelta(days=1))
        else:
            calibration = customers
        clv = fit_clv(calibration, time_unit=settings.time_unit, horizon_days=settings.horizon_days,
                      discount_rate_annual=settings.discount_rate_annual, calibration_end=settings.calibration_end)
    except DataError as exc:
        log.warning("CLV not fitted: %s", exc)
        return None
    summary = summarize(clv, segment, k)
    for profile, stats in zip(profiles, summary["segments"]):
        profile["clv"] = {key: value for key, value in stats.items() if key != "id"}
    return dataclasses.replace(clv, summary={"customers": int(summary["customers"]), "base": summary["base"],
                                             "calibration_customers": int(len(calibration))})


def _clv_summary(clv: ClvModel, customers: pd.DataFrame, segment: np.ndarray, k: int) -> dict[str, Any]:
    """Per-segment and base CLV figures of every customer (in memory)."""
    return {**segment_summary(customer_figures(clv, customers), segment, k), "customers": len(customers)}


def _estimator_params(estimator: Any) -> dict[str, Any]:
    params = {}
    for key, value in estimator.get_params().items():
        if isinstance(value, (int, float, str, bool)) or value is None:
            params[key] = value
    return params


def _sample_frame(sample: dict[str, np.ndarray]) -> pd.DataFrame:
    """The plot sample as the DataFrame the report draws from."""
    columns: dict[str, Any] = {}
    for key, values in sample.items():
        if key.startswith(("num:", "cat:")):
            columns[key[4:]] = values
    columns["segment_id"] = sample["segment_id"]
    columns["map_x"], columns["map_y"] = sample["map_x"], sample["map_y"]
    return pd.DataFrame(columns)
