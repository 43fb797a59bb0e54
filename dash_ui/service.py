"""The dashboard's only door to the scoring service.

`DashboardService` owns one scoring client (typed by `scoring_service.client.ScoringClientProtocol`: plain answers,
turned into the pages' views by `dash_ui.models`), caches what is per model version (model info, the
plot sample), and runs a background thread on `WatchModel` so that
pages learn of a new served version, or of an outage, by polling `status()` (cheap: no network).
Errors reach the pages as `ServiceError` with a sentence for people, never a traceback.

Every read takes a model name (None: the service's default model, the one the watch follows). Another
model of the store is fetched when a page asks for it: which version it serves comes from ListModels,
trusted for `SERVED_TTL_SECONDS`; its info and plot sample are cached by (model, version), since a
stored version never changes.
"""
from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Mapping, TypeVar

import pandas as pd

from dash_ui.models import ModelView, SampleView, model_view, sample_view
from scoring_service.client import (DriftReport, ModelEntry, ModelInfo, Prediction, ReplicaDrift, ScoringClient,
                                    ScoringClientProtocol, ScoringError)
from scoring_service.client.logs import LogScore, score_log
from segmentation_core.bounded_cache import BoundedCache

log = logging.getLogger(__name__)
T = TypeVar("T")

#: Service states shown by the navbar and the banner.
STARTING, OK, NO_MODEL, DOWN = "starting", "ok", "no-model", "down"

#: Customers asked for the map sample: bounded, whatever the size of the training base.
DEFAULT_MAX_SAMPLE = 5000

#: How long the store's list of models and their served versions (ListModels) is trusted: a page of
#: another model than the default learns of a new served version within this time (plus a status poll).
SERVED_TTL_SECONDS = 3.0


class ServiceError(Exception):
    """A failed call, with a message fit for the page and the gRPC status code name."""

    def __init__(self, message: str, code: str = "UNKNOWN") -> None:
        super().__init__(message)
        self.message = message
        self.code = code


@dataclass(frozen=True)
class ServiceStatus:
    state: str
    target: str
    model: str = ""
    version: str = ""
    message: str = ""
    #: Consecutive failed attempts to reach the service since it was last seen well.
    attempts: int = 0
    #: The version served before the last change, and when the change was seen (ISO time).
    previous_version: str = ""
    changed_at: str = ""

    @property
    def healthy(self) -> bool:
        return self.state == OK

    def as_dict(self) -> dict[str, Any]:
        return {
            "state": self.state, "target": self.target, "model": self.model, "version": self.version,
            "message": self.message, "previous_version": self.previous_version, "changed_at": self.changed_at,
        }


def _code_name(exc: BaseException) -> str:
    return exc.code.name if isinstance(exc, ScoringError) else "UNKNOWN"


def _details(exc: BaseException) -> str:
    if isinstance(exc, ScoringError) and exc.message:
        return exc.message  # the server's own words
    return str(exc) or type(exc).__name__


def friendly_error(exc: BaseException, target: str) -> ServiceError:
    """Maps a client exception to a `ServiceError` whose message a user can act on."""
    code = _code_name(exc)
    if code == "UNAVAILABLE":
        details = _details(exc)
        if "refused" in details.lower() or "failed to connect" in details.lower():
            msg = f"The scoring service at {target} does not answer (connection refused)."
        else:
            msg = f"The scoring service at {target} is unavailable: {details}"
    elif code == "DEADLINE_EXCEEDED":
        msg = f"The scoring service at {target} did not answer in time."
    elif code == "CANCELLED":  # what a call in flight gets from a server shutting down
        msg = f"The scoring service at {target} ended the call (it may be restarting)."
    elif code in ("INVALID_ARGUMENT", "NOT_FOUND", "FAILED_PRECONDITION"):
        msg = _details(exc)
    elif code == "UNAUTHENTICATED" or code == "PERMISSION_DENIED":
        msg = f"The scoring service refused the dashboard's credentials ({_details(exc)})."
    else:
        msg = f"The scoring service failed: {_details(exc)}"
    return ServiceError(msg, code)


def default_client_factory(target: str, *, token: str | None = None, tls_ca: str | None = None,
                           timeout: float = 5.0) -> Callable[[], ScoringClientProtocol]:
    """A factory of the scoring service's own client (called when first needed, and again after a failure)."""

    def make() -> ScoringClientProtocol:
        return ScoringClient(target, token=token, tls_ca=Path(tls_ca) if tls_ca else None, timeout=timeout,
                             retries=1)

    return make


