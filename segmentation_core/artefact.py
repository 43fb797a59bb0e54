"""The artefact format: one published model version as a folder of verifiable files.

```
manifest.json          everything about the model (see DESIGN.md), and the sha256 of every other file
manifest.json.sha256   sha256 of manifest.json, so the manifest itself is verified too
manifest.json.sig      optional: "ed25519 <key id> <base64 signature>" of manifest.json's exact bytes
parameters.npz         SegmentModel arrays (read with allow_pickle=False)
sample.npz             a labelled sample of customers for plots (original units, segment, 2-D map)
pipeline.joblib        the full sklearn pipeline, for offline Python users; never read by the service
report.html            the training report
```
The manifest's ``reference`` (drift reference, :mod:`segmentation_core.reference`) is optional: versions
published before it existed load as before and have no reference (:attr:`Artefact.reference` is None).
The scoring service reads an artefact only through :func:`read_artefact`, which verifies every
checksum and shape and never unpickles.

Signed artefacts (optional, off by default; keys: :mod:`segmentation_core.signing`): the training job given a
signing key writes ``manifest.json.sig``, the Ed25519 signature of manifest.json's bytes. The manifest holds
the sha256 of every other file, so the signature covers all that the checksums cover: a manifest edited and
re-digested no longer verifies. A reader given a verify key (:func:`read_manifest`, :func:`read_artefact`)
refuses a version without a signature, signed by another key, or whose signature does not verify
(:class:`~segmentation_core.errors.SignatureError`); without one, the signature file is not read.

Optional manifest keys (older artefacts lack them and still load):

- ``recipe``: a transactions model's feature recipe (segmentation_core.recipe.Recipe.to_dict()), so that a
  raw log is aggregated as in training before scoring;
- ``clv``: the fitted CLV models and their per-segment figures (segmentation_core.clv.ClvModel.to_dict()).

Optional keys of the feature schema's numeric features: ``valid_low`` / ``valid_high``, the training
configuration's ``[cleaning.valid_range]``; scoring treats a value outside as missing, as training's cleaning
did. Versions published before lack them and score as before (such a value clipped to the training range).
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import io
import json
import os
import stat
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, Callable, Mapping, Protocol

import numpy as np

from segmentation_core.clv import ClvModel
from segmentation_core.errors import ArtefactError, NotFoundError, SignatureError
from segmentation_core.features import FeatureSchema
from segmentation_core.reference import Reference
from segmentation_core.segment_model import SegmentModel

FORMAT_VERSION = 1
MANIFEST = "manifest.json"
MANIFEST_DIGEST = "manifest.json.sha256"
MANIFEST_SIGNATURE = "manifest.json.sig"
SIGNATURE_ALGORITHM = "ed25519"
MAX_SIGNATURE_BYTES = 512  # "ed25519 <16 hex> <88 base64>" and a newline
PARAMETERS = "parameters.npz"
SAMPLE = "sample.npz"
PIPELINE = "pipeline.joblib"
REPORT = "report.html"
REQUIRED_FILES = (PARAMETERS, SAMPLE)
REFERENCE = "reference"  # manifest key of the drift reference
CLV = "clv"  # manifest key of the CLV models (transaction models only)
CLV_TABLES = "clv.npz"  # their tables (segmentation_core.clv), present exactly when the manifest has ``clv``
MAX_MANIFEST_BYTES = 1 << 20  # DESIGN.md: the whole manifest stays under 1 MB


class Signer(Protocol):
    """What signs a manifest (segmentation_core.signing.SigningKey)."""

    @property
    def key_id(self) -> str: ...

    def sign(self, data: bytes) -> bytes: ...


class Verifier(Protocol):
    """What checks a manifest's signature (segmentation_core.signing.VerifyKey)."""

    @property
    def key_id(self) -> str: ...

    def verify(self, data: bytes, signature: bytes) -> bool: ...


