"""The model store: versioned artefacts on a file system, published atomically.

```
<store>/<model>/versions/<version>/   one artefact (see artefact.py); versions are v0001, v0002, ...
<store>/<model>/CURRENT               the served version's id, replaced by rename
<store>/<model>/HISTORY               the versions served, oldest first, one a line: what rollback undoes
<store>/<model>/.staging-*            work in progress of a publish; invisible to readers
```
A version is written in a staging folder, fsynced, then renamed into ``versions/``; CURRENT is written
to a temporary file and renamed over the old one. Readers therefore see either the old state or the
new one, never half a version, and a publisher killed at any moment leaves the visible store as it was
(a leftover staging folder or CURRENT temporary file is invisible and removed by a later publish). A write
that fails (disk full) raises StoreError in one line and leaves no temporary file behind.

Every move of CURRENT (a publish, ``promote``, ``rollback``) goes through :meth:`ModelStore.set_current`, which
first compares the version's input schema with the served version's (segmentation_core.schema_change): when
callers' requests would stop working (a feature removed, renamed or of another kind, the CLV inputs gone or in
another unit), it refuses with SchemaChangeError naming the model, both versions and each change, and CURRENT
stays; ``allow_breaking_schema=True`` makes the move anyway (logged as a warning). A publish so refused keeps the
new version in the store, not served.

``rollback`` undoes the last change of CURRENT (a publish or a promote), as ``kubectl rollout undo`` goes back to
the previously served revision: it serves the version served before the current one, which HISTORY records
(written by rename beside CURRENT, after it on a promote and before it on a rollback, so that a writer killed
between the two leaves a HISTORY whose last version other than CURRENT is still the one to go back to). Repeated, it
goes further back through what was served (not back and forth between two versions); a version pruned since is
skipped. A store without HISTORY (from before it) rolls back to the next older kept version.
"""
from __future__ import annotations

import contextlib
import errno
import logging
import os
import re
import secrets
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from segmentation_core.artefact import read_manifest
from segmentation_core.errors import ArtefactError, NotFoundError, SchemaChangeError, StoreError, quoted
from segmentation_core.schema_change import InputSchema, added_features, breaking_changes, describe_inputs

log = logging.getLogger(__name__)

CURRENT = "CURRENT"
HISTORY = "HISTORY"
MAX_HISTORY = 100  # versions HISTORY remembers (about 6 bytes each)
VERSIONS = "versions"
_VERSION_RE = re.compile(r"^v(\d{4,12})$")  # bounded: a longer pin would reach the file system as ENAMETOOLONG
_MODEL_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
STALE_STAGING_SECONDS = 3600
MAX_CURRENT_BYTES = 64  # a version id and a newline; a bigger CURRENT is refused unread


@dataclass(frozen=True)
class StoreState:
    """What a reader sees of one model: its versions (oldest first) and the current one."""

    versions: tuple[str, ...]
    current: str | None


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def validate_model_name(name: str) -> str:
    """Return ``name`` if it is a safe model name, else raise ValueError naming it (quoted, bounded)."""
    if not isinstance(name, str) or not _MODEL_RE.match(name):
        raise ValueError(f"model name {quoted(name)} must be 1-64 letters, digits, '_', '.' or '-'")
    return name


def validate_version_id(version: str) -> str:
    """Return ``version`` if it is a version id (v0001 ... up to 12 digits), else raise ValueError (quoted, bounded)."""
    if not isinstance(version, str) or not _VERSION_RE.match(version):
        raise ValueError(f"version {quoted(version)} is not a version id (like v0003)")
    return version


