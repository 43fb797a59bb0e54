"""The models a server holds, and their lifecycle: watch the store, verify, warm, swap, refuse.

Reading is lock-free: the served versions live in a dict that is never mutated, only replaced by one
reference assignment when a new CURRENT has been verified (checksums, shapes: ``read_artefact``) and
warmed (a few rows scored, caches filled). A call that resolved the old version finishes on it; the next
call sees the new one. So a swap neither fails nor stalls a call. A version that does not verify is
refused: logged, counted, remembered (not retried: versions are immutable), and the old one keeps serving.
With a verify key (``--verify-key``), a version must also carry a signature by that key (see
``segmentation_core.artefact``), or it is refused the same way.
A CURRENT that names a version not in the store (yet: a replicated store may copy CURRENT first) is not
refused: it is logged once and looked for again at every poll.

Versions pinned by a request are loaded on demand into a small LRU cache.
"""
from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from functools import cached_property
from typing import Callable

import numpy as np

from scoring_service import model_info as info_conv
from scoring_service import wire
from scoring_service.errors import InvalidRequest, Unavailable
from scoring_service.metrics import ServiceMetrics
from segmentation.v1 import scoring_pb2 as pb
from segmentation_core.artefact import Artefact, Verifier, read_artefact, read_manifest
from segmentation_core.bounded_cache import BoundedCache
from segmentation_core.clv import derivable_inputs
from segmentation_core.errors import (ArtefactError, NotFoundError, SegmentationError, SignatureError, StoreError,
                                      quoted)
from segmentation_core.store import ModelStore, validate_model_name, validate_version_id

log = logging.getLogger(__name__)
WARM_ROWS = 64
MAX_LOG_MESSAGE = 1000  # characters of a refusal reason or warning logged (they may quote store contents)


@dataclass(eq=False)
class LoadedVersion:
    """A verified, warmed model version ready to answer calls."""

    model: str
    artefact: Artefact
    sample: dict[str, np.ndarray]
    loaded_at: float = field(default_factory=time.time)

    @property
    def version(self) -> str:
        """The version id."""
        return self.artefact.version

    @cached_property
    def segment_names(self) -> list[str]:
        """Segment names by id."""
        return self.artefact.segment_names

    @cached_property
    def clv_derivable(self) -> frozenset[str]:
        """The CLV inputs a batch may leave out for this version (none without CLV)."""
        artefact = self.artefact
        if artefact.clv is None or artefact.recipe is None:
            return frozenset()
        return derivable_inputs(artefact.schema._numeric_names, counts_days=not artefact.recipe.get("invoice"))

    @cached_property
    def predict_parts(self) -> tuple[tuple[bytes, ...], bytes]:
        """Constant parts of this version's PredictResponse bytes (see ``wire.predict_response_parts``)."""
        return wire.predict_response_parts(self.model, self.version, self.segment_names)

    @cached_property
    def info(self) -> pb.ModelInfo:
        """The ModelInfo message (built once)."""
        return info_conv.model_info(self.artefact, self.model)

    @cached_property
    def info_with_profile(self) -> pb.ModelInfo:
        """The ModelInfo with the training data's profile (built on first request)."""
        return info_conv.with_profile(self.info, self.artefact)


def load_version(store: ModelStore, model: str, version: str, verify_key: Verifier | None = None) -> LoadedVersion:
    """Verify (with ``verify_key``, the signature too), load and warm one version; raises ArtefactError (refused) or
    NotFoundError."""
    artefact = read_artefact(store.version_dir(model, version), verify_key)
    if artefact.manifest.get("version") != version:
        raise ArtefactError(f"{artefact.path}: manifest says version {artefact.manifest.get('version')!r}")
    sample = artefact.load_sample()
    loaded = LoadedVersion(model, artefact, sample)
    _warm(loaded)
    return loaded


