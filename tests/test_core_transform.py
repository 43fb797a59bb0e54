"""segmentation_core: the feature transform and the scoring math agree with sklearn, row for row."""
from __future__ import annotations

import dataclasses
import math

import numpy as np
import pandas as pd
import pytest
from sklearn.cluster import KMeans
from sklearn.mixture import GaussianMixture

from segmentation_core.errors import ArtefactError, InputError
from segmentation_core.features import NO_FEATURE_VALUES, FeatureSchema, FitOptions, _yeo_johnson, _yeo_johnson_inverse
from segmentation_core.segment_model import SegmentModel, calibrate
from segmentation_core.sklearn_pipeline import build_pipeline


@pytest.fixture(scope="module")
def ecommerce(datasets_dir) -> pd.DataFrame:
    return pd.read_csv(datasets_dir / "ecommerce_customer_behavior.csv")


NUMERIC = ["Age", "Total Spend", "Items Purchased", "Average Rating", "Days Since Last Purchase"]
CATEGORICAL = ["Gender", "City", "Membership Type", "Discount Applied", "Satisfaction Level"]


def test_yeo_johnson_matches_scipy_and_inverts() -> None:
    from scipy.stats import yeojohnson

    x = np.array([-5.0, -1.0, -0.1, 0.0, 0.3, 2.0, 40.0])
    for lam in (-0.5, 0.0, 0.7, 2.0, 2.5):
        np.testing.assert_allclose(_yeo_johnson(x, lam), yeojohnson(x, lmbda=lam), rtol=1e-12)
        np.testing.assert_allclose(_yeo_johnson_inverse(_yeo_johnson(x, lam), lam), x, rtol=1e-9, atol=1e-12)


def test_yeo_johnson_on_nonnegative_values_takes_the_short_path_bit_for_bit() -> None:
    x = np.concatenate([[0.0, -0.0, 1e-300, 1e300], np.random.default_rng(3).lognormal(3, 2, 5000), [np.nan]])
    for lam in (-1.5, 1e-13, 0.3, 1.0, 1.9999999999999, 2.0, 3.5):
        general, short = _yeo_johnson(x, lam), _yeo_johnson(x.copy(), lam, nonnegative=True)
        assert np.array_equal(np.abs(general), np.abs(short), equal_nan=True), lam  # -0.0 may lose its sign
        inplace = x.copy()
        assert _yeo_johnson(inplace, lam, out=inplace, nonnegative=True) is inplace


def test_skewed_column_gets_log1p_and_robust_clip() -> None:
    rng = np.random.default_rng(0)
    spend = rng.lognormal(3.0, 1.0, 5000)
    spend[:10] = spend.max() * 50  # a handful of huge spenders
    schema = FeatureSchema.fit({"spend": spend}, ["spend"], [])
    f = schema.numeric[0]
    assert f.skew == "log1p"
    assert f.clip_high < spend.max() / 10  # the huge spenders are clipped, not modelled
    x = schema.transform_columns({"spend": spend}, {}, len(spend))[0][:, 0]
    assert abs(x.mean()) < 1e-9 and abs(x.std() - 1.0) < 1e-9


def test_symmetric_column_is_left_alone() -> None:
    x = np.random.default_rng(1).normal(50, 10, 2000)
    f = FeatureSchema.fit({"x": x}, ["x"], []).numeric[0]
    assert f.skew == "none"
    assert f.impute == pytest.approx(np.median(x))


def test_categorical_block_has_the_requested_variance(ecommerce) -> None:
    schema = FeatureSchema.fit(ecommerce, NUMERIC, CATEGORICAL, FitOptions(categorical_weight=0.5))
    x = schema.transform_frame(ecommerce)
    start = len(NUMERIC)
    for c in schema.categorical:
        block = x[:, start:start + len(c.levels)]
        assert block.var(axis=0).sum() == pytest.approx(0.5, rel=1e-9)
        start += len(c.levels)
    # The 2 missing satisfaction levels are imputed with the mode.
    assert schema.categorical[-1].impute == "Satisfied"


def test_row_and_batch_transforms_agree(ecommerce) -> None:
    schema = FeatureSchema.fit(ecommerce, NUMERIC, CATEGORICAL)
    batch = schema.transform_frame(ecommerce)
    for i in range(0, len(ecommerce), 7):
        row = ecommerce.iloc[i]
        one = schema.transform_row({n: float(row[n]) for n in NUMERIC},
                                   {c: row[c] for c in CATEGORICAL if isinstance(row[c], str) or row[c] is not None})
        np.testing.assert_allclose(one, batch[i], rtol=0, atol=1e-12)


