"""Segment names, descriptions and actions (training_job.naming)."""

from __future__ import annotations

import gzip
import html
import itertools
import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.cluster import KMeans
from sklearn.preprocessing import StandardScaler

from segmentation_core.store import ModelStore
from training_job.naming import MIN_HISTORY_DAYS, SegmentDescription, describe_segments, short_history_warning

INCOME = "Annual Income (k$)"
SPENDING = "Spending Score (1-100)"
MALL_NUMERIC = ["Age", INCOME, SPENDING]
CLASSIC = {"Careful Spenders", "Target Group", "Standard Customers", "Careless Customers", "Sensible Customers"}


@pytest.fixture(scope="module")
def mall(request: pytest.FixtureRequest) -> pd.DataFrame:
    """The real mall data; the datasets folder comes from conftest's `datasets_dir` when a colleague provides it."""
    try:
        datasets = Path(request.getfixturevalue("datasets_dir"))
    except pytest.FixtureLookupError:
        datasets = Path(__file__).resolve().parents[2] / "shared" / "datasets"
    path = datasets / "Mall_Customers.csv"
    if not path.exists():
        pytest.skip(f"{path} not found")
    return pd.read_csv(path)


def _kmeans_labels(mall: pd.DataFrame, k: int) -> np.ndarray:
    x = StandardScaler().fit_transform(mall[[INCOME, SPENDING]])
    return KMeans(k, n_init=10, random_state=0).fit_predict(x)


def test_mall_k5_gets_the_five_classic_names_on_the_right_profiles(mall: pd.DataFrame) -> None:
    labels = _kmeans_labels(mall, 5)
    out = describe_segments(mall, labels, MALL_NUMERIC, ["Genre"], style="mall")

    assert {d.name for d in out} == CLASSIC
    income_mean, spending_mean = mall[INCOME].mean(), mall[SPENDING].mean()
    for seg_id, d in enumerate(out):
        seg = mall[labels == seg_id]
        rich = seg[INCOME].mean() > income_mean + 15  # base mean is 60.6 k$
        poor = seg[INCOME].mean() < income_mean - 15
        spender = seg[SPENDING].mean() > spending_mean + 15  # base mean is 50.2
        saver = seg[SPENDING].mean() < spending_mean - 15
        expected = {
            "Careful Spenders": rich and saver,
            "Target Group": rich and spender,
            "Careless Customers": poor and spender,
            "Sensible Customers": poor and saver,
            "Standard Customers": not (rich or poor or spender or saver),
        }[d.name]
        assert expected, f"{d.name!r} on income {seg[INCOME].mean():.0f}, spending {seg[SPENDING].mean():.0f}"


def test_mall_descriptions_quote_real_numbers_and_actions_are_set(mall: pd.DataFrame) -> None:
    labels = _kmeans_labels(mall, 5)
    out = describe_segments(mall, labels, MALL_NUMERIC, ["Genre"], style="mall")
    careful_id = next(i for i, d in enumerate(out) if d.name == "Careful Spenders")
    seg = mall[labels == careful_id]

    d = out[careful_id]
    assert f"{seg[INCOME].median():.0f} k$ vs {mall[INCOME].median():.0f} k$" in d.description
    assert f"{seg[SPENDING].median():.0f} vs {mall[SPENDING].median():.0f}" in d.description
    assert d.description.startswith(f"{len(seg)} customers")
    assert all(x.action for x in out)
    assert d.to_dict() == {"name": d.name, "description": d.description, "action": d.action}


def test_names_follow_profiles_not_cluster_ids(mall: pd.DataFrame) -> None:
    labels = _kmeans_labels(mall, 5)
    perm = np.array([3, 0, 4, 1, 2])
    out = describe_segments(mall, labels, MALL_NUMERIC, ["Genre"], style="mall")
    permuted = describe_segments(mall, perm[labels], MALL_NUMERIC, ["Genre"], style="mall")

    assert [permuted[perm[i]] for i in range(5)] == out


@pytest.mark.parametrize("style", ["mall", "profile"])
def test_k8_on_mall_gives_unique_names(mall: pd.DataFrame, style: str) -> None:
    labels = _kmeans_labels(mall, 8)
    out = describe_segments(mall, labels, MALL_NUMERIC, ["Genre"], style=style)

    names = [d.name for d in out]
    assert len(out) == 8
    assert len(set(names)) == 8, names
    if style == "mall":
        assert set(names) >= CLASSIC  # five classic names used once, three profile names for the rest


def test_profile_names_read_like_the_profile(mall: pd.DataFrame) -> None:
    labels = _kmeans_labels(mall, 5)
    out = describe_segments(mall, labels, [INCOME, SPENDING], [], style="profile")
    for seg_id, d in enumerate(out):
        seg = mall[labels == seg_id]
        if seg[INCOME].median() > 75 and seg[SPENDING].median() < 25:
            assert d.name == "Affluent Light Spenders"


