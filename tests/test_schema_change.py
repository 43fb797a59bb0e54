"""A version whose input schema would break the served version's callers does not become CURRENT by default:
the rules (segmentation_core.schema_change) and the one place that applies them (ModelStore.set_current)."""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest

from segmentation_core.artefact import write_artefact
from segmentation_core.errors import SchemaChangeError
from segmentation_core.features import FeatureSchema
from segmentation_core.schema_change import InputSchema, added_features, breaking_changes
from segmentation_core.segment_model import calibrate
from segmentation_core.store import ModelStore

RFM = InputSchema(("Recency", "Frequency", "Monetary"), ())
CLV_DAYS = InputSchema(("Recency", "Frequency", "Monetary"), (), "days", frozenset({"CustomerAge"}))


@pytest.mark.parametrize("served, candidate, words", [
    (RFM, InputSchema(("Annual Income (k$)", "Spending Score (1-100)"), ()),
     ["numeric feature(s) 'Recency', 'Frequency', 'Monetary' removed", "unknown numeric feature"]),
    (RFM, InputSchema(("Recency", "Frequency", "Spend"), ()), ["numeric feature(s) 'Monetary' removed"]),
    (InputSchema(("Age",), ("Gender",)), InputSchema(("Age",), ()), ["categorical feature(s) 'Gender' removed"]),
    (InputSchema(("Age", "Visits"), ()), InputSchema(("Age",), ("Visits",)),
     ["'Visits' changed from numeric to categorical"]),
    (CLV_DAYS, RFM, ["the CLV inputs (RepeatPurchases, LastPurchaseTime, CustomerAge, AvgRepeatValue) no longer "
                     "taken"]),
    (CLV_DAYS, InputSchema(RFM.numeric, (), "weeks", frozenset({"CustomerAge"})),
     ["time unit changed from days to weeks"]),
    (CLV_DAYS, InputSchema(("Frequency", "Monetary", "Tenure"), (), "days"),
     ["numeric feature(s) 'Recency' removed", "CLV input(s) 'CustomerAge' no longer derived"]),
], ids=["mall over rfm", "renamed", "categorical removed", "kind changed", "clv gone", "clv unit",
        "clv derivation lost"])
def test_breaking_changes_name_each_feature_and_what_callers_would_see(served, candidate, words) -> None:
    text = "; ".join(breaking_changes(served, candidate))
    for word in words:
        assert word in text, text


@pytest.mark.parametrize("served, candidate", [
    (RFM, RFM),
    (RFM, InputSchema(("Recency", "Frequency", "Monetary", "Tenure"), ("Country",))),  # added: imputed until sent
    (RFM, CLV_DAYS),  # CLV newly taken: optional
    (InputSchema(("b", "a"), ("c",)), InputSchema(("a", "b"), ("c",))),  # order does not matter to callers
], ids=["same", "features added", "clv added", "reordered"])
def test_compatible_schemas_have_no_breaking_change(served, candidate) -> None:
    assert breaking_changes(served, candidate) == []


def test_added_features_are_listed_for_the_warning() -> None:
    assert added_features(RFM, InputSchema(("Recency", "Frequency", "Monetary", "Tenure"), ("Country",))) == \
        ["Tenure", "Country"]


def test_the_input_schema_of_a_manifest_includes_the_clv_inputs() -> None:
    schema = {"numeric": [{"name": "Recency"}, {"name": "Frequency"}], "categorical": [{"name": "Country"}]}
    plain = InputSchema.from_manifest({"feature_schema": schema})
    assert plain == InputSchema(("Recency", "Frequency"), ("Country",))
    clv = InputSchema.from_manifest({"feature_schema": schema, "clv": {"time_unit": "weeks"}, "recipe": {"invoice": ""}})
    assert clv.clv_time_unit == "weeks" and clv.clv_derivable == {"CustomerAge", "RepeatPurchases"}
    with pytest.raises(ValueError, match="feature schema"):
        InputSchema.from_manifest({"segments": []})