def test_a_level_written_in_another_case_is_that_level_unless_ambiguous() -> None:
    # "gold" is "Gold"; Excel's "True" is the "TRUE" a CSV export wrote; "a" and "A" are two training levels,
    # so each matches only as written. The batch, the single row and the codes drift counts agree.
    frame = {"x": np.arange(8.0), "m": ["Gold", "Silver", "Gold", "TRUE", "FALSE", "a", "A", "Gold"]}
    schema = FeatureSchema.fit(frame, ["x"], ["m"])
    level = {lvl: i for i, lvl in enumerate(schema.categorical[0].levels)}
    sent = ["gold", "True", "SILVER", "a", "A", "platinum"]
    codes: dict[str, np.ndarray] = {}
    x, errors = schema.transform_columns({"x": np.zeros(6)}, {"m": sent}, 6, category_codes=codes)
    assert not errors
    assert codes["m"].tolist() == [level["Gold"], level["TRUE"], level["Silver"], level["a"], level["A"], -1]
    for i, value in enumerate(sent):
        np.testing.assert_allclose(schema.transform_row({"x": 0.0}, {"m": value}), x[i], atol=1e-12)
    assert not x[5, 1:].any()  # unseen: the implicit "other" level


@pytest.mark.parametrize("codes", [None, {}], ids=["plain", "with-category-codes"])
def test_a_row_missing_every_feature_is_an_error_and_a_row_with_one_is_imputed(codes) -> None:
    frame = {"income": np.array([10.0, 20.0, 30.0, 40.0]), "age": np.array([1.0, 2.0, 3.0, 4.0]),
             "city": ["a", "b", "a", "a"]}
    schema = FeatureSchema.fit(frame, ["income", "age"], ["city"])
    nan = np.nan
    numeric = {"income": np.array([nan, nan, 5.0, nan, np.inf]), "age": np.array([nan, nan, nan, 2.0, nan])}
    x, errors = schema.transform_columns(numeric, {"city": ["", "b", None, " ", ""]}, 5, category_codes=codes)
    assert errors == {0: NO_FEATURE_VALUES, 4: "income: inf is not a finite number"}
    assert not x[0].any() and x[1].any() and x[2].any() and x[3].any()
    assert x[1].tolist() == schema.transform_row({}, {"city": "b"})  # one value: the rest imputed, as before
    # A feature left out of the batch is missing on every row; with no column at all, every row is empty.
    _, errors = schema.transform_columns({"age": np.array([nan, 1.0])}, {}, 2, category_codes=codes)
    assert errors == {0: NO_FEATURE_VALUES}
    _, errors = schema.transform_columns({}, {"city": ["", "a"]}, 2, category_codes=codes)
    assert errors == {0: NO_FEATURE_VALUES}
    _, errors = schema.transform_columns({}, {}, 2, category_codes=codes)
    assert errors == {0: NO_FEATURE_VALUES, 1: NO_FEATURE_VALUES}
    _, errors = schema.transform_columns({"income": np.array([1.0, 2.0])}, {}, 2, category_codes=codes)
    assert errors == {}  # the common path: no NaN, so no row to look at


def test_a_customer_missing_every_feature_is_refused_by_transform_row() -> None:
    frame = {"income": np.array([10.0, 20.0, 30.0, 40.0]), "city": ["a", "b", "a", "a"]}
    schema = FeatureSchema.fit(frame, ["income"], ["city"])
    for numbers, categories in [({}, {}), ({"income": math.nan}, {"city": " "}), ({}, {"city": None})]:
        with pytest.raises(InputError, match="^no feature values: nothing to score$"):
            schema.transform_row(numbers, categories)
    assert schema.transform_row({"income": math.nan}, {"city": "a"})[1:] == [schema.categorical[0].weight, 0.0]


def test_missing_unknown_and_invalid_values() -> None:
    frame = {"income": np.array([10.0, 20.0, 30.0, 40.0]), "city": ["a", "b", "a", "a"]}
    schema = FeatureSchema.fit(frame, ["income"], ["city"])
    # Absent number -> median; unseen level -> all-zero one-hot ("other"); both at once: nothing usable, refused.
    row = schema.transform_row({}, {"city": "b"})
    assert row[0] == pytest.approx((25.0 - schema.numeric[0].center) / schema.numeric[0].scale)
    assert schema.transform_row({"income": 20.0}, {"city": "zzz"})[1:] == [0.0, 0.0]
    with pytest.raises(InputError, match="^no usable feature values: city 'zzz' is a level training never saw$"):
        schema.transform_row({}, {"city": "zzz"})
    with pytest.raises(InputError, match="income: inf is not a finite number") as err:
        schema.transform_row({"income": math.inf}, {})
    assert err.value.field == "income"
    with pytest.raises(InputError, match="unknown numeric feature 'incme'"):
        schema.transform_row({"incme": 1.0}, {})
    x, errors = schema.transform_columns({"income": np.array([1.0, np.inf, np.nan])}, {"city": ["b", "", "a"]}, 3)
    assert errors == {1: "income: inf is not a finite number"}
    assert x[2, 0] == pytest.approx(row[0])  # NaN imputed like an absent value
    with pytest.raises(InputError, match="'income' has 2 values, expected 3"):
        schema.transform_columns({"income": np.array([1.0, 2.0])}, {}, 3)


