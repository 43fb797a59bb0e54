"""The drift reference (segmentation_core.reference) and the drift measures (segmentation_core.drift) on
real data: bins, bounds, the artefact round trip, and PSI against a plain numpy computation."""
from __future__ import annotations

import json

import numpy as np
import pytest

from segmentation_core import drift
from segmentation_core.artefact import read_artefact
from segmentation_core.features import FeatureSchema
from segmentation_core.reference import MAX_LEVELS, BinLayout, Reference, build_reference
from segmentation_core.segment_model import calibrate
from segmentation_core.store import ModelStore
from tests import model_factory


def numpy_psi(train: np.ndarray, live: np.ndarray, bins: int = 10) -> float:
    """PSI as a textbook computes it: decile cut points of the training values, shares per bin plus a bin
    for missing values, 1e-4 floor."""
    cuts = np.unique(np.quantile(train[~np.isnan(train)], np.arange(1, bins) / bins))

    def histogram(values: np.ndarray) -> np.ndarray:
        present = values[~np.isnan(values)]
        counts = np.bincount(np.searchsorted(cuts, present, side="left"), minlength=len(cuts) + 1)
        return np.append(counts, values.size - present.size) / values.size

    expected, actual = histogram(train), histogram(live)
    expected, actual = np.maximum(expected, 1e-4), np.maximum(actual, 1e-4)
    return float(np.sum((actual - expected) * np.log(actual / expected)))


@pytest.fixture(scope="module")
def ecommerce(datasets_dir):
    """The e-commerce table (numeric and categorical, with missing values), its schema and a 4-means model."""
    import pandas as pd
    from sklearn.cluster import KMeans

    frame = pd.read_csv(datasets_dir / "ecommerce_customer_behavior.csv")
    numeric = ["Age", "Total Spend", "Items Purchased", "Average Rating", "Days Since Last Purchase"]
    categorical = ["Gender", "City", "Membership Type", "Satisfaction Level"]
    schema = FeatureSchema.fit(frame, numeric, categorical)
    x = schema.transform_frame(frame)
    est = KMeans(4, n_init=2, random_state=0).fit(x)
    model = calibrate("kmeans", x, est.predict(x), est.cluster_centers_)
    columns = {c: frame[c].to_numpy(float) for c in numeric}
    levels = {c: list(frame[c]) for c in categorical}
    return frame, schema, model, columns, levels


def test_reference_counts_every_training_row_on_bounded_bins(ecommerce) -> None:
    frame, schema, model, columns, levels = ecommerce
    ref = build_reference(schema, model, columns, levels, bins=10)
    assert ref.rows == len(frame)
    for f in ref.numeric:
        assert len(f.counts) == len(f.edges) + 1 <= 10
        assert sum(f.counts) + f.missing == len(frame)
        present = columns[f.name][~np.isnan(columns[f.name])]
        assert f.counts == tuple(np.bincount(np.searchsorted(f.edges, present), minlength=len(f.edges) + 1))
    satisfaction = next(c for c in ref.categorical if c.name == "Satisfaction Level")
    assert satisfaction.missing == frame["Satisfaction Level"].isna().sum() > 0  # the table's missing values
    assert sum(ref.segment_counts) == len(frame)
    assert 0 < ref.outlier_rate < 0.05 and 0 < ref.mean_confidence <= 1
    assert Reference.from_dict(json.loads(json.dumps(ref.to_dict()))) == ref


def test_many_levels_keep_the_top_20_and_count_the_rest_as_other() -> None:
    rng = np.random.default_rng(1)
    n = 3000
    city = [f"city{int(v)}" for v in rng.zipf(1.5, n) % 60]
    cols = {"x": rng.normal(size=n)}
    schema = FeatureSchema.fit({"x": cols["x"], "city": city}, ["x"], ["city"])
    x = schema.transform_columns(cols, {"city": city}, n)[0]
    model = calibrate("kmeans", x, np.zeros(n, dtype=np.int64), x.mean(axis=0, keepdims=True))
    ref = build_reference(schema, model, cols, {"city": city}, bins=50)
    cat = ref.categorical[0]
    assert len(cat.levels) == MAX_LEVELS and cat.levels == schema.categorical[0].levels[:MAX_LEVELS]
    assert sum(cat.counts) + cat.other == n and cat.other > 0 and cat.unseen == 0
    assert len(ref.numeric[0].edges) == 49
    with pytest.raises(ValueError, match="bins=51"):
        build_reference(schema, model, cols, {"city": city}, bins=51)