class DashboardService:
    """Cached, converted access to one scoring service; see the module docstring."""

    def __init__(self, target: str, client_factory: Callable[[], ScoringClientProtocol] | None = None, *,
                 retry_seconds: float = 2.0, max_sample: int = DEFAULT_MAX_SAMPLE) -> None:
        self.target = target
        self.retry_seconds = retry_seconds
        self.max_sample = max_sample
        self._factory = client_factory or default_client_factory(target)
        self._client: ScoringClientProtocol | None = None
        self._lock = threading.RLock()
        self._status = ServiceStatus(STARTING, target, message=f"Connecting to {target} ...")
        self._view: ModelView | None = None
        #: Plot samples by (model, version): the served ones and the ones before (enough for a swap).
        self._samples: BoundedCache[tuple[str, str], SampleView] = BoundedCache(6)
        #: Views of the models other than the default, by (model, version).
        self._other_views: BoundedCache[tuple[str, str], ModelView] = BoundedCache(8)
        #: ListModels' last answer and when it came (time.monotonic()); see SERVED_TTL_SECONDS.
        self._models: list[ModelEntry] | None = None
        self._models_at = 0.0
        #: Versions asked for by name (a version never changes once stored).
        self._versions: BoundedCache[tuple[str, str], ModelInfo] = BoundedCache(8)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._sample_listeners: list[Callable[[ModelView], None]] = []
        #: The health probe or a failed page call, not the watch, marked the service down: the probe
        #: clears it when health answers again (the watch stream may be well all along).
        self._probe_marked = False
        #: Versions whose plot sample is being fetched: the first model_info and the watch stream's
        #: first message name the same version, and must not fetch and announce it twice.
        self._prefetching: set[str] = set()

    # -- client -----------------------------------------------------------------------------------
    def _get_client(self) -> ScoringClientProtocol:
        with self._lock:
            if self._client is None:
                try:
                    self._client = self._factory()
                except Exception as exc:  # import error, bad target, bad credentials file
                    raise ServiceError(f"Cannot create the scoring client for {self.target}: {exc}",
                                       "UNAVAILABLE") from exc
            return self._client

    def _call(self, request: Callable[[ScoringClientProtocol], T]) -> T:
        """``request(client)``, its failure turned into a `ServiceError` (and an outage into the banner)."""
        client = self._get_client()
        try:
            return request(client)
        except ServiceError:
            raise
        except Exception as exc:  # the client's ScoringError (or a bug: reported, not raised to the page)
            err = friendly_error(exc, self.target)
            if err.code in ("UNAVAILABLE", "DEADLINE_EXCEEDED"):
                self._mark_unreachable(err.message)
            raise err from exc

    def training_profile(self, model: str | None = None) -> dict[str, Any] | None:
        """The served version's training-data profile (profile.proto's field names), or None without one."""
        return self._call(lambda client: client.model_info(model or None, include_profile=True).profile)

    # -- status and watching ---------------------------------------------------------------------
    def status(self) -> ServiceStatus:
        with self._lock:
            return self._status

    def start(self) -> "DashboardService":
        """Starts the watch thread and the health probe (idempotent)."""
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._stop.clear()
                self._thread = threading.Thread(target=self._watch_loop, name="model-watch", daemon=True)
                self._thread.start()
                threading.Thread(target=self._probe_loop, name="health-probe", daemon=True).start()
        return self

    def _probe_loop(self) -> None:
        """While all is well, asks the service's health now and then: the watch stream alone can miss an
        outage (the client's WatchModel waits for a server that went away just as the stream was
        re-opened, without a word), and the banner would never come. The watch side reports the
        recovery, as always."""
        interval = max(2.0 * self.retry_seconds, 1.0)
        while not self._stop.wait(interval):
            state = self.status().state
            if state != OK and not (state == DOWN and self._probe_marked):
                continue
            try:
                self._get_client().health()
            except Exception as exc:  # noqa: BLE001 - any failure to answer is an outage to show
                err = friendly_error(exc, self.target)
                if err.code in ("UNAVAILABLE", "DEADLINE_EXCEEDED"):
                    with self._lock:
                        if self._status.state == OK:
                            self._probe_marked = True
                            self._status = replace(self._status, state=DOWN, message=err.message, attempts=1)
                        elif self._probe_marked:
                            self._status = replace(self._status, attempts=self._status.attempts + 1)
                continue
            with self._lock:  # answered again: an outage only the probe saw is over (a slow answer, say)
                if self._probe_marked and self._status.state == DOWN:
                    self._status = replace(self._status, state=OK, attempts=0,
                                           message=f"Serving {self._status.model} {self._status.version}")
                self._probe_marked = False

    def stop(self) -> None:
        """Stop the watch and the probe and close the client (its channel ends the watch stream)."""
        self._stop.set()
        with self._lock:
            client, self._client = self._client, None
        if client is not None:
            client.close()

    def _watch_loop(self) -> None:
        """Fetch the served model, then follow WatchModel; on any failure probe, wait and start again.

        The first `model_info` call fails fast when the service is down or has no model (the watch
        stream itself would wait for a restarting server without a word), so the banner tells at once.
        """
        retried = False
        while not self._stop.is_set():
            try:
                client = self._get_client()
                self._on_model_info(client.model_info())
                retried = False
                # reconnect=False: the dashboard wants to hear of an outage, not wait through it.
                for info in client.watch(reconnect=False):
                    self._on_model_info(info)
                    if self._stop.is_set():
                        return
                continue  # the server ended the stream (shutdown, restart): start again at once
            except Exception as exc:  # noqa: BLE001 - any failure means: probe, wait, retry
                if not retried and _code_name(exc) == "UNAVAILABLE" and self.status().state == OK:
                    # With several replicas, the one holding the stream may have gone while the others
                    # serve: start again at once (on another). If the whole service is down, the next
                    # model_info fails fast and says so.
                    retried = True
                    continue
                self._on_watch_failure(exc)
            self._stop.wait(self.retry_seconds)

    def _on_model_info(self, info: ModelInfo) -> None:
        view = model_view(info)
        with self._lock:  # from the watch thread: fetch the plot sample ahead of pages, once per version
            prefetch = (self._thread is not None and (view.model, view.version) not in self._samples
                        and view.version not in self._prefetching)
            if prefetch:
                self._prefetching.add(view.version)
        if prefetch:
            threading.Thread(target=self._prefetch, args=(view,), name="sample-prefetch", daemon=True).start()
        with self._lock:
            old = self._status
            changed = bool(old.version) and old.version != view.version
            self._view = view
            self._probe_marked = False
            if changed:
                log.info("served model changed: %s %s -> %s", view.model, old.version, view.version)
            self._status = ServiceStatus(
                OK, self.target, model=view.model, version=view.version,
                message=f"Serving {view.model} {view.version}",
                previous_version=old.version if changed else old.previous_version,
                changed_at=_now() if changed else old.changed_at,
            )

    def _prefetch(self, view: ModelView) -> None:
        try:
            self.sample(view)
        except ServiceError as exc:
            log.info("plot sample of %s not prefetched: %s", view.version, exc.message)
            return
        finally:
            with self._lock:
                self._prefetching.discard(view.version)
        with self._lock:
            listeners = list(self._sample_listeners)
        for listener in listeners:
            self._notify(listener, view)

    def on_sample(self, listener: Callable[[ModelView], None]) -> None:
        """Calls `listener(view)` on the watch side each time a served version's plot sample has been
        fetched (the dashboard draws the version's figures ahead of the first visit); at once, in a
        thread, if the served version's sample is already here."""
        with self._lock:
            self._sample_listeners.append(listener)
            view = self._view
            ready = view is not None and (view.model, view.version) in self._samples
        if ready:
            threading.Thread(target=self._notify, args=(listener, view), name="sample-listener", daemon=True).start()

    @staticmethod
    def _notify(listener: Callable[[ModelView], None], view: ModelView) -> None:
        try:
            listener(view)
        except Exception:  # noqa: BLE001 - a listener's failure must not stop the watch
            log.exception("sample listener %r failed for %s", listener, view.version)

    def _on_watch_failure(self, exc: BaseException) -> None:
        err = friendly_error(exc, self.target)
        state, message = DOWN, err.message
        if err.code in ("UNAVAILABLE", "NOT_FOUND", "FAILED_PRECONDITION") and self._probe_health():
            state = NO_MODEL
            message = f"The scoring service at {self.target} is up but serves no model yet ({_details(exc)})."
        with self._lock:
            old = self._status
            self._status = replace(old, state=state, message=message, attempts=old.attempts + 1)
            attempts = self._status.attempts
            self._probe_marked = False  # the watch side follows this outage now
        if old.state != state or attempts % 30 == 0:  # say it once, then now and then: not every retry
            log.warning("scoring service %s: %s (attempt %d)", self.target, message, attempts)

    def _mark_unreachable(self, message: str) -> None:
        with self._lock:
            if self._status.state == OK:
                # The probe clears it once health answers: one slow call is no lasting outage.
                self._probe_marked = True
                self._status = replace(self._status, state=DOWN, message=message, attempts=1)

    def _probe_health(self) -> bool:
        try:
            self._get_client().health()
            return True
        except Exception:  # noqa: BLE001
            return False

    # -- reads ------------------------------------------------------------------------------------
    def default_model(self) -> str:
        """The name of the model that answers requests naming none ("" before the service was reached)."""
        with self._lock:
            return self._status.model or (self._view.model if self._view is not None else "")

    def is_default(self, model: str | None) -> bool:
        """Whether `model` (None or "": the default) is the model the watch follows."""
        return not model or model == self.default_model()

    def model_view(self, model: str | None = None) -> ModelView:
        """The served version of `model` (None: the default model, from the watch cache; another model:
        its served version per ListModels, fetched once per version). An unknown model raises a
        `ServiceError` (NOT_FOUND) naming the models there are."""
        if not self.is_default(model):
            assert model is not None
            version = self._served_version_of(model)
            return self._other_views.get_or_build(
                (model, version), lambda: model_view(self._call(lambda client: client.model_info(model, version))))
        with self._lock:
            view = self._view
        if view is not None:
            return view
        self._on_model_info(self._call(lambda client: client.model_info()))
        return self._view  # type: ignore[return-value]

    def cached_model_view(self, model: str | None = None) -> ModelView | None:
        """`model_view(model)` if it needs no call to the service, else None."""
        if self.is_default(model):
            with self._lock:
                return self._view
        with self._lock:
            models = self._models
        version = next((m.served_version for m in models or () if m.name == model), "")
        return self._other_views.get((model, version)) if version else None  # type: ignore[arg-type]

    def _served_version_of(self, model: str) -> str:
        entries = self.models()
        entry = next((m for m in entries if m.name == model), None)
        if entry is None:
            names = ", ".join(m.name for m in entries) or "none"
            raise ServiceError(f"There is no model named '{model}' in the store. Models: {names}.", "NOT_FOUND")
        if not entry.served_version:
            raise ServiceError(f"Model {model} has no served version yet (no version of it is published).",
                               "NOT_FOUND")
        return entry.served_version

    def sample(self, view: ModelView | None = None) -> SampleView:
        """The labelled plot sample of `view`'s version (default: the served version of the default model;
        bounded; cached per model and version)."""
        view = view or self.model_view()
        key = (view.model, view.version)
        cached = self._samples.get(key)
        if cached is not None:
            return cached
        stats = self._call(lambda client: client.segment_stats(view.model, view.version, max_sample=self.max_sample))
        sample = sample_view(stats, view.segment_names)
        self._samples.put(key, sample)
        return sample

    def version_info(self, model: str, version: str) -> ModelInfo:
        """One stored version of `model`, served or not (cached: a version never changes)."""
        return self._versions.get_or_build(
            (model, version), lambda: self._call(lambda client: client.model_info(model, version)))

    def served_version(self, model: str) -> str:
        """The version of `model` the scoring service serves now, asked of it ("" when it serves none)."""
        entry = next((m for m in self.versions() if m.name == model), None)
        return entry.served_version if entry is not None else ""

    def versions(self) -> list[ModelEntry]:
        """The models in the store and their versions, asked now."""
        models = self._call(lambda client: client.list_models())
        with self._lock:
            self._models, self._models_at = models, time.monotonic()
        return models

    def models(self) -> list[ModelEntry]:
        """The models in the store and their versions, as ListModels said at most `SERVED_TTL_SECONDS` ago."""
        with self._lock:
            models, fresh = self._models, time.monotonic() - self._models_at < SERVED_TTL_SECONDS
        return models if models is not None and fresh else self.versions()

    def served_versions(self) -> dict[str, str]:
        """Each model's served version ("" for none), as `models()` says; the last answer known while the
        service does not answer ({} before the first)."""
        with self._lock:
            models, healthy = self._models or [], self._status.state == OK
        if healthy:  # while the service is down, no call (the status poll asks often)
            try:
                models = self.models()
            except ServiceError:
                pass
        return {m.name: m.served_version for m in models}

    def drift_report(self, model: str | None = None) -> DriftReport:
        """The served version's drift report (live traffic against its training data), every replica's
        traffic combined (see :meth:`replica_drift`)."""
        return self.replica_drift(model).report

    def replica_drift(self, model: str | None = None) -> ReplicaDrift:
        """The drift reports of every scoring replica the target names, combined per version, with the
        replicas that answered and those that did not."""
        return self._call(lambda client: client.drift_reports(model or None))

    def predict(self, customer: Mapping[str, Any], *, customer_id: str = "", model: str | None = None) -> Prediction:
        """The client's own answer: segment, distance, confidence, outlier flag, model and version."""
        return self._call(lambda client: client.predict(dict(customer), id=customer_id, model=model or None))

    def predict_frame(self, frame: pd.DataFrame, *, progress: Callable[..., Any] | None = None,
                      batch_rows: int = 2_000, model: str | None = None) -> pd.DataFrame:
        return self._call(lambda client: client.predict_frame(frame, batch_rows=batch_rows, progress=progress,
                                                              model=model or None))

    def score_log(self, frame: pd.DataFrame, *, progress: Callable[..., Any] | None = None,
                  batch_rows: int = 2_000, model: str | None = None) -> LogScore:
        """A raw transaction log aggregated here with the model's recipe, then scored (with CLV)."""
        return self._call(lambda client: score_log(client, frame, model=model or None, batch_rows=batch_rows,
                                                   progress=progress))


def _now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