def test_duplicate_profile_names_are_disambiguated() -> None:
    # Two segments, both high on x; they differ only slightly on y.
    features = pd.DataFrame({"x": [1.0, 2, 3, 4, 5, 6, 10, 11, 12, 13],
                             "y": [1.0, 2, 3, 4, 5, 6, 3, 3.5, 3.8, 4.2]})
    labels = np.array([2, 2, 2, 2, 2, 2, 0, 0, 1, 1])
    names = [d.name for d in describe_segments(features, labels, ["x", "y"], [])]

    # Columns of unknown meaning read High-<label> / Low-<label>; the equal "High-x Customers" are told
    # apart by the trait they differ on.
    assert names == ["Low-y High-x Customers", "High-y High-x Customers", "Low-x Customers"]


def _rfm_table() -> tuple[pd.DataFrame, np.ndarray, list[str]]:
    rng = np.random.default_rng(0)
    groups = {  # group: (recency days, frequency, monetary) ranges
        "champions": ((1, 10), (20, 35), (5000, 12000)),
        "new": ((5, 30), (1, 1), (50, 200)),
        "at_risk": ((150, 250), (8, 15), (1500, 4000)),
        "lost": ((300, 365), (1, 1), (20, 80)),
    }
    parts = []
    for (r, f, m) in groups.values():
        parts.append(pd.DataFrame({
            "Recency": rng.uniform(*r, 30),
            "Frequency": rng.integers(f[0], f[1] + 1, 30).astype("float64"),
            "Monetary": rng.uniform(*m, 30),
        }))
    return pd.concat(parts, ignore_index=True), np.repeat(np.arange(len(groups)), 30), list(groups)


@pytest.mark.parametrize("snake_case", [False, True], ids=["Title-case", "snake_case"])
def test_rfm_names_on_obvious_groups(snake_case: bool) -> None:
    features, labels, groups = _rfm_table()
    if snake_case:
        features = features.rename(columns={"Recency": "recency_days", "Frequency": "frequency",
                                            "Monetary": "monetary"})
    out = describe_segments(features, labels, list(features.columns), [], style="rfm")
    named = dict(zip(groups, (d.name for d in out), strict=True))

    assert named["champions"] == "Champions"
    assert named["at_risk"] == "At Risk"
    assert named["lost"] == "Lost"
    # Recent one-time buyers; "New Customers" only when they are the most recent group of all.
    assert named["new"] in {"New Customers", "Promising"}
    assert "Send" in out[2].action or "win" in out[2].action.lower()


def test_overrides_rename_generated_names(mall: pd.DataFrame) -> None:
    labels = _kmeans_labels(mall, 5)
    out = describe_segments(mall, labels, MALL_NUMERIC, ["Genre"], style="mall",
                            overrides={"Target Group": "VIP", "Not generated": "ignored"})
    plain = describe_segments(mall, labels, MALL_NUMERIC, ["Genre"], style="mall")

    assert [d.name for d in out] == ["VIP" if d.name == "Target Group" else d.name for d in plain]
    assert [d.description for d in out] == [d.description for d in plain]


def test_override_that_duplicates_a_name_is_refused(mall: pd.DataFrame) -> None:
    labels = _kmeans_labels(mall, 5)
    with pytest.raises(ValueError, match="Target Group.*Careful Spenders|Careful Spenders.*Target Group"):
        describe_segments(mall, labels, MALL_NUMERIC, [], style="mall", overrides={"Target Group": "Careful Spenders"})


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"style": "fancy"}, "style='fancy'"),
        ({"numeric": ["nope"]}, r"\['nope'\]"),
        ({"style": "rfm"}, "recency"),
    ],
    ids=["unknown-style", "unknown-column", "rfm-without-rfm-columns"],
)
def test_bad_input_is_refused(mall: pd.DataFrame, kwargs: dict, message: str) -> None:
    args = {"numeric": MALL_NUMERIC, "categorical": [], "style": "profile", **kwargs}
    with pytest.raises(ValueError, match=message):
        describe_segments(mall, _kmeans_labels(mall, 3), **args)


def test_empty_segment_is_refused() -> None:
    features = pd.DataFrame({"x": [1.0, 2.0, 3.0]})
    with pytest.raises(ValueError, match=r"segments \[1\]"):
        describe_segments(features, np.array([0, 2, 2]), ["x"], [])


def test_nan_and_categorical_levels() -> None:
    features = pd.DataFrame({
        "Total Spend": [100.0, np.nan, 120.0, 900.0, 1000.0, np.nan],
        "Membership Type": ["Bronze", "Bronze", None, "Gold", "Gold", "Gold"],
    })
    out = describe_segments(features, np.array([0, 0, 0, 1, 1, 1]), ["Total Spend"], ["Membership Type"])

    assert out[1].name == "Gold Big Spenders"
    assert "100% Gold (membership type) vs 60%" in out[1].description
    assert isinstance(out[0], SegmentDescription)


def _rfm_continuum(n: int = 3000) -> pd.DataFrame:
    """Correlated recency / frequency / monetary with no groups, like a real customer base."""
    rng = np.random.default_rng(5)
    engagement = rng.normal(size=n)
    return pd.DataFrame({
        "Recency": np.exp(4.0 - 0.8 * engagement + rng.normal(0, 0.8, n)).round(),
        "Frequency": np.maximum(1, np.exp(1.0 + 0.7 * engagement + rng.normal(0, 0.6, n)).round()),
        "Monetary": np.exp(6.0 + 0.7 * engagement + rng.normal(0, 0.6, n)).round(2),
    })


