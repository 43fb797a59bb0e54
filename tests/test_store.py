"""The model store: atomic publication, versions, promote/rollback/prune, verification of artefacts."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from segmentation_core import artefact as artefact_module
from segmentation_core.artefact import read_artefact, write_artefact
from segmentation_core.errors import ArtefactError, NotFoundError, StoreError
from segmentation_core.features import FeatureSchema
from segmentation_core.segment_model import calibrate
from segmentation_core.store import ModelStore
from tests.store_snapshot import visible_state


def _writer(tag: str = "a"):
    """A write callback producing a small but complete, verifiable artefact."""
    rng = np.random.default_rng(0)
    x_raw = {"income": rng.normal(50, 10, 300), "score": rng.normal(50, 20, 300)}
    schema = FeatureSchema.fit(x_raw, ["income", "score"], [])
    x = schema.transform_columns(x_raw, {}, 300)[0]
    labels = (x[:, 0] > 0).astype(int)
    centroids = np.vstack([x[labels == 0].mean(0), x[labels == 1].mean(0)])
    model = calibrate("kmeans", x, labels, centroids)

    def write(folder: Path, version: str) -> None:
        manifest = {"model": "customers", "version": version, "tag": tag, "feature_schema": schema.to_dict(),
                    "algorithm": {"name": "kmeans"},
                    "segments": [{"id": 0, "name": "low"}, {"id": 1, "name": "high"}]}
        write_artefact(folder, manifest, model, {"segment_id": labels.astype(np.int32)},
                       write_report=lambda p, m: p.write_text(f"<html>{version}</html>"))

    return write


def test_publish_numbers_versions_and_moves_current(tmp_path: Path) -> None:
    store = ModelStore(tmp_path)
    assert store.models() == [] and store.current("customers") is None
    assert [store.publish("customers", _writer()) for _ in range(3)] == ["v0001", "v0002", "v0003"]
    assert store.state("customers").versions == ("v0001", "v0002", "v0003")
    assert store.current("customers") == "v0003"
    assert store.models() == ["customers"]
    art = read_artefact(store.version_dir("customers", "v0003"))
    assert art.version == "v0003" and art.segment_names == ["low", "high"]
    # Nothing of the staging work is left behind.
    assert not [p for p in (tmp_path / "customers").iterdir() if p.name.startswith(".")]


def test_promote_rollback_and_errors(tmp_path: Path) -> None:
    store = ModelStore(tmp_path)
    for _ in range(3):
        store.publish("customers", _writer())
    assert store.rollback("customers") == "v0002"
    assert store.rollback("customers") == "v0001"
    with pytest.raises(StoreError, match="nothing to roll back to from v0001: no other version was served before it"):
        store.rollback("customers")
    assert store.promote("customers", "v0003") == "v0003"
    with pytest.raises(NotFoundError, match=r"no version 'v0009' \(versions: v0001, v0002, v0003\)"):
        store.promote("customers", "v0009")
    with pytest.raises(NotFoundError, match="not a version id"):
        store.version_dir("customers", "../../etc")
    with pytest.raises(ValueError, match="model name"):
        store.versions("../x")


def test_rollback_undoes_a_promote_then_goes_further_back_through_what_was_served(tmp_path: Path) -> None:
    """As `kubectl rollout undo`: rollback serves the previously served version, so `promote v0001` then `rollback`
    serves v0003 again (was: "v0001 is the oldest version kept; nothing to roll back to"). Again, it goes further
    back (v0002), not back and forth."""
    store = ModelStore(tmp_path)
    for _ in range(3):
        store.publish("customers", _writer())
    store.promote("customers", "v0001")
    assert store.history("customers") == ["v0001", "v0002", "v0003", "v0001"]
    assert store.rollback_target("customers") == "v0003"
    assert store.rollback("customers") == "v0003" == store.current("customers")
    assert store.history("customers") == ["v0001", "v0002", "v0003"]
    assert [store.rollback("customers"), store.rollback("customers")] == ["v0002", "v0001"]
    assert store.rollback_target("customers") is None
    assert not [p for p in (tmp_path / "customers").iterdir() if p.name.startswith(".")]


def test_rollback_skips_pruned_versions_and_checks_what_was_confirmed(tmp_path: Path) -> None:
    store = ModelStore(tmp_path)
    for _ in range(4):
        store.publish("customers", _writer(), keep=10)
    store.promote("customers", "v0002")  # served: 1, 2, 3, 4, 2
    with pytest.raises(StoreError, match=r"rollback from v0002 now serves v0004, not v0003 \(CURRENT changed"):
        store.rollback("customers", expected="v0003")
    assert store.current("customers") == "v0002"
    store.publish("customers", _writer(), keep=1, make_current=False)  # keeps v0005 and v0002 (served)
    assert store.versions("customers") == ["v0002", "v0005"]
    assert store.rollback_target("customers") is None  # v0004, v0003, v0001 are gone
    with pytest.raises(StoreError, match=r"the versions served before it \(v0004, v0003, v0001\) are no longer kept; "
                                         r"promote a kept version instead \(kept: v0002, v0005\)"):
        store.rollback("customers")


def test_a_writer_killed_between_current_and_history_leaves_rollback_right(tmp_path: Path) -> None:
    """A promote writes CURRENT, then HISTORY; a rollback HISTORY, then CURRENT: killed in between, the next
    rollback still serves the version served before."""
    store = ModelStore(tmp_path)
    for _ in range(3):
        store.publish("customers", _writer())
    store.set_current("customers", "v0001", record=False)  # a promote of v0001 killed before HISTORY
    assert store.history("customers") == ["v0001", "v0002", "v0003"]
    assert store.rollback("customers") == "v0003"
    store._write_history("customers", ["v0001", "v0002"])  # a rollback from v0003 killed before CURRENT
    assert store.current("customers") == "v0003"
    assert store.rollback("customers") == "v0002"


def test_a_store_without_history_rolls_back_to_the_next_older_version(tmp_path: Path) -> None:
    """A store written before HISTORY existed: the old rule; its first promote starts HISTORY with what it replaced."""
    store = ModelStore(tmp_path)
    for _ in range(3):
        store.publish("customers", _writer())
    (tmp_path / "customers" / "HISTORY").unlink()
    assert store.rollback_target("customers") == "v0002"
    store.promote("customers", "v0001")
    assert store.history("customers") == ["v0003", "v0001"]
    assert store.rollback("customers") == "v0003"


def test_prune_keeps_n_and_never_the_current(tmp_path: Path) -> None:
    store = ModelStore(tmp_path)
    store.publish("customers", _writer())
    store.publish("customers", _writer(), keep=5)
    store.promote("customers", "v0001")
    for _ in range(4):
        store.publish("customers", _writer(), keep=3, make_current=False)
    # v0001 is current so it survives although it is the oldest.
    assert store.versions("customers") == ["v0001", "v0004", "v0005", "v0006"]
    assert store.current("customers") == "v0001"


def test_concurrent_publisher_taking_the_id_is_retried(tmp_path: Path) -> None:
    store = ModelStore(tmp_path)
    store.publish("customers", _writer())
    inner = _writer()
    raced = []

    def racing_write(folder: Path, version: str) -> None:
        if not raced:  # another trainer publishes the same id while we write ours
            raced.append(version)
            store.publish("customers", _writer("other"))
        inner(folder, version)

    assert store.publish("customers", racing_write) == "v0003"
    assert raced == ["v0002"]
    assert read_artefact(store.version_dir("customers", "v0002")).manifest["tag"] == "other"


@pytest.mark.parametrize("target", ["parameters.npz", "manifest.json", "sample.npz", "report.html"])
def test_tampered_artefact_is_refused(tmp_path: Path, target: str) -> None:
    store = ModelStore(tmp_path)
    store.publish("customers", _writer())
    folder = store.version_dir("customers", "v0001")
    data = bytearray((folder / target).read_bytes())
    data[len(data) // 2] ^= 0x01
    (folder / target).write_bytes(bytes(data))
    with pytest.raises(ArtefactError, match=f"checksum mismatch for {target}"):
        read_artefact(folder)


def test_missing_file_and_unknown_format_are_refused(tmp_path: Path) -> None:
    store = ModelStore(tmp_path)
    store.publish("customers", _writer())
    folder = store.version_dir("customers", "v0001")
    (folder / "sample.npz").unlink()
    with pytest.raises(ArtefactError, match="cannot read sample.npz"):
        read_artefact(folder)
    store.publish("customers", _writer())
    folder = store.version_dir("customers", "v0002")
    import hashlib
    import json

    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["format_version"] = 99
    body = json.dumps(manifest).encode()
    (folder / "manifest.json").write_bytes(body)
    (folder / "manifest.json.sha256").write_text(hashlib.sha256(body).hexdigest())
    with pytest.raises(ArtefactError, match="format 99 is not supported"):
        read_artefact(folder)


def _failing_at(monkeypatch, module, name: str, n: int) -> list[int]:
    """Make ``module.name`` raise on its n-th call (a crash at that step); returns the call counter."""
    original = getattr(module, name)
    calls = [0]

    def wrapper(*args, **kwargs):
        calls[0] += 1
        if calls[0] == n:
            raise OSError(f"injected failure in {name} call {n}")
        return original(*args, **kwargs)

    monkeypatch.setattr(module, name, wrapper)
    return calls


@pytest.mark.parametrize("step", [
    ("artefact", "_fsync_write", 1), ("artefact", "_fsync_write", 2), ("artefact", "_fsync_write", 3),
    ("artefact", "_fsync_write", 4), ("artefact", "sha256_file", 2), ("store", "_fsync_dir", 1),
    ("os", "rename", 1),
], ids=lambda s: f"{s[0]}.{s[1]}#{s[2]}")
def test_publish_interrupted_at_each_step_leaves_the_store_as_it_was(tmp_path: Path, monkeypatch, step) -> None:
    import segmentation_core.store as store_module

    store = ModelStore(tmp_path)
    store.publish("customers", _writer())
    before = visible_state(tmp_path)
    module = {"artefact": artefact_module, "store": store_module, "os": os}[step[0]]
    _failing_at(monkeypatch, module, step[1], step[2])
    with pytest.raises((OSError, StoreError), match="injected failure"):  # StoreError: a failed write, one line
        store.publish("customers", _writer())
    monkeypatch.undo()
    assert visible_state(tmp_path) == before
    assert store.current("customers") == "v0001"
    # The store still works afterwards.
    assert store.publish("customers", _writer()) == "v0002"


def test_current_replacement_failure_keeps_the_old_current(tmp_path: Path, monkeypatch) -> None:
    store = ModelStore(tmp_path)
    store.publish("customers", _writer())
    _failing_at(monkeypatch, os, "replace", 1)
    with pytest.raises((OSError, StoreError), match="injected failure"):  # StoreError: a failed write, one line
        store.publish("customers", _writer())
    monkeypatch.undo()
    # The new version folder is complete but not served: CURRENT still names the old one.
    assert store.current("customers") == "v0001"
    read_artefact(store.version_dir("customers", "v0002"))


def test_a_failed_first_publish_leaves_no_empty_model_behind(tmp_path: Path) -> None:
    store = ModelStore(tmp_path)

    def fails(folder: Path, version: str) -> None:
        (folder / "manifest.json").write_text("{}")
        raise ValueError("Out of range float values are not JSON compliant: nan")

    with pytest.raises(ValueError, match="JSON compliant"):
        store.publish("fresh", fails)
    assert not (tmp_path / "fresh").exists() and store.versions("fresh") == []
    # A model that already has versions keeps its folders, and what it served.
    store.publish("kept", _writer("a"))
    with pytest.raises(ValueError):
        store.publish("kept", fails)
    assert store.versions("kept") == ["v0001"] and store.current("kept") == "v0001"
    assert [p.name for p in (tmp_path / "kept").iterdir() if p.name.startswith(".staging")] == []