@dataclass(frozen=True, eq=False)
class Artefact:
    """A verified model version, ready to score."""

    manifest: dict[str, Any]
    schema: FeatureSchema
    model: SegmentModel
    path: Path
    clv: ClvModel | None = None
    """The CLV models (BG/NBD + Gamma-Gamma) of a transactions model, or None."""

    @property
    def version(self) -> str:
        """The version id."""
        return str(self.manifest["version"])

    @property
    def segment_names(self) -> list[str]:
        """Segment names by id."""
        return [s["name"] for s in self.manifest["segments"]]

    @cached_property
    def reference(self) -> Reference | None:
        """The drift reference (checked by :func:`read_artefact`); None for a version published without one."""
        data = self.manifest.get(REFERENCE)
        return None if data is None else Reference.from_dict(data)

    @property
    def recipe(self) -> dict[str, Any] | None:
        """The transactions recipe as stored (rebuild with segmentation_core.recipe.Recipe.from_dict), or None."""
        return self.manifest.get("recipe")

    def load_sample(self) -> dict[str, np.ndarray]:
        """The labelled plot sample: ``num:<feature>``, ``cat:<feature>``, ``segment_id``, ``map_x``, ``map_y``, ``id``."""
        data = _verified_bytes(self.path, SAMPLE, self.manifest["files"])
        with np.load(io.BytesIO(data), allow_pickle=False) as npz:
            return {key: npz[key] for key in npz.files}


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file, streamed."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _fsync_write(path: Path, data: bytes) -> None:
    with open(path, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())


def _npz_bytes(arrays: Mapping[str, np.ndarray]) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, **{k: np.asarray(v) for k, v in arrays.items()})  # type: ignore[arg-type]  # numpy's stub
    return buffer.getvalue()


def write_artefact(folder: Path, manifest: dict[str, Any], model: SegmentModel, sample: Mapping[str, np.ndarray],
                   write_pipeline: Callable[[Path], None] | None = None,
                   write_report: Callable[[Path, dict[str, Any]], None] | None = None,
                   clv: ClvModel | None = None, signer: Signer | None = None) -> dict[str, Any]:
    """Write a complete artefact into ``folder`` (a staging folder); returns the final manifest.

    ``manifest`` must already hold the model description; this adds the format version and checksums
    (and, with ``clv``, the manifest's ``clv`` and the tables file; with ``signer``, manifest.json.sig).
    Every file is fsynced, so that a later rename publishes complete files.
    """
    if manifest.get(REFERENCE) is not None:
        Reference.from_dict(manifest[REFERENCE])  # bounded and consistent, or ValueError before anything is written
    folder.mkdir(parents=True, exist_ok=True)
    for key in sample:
        if np.asarray(sample[key]).dtype == object:
            raise ValueError(f"sample column {key!r} has dtype object, which would need pickle")
    _fsync_write(folder / PARAMETERS, _npz_bytes(model.to_arrays()))
    _fsync_write(folder / SAMPLE, _npz_bytes(sample))
    if clv is not None:
        if clv.tables is None:
            raise ValueError("a CLV model without its tables cannot be written")
        manifest = {**manifest, CLV: clv.to_dict()}
        _fsync_write(folder / CLV_TABLES, _npz_bytes(clv.tables))
    if write_pipeline is not None:
        write_pipeline(folder / PIPELINE)
    manifest = {**manifest, "format_version": FORMAT_VERSION}
    if write_report is not None:
        write_report(folder / REPORT, manifest)
    for extra in (PIPELINE, REPORT):
        if (folder / extra).exists():
            with open(folder / extra, "rb") as fh:
                os.fsync(fh.fileno())
    manifest["files"] = {p.name: sha256_file(p) for p in sorted(folder.iterdir())
                         if p.is_file() and p.name not in (MANIFEST, MANIFEST_DIGEST, MANIFEST_SIGNATURE)}
    body = json.dumps(manifest, indent=2, sort_keys=False, allow_nan=False).encode()
    if len(body) > MAX_MANIFEST_BYTES:
        raise ValueError(f"manifest.json would be {len(body)} bytes; the format allows at most {MAX_MANIFEST_BYTES}")
    _fsync_write(folder / MANIFEST, body)
    _fsync_write(folder / MANIFEST_DIGEST, (hashlib.sha256(body).hexdigest() + "\n").encode())
    if signer is not None:
        signature = base64.b64encode(signer.sign(body)).decode("ascii")
        _fsync_write(folder / MANIFEST_SIGNATURE, f"{SIGNATURE_ALGORITHM} {signer.key_id} {signature}\n".encode())
    return manifest