def test_schema_round_trips_through_json(ecommerce) -> None:
    import json

    schema = FeatureSchema.fit(ecommerce, NUMERIC, CATEGORICAL)
    again = FeatureSchema.from_dict(json.loads(json.dumps(schema.to_dict())))
    assert again == schema
    with pytest.raises(ValueError, match="malformed feature schema"):
        FeatureSchema.from_dict({"numeric": [{"name": "x"}], "categorical": []})


@pytest.mark.parametrize(("algorithm", "temperature", "smoothing"),
                         [("kmeans", 1.0, 0.0), ("gmm", 1.0, 0.0), ("kmeans", 0.4, 0.1), ("gmm", 0.05, 0.2)],
                         ids=["kmeans", "gmm", "kmeans-calibrated", "gmm-calibrated"])
def test_serving_math_equals_the_sklearn_pipeline_on_100k_random_rows(ecommerce, algorithm, temperature,
                                                                     smoothing) -> None:
    schema = FeatureSchema.fit(ecommerce, NUMERIC, CATEGORICAL)
    x = schema.transform_frame(ecommerce)
    if algorithm == "gmm":
        est = GaussianMixture(4, covariance_type="full", reg_covar=1e-4, random_state=0).fit(x)
        labels = est.predict(x)
        model = calibrate("gmm", x, labels, est.means_, {"weights": est.weights_,
                                                         "precisions_cholesky": est.precisions_cholesky_})
    else:
        est = KMeans(5, n_init=4, random_state=0).fit(x)
        model = calibrate("kmeans", x, est.labels_, est.cluster_centers_)
    calibrated = (temperature, smoothing) != (1.0, 0.0)
    if calibrated:
        model = dataclasses.replace(model, temperature=temperature, smoothing=smoothing)
    pipeline = build_pipeline(schema, est, model if calibrated else None)
    rng = np.random.default_rng(7)
    n = 100_000
    frame = pd.DataFrame({
        name: rng.uniform(ecommerce[name].min() - 5, ecommerce[name].max() * 1.5, n) for name in NUMERIC})
    for c in CATEGORICAL:
        levels = list(ecommerce[c].dropna().astype(str).unique()) + ["Unseen"]
        frame[c] = rng.choice(levels, n)
    expected = pipeline.predict(frame)
    imputed: dict[str, np.ndarray] = {}
    x = schema.transform_frame(frame, imputed=imputed)
    partial = schema.partial_rows(imputed, n)  # the rows with an unseen level: confidence given the rest
    assert 0 < len(partial.rows) < n
    scores = model.score(x, partial)
    assert np.array_equal(scores.segment, expected)
    if algorithm == "gmm" or calibrated:
        proba = pipeline.predict_proba(frame)
        complete = np.setdiff1d(np.arange(n), partial.rows)
        np.testing.assert_allclose(scores.confidence[complete], proba.max(axis=1)[complete], rtol=1e-7)
    if calibrated:  # the wrapped estimator (as training saves it) gives the partly known rows' confidence too
        np.testing.assert_allclose(scores.confidence, proba[np.arange(n), expected], rtol=1e-7)
    assert np.all((scores.confidence >= 0.0) & (scores.confidence <= 1.0))
    # a complete row's segment is the most probable one; a partly known row keeps its imputed point's segment,
    # which what is known may make less likely than chance
    complete = np.setdiff1d(np.arange(n), partial.rows)
    assert np.all(scores.confidence[complete] >= 1.0 / model.k - 1e-12)
    if calibrated:  # softened: never above the plain posterior
        plain = dataclasses.replace(model, temperature=1.0, smoothing=0.0).score(x, partial)
        # (at the most probable segment: a partly known row's may be another, which softening raises)
        assert np.all(scores.confidence[complete] <= plain.confidence[complete] + 1e-12)
        assert scores.confidence.mean() < plain.confidence.mean() - 0.01
    # The pure-Python single-row path gives the same answers.
    for i in range(0, n, 997):
        row = frame.iloc[i]
        unknown: list[str] = []
        one = schema.transform_row({k: float(row[k]) for k in NUMERIC}, {k: row[k] for k in CATEGORICAL}, unknown)
        seg, dist, conf, out = model.score_row(one, schema.observed_columns(unknown) if unknown else None)
        assert seg == expected[i]
        assert dist == pytest.approx(scores.distance[i], rel=1e-9)
        assert conf == pytest.approx(scores.confidence[i], rel=1e-9)
        assert out == bool(scores.outlier[i])