def _warm(loaded: LoadedVersion) -> None:
    """Score a few sample rows both ways (fills lazy caches, proves the model scores) and build ModelInfo."""
    schema, seg_model = loaded.artefact.schema, loaded.artefact.model
    n = min(WARM_ROWS, len(loaded.sample.get("segment_id", ())))
    numeric = {f.name: loaded.sample[f"num:{f.name}"][:n] for f in schema.numeric if f"num:{f.name}" in loaded.sample}
    categorical = {c.name: [str(v) for v in loaded.sample[f"cat:{c.name}"][:n]]
                   for c in schema.categorical if f"cat:{c.name}" in loaded.sample}
    x, _errors = schema.transform_columns(numeric, categorical, n)
    scores = seg_model.score(x)
    if not (np.all(np.isfinite(scores.distance)) and np.all(np.isfinite(scores.confidence))):
        raise ArtefactError(f"{loaded.artefact.path}: the model gives non-finite scores on its own sample")
    if n:
        numbers, categories = {k: float(v[0]) for k, v in numeric.items()}, {k: v[0] for k, v in categorical.items()}
    else:  # no sample: the training's typical customer (a row without any value is refused)
        numbers = {f.name: f.impute for f in schema.numeric}
        categories = {c.name: c.impute for c in schema.categorical}
    row = schema.transform_row(numbers, categories)
    seg_model.score_row(row)
    _ = loaded.info, loaded.segment_names, loaded.predict_parts


def check_selector(model: str, version: str = "") -> None:
    """Raise InvalidRequest naming ``selector.model`` / ``selector.version`` when either is malformed (too long,
    not a name or a version id): a malformed selector never reaches the file system and is quoted bounded."""
    if model:
        try:
            validate_model_name(model)
        except ValueError as exc:
            raise InvalidRequest(f"selector.model: {exc}", field="selector.model") from None
    if version:
        try:
            validate_version_id(version)
        except ValueError as exc:
            raise InvalidRequest(f"selector.version: {exc}", field="selector.version") from None