def check_signature(folder: Path, body: bytes, verify_key: Verifier) -> None:
    """Raise SignatureError naming the version folder unless manifest.json.sig is ``verify_key``'s signature of
    ``body`` (the manifest's bytes)."""
    required = f"signatures are required (verify key {verify_key.key_id})"
    if not (folder / MANIFEST_SIGNATURE).exists():
        raise SignatureError(f"{folder}: not signed (no {MANIFEST_SIGNATURE}) and {required}")
    try:
        text = read_regular_file(folder / MANIFEST_SIGNATURE, MAX_SIGNATURE_BYTES).decode("ascii")
        algorithm, key_id, encoded = text.split()
        signature = base64.b64decode(encoded, validate=True)
    except (ArtefactError, UnicodeDecodeError, ValueError, binascii.Error) as exc:
        raise SignatureError(f"{folder}: {MANIFEST_SIGNATURE} is unreadable ({exc}) and {required}") from None
    if algorithm != SIGNATURE_ALGORITHM:
        raise SignatureError(f"{folder}: signed with {algorithm[:20]!r}, not {SIGNATURE_ALGORITHM}; {required}")
    if key_id != verify_key.key_id:
        raise SignatureError(f"{folder}: signed by key {key_id[:20]}, not by the verify key {verify_key.key_id}")
    if not verify_key.verify(body, signature):
        raise SignatureError(f"{folder}: the signature of {MANIFEST} does not verify with key {verify_key.key_id}: "
                             "the manifest was changed after it was signed")


MAX_DIGEST_BYTES = 256  # manifest.json.sha256: 64 hex digits and a newline


def read_regular_file(path: Path, limit: int | None = None) -> bytes:
    """The bytes of ``path`` if it is a regular file of at most ``limit`` bytes, else ArtefactError naming it.

    Opened non-blocking and checked with fstat before reading: a FIFO, socket or device put in a version
    folder is refused at once instead of blocking the reader forever.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        raise ArtefactError(f"{path.parent}: cannot read {path.name}: {exc.strerror}") from exc
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise ArtefactError(f"{path.parent}: {path.name} is not a regular file (a FIFO, socket or device?)")
        if limit is not None and info.st_size > limit:
            raise ArtefactError(f"{path.parent}: {path.name} is {info.st_size} bytes; at most {limit} are allowed")
        with os.fdopen(os.dup(fd), "rb") as fh:
            data = fh.read() if limit is None else fh.read(limit + 1)
    except OSError as exc:
        raise ArtefactError(f"{path.parent}: cannot read {path.name}: {exc.strerror}") from exc
    finally:
        os.close(fd)
    if limit is not None and len(data) > limit:  # grew after the fstat
        raise ArtefactError(f"{path.parent}: {path.name} is over {limit} bytes")
    return data


def _verified_bytes(folder: Path, name: str, files: Mapping[str, str]) -> bytes:
    expected = files.get(name)
    if expected is None:
        raise ArtefactError(f"{folder}: manifest lists no checksum for {name}")
    data = read_regular_file(folder / name)
    if hashlib.sha256(data).hexdigest() != expected:
        raise ArtefactError(f"{folder}: checksum mismatch for {name}: the file is corrupt or was modified")
    return data


def read_manifest(folder: Path, verify_key: Verifier | None = None) -> dict[str, Any]:
    """Read and verify the manifest of a version folder (not the other files); with ``verify_key``, its signature."""
    body = read_regular_file(folder / MANIFEST, MAX_MANIFEST_BYTES)
    recorded = read_regular_file(folder / MANIFEST_DIGEST, MAX_DIGEST_BYTES).decode("ascii", "replace").strip()
    if hashlib.sha256(body).hexdigest() != recorded:
        raise ArtefactError(f"{folder}: checksum mismatch for {MANIFEST}: the file is corrupt or was modified")
    if verify_key is not None:
        check_signature(folder, body, verify_key)
    try:
        manifest = json.loads(body)
    except ValueError as exc:
        raise ArtefactError(f"{folder}: {MANIFEST} is not valid JSON: {exc}") from exc
    if manifest.get("format_version") != FORMAT_VERSION:
        raise ArtefactError(f"{folder}: artefact format {manifest.get('format_version')!r} is not supported "
                            f"(this program reads format {FORMAT_VERSION})")
    return manifest


def read_report(folder: Path, verify_key: Verifier | None = None) -> bytes:
    """The training report of a version folder, verified against its manifest's checksum (with ``verify_key``, the
    manifest's signature too); NotFoundError when the version was written without one."""
    files = read_manifest(folder, verify_key).get("files", {})
    if REPORT not in files:
        raise NotFoundError(f"{folder}: this version has no training report ({REPORT})")
    return _verified_bytes(folder, REPORT, files)


