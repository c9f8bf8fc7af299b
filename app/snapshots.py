"""Snapshots of the studio's data (SQLite file + content-addressed image folders) to a remote; restore at start-up.

SQLite stays on local disk (it must not live on a network or bucket mount). A :class:`Snapshotter`

- copies the database with SQLite's online backup API while holding SQLite's write lock on a second connection,
  so no edit commits and no image is garbage-collected until the copy and the list of images are taken: the
  snapshot and its images agree;
- checks the copy (``PRAGMA integrity_check``), names it ``db/<UTC time>-<sha256[:16]>.sqlite`` and uploads it
  with the images the remote lacks (images are immutable, so uploads are incremental) and the deletion of
  snapshots beyond the newest ``keep``; unchanged databases are not uploaded again;
- restores, when the local database does not exist, the newest snapshot whose hash and integrity check pass
  (a partial or corrupt one is skipped), then the missing images: those the history rows reference, and every
  rating image (``rating-images/`` is never garbage-collected);
- carries the browser-state secret (``<data_dir>/.browser-state-secret``, app/identity.py), the key anonymous
  visitors' ids are stored with in their browsers: without it a restored history is unreachable to them. It is
  uploaded beside each database snapshot (``db/<name>.secret``) to private remotes only, never logged. Restore rule:
  a full restore (the database is missing, so whatever history the local key belonged to is gone) puts the
  restored snapshot's key in place, replacing a local one; otherwise a local key is never touched, and a missing
  one is taken from the newest snapshot that has one (same installation). ``REASONBRAIN_BROWSER_SECRET``, when
  set, takes precedence over the file in the app and needs none of this.

Remotes: :class:`FolderRemote` (a folder: tests, a mounted bucket) and :class:`HubDatasetRemote` (a Hugging Face
dataset repo; one commit per snapshot). Every file lands atomically: temp file + ``os.replace`` locally, one
commit on the Hub.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import re
import shutil
import sqlite3
import tempfile
import threading
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Protocol

from sqlalchemy import create_engine, select, union
from sqlalchemy.engine import URL

from app import identity
from app.store import BUSY_TIMEOUT_MS, IMAGES_DIR, ChainRow, StepRow

logger = logging.getLogger(__name__)

DB_DIR = "db"
RATING_IMAGES_DIR = "rating-images"  # app.ratings_store.IMAGES_DIR (a test keeps them equal)
# content-addressed image folders under data_dir: the history's (GC'd with its rows) and the ratings' (never GC'd)
IMAGE_DIRS = (IMAGES_DIR, RATING_IMAGES_DIR)
_DB_NAME = re.compile(r"^db/(\d{8}T\d{6}\d{6}Z)-([0-9a-f]{16})\.sqlite$")
_DB_SUFFIX, _SECRET_SUFFIX = ".sqlite", ".secret"  # db/<name>.secret: the browser-state secret of db/<name>.sqlite
_IMAGE_NAME = re.compile(rf"^({'|'.join(map(re.escape, IMAGE_DIRS))})/([0-9a-f]{{2}})/(\2[0-9a-f]{{62}})\.png$")
_TMP_PREFIX = ".tmp-"


class SnapshotError(RuntimeError):
    """A snapshot could not be taken, verified or restored."""


class Remote(Protocol):
    """Where snapshots live. Paths are relative, '/'-separated (``db/...``, ``images/ab/<sha>.png``)."""

    def list_files(self) -> list[str]: ...

    def put(self, files: Mapping[str, str], delete: Sequence[str] = (), message: str = "") -> None:
        """Upload ``{remote path: local file}`` and delete ``delete``; every file appears whole or not at all."""

    def get(self, path: str, dest: str) -> None:
        """Download ``path`` to the local file ``dest``."""

    def is_private(self) -> bool:
        """Whether only the owner can read it (the browser-state secret goes to private remotes only)."""


class FolderRemote:
    """A local folder (tests; a mounted bucket)."""

    def __init__(self, root: str) -> None:
        self.root = os.path.abspath(os.path.expanduser(root))

    def __repr__(self) -> str:
        return f"FolderRemote({self.root!r})"

    def list_files(self) -> list[str]:
        out = []
        for folder, dirs, files in os.walk(self.root):
            dirs.sort()
            for name in files:
                if not name.startswith(_TMP_PREFIX):  # an interrupted copy is never listed
                    out.append(os.path.relpath(os.path.join(folder, name), self.root).replace(os.sep, "/"))
        return sorted(out)

    def put(self, files: Mapping[str, str], delete: Sequence[str] = (), message: str = "") -> None:
        for rel, local in files.items():
            dest = self._path(rel)
            os.makedirs(os.path.dirname(dest), exist_ok=True)
            _atomic_copy(local, dest)
        for rel in delete:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self._path(rel))

    def get(self, path: str, dest: str) -> None:
        shutil.copyfile(self._path(path), dest)

    def is_private(self) -> bool:
        return True  # files are written 0600 (mkstemp); a mounted bucket is created private (app.deploy)

    def _path(self, rel: str) -> str:
        if rel.startswith("/") or any(p in ("", ".", "..") for p in rel.split("/")):
            raise ValueError(f"remote path {rel!r} must be relative and stay inside {self.root}")
        return os.path.join(self.root, *rel.split("/"))


class HubDatasetRemote:
    """A Hugging Face dataset repo (private; created when missing). ``api``: an ``HfApi`` or a test double."""

    def __init__(self, repo_id: str, api: Any = None, *, private: bool = True) -> None:
        if api is None:
            from huggingface_hub import HfApi

            api = HfApi()  # token from HF_TOKEN or the local login
        self.repo_id, self.api, self.private = repo_id, api, private
        self._created = False
        self._is_private: bool | None = None

    def __repr__(self) -> str:
        return f"HubDatasetRemote({self.repo_id!r})"

    def list_files(self) -> list[str]:
        self._ensure_repo()
        return sorted(self.api.list_repo_files(self.repo_id, repo_type="dataset"))

    def put(self, files: Mapping[str, str], delete: Sequence[str] = (), message: str = "") -> None:
        from huggingface_hub import CommitOperationAdd, CommitOperationDelete

        ops: list[Any] = [CommitOperationAdd(path_in_repo=rel, path_or_fileobj=local) for rel, local in files.items()]
        ops += [CommitOperationDelete(path_in_repo=rel) for rel in delete]
        if ops:  # one commit: the snapshot, its new images and the retention deletions land together
            self._ensure_repo()
            self.api.create_commit(self.repo_id, ops, commit_message=message or "snapshot", repo_type="dataset")

    def get(self, path: str, dest: str) -> None:
        with tempfile.TemporaryDirectory(dir=os.path.dirname(dest) or ".", prefix=_TMP_PREFIX) as tmp:
            local = self.api.hf_hub_download(self.repo_id, path, repo_type="dataset", local_dir=tmp)
            shutil.move(local, dest)

    def is_private(self) -> bool:
        """Asked once: an existing repo keeps its visibility, whatever ``private`` says."""
        if self._is_private is None:
            self._ensure_repo()
            self._is_private = bool(getattr(self.api.repo_info(self.repo_id, repo_type="dataset"), "private", False))
        return self._is_private

    def _ensure_repo(self) -> None:
        if not self._created:
            self.api.create_repo(self.repo_id, repo_type="dataset", private=self.private, exist_ok=True)
            self._created = True


class Snapshotter:
    """Snapshots ``db_path`` and ``data_dir/images`` to ``remote``; see the module docstring."""

    def __init__(self, remote: Remote, db_path: str, data_dir: str, *, keep: int = 5, every_s: float = 0) -> None:
        if keep < 1:
            raise ValueError(f"keep must be at least 1, got {keep}")
        self.remote, self.keep, self.every_s = remote, keep, every_s
        self.db_path = os.path.abspath(db_path)
        self.data_dir = os.path.abspath(data_dir)
        self._lock = threading.Lock()  # one snapshot at a time (periodic thread vs shutdown)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._remote_images: set[str] | None = None  # what the remote holds, listed once
        self._last_sha: str | None = None
        self._warned_public = False

    # --- restore ----------------------------------------------------------------------------------------------
    def restore_if_missing(self) -> str | None:
        """Before the store opens: when the local database is missing, restore the newest good snapshot and its
        images and its browser-state secret. Returns the snapshot's remote path (None: no database restored; a
        missing secret may still be). Raises SnapshotError when the remote has snapshots but none passes
        verification (starting empty would later push out the good history)."""
        if os.path.exists(self.db_path):
            if not os.path.exists(identity.secret_path(self.data_dir)):
                try:  # the history is here: serve it even when the remote cannot be reached
                    listing = self.remote.list_files()
                    newest_first = sorted((n for n in listing if _DB_NAME.match(n)), reverse=True)
                    self._restore_secret(newest_first, set(listing))
                except Exception as err:
                    logger.warning("browser-state secret not restored (%s): anonymous visitors get new ids", err)
            return None
        listing = self.remote.list_files()
        names = sorted((n for n in listing if _DB_NAME.match(n)), reverse=True)
        if not names:
            logger.info("no snapshot in %r: starting with an empty history", self.remote)
            return None
        os.makedirs(os.path.dirname(self.db_path), exist_ok=True)
        tmp = f"{self.db_path}{_TMP_PREFIX}restore"  # verified first, then renamed into place
        for name in names:
            try:
                self.remote.get(name, tmp)
                _verify_db(tmp, expected_sha=_DB_NAME.match(name).group(2))  # type: ignore[union-attr]
            except (SnapshotError, sqlite3.DatabaseError, OSError) as err:
                logger.warning("skipping snapshot %s: %s", name, err)
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(tmp)
                continue
            break
        else:
            raise SnapshotError(
                f"none of the {len(names)} snapshot(s) in {self.remote!r} passed verification; remove the bad "
                "ones from the remote or unset REASONBRAIN_SNAPSHOT_DIR / REASONBRAIN_SNAPSHOT_REPO to start empty"
            )
        # images first: if this fails, the database is not in place yet and the next start tries again
        ratings = {n for n in listing if n.startswith(RATING_IMAGES_DIR + "/") and _IMAGE_NAME.match(n)}
        self._restore_images(_referenced_images(tmp) | ratings, set(listing))
        # the restored snapshot's key replaces a local one: the history that key belonged to is gone
        self._restore_secret([name, *names], set(listing), replace=True)
        for suffix in ("-wal", "-shm", "-journal"):  # leftovers of a lost database must not be replayed onto it
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.db_path + suffix)
        os.replace(tmp, self.db_path)
        logger.info("restored history from %s in %r", name, self.remote)
        return name

    def _restore_secret(self, db_names: Sequence[str], available: set[str], *, replace: bool = False) -> None:
        """Put the secret paired with the first of ``db_names`` that has one in place (mode 0600), unless a local
        one exists and ``replace`` is false. A bad or unreadable one is skipped with a warning."""
        dest = identity.secret_path(self.data_dir)
        if os.path.exists(dest) and not replace:
            return
        rel = next((_secret_name(n) for n in db_names if _secret_name(n) in available), None)
        if rel is None:
            return
        os.makedirs(self.data_dir, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=self.data_dir, prefix=_TMP_PREFIX) as tmp:  # 0700: readable by us only
            local = os.path.join(tmp, "secret")
            try:
                self.remote.get(rel, local)
                with open(local, encoding="utf-8") as f:
                    secret = f.read().strip()
                if not identity.valid_secret(secret):
                    raise SnapshotError("not a browser-state secret")
            except (SnapshotError, OSError, UnicodeDecodeError) as err:
                logger.warning("browser-state secret %s not restored: %s", rel, err)
                return
        if os.path.exists(dest):
            with open(dest, encoding="utf-8") as f:
                if f.read().strip() == secret:
                    return
            logger.info("replacing the local browser-state secret with the one of the restored snapshot")
        identity.write_secret(self.data_dir, secret)
        logger.info("restored the browser-state secret from %s", rel)

    def _restore_images(self, wanted: set[str], available: set[str]) -> None:
        for rel in sorted(wanted):
            dest = os.path.join(self.data_dir, *rel.split("/"))
            if os.path.isfile(dest):
                continue
            if rel not in available:
                logger.warning("image %s is referenced by the snapshot but not in the remote", rel)
                continue
            os.makedirs(os.path.dirname(dest), exist_ok=True)
            tmp = dest + _TMP_PREFIX + "restore"
            try:
                self.remote.get(rel, tmp)
                if _sha256(tmp) != _IMAGE_NAME.match(rel).group(3):  # type: ignore[union-attr]
                    raise SnapshotError("content does not match its name")
                os.replace(tmp, dest)
            except (SnapshotError, OSError) as err:
                logger.warning("image %s not restored: %s", rel, err)
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(tmp)

    # --- snapshot ---------------------------------------------------------------------------------------------
    def snapshot(self) -> str | None:
        """Take, verify and upload one snapshot. Returns its remote path, or None when nothing changed."""
        if not os.path.isfile(self.db_path):
            raise SnapshotError(f"no database at {self.db_path} to snapshot")
        with self._lock:
            if self._remote_images is None:
                self._remote_images = {n for n in self.remote.list_files() if _IMAGE_NAME.match(n)}
            with tempfile.TemporaryDirectory(dir=self.data_dir, prefix=_TMP_PREFIX) as tmp:
                db_copy = os.path.join(tmp, "studio.sqlite")
                new_images = self._backup(db_copy, os.path.join(tmp, "images"))
                _verify_db(db_copy)
                sha = _sha256(db_copy)
                listing = self.remote.list_files()
                old = sorted(n for n in listing if _DB_NAME.match(n))
                newest = _DB_NAME.match(old[-1]).group(2) if old else None  # type: ignore[union-attr]
                secret = self._secret_to_upload()
                if not new_images and (sha == self._last_sha or sha[:16] == newest):
                    # nothing changed since the last snapshot; one taken before the secret existed gets it now
                    if secret and old and _secret_name(old[-1]) not in listing:
                        self.remote.put({_secret_name(old[-1]): secret}, message=f"secret of {old[-1]}")
                    return None
                stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S%fZ")
                name = f"{DB_DIR}/{stamp}-{sha[:16]}{_DB_SUFFIX}"
                drop = (old + [name])[: -self.keep]  # names sort by time
                files = {**new_images, name: db_copy, **({_secret_name(name): secret} if secret else {})}
                paired = [_secret_name(n) for n in drop if _secret_name(n) in listing]
                self.remote.put(files, drop + paired, message=f"snapshot {name}")
            self._remote_images |= set(new_images)
            self._last_sha = sha
            logger.info("snapshot %s: %d new image(s), %d old snapshot(s) dropped", name, len(new_images), len(drop))
            return name

    def _backup(self, dest: str, staging: str) -> dict[str, str]:
        """Copy the database to ``dest`` and hard-link (or copy) the images the remote lacks into ``staging``,
        all under SQLite's write lock. Returns ``{remote path: staged file}``."""
        lock = sqlite3.connect(self.db_path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None)
        src = sqlite3.connect(self.db_path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None)
        dst = sqlite3.connect(dest, isolation_level=None)
        try:
            lock.execute("BEGIN IMMEDIATE")  # writers (and image GC, which runs under it) wait until ROLLBACK
            try:
                src.backup(dst)  # a separate reader connection: backing up from `lock` itself would deadlock
                dst.execute("PRAGMA journal_mode=DELETE")  # one self-contained file, no -wal
                staged = {}
                for rel in self._local_images():
                    if rel not in self._remote_images:  # type: ignore[operator]
                        staged[rel] = path = os.path.join(staging, *rel.split("/"))
                        os.makedirs(os.path.dirname(path), exist_ok=True)
                        _link_or_copy(os.path.join(self.data_dir, *rel.split("/")), path)
            finally:
                lock.execute("ROLLBACK")
        finally:
            dst.close()
            src.close()
            lock.close()
        return staged

    def _secret_to_upload(self) -> str | None:
        """The local browser-state secret file, when there is one and the remote is private (else None)."""
        path = identity.secret_path(self.data_dir)
        if not os.path.isfile(path):
            return None
        if not self.remote.is_private():
            if not self._warned_public:
                logger.warning("the browser-state secret is not uploaded: %r is not private; after a restart from "
                               "it anonymous visitors get new ids (set REASONBRAIN_BROWSER_SECRET instead)", self.remote)
                self._warned_public = True
            return None
        return path

    def _local_images(self) -> list[str]:
        out = []
        for top in IMAGE_DIRS:
            for folder, _, files in os.walk(os.path.join(self.data_dir, top)):
                for name in files:
                    rel = os.path.relpath(os.path.join(folder, name), self.data_dir).replace(os.sep, "/")
                    if _IMAGE_NAME.match(rel):  # temp files of writes in progress are skipped
                        out.append(rel)
        return out

    # --- lifecycle --------------------------------------------------------------------------------------------
    def start(self) -> None:
        """Snapshot every ``every_s`` seconds in a daemon thread (nothing when ``every_s`` is 0)."""
        if self.every_s > 0 and self._thread is None:
            self._thread = threading.Thread(target=self._loop, name="snapshots", daemon=True)
            self._thread.start()

    def _loop(self) -> None:
        while not self._stop.wait(self.every_s):
            try:
                self.snapshot()
            except Exception:  # keep serving; the next period retries
                logger.exception("periodic snapshot failed")

    def stop(self) -> None:
        """Stop the thread and take a final snapshot (errors are logged: shutdown must go on)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        try:
            self.snapshot()
        except Exception:
            logger.exception("final snapshot failed")


def snapshotter_from_settings(settings: Any, api: Any = None) -> Snapshotter | None:
    """The Snapshotter that ``settings`` (app.settings.Settings) configures, or None when snapshots are off."""
    if settings.snapshot_dir:
        remote: Remote = FolderRemote(settings.snapshot_dir)
    elif settings.snapshot_repo:
        remote = HubDatasetRemote(settings.snapshot_repo, api)
    else:
        return None
    return Snapshotter(remote, settings.db_path, settings.data_dir, keep=settings.snapshot_keep,
                       every_s=settings.snapshot_every_s)


# --- helpers --------------------------------------------------------------------------------------------------
def _verify_db(path: str, expected_sha: str | None = None) -> None:
    """SnapshotError unless ``path`` has the expected hash prefix and passes ``PRAGMA integrity_check``."""
    if expected_sha is not None and not _sha256(path).startswith(expected_sha):
        raise SnapshotError("content does not match the hash in its name (partial or altered file)")
    conn = sqlite3.connect(Path(path).as_uri() + "?mode=ro", uri=True)
    try:
        result = [row[0] for row in conn.execute("PRAGMA integrity_check")]
    finally:
        conn.close()
    if result != ["ok"]:
        raise SnapshotError(f"integrity_check failed: {'; '.join(map(str, result[:3]))}")


def _referenced_images(db_path: str) -> set[str]:
    """Every image path the rows of ``db_path`` refer to (those that look content-addressed)."""
    engine = create_engine(URL.create("sqlite+pysqlite", database=db_path))
    try:
        with engine.connect() as conn:
            stmt = union(select(ChainRow.source_image), select(StepRow.input_image), select(StepRow.output_image))
            return {p for p in conn.execute(stmt).scalars() if _IMAGE_NAME.match(p)}
    finally:
        engine.dispose()


def _secret_name(db_name: str) -> str:
    """``db/<name>.secret`` beside ``db/<name>.sqlite``."""
    return db_name[: -len(_DB_SUFFIX)] + _SECRET_SUFFIX


def _sha256(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _atomic_copy(src: str, dest: str) -> None:
    fd, tmp = tempfile.mkstemp(prefix=_TMP_PREFIX, dir=os.path.dirname(dest))
    try:
        with os.fdopen(fd, "wb") as out, open(src, "rb") as inp:
            shutil.copyfileobj(inp, out)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, dest)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def _link_or_copy(src: str, dest: str) -> None:
    try:
        os.link(src, dest)
    except OSError:  # another filesystem, or links not supported
        shutil.copyfile(src, dest)