def test_live_counts_use_the_training_bins(ecommerce) -> None:
    frame, schema, model, columns, levels = ecommerce
    ref = build_reference(schema, model, columns, levels)
    layout = BinLayout(ref, schema)
    codes: dict = {}
    x, errors = schema.transform_columns(columns, levels, len(frame), category_codes=codes)
    counts = layout.count_batch(columns, codes, model.score(x).segment, len(frame))
    assert np.array_equal(counts, ref.training_counts())
    # one row at a time (the Predict path) lands in the same bins as the batch path
    row_counts = np.zeros(layout.size, dtype=np.int64)
    segments = model.score(x).segment
    for i in range(200):
        numbers = {c: columns[c][i] for c in columns}
        cats = {c: levels[c][i] for c in levels if isinstance(levels[c][i], str)}
        for b in layout.row_bins(numbers, cats, int(segments[i])):
            row_counts[b] += 1
    codes200 = {c: v[:200] for c, v in codes.items()}
    assert np.array_equal(row_counts, layout.count_batch({c: v[:200] for c, v in columns.items()}, codes200,
                                                          segments[:200], 200))


def test_psi_agrees_with_a_plain_numpy_psi(ecommerce) -> None:
    frame, schema, model, columns, levels = ecommerce
    ref = build_reference(schema, model, columns, levels)
    layout = BinLayout(ref, schema)
    rng = np.random.default_rng(7)
    pick = rng.integers(0, len(frame), 5000)
    live = {c: v[pick] for c, v in columns.items()}
    live["Total Spend"] = live["Total Spend"] * 1.5
    live_levels = {c: [v[i] for i in pick] for c, v in levels.items()}
    codes: dict = {}
    x, _ = schema.transform_columns(live, live_levels, len(pick), category_codes=codes)
    s = model.score(x)
    counts = layout.count_batch(live, codes, s.segment, len(pick))
    report = drift.assess(ref, layout, counts, len(pick), float(s.confidence.sum()), float(s.distance.sum()),
                          int(s.outlier.sum()), [f"S{i}" for i in range(4)])
    by_name = {h.name: h for h in report.features}
    for name in ("Age", "Total Spend", "Items Purchased"):
        assert by_name[name].psi == pytest.approx(numpy_psi(columns[name], live[name]), rel=1e-9, abs=1e-12)
    assert by_name["Total Spend"].psi > 0.25 and by_name["Total Spend"].band == "major"
    assert report.verdict == drift.RETRAIN and "'Total Spend'" in report.reasons[0]
    assert by_name["Age"].psi < 0.05


def test_verdicts_and_bands() -> None:
    assert drift.band(0.05) == "stable" and drift.band(0.1) == "moderate" and drift.band(0.3) == "major"
    assert drift.psi(np.array([1, 1]), np.array([0, 0])) != drift.psi(np.array([1, 1]), np.array([0, 0]))  # NaN
    assert drift.psi(np.array([50, 50]), np.array([50, 50])) == 0.0
    # hand-computed: e = (0.5, 0.5), a = (0.75, 0.25): 0.25 ln 1.5 - 0.25 ln 0.5 = 0.25 ln 3
    assert drift.psi(np.array([1, 1]), np.array([3, 1])) == pytest.approx(0.25 * np.log(3))


def test_old_artefact_without_reference_still_loads(tmp_path) -> None:
    store = ModelStore(tmp_path)
    version = model_factory.publish(store)
    assert read_artefact(store.version_dir("customers", version)).reference is None
    with_ref = model_factory.publish(store, reference=True)
    ref = read_artefact(store.version_dir("customers", with_ref)).reference
    assert ref is not None and ref.rows == 200 and [f.name for f in ref.numeric] == model_factory.MALL_NUMERIC


def test_a_malformed_reference_is_refused_before_anything_is_written(tmp_path) -> None:
    from segmentation_core.artefact import write_artefact

    schema, _est, _x, _labels, model = model_factory._fit("mall", 5, "kmeans", 0)
    frame = model_factory.mall().frame
    ref = build_reference(schema, model, {c: frame[c].to_numpy(float) for c in model_factory.MALL_NUMERIC},
                          {"Gender": list(frame["Gender"])}).to_dict()
    ref["numeric"][0]["edges"] = list(range(60))
    with pytest.raises(ValueError, match="at most 50 bins"):
        write_artefact(tmp_path / "v", {"reference": ref}, model, {})
    assert not (tmp_path / "v").exists()