def test_champions_need_top_recency_frequency_and_monetary() -> None:
    features = _rfm_continuum()
    score = features["Frequency"].rank() + features["Monetary"].rank() - features["Recency"].rank()
    # A big upper group (38% of the base): better than average, but not top on all three.
    big = (score.rank(pct=True) > 0.62).to_numpy().astype(np.int64)
    names = [d.name for d in describe_segments(features, 1 - big, list(features.columns), [], style="rfm")]
    assert "Champions" not in names, names
    # The top tenth is.
    top = (score.rank(pct=True) > 0.9).to_numpy().astype(np.int64)
    names = [d.name for d in describe_segments(features, 1 - top, list(features.columns), [], style="rfm")]
    assert names[0] == "Champions", names


@pytest.mark.parametrize("style", ["profile", "rfm"])
def test_names_are_short_and_never_raw_column_names(style: str) -> None:
    features = _rfm_continuum().rename(columns={"Monetary": "MntTotalSpend"})
    features["NumWebVisitsMonth"] = np.random.default_rng(1).poisson(5, len(features))
    labels = KMeans(6, n_init=3, random_state=0).fit_predict(StandardScaler().fit_transform(features))
    names = [d.name for d in describe_segments(features, labels, list(features.columns), [], style=style)]
    assert len(set(names)) == 6
    assert all(1 <= len(n.split()) <= 4 for n in names), names
    assert not any(raw in n.lower() for n in names for raw in ("mnt", "num", "visits month", "mnttotalspend"))


def test_display_labels_name_the_columns() -> None:
    features = pd.DataFrame({"col_a": [1.0, 2, 3, 10, 11, 12], "col_b": [5.0, 6, 7, 1, 1, 2]})
    labels = np.array([0, 0, 0, 1, 1, 1])
    out = describe_segments(features, labels, ["col_a", "col_b"], [],
                            display_labels={"col_a": "income", "col_b": "children"})
    assert out[0].name == "Low-income Family Customers" and out[1].name == "Child-free Affluent Customers"
    assert "income 2 vs" in out[0].description


# ---- a transaction log too short for recency to mean lapsing (naming.MIN_HISTORY_DAYS)

#: Words that say a customer lapsed or must be won back: never for recency differences of a few days.
CHURN_WORDS = re.compile(r"lapsed|at risk|hibernating|\blost\b|can't lose|win-back|win them back|reactivat|"
                         r"drift away|stopped", re.IGNORECASE)


@pytest.mark.parametrize("history_days, churn_names", [(None, True), (MIN_HISTORY_DAYS, True),
                                                       (MIN_HISTORY_DAYS - 1, False), (2, False)],
                         ids=["customer table", "90 days", "89 days", "2 days"])
def test_naming_leaves_recency_out_of_a_log_shorter_than_the_stated_history(history_days, churn_names) -> None:
    features, labels, groups = _rfm_table()
    out = describe_segments(features, labels, list(features.columns), [], style="rfm", history_days=history_days)
    said = [f"{d.name} {d.action}" for d in out]
    assert any(CHURN_WORDS.search(s) for s in said) == churn_names, said
    assert (short_history_warning(history_days) is None) == churn_names
    if not churn_names:
        assert not any("recency" in d.description for d in out) and len({d.name for d in out}) == len(groups)
        assert f"covers only {history_days} day(s)" in short_history_warning(history_days)


def test_naming_a_real_two_day_slice_of_online_retail_warns_and_uses_no_churn_names(
        datasets_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # The first 5,000 lines of Online Retail: 1-2 December 2010. Segments whose median recency is 2 days
    # against 1 were "Lapsed Big Spenders", "Hibernating" and "At Risk", with "Send a win-back campaign".
    from training_job.cli import main

    with gzip.open(datasets_dir / "online_retail.csv.gz", "rt") as src:
        (tmp_path / "log.csv").write_text("".join(itertools.islice(src, 5_000)))
    store = tmp_path / "store"
    assert main(["train", "--store", str(store), "--data", str(tmp_path / "log.csv"), "--preset", "transactions"]) == 0
    warning = short_history_warning(2)
    assert warning is not None and f"WARNING training_job.train: {warning}" in capsys.readouterr().err
    models = ModelStore(store)
    version = models.version_dir("customers", models.current("customers"))
    manifest = json.loads((version / "manifest.json").read_text())
    # 179 customers: too few to calibrate the confidence either, which the manifest's warnings say too.
    assert manifest["warnings"] == [warning, "Confidence not calibrated (89 rows per half, fewer than 30 per segment): "
                                    "the model's raw posterior, often near 100%; read it as a ranking, not a probability."]
    said = [f"{s['name']} | {s['description']} | {s['action']}" for s in manifest["segments"]]
    assert not any(CHURN_WORDS.search(s) or "recency" in s.lower() for s in said), said
    assert html.escape(warning) in (version / "report.html").read_text()