def test_outlier_threshold_is_the_99th_percentile_of_training_distances() -> None:
    rng = np.random.default_rng(3)
    x = np.vstack([rng.normal(0, 1, (3000, 2)), rng.normal(8, 1, (3000, 2))])
    est = KMeans(2, n_init=3, random_state=0).fit(x)
    model = calibrate("kmeans", x, est.labels_, est.cluster_centers_)
    assert model.score(x).outlier.mean() == pytest.approx(0.01, abs=0.002)
    assert model.score(np.array([[40.0, 40.0]])).outlier[0]


def test_model_arrays_are_checked() -> None:
    good = {"centroids": np.zeros((3, 2)), "sigma2": np.array([1.0]), "outlier_threshold": np.ones(3)}
    old = SegmentModel.from_arrays("kmeans", good)  # written before the confidence calibration existed
    assert (old.k, old.temperature, old.smoothing) == (3, 1.0, 0.0)
    again = SegmentModel.from_arrays("kmeans", {**good, "temperature": np.array([0.5]), "smoothing": np.array([0.2])})
    assert (again.temperature, again.smoothing) == (0.5, 0.2)
    assert SegmentModel.from_arrays("kmeans", again.to_arrays()).smoothing == 0.2
    with pytest.raises(ArtefactError, match="temperature=2.0"):
        SegmentModel.from_arrays("kmeans", {**good, "temperature": np.array([2.0])})
    with pytest.raises(ArtefactError, match="smoothing=1.0"):
        SegmentModel.from_arrays("kmeans", {**good, "smoothing": np.array([1.0])})
    with pytest.raises(ArtefactError, match="inconsistent"):
        SegmentModel.from_arrays("kmeans", {**good, "outlier_threshold": np.ones(2)})
    with pytest.raises(ArtefactError, match="unknown algorithm"):
        SegmentModel.from_arrays("dbscan", good)
    with pytest.raises(ArtefactError, match="lack array"):
        SegmentModel.from_arrays("gmm", good)


def test_a_row_with_values_none_usable_is_refused_saying_why() -> None:
    """Implausible (outside the valid range), missing and unseen values alike leave nothing to score: the row is
    refused on the batch path and the single-row path with the same message, naming each value and why; a row
    with one usable value is imputed and scored."""
    frame = {"income": np.array([10.0, 20.0, 30.0, 40.0]), "score": np.array([5.0, 50.0, 60.0, 90.0]),
             "city": ["a", "b", "a", "a"]}
    schema = FeatureSchema.fit(frame, ["income", "score"], ["city"]).with_valid_ranges(
        {"income": [0, None], "score": [1, 100]})
    rows = [({"score": 400.0}, {}),
            ({"income": -5.0, "score": 500.0}, {"city": ""}),
            ({"income": np.nan}, {"city": "Boston"}),
            ({"income": -5.0, "score": 0.5}, {"city": "Boston"}),
            ({"score": 400.0}, {"city": "a"}),
            ({}, {})]
    expected = {0: "no usable feature values: score 400 is outside its valid range 1-100",
                1: "no usable feature values: income -5 is below its valid minimum 0; score 500 is outside its valid "
                   "range 1-100",
                2: "no usable feature values: city 'Boston' is a level training never saw",
                3: "no usable feature values: income -5 is below its valid minimum 0; score 0.5 is outside its valid "
                   "range 1-100; city 'Boston' is a level training never saw",
                5: NO_FEATURE_VALUES}
    numeric = {name: np.array([numbers.get(name, np.nan) for numbers, _ in rows]) for name in ("income", "score")}
    categorical = {"city": [categories.get("city", "") for _, categories in rows]}
    _, errors = schema.transform_columns(numeric, categorical, len(rows))
    assert errors == expected
    for i, (numbers, categories) in enumerate(rows):
        numbers = {k: v for k, v in numbers.items() if v == v}
        if i in expected:
            with pytest.raises(InputError) as err:
                schema.transform_row(numbers, categories)
            assert str(err.value) == expected[i]
        else:
            schema.transform_row(numbers, categories)
    # the same with only the numeric columns sent (the city absent) and with every row complete but one
    _, errors = schema.transform_columns({"income": np.array([-5.0, 20.0]), "score": np.array([500.0, 50.0])}, {}, 2)
    assert errors == {0: expected[1]}