def _writer(numeric: list[str], categorical: tuple[str, ...] = ()):
    """A write callback producing a small, complete artefact with these features."""
    rng = np.random.default_rng(0)
    raw = {name: rng.normal(50, 10, 300) for name in numeric}
    cats = {name: list(rng.choice(["a", "b"], 300)) for name in categorical}
    schema = FeatureSchema.fit({**raw, **cats}, numeric, list(categorical))
    x = schema.transform_columns(raw, cats, 300)[0]
    labels = (x[:, 0] > 0).astype(int)
    model = calibrate("kmeans", x, labels, np.vstack([x[labels == 0].mean(0), x[labels == 1].mean(0)]))

    def write(folder: Path, version: str) -> None:
        manifest = {"model": "customers", "version": version, "feature_schema": schema.to_dict(),
                    "algorithm": {"name": "kmeans"}, "segments": [{"id": 0, "name": "low"}, {"id": 1, "name": "high"}]}
        write_artefact(folder, manifest, model, {"segment_id": labels.astype(np.int32)},
                       write_report=lambda p, m: p.write_text("<html></html>"))

    return write


RFM_FEATURES = ["Recency", "Frequency", "Monetary"]
MALL_FEATURES = ["Annual Income (k$)", "Spending Score (1-100)"]


def test_a_publish_that_breaks_callers_is_refused_and_the_version_kept(tmp_path: Path) -> None:
    store = ModelStore(tmp_path)
    store.publish("customers", _writer(RFM_FEATURES))
    with pytest.raises(SchemaChangeError) as refused:
        store.publish("customers", _writer(MALL_FEATURES))
    message = str(refused.value)
    assert message.startswith("model 'customers': v0002 was not made CURRENT: its input schema would break the "
                              "callers of the served v0001: numeric feature(s) 'Recency', 'Frequency', 'Monetary' "
                              "removed"), message
    assert "v0002 expects numeric 'Annual Income (k$)', 'Spending Score (1-100)'" in message
    assert "--model NAME" in message and "--allow-breaking-schema" in message and "allow_breaking_schema" in message
    assert "\n" not in message  # one line: the gRPC status and the log carry it whole
    assert (refused.value.served, refused.value.candidate) == ("v0001", "v0002")
    assert store.versions("customers") == ["v0001", "v0002"] and store.current("customers") == "v0001"  # kept

    assert store.promote("customers", "v0002", allow_breaking_schema=True) == "v0002"
    assert store.current("customers") == "v0002"


def test_a_rollback_across_a_breaking_change_needs_the_override_too(tmp_path: Path, caplog) -> None:
    store = ModelStore(tmp_path)
    store.publish("customers", _writer(RFM_FEATURES))
    store.publish("customers", _writer(MALL_FEATURES), allow_breaking_schema=True)
    with pytest.raises(SchemaChangeError, match="v0001 was not made CURRENT.*served v0002: numeric feature"):
        store.rollback("customers")
    assert store.current("customers") == "v0002"
    with caplog.at_level(logging.WARNING, logger="segmentation_core.store"):
        assert store.rollback("customers", allow_breaking_schema=True) == "v0001"
    assert "v0001 replaces v0002 despite a breaking input schema change (allowed)" in caplog.text


def test_a_compatible_version_is_published_and_an_added_feature_is_warned_about(tmp_path: Path, caplog) -> None:
    store = ModelStore(tmp_path)
    store.publish("customers", _writer(RFM_FEATURES))
    assert store.publish("customers", _writer(RFM_FEATURES)) == "v0002"
    with caplog.at_level(logging.WARNING, logger="segmentation_core.store"):
        assert store.publish("customers", _writer(RFM_FEATURES, ("Country",))) == "v0003"
    assert store.current("customers") == "v0003"
    assert "v0003 adds feature(s) 'Country', which callers of v0002 do not send yet" in caplog.text
    # Another model name starts fresh: nothing served there to break.
    assert store.publish("mall", _writer(MALL_FEATURES)) == "v0001" and store.current("mall") == "v0001"


def test_a_staged_version_is_not_checked_until_it_is_made_current(tmp_path: Path) -> None:
    store = ModelStore(tmp_path)
    store.publish("customers", _writer(RFM_FEATURES))
    assert store.publish("customers", _writer(MALL_FEATURES), make_current=False) == "v0002"
    with pytest.raises(SchemaChangeError):
        store.set_current("customers", "v0002")
    assert store.current("customers") == "v0001"