def read_artefact(folder: Path, verify_key: Verifier | None = None) -> Artefact:
    """Load a version folder for serving: every checksum verified (with ``verify_key``, the signature too), shapes
    checked, nothing unpickled."""
    manifest = read_manifest(folder, verify_key)
    files = manifest.get("files", {})
    for name in REQUIRED_FILES:
        if name not in files:
            raise ArtefactError(f"{folder}: manifest lists no {name}")
    for name in files:
        if name != PIPELINE:  # the pickle is for offline users; the service never needs to read it
            _verified_bytes(folder, name, files)
    try:
        schema = FeatureSchema.from_dict(manifest["feature_schema"])
    except (KeyError, ValueError) as exc:
        raise ArtefactError(f"{folder}: {exc}") from exc
    params = _verified_bytes(folder, PARAMETERS, files)
    try:
        with np.load(io.BytesIO(params), allow_pickle=False) as npz:
            arrays = {key: npz[key] for key in npz.files}
    except ValueError as exc:
        raise ArtefactError(f"{folder}: {PARAMETERS} is unreadable: {exc}") from exc
    model = SegmentModel.from_arrays(manifest.get("algorithm", {}).get("name", ""), arrays)
    if model.width != schema.width:
        raise ArtefactError(f"{folder}: centroids have {model.width} columns but the schema has {schema.width}")
    try:
        reference = None if manifest.get(REFERENCE) is None else Reference.from_dict(manifest[REFERENCE])
    except ValueError as exc:
        raise ArtefactError(f"{folder}: {exc}") from exc
    if reference is not None and len(reference.segment_counts) != model.k:
        raise ArtefactError(f"{folder}: the reference counts {len(reference.segment_counts)} segments, "
                            f"parameters hold {model.k}")
    if reference is not None and [f.name for f in reference.numeric] + [c.name for c in reference.categorical] \
            != schema.feature_names:
        raise ArtefactError(f"{folder}: the reference's features differ from the feature schema's")
    if len(manifest.get("segments", [])) != model.k:
        raise ArtefactError(f"{folder}: manifest describes {len(manifest.get('segments', []))} segments, "
                            f"parameters hold {model.k}")
    artefact = Artefact(manifest=manifest, schema=schema, model=model, path=folder,
                        clv=_read_clv(folder, manifest, files))
    artefact.__dict__["reference"] = reference  # parsed once, above
    return artefact


def _read_clv(folder: Path, manifest: Mapping[str, Any], files: Mapping[str, str]) -> ClvModel | None:
    if manifest.get(CLV) is None:
        return None
    if CLV_TABLES not in files:
        raise ArtefactError(f"{folder}: the manifest has a clv section but lists no {CLV_TABLES}")
    try:
        with np.load(io.BytesIO(_verified_bytes(folder, CLV_TABLES, files)), allow_pickle=False) as npz:
            tables = {key: npz[key] for key in npz.files}
        return ClvModel.from_dict(manifest[CLV], tables)
    except ValueError as exc:
        raise ArtefactError(f"{folder}: {exc}") from exc