class ModelStore:
    """A model store rooted at a folder."""

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root)

    # ---- reading -----------------------------------------------------------------------------------
    def models(self) -> list[str]:
        """Names of the models that have at least one version."""
        if not self.root.is_dir():
            return []
        return sorted(p.name for p in self.root.iterdir()
                      if p.is_dir() and _MODEL_RE.match(p.name) and (p / VERSIONS).is_dir())

    def versions(self, model: str) -> list[str]:
        """Version ids of ``model``, oldest first."""
        folder = self.root / validate_model_name(model) / VERSIONS
        if not folder.is_dir():
            return []
        found = [p.name for p in folder.iterdir() if _VERSION_RE.match(p.name)]
        return sorted(found, key=lambda v: int(v[1:]))

    def current(self, model: str) -> str | None:
        """The version CURRENT names, or None when nothing is published."""
        path = self.root / validate_model_name(model) / CURRENT
        try:
            with open(path, "rb") as fh:
                data = fh.read(MAX_CURRENT_BYTES + 1)
        except FileNotFoundError:
            return None
        if len(data) > MAX_CURRENT_BYTES:
            raise StoreError(f"{path} is over {MAX_CURRENT_BYTES} bytes: not a version id; ignored")
        text = data.decode("utf-8", errors="replace").strip()
        return text or None

    def state(self, model: str) -> StoreState:
        """Versions and current version together."""
        return StoreState(tuple(self.versions(model)), self.current(model))

    def version_dir(self, model: str, version: str) -> Path:
        """Folder of one version; raises NotFoundError if it does not exist."""
        try:
            validate_version_id(version)
        except ValueError as exc:
            raise NotFoundError(str(exc)) from exc
        folder = self.root / validate_model_name(model) / VERSIONS / version
        if not folder.is_dir():
            known = ", ".join(self.versions(model)) or "none"
            raise NotFoundError(f"model {model!r} has no version {version!r} (versions: {known})")
        return folder

    # ---- writing -----------------------------------------------------------------------------------
    def publish(self, model: str, write: Callable[[Path, str], None], keep: int = 10,
                make_current: bool = True, allow_breaking_schema: bool = False) -> str:
        """Publish a new version: ``write(staging_dir, version_id)`` fills the folder; returns the version id.

        With ``make_current``, the version becomes CURRENT through :meth:`set_current` (``allow_breaking_schema``
        as there); when that refuses (SchemaChangeError), the version stays kept, not served."""
        if keep < 1:
            raise ValueError(f"keep={keep} must be >= 1")
        model_dir = self.root / validate_model_name(model)
        new_model = not model_dir.exists()
        (model_dir / VERSIONS).mkdir(parents=True, exist_ok=True)
        self._remove_stale_staging(model_dir)
        try:
            return self._publish_into(model_dir, model, write, keep, make_current, allow_breaking_schema)
        except BaseException:
            if new_model:  # a failed first publish leaves no empty model behind (rmdir: only if still empty)
                for folder in (model_dir / VERSIONS, model_dir):
                    with contextlib.suppress(OSError):
                        folder.rmdir()
            raise

    def _publish_into(self, model_dir: Path, model: str, write: Callable[[Path, str], None], keep: int,
                      make_current: bool, allow_breaking_schema: bool) -> str:
        """``publish``'s attempts at a free version id (the model's folders exist)."""
        for _attempt in range(20):
            existing = self.versions(model)
            version = f"v{(int(existing[-1][1:]) + 1 if existing else 1):04d}"
            staging = model_dir / f".staging-{version}-{secrets.token_hex(4)}"
            staging.mkdir()
            try:
                try:
                    write(staging, version)
                    _fsync_dir(staging)
                except OSError as exc:  # disk full, quota, file-size limit...: one line, the store unchanged
                    raise StoreError(f"cannot write version {version} of model {model!r} in {self.root}: "
                                     f"{exc.strerror or exc}; the store is unchanged") from exc
                try:
                    # rename() refuses a non-empty target, so two publishers never share a version id.
                    os.rename(staging, model_dir / VERSIONS / version)
                except OSError as exc:
                    if exc.errno not in (errno.ENOTEMPTY, errno.EEXIST):
                        raise
                    log.info("version %s was taken by a concurrent publish; retrying", version)
                    continue
                _fsync_dir(model_dir / VERSIONS)
            finally:
                if staging.exists():
                    shutil.rmtree(staging, ignore_errors=True)
            if make_current:
                try:
                    self.set_current(model, version, allow_breaking_schema=allow_breaking_schema)
                except SchemaChangeError:
                    self.prune(model, keep)  # the version is kept, as a staged one would be
                    raise
            self.prune(model, keep)
            return version
        raise StoreError(f"could not find a free version id for model {model!r}")

    def set_current(self, model: str, version: str, *, record: bool = True,
                    allow_breaking_schema: bool = False) -> None:
        """Make ``version`` the served one, atomically; raises SchemaChangeError (CURRENT unchanged) when its input
        schema would break callers of the served version, unless ``allow_breaking_schema``; ``record``: add it to
        HISTORY (after CURRENT)."""
        self.version_dir(model, version)
        self.check_schema_change(model, version, allow_breaking_schema)
        self._replace_current(model, version, record=record)

    def _replace_current(self, model: str, version: str, *, record: bool) -> None:
        """Write CURRENT (a temporary file renamed over it), and HISTORY after it when ``record``."""
        previous = None
        if record:
            with contextlib.suppress(StoreError):  # a CURRENT that is no version id (20 MB of junk) is replaced
                previous = self.current(model)
        model_dir = self.root / model
        tmp = model_dir / f".{CURRENT}-{secrets.token_hex(4)}"
        try:
            with open(tmp, "w") as fh:
                fh.write(version + "\n")
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, model_dir / CURRENT)
        except OSError as exc:  # disk full at the CURRENT write: no temporary file left, CURRENT as it was
            tmp.unlink(missing_ok=True)
            raise StoreError(f"cannot make {version} the current version of model {model!r}: "
                             f"{exc.strerror or exc}; CURRENT is unchanged") from exc
        _fsync_dir(model_dir)
        log.info("model %s: CURRENT is now %s", model, version)
        if record:
            self._record_served(model, previous, version)

    def check_schema_change(self, model: str, version: str, allow_breaking_schema: bool = False) -> list[str]:
        """The breaking changes of ``version``'s input schema against the served version's (empty when nothing is
        served, it is the served one, or CURRENT or either manifest cannot be read: then nothing is compared,
        with a warning). Raises SchemaChangeError when there are some and ``allow_breaking_schema`` is False; logs
        them as a warning when it is True, and the features callers do not send yet in either case."""
        try:
            served = self.current(model)
        except StoreError:  # a CURRENT that names no version (reported where read): this move repairs it
            log.warning("model %s: CURRENT names no readable version; making %s CURRENT without comparing input "
                        "schemas", model, version)
            return []
        if served is None or served == version:
            return []
        folder = self.root / model / VERSIONS
        try:
            old = InputSchema.from_manifest(read_manifest(folder / served))
            new = InputSchema.from_manifest(read_manifest(folder / version))
        except (ArtefactError, ValueError) as exc:
            log.warning("model %s: the input schemas of %s (served) and %s were not compared: %s", model, served,
                        version, exc)
            return []
        changes = breaking_changes(old, new)
        if changes and not allow_breaking_schema:
            raise SchemaChangeError(
                f"model {model!r}: {version} was not made CURRENT: its input schema would break the callers of "
                f"the served {served}: {'; '.join(changes)}. {version} expects {describe_inputs(new)}. "
                f"{version} is kept in the store and {served} stays served. To go on, publish under another model "
                f"name (train --model NAME) so that existing callers keep theirs, or, once callers send what "
                f"{version} expects, make it CURRENT anyway with --allow-breaking-schema (train, promote, rollback; the training service's PublishVersion: "
                "allow_breaking_schema)", model=model, served=served, candidate=version, changes=changes)
        if changes:
            log.warning("model %s: %s replaces %s despite a breaking input schema change (allowed): %s", model,
                        version, served, "; ".join(changes))
        added = added_features(old, new)
        if added:
            log.warning("model %s: %s adds feature(s) %s, which callers of %s do not send yet: imputed (training "
                        "median or mode) until they do", model, version, ", ".join(map(repr, added)), served)
        return changes

    def promote(self, model: str, version: str, allow_breaking_schema: bool = False) -> str:
        """Serve ``version`` of ``model``; returns it (``allow_breaking_schema``: see :meth:`set_current`)."""
        self.set_current(model, version, allow_breaking_schema=allow_breaking_schema)
        return version

    def history(self, model: str) -> list[str] | None:
        """The versions served, oldest first (kept or not), as HISTORY records them; None without HISTORY."""
        path = self.root / validate_model_name(model) / HISTORY
        try:
            with open(path, "rb") as fh:
                text = fh.read(MAX_HISTORY * (MAX_CURRENT_BYTES + 1)).decode("utf-8", errors="replace")
        except FileNotFoundError:
            return None
        return [line.strip() for line in text.splitlines() if _VERSION_RE.match(line.strip())]

    def rollback_target(self, model: str) -> str | None:
        """The version ``rollback`` would serve: the one served before the current one and still kept (without
        HISTORY: the next older kept version); None when there is none."""
        return self._rollback_plan(model)[0]

    def rollback(self, model: str, expected: str | None = None, allow_breaking_schema: bool = False) -> str:
        """Serve the version served before the current one (undo the last publish or promote); returns it.
        ``expected``: the version the caller was shown (a confirmation): StoreError if the target is another. A
        rollback across a breaking input schema change is refused like any move of CURRENT (callers may already
        send the newer schema) unless ``allow_breaking_schema``."""
        target = self.checked_rollback_target(model, expected)
        self.check_schema_change(model, target, allow_breaking_schema)  # before HISTORY: a refusal changes nothing
        history = self.history(model)
        if history is not None:  # HISTORY first: a rollback killed before CURRENT is done by the next one
            self._write_history(model, history[:len(history) - history[::-1].index(target)])
        self._replace_current(model, target, record=False)
        return target

    def checked_rollback_target(self, model: str, expected: str | None = None) -> str:
        """The version ``rollback`` would serve; StoreError saying why when there is none, or when it is not
        ``expected``."""
        target, history = self._rollback_plan(model)
        current = self.current(model)
        if target is None:
            before = list(dict.fromkeys(v for v in reversed(history or []) if v != current))  # latest first
            known = ", ".join(self.versions(model)) or "none"
            why = (f"the versions served before it ({', '.join(before[:3])}) are no longer kept" if before
                   else "no other version was served before it" if history is not None
                   else "it is the oldest version kept")
            raise StoreError(f"model {model!r}: nothing to roll back to from {current}: {why}; promote a kept "
                             f"version instead (kept: {known})")
        if expected is not None and expected != target:
            raise StoreError(f"model {model!r}: rollback from {current} now serves {target}, not {expected} "
                             "(CURRENT changed meanwhile); look again and confirm")
        return target

    def _rollback_plan(self, model: str) -> tuple[str | None, list[str] | None]:
        """(the version a rollback serves or None, HISTORY or None)."""
        versions = self.versions(model)
        current = self.current(model)
        history = self.history(model)
        if current not in versions:
            return None, history
        if history is None:
            index = versions.index(current)
            return (versions[index - 1] if index else None), None
        kept = set(versions)
        return next((v for v in reversed(history) if v != current and v in kept), None), history

    def _record_served(self, model: str, previous: str | None, version: str) -> None:
        """Add ``version`` to HISTORY (which starts with ``previous``, the version served before it, when new)."""
        history = self.history(model)
        if history is None:
            history = [previous] if previous and previous != version else []
        if not history or history[-1] != version:
            history.append(version)
        self._write_history(model, history[-MAX_HISTORY:])

    def _write_history(self, model: str, history: list[str]) -> None:
        """Replace HISTORY atomically (a temporary file renamed over it)."""
        model_dir = self.root / model
        tmp = model_dir / f".{CURRENT}-{secrets.token_hex(4)}"  # a leftover is swept as CURRENT's are
        try:
            with open(tmp, "w") as fh:
                fh.write("".join(f"{version}\n" for version in history))
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, model_dir / HISTORY)
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            raise StoreError(f"cannot record the served versions of model {model!r}: {exc.strerror or exc}") from exc
        _fsync_dir(model_dir)

    def prune(self, model: str, keep: int) -> list[str]:
        """Delete the oldest versions beyond ``keep``, never the current one; returns what was deleted."""
        versions = self.versions(model)
        current = self.current(model)
        candidates = [v for v in versions[:-keep] if v != current] if len(versions) > keep else []
        model_dir = self.root / model
        for version in candidates:
            # Rename first: a reader never sees a half-deleted version.
            trash = model_dir / f".trash-{version}-{secrets.token_hex(4)}"
            os.rename(model_dir / VERSIONS / version, trash)
            shutil.rmtree(trash, ignore_errors=True)
            log.info("model %s: removed old version %s", model, version)
        return candidates

    def _remove_stale_staging(self, model_dir: Path) -> None:
        now = time.time()
        for p in model_dir.iterdir():
            if p.name.startswith((".staging-", ".trash-", f".{CURRENT}-")):
                try:
                    if p.name.startswith(".trash-") or now - p.stat().st_mtime > STALE_STAGING_SECONDS:
                        if p.is_dir():
                            shutil.rmtree(p, ignore_errors=True)
                        else:  # a CURRENT temporary file a killed publisher left
                            p.unlink(missing_ok=True)
                except FileNotFoundError:
                    pass