class Registry:
    """The versions a server serves; polls the store in a background thread."""

    def __init__(self, store: ModelStore, default_model: str, *, poll_interval: float = 0.5,
                 pinned_cache: int = 4, metrics: ServiceMetrics | None = None,
                 on_served: Callable[[str, str], None] | None = None,
                 verify_key: Verifier | None = None) -> None:
        self.store = store
        self.verify_key = verify_key
        self.default_model = default_model
        self.poll_interval = poll_interval
        self.pinned_cache = pinned_cache
        self.metrics = metrics
        self.on_served = on_served
        self._served: dict[str, LoadedVersion] = {}  # replaced, never mutated
        self._versions: dict[str, tuple[str, ...]] = {}
        self._currents: dict[str, str | None] = {}
        self._refused: dict[tuple[str, str], str] = {}
        self._warned: dict[str, str] = {}  # the last warning logged per model (poller thread only)
        #: Versions loaded for requests that pin them (and the one served before a swap), least recently
        #: used dropped first. Never on the hot path: the served versions are `_served`, a plain dict.
        self._pinned: BoundedCache[tuple[str, str], LoadedVersion] = BoundedCache(max(1, pinned_cache))
        self._pin_lock = threading.RLock()
        #: (created_at, algorithm, k) of versions listed but not loaded, read from their manifests once
        #: (a stored version never changes): ListModels tells them apart without loading them.
        self._summaries: BoundedCache[tuple[str, str], tuple[str, str, int]] = BoundedCache(1024)
        self._changed = threading.Condition()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.polled = threading.Event()

    # ---- lookups (hot path) ------------------------------------------------------------------------
    def resolve(self, model: str = "", version: str = "") -> LoadedVersion:
        """The version answering a request: the model's CURRENT, or the pinned ``version``.

        Raises InvalidRequest (malformed selector), NotFoundError (unknown model or version, refused version) or
        Unavailable (nothing loaded).
        """
        name = model or self.default_model
        served = self._served.get(name)
        if not version:
            if served is not None:
                return served
            check_selector(model)
            if name in self._versions or name == self.default_model or not self.polled.is_set():
                raise Unavailable(f"model {name!r} has no loaded version yet; retry later")
            raise NotFoundError(self._unknown_model(name))
        if served is not None and served.version == version:
            return served
        check_selector(model, version)
        return self._pinned_version(name, version)

    def _unknown_model(self, name: str) -> str:
        known = ", ".join(sorted(self._versions)) or "none"
        return f"selector.model: unknown model {name!r} (models: {known})"

    def _pinned_version(self, model: str, version: str) -> LoadedVersion:
        key = (model, version)
        with self._pin_lock:
            hit = self._pinned.get(key)
            if hit is not None:
                return hit
            reason = self._refused.get(key)
            if reason is not None:
                raise NotFoundError(f"selector.version: version {version!r} of model {model!r} was refused: {reason}")
            if model not in self._versions and self.polled.is_set():
                raise NotFoundError(self._unknown_model(model))
            try:
                self.store.version_dir(model, version)
            except (NotFoundError, ValueError) as exc:
                raise NotFoundError(f"selector.version: {exc}") from exc
            # Loading under the lock: concurrent callers of one new version load it once; pins are rare.
            try:
                loaded = load_version(self.store, model, version, self.verify_key)
            except NotFoundError as exc:
                raise NotFoundError(f"selector.version: {exc}") from exc
            except (ArtefactError, ValueError) as exc:
                self._refuse(model, version, str(exc), signature=isinstance(exc, SignatureError))
                raise NotFoundError(f"selector.version: version {version!r} of model {model!r} was refused: "
                                    f"{exc}") from exc
            self._remember_pinned(loaded)
            return loaded

    def _remember_pinned(self, loaded: LoadedVersion) -> None:
        self._pinned.put((loaded.model, loaded.version), loaded)

    # ---- watching ----------------------------------------------------------------------------------
    def wait_for_change(self, model: str, last: LoadedVersion | None, timeout: float) -> LoadedVersion | None:
        """Block until ``model`` serves a version other than ``last`` (or timeout/close); returns what it serves."""
        with self._changed:
            self._changed.wait_for(lambda: self._served.get(model) is not last or self._stop.is_set(), timeout)
            return self._served.get(model)

    def list_served(self) -> dict[str, str]:
        """Version served per model (only models with a loaded version)."""
        return {name: loaded.version for name, loaded in self._served.items()}

    def knows(self, model: str) -> bool:
        """True when ``model`` is in the store (or is the default model, which may come later)."""
        return model == self.default_model or model in self._versions or not self.polled.is_set()

    @property
    def closed(self) -> bool:
        """True once :meth:`stop` was called."""
        return self._stop.is_set()

    def list_models(self) -> pb.ListModelsResponse:
        """Models, versions and what is served, loaded and refused."""
        served = self._served
        with self._pin_lock:
            pinned = dict(self._pinned.items())
            refused = dict(self._refused)
        entries = []
        for name in sorted(set(self._versions) | set(served)):
            current = self._currents.get(name)
            s = served.get(name)
            versions = []
            for version in self._versions.get(name, ()):
                loaded = (s is not None and s.version == version) or (name, version) in pinned
                detail = s if s is not None and s.version == version else pinned.get((name, version))
                if detail is not None:
                    manifest = detail.artefact.manifest
                    summary = (str(manifest.get("created_at", "")),
                               str(manifest.get("algorithm", {}).get("name", "")), detail.artefact.model.k)
                else:
                    summary = self._summary(name, version)
                created_at, algorithm, k = summary
                versions.append(pb.VersionInfo(
                    version=version, current=version == current, loaded=loaded,
                    refused_reason=refused.get((name, version), ""), created_at=created_at, algorithm=algorithm,
                    k=k))
            entries.append(pb.ModelEntry(name=name, served_version=s.version if s else "", versions=versions,
                                         is_default=name == self.default_model,
                                         rollback_to=self._rollback_to(name)))
        return pb.ListModelsResponse(models=entries)

    def _rollback_to(self, model: str) -> str:
        """The version a rollback of ``model`` would serve (the store's HISTORY), or "" (none, or unreadable)."""
        try:
            return self.store.rollback_target(model) or ""
        except (OSError, SegmentationError):
            return ""

    def _summary(self, model: str, version: str) -> tuple[str, str, int]:
        """(created_at, algorithm, k) from a version's manifest, read (and verified) once without loading the
        version; blanks while it cannot be read (not kept: it may be being copied; loading it says why)."""
        def read() -> tuple[str, str, int]:
            manifest = read_manifest(self.store.version_dir(model, version), self.verify_key)
            return (str(manifest.get("created_at", "")), str(manifest.get("algorithm", {}).get("name", "")),
                    len(manifest.get("segments", [])))

        try:
            return self._summaries.get_or_build((model, version), read)
        except (SegmentationError, ValueError, OSError) as exc:
            log.info("model %s: no summary of %s: %s", model, version, exc)
            return "", "", 0

    # ---- lifecycle ---------------------------------------------------------------------------------
    def poll(self) -> None:
        """Look at the store once: load and swap in every new CURRENT, refuse broken ones."""
        try:
            models = self.store.models()
        except OSError as exc:
            log.warning("cannot list the model store %s: %s", self.store.root, exc)
            return
        for model in models:
            try:
                state = self.store.state(model)
            except (OSError, ValueError, StoreError) as exc:
                self._warn_once(model, f"cannot read model {model} in the store: {exc}")
                continue
            self._versions = {**self._versions, model: state.versions}
            self._currents = {**self._currents, model: state.current}
            current = state.current
            served = self._served.get(model)
            if current is None or (served is not None and served.version == current):
                continue
            if (model, current) in self._refused:
                continue
            self._load_current(model, current, served)
        self.polled.set()

    def _load_current(self, model: str, version: str, served: LoadedVersion | None) -> None:
        started = time.perf_counter()
        try:
            with self._pin_lock:
                loaded = self._pinned.pop((model, version), None)
            if loaded is None:
                loaded = load_version(self.store, model, version, self.verify_key)
        except NotFoundError as exc:  # CURRENT ahead of its version (a replicated store): look again next poll
            self._warn_once(model, f"model {model}: CURRENT names {quoted(version)}, which is not in the store "
                                   f"(yet): {exc}; still serving {served.version if served else 'nothing'}")
            return
        except (SegmentationError, ValueError, OSError) as exc:
            self._refuse(model, version, str(exc), signature=isinstance(exc, SignatureError))
            if served is not None:
                log.warning("model %s: still serving %s", model, served.version,
                            extra={"model": model, "version": served.version})
            return
        with self._changed:
            self._served = {**self._served, model: loaded}  # the swap: one reference assignment
            self._changed.notify_all()
        if served is not None:  # keep the previous version at hand for callers that pin it (or a rollback)
            self._remember_pinned(served)
        log.info("model %s: serving %s (was %s), loaded in %.0f ms", model, version,
                 served.version if served else "none", (time.perf_counter() - started) * 1e3,
                 extra={"model": model, "version": version, "previous": served.version if served else None})
        if self.metrics:
            self.metrics.version_served(model, served.version if served else None, version)
        if self.on_served:
            self.on_served(model, version)

    def _warn_once(self, model: str, message: str) -> None:
        """Log a warning about ``model`` unless it is the one logged last for it (a poll repeats them)."""
        if self._warned.get(model) != message:
            self._warned[model] = message
            log.warning("%s", message[:MAX_LOG_MESSAGE], extra={"model": model})

    def _refuse(self, model: str, version: str, reason: str, signature: bool = False) -> None:
        with self._pin_lock:
            self._refused[(model, version)] = reason
        reason = reason[:MAX_LOG_MESSAGE]
        log.error("model %s: refused version %s%s: %s", model, version, " (signature)" if signature else "", reason,
                  extra={"model": model, "version": version, "reason": reason, "signature": signature})
        if self.metrics:
            self.metrics.version_refused(model, signature=signature)

    def start(self) -> None:
        """Poll now, then every ``poll_interval`` seconds in a daemon thread."""
        self._thread = threading.Thread(target=self._run, name="store-poller", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.poll()
            except Exception:  # noqa: BLE001 - the poller must survive anything the store throws at it
                log.exception("store poll failed")
            self._stop.wait(self.poll_interval)

    def stop(self) -> None:
        """Stop polling and wake every watcher."""
        self._stop.set()
        with self._changed:
            self._changed.notify_all()
        if self._thread is not None:
            self._thread.join(timeout=5)
