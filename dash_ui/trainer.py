"""The dashboard's door to the training service (optional): a TrainingClient and whether it answers.

The route the browser streams uploads to is in :mod:`dash_ui.uploads`.
"""
from __future__ import annotations

import logging
import threading
import time
from typing import Any

log = logging.getLogger(__name__)

HEALTH_TTL = 3.0
UNAVAILABLE = "Training is unavailable: no training service is configured (start the dashboard with --trainer)."


class TrainerAccess:
    """The training service at ``target`` ("" = none configured); clients are made on first use."""

    def __init__(self, target: str = "", *, token: str | None = None, tls_ca: str | None = None) -> None:
        self.target = target
        self._token, self._tls_ca = token, tls_ca
        self._client: Any = None
        self._lock = threading.Lock()
        self._health: tuple[float, bool] = (0.0, False)

    @property
    def client(self) -> Any:
        """The TrainingClient (raises RuntimeError when no service is configured)."""
        if not self.target:
            raise RuntimeError(UNAVAILABLE)
        with self._lock:
            if self._client is None:
                from training_job.client import TrainingClient

                self._client = TrainingClient(self.target, token=self._token, tls_ca=self._tls_ca, timeout=30)
            return self._client

    def available(self) -> bool:
        """True when the service answers SERVING (checked at most every HEALTH_TTL seconds)."""
        if not self.target:
            return False
        checked, ok = self._health
        if time.monotonic() - checked < HEALTH_TTL:
            return ok
        ok = self.client.healthy(timeout=1.5)
        self._health = (time.monotonic(), ok)
        return ok

    def unavailable_reason(self) -> str:
        """Why training cannot be used now, in a sentence."""
        if not self.target:
            return UNAVAILABLE
        return f"Training is unavailable: the training service at {self.target} does not answer."

    def close(self) -> None:
        """Close the client's channel."""
        with self._lock:
            if self._client is not None:
                self._client.close()
                self._client = None


def schema_refusal_text(error: Any, *, rollback: bool = False) -> str:
    """A publish or rollback the training service refused for a breaking input schema change (a TrainingError with
    ``breaking_schema``), in the dashboard's words: the versions, each change, and the ways on as the dashboard offers
    them (its "Publish anyway" / "Roll back anyway", the Train page's Model name); the service's own message (written
    for the command line) only when it sent no parts."""
    refusal = getattr(error, "schema_refusal", None)
    if refusal is None:
        return str(getattr(error, "message", error))
    new, served, changes = refusal.candidate, refusal.served, "; ".join(refusal.changes)
    if rollback:
        return (f"{refusal.model} was not rolled back to {new}: its input schema would break the callers of the served "
                f"{served}: {changes}. {served} stays served. Callers may already send what {served} expects; once "
                f"they send what {new} expects, choose Roll back anyway.")
    return (f"{refusal.model} {new} was not made CURRENT: its input schema would break the callers of the served "
            f"{served}: {changes}. {new} is kept and {served} stays served. To keep existing callers working, train "
            f"this table under another Model name on the Train page; or, once callers send what {new} expects, choose "
            "Publish anyway.")
