"""Editing history in SQLite (SQLAlchemy 2 models, Alembic migrations) with content-addressed images on disk.

Layout under ``data_dir``::

    studio.db                       (default location; any path works)
    images/<sha[:2]>/<sha>.png      sha256 of the PNG bytes; rows hold "images/<sha[:2]>/<sha>.png"

Durability: an image file is written (temp file + fsync + ``os.replace``) *before* the row that references it
is committed, inside the same write transaction, so a crash at any point leaves at worst an unreferenced file
(``python -m app.consistency --fix`` removes those), never a row pointing at a missing file. Files are removed
only after the rows referencing them are gone, under the same SQLite write lock, so concurrent writers (threads
or processes) cannot lose an image they are about to reference.

Concurrency: one SQLAlchemy Engine, a session per call, WAL journal. Write transactions start with
``BEGIN IMMEDIATE`` (taking SQLite's write lock up front instead of failing to upgrade a read lock with
"database is locked"), are serialised inside the process by a mutex and across processes by ``busy_timeout``.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import logging
import os
import tempfile
import threading
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import PIL.Image
from sqlalchemy import (
    BigInteger,
    Boolean,
    DateTime,
    Engine,
    ForeignKey,
    Integer,
    MetaData,
    String,
    Text,
    TypeDecorator,
    create_engine,
    delete,
    event,
    exists,
    func,
    or_,
    select,
    text,
    union,
)
from sqlalchemy.engine import URL
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, defer, mapped_column, sessionmaker

from reasonbrain.seeds import check_seed

logger = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).resolve().with_name("migrations")
IMAGES_DIR = "images"
DEFAULT_TITLE = "Untitled chain"
MAX_TITLE_CHARS = 200
AUTO_TITLE_CHARS = 60
MAX_USER_ID_CHARS = 128
MAX_NOTE_CHARS = 1000
BUSY_TIMEOUT_MS = 5000
# zlib level of stored PNGs: saving is on every edit's path. Measured on a 512 px scene: level 1 encodes in 6.8 ms
# (89.7 KB), level 6 in 18.2 ms (69.9 KB); lossless either way.
PNG_COMPRESS_LEVEL = 1
_LIKE_ESCAPE = "\\"
_IN_CHUNK = 500  # SQLite's bound-parameter limit is far above this


# ----------------------------------------------------------------------------------------------------------------
# Models (migration 0001 creates exactly these; tests compare them with alembic's autogenerate)
# ----------------------------------------------------------------------------------------------------------------
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(TypeDecorator):
    """A timezone-aware UTC datetime (SQLite stores naive text; we store UTC and re-attach the zone)."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("store timestamps must be timezone-aware (use datetime.now(timezone.utc))")
        return value.astimezone(timezone.utc).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        return None if value is None else value.replace(tzinfo=timezone.utc)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class ChainRow(Base):
    __tablename__ = "chains"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    user_id: Mapped[str] = mapped_column(String(MAX_USER_ID_CHARS), index=True)
    title: Mapped[str] = mapped_column(String(MAX_TITLE_CHARS))
    source_image: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
    is_demo: Mapped[bool] = mapped_column(Boolean, default=False, server_default=text("0"))
    # why the source image is outside the world of the (synth-only) model that started the chain; NULL: in it
    domain_note: Mapped[str | None] = mapped_column(Text, nullable=True)


class StepRow(Base):
    __tablename__ = "steps"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    chain_id: Mapped[str] = mapped_column(String(32), ForeignKey("chains.id", ondelete="CASCADE"), index=True)
    parent_id: Mapped[str | None] = mapped_column(
        String(32), ForeignKey("steps.id", ondelete="CASCADE"), index=True, nullable=True
    )
    position: Mapped[int] = mapped_column(Integer)  # depth in the tree; 1 for a first step
    instruction: Mapped[str] = mapped_column(Text)
    input_image: Mapped[str] = mapped_column(String(255))
    output_image: Mapped[str] = mapped_column(String(255))
    seed: Mapped[int] = mapped_column(BigInteger)
    settings_json: Mapped[str] = mapped_column(Text)
    preset: Mapped[str] = mapped_column(String(64))
    checkpoint_hash: Mapped[str] = mapped_column(String(64))
    timings_json: Mapped[str] = mapped_column(Text)
    details_json: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


# ----------------------------------------------------------------------------------------------------------------
# Plain results handed to the UI (no ORM objects escape the store)
# ----------------------------------------------------------------------------------------------------------------
class NotFound(KeyError):
    """No such row for this user (also raised when the row exists but belongs to someone else)."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else "not found"


@dataclass
class StepInfo:
    id: str
    chain_id: str
    parent_id: str | None
    position: int
    instruction: str
    input_image: str
    output_image: str
    seed: int
    settings: dict[str, Any]
    preset: str
    checkpoint_hash: str
    timings: dict[str, Any]
    details: dict[str, Any] | None  # None when loaded by get_chain(..., details=False); get_step has them
    created_at: datetime


@dataclass
class ChainInfo:
    id: str
    user_id: str
    title: str
    source_image: str
    created_at: datetime
    updated_at: datetime
    is_demo: bool
    num_steps: int
    last_output: str | None
    last_instruction: str | None
    domain_note: str | None = None  # set: the source is outside the model's world (the detector's reason)

    @property
    def out_of_domain(self) -> bool:
        return self.domain_note is not None


@dataclass
class ChainTree:
    chain: ChainInfo
    steps: list[StepInfo]  # ordered by (position, created_at)

    def step(self, step_id: str) -> StepInfo:
        for s in self.steps:
            if s.id == step_id:
                return s
        raise NotFound(f"step {step_id} is not in chain {self.chain.id}")

    def children(self, step_id: str | None) -> list[StepInfo]:
        """Steps applied to ``step_id``'s output; ``None`` -> the first steps (applied to the source image)."""
        return [s for s in self.steps if s.parent_id == step_id]

    def path_to(self, step_id: str) -> list[StepInfo]:
        """The steps from a first step down to ``step_id`` (inclusive), in order."""
        by_id = {s.id: s for s in self.steps}
        if step_id not in by_id:
            raise NotFound(f"step {step_id} is not in chain {self.chain.id}")
        path: list[StepInfo] = []
        current: str | None = step_id
        while current is not None:
            step = by_id[current]
            path.append(step)
            current = step.parent_id
            if len(path) > len(by_id):  # defensive: a cycle would mean a corrupt database
                raise ValueError(f"chain {self.chain.id} has a cycle in its steps")
        return path[::-1]

    def leaves(self) -> list[StepInfo]:
        """Steps nobody has edited further (the tips of every branch)."""
        parents = {s.parent_id for s in self.steps}
        return [s for s in self.steps if s.id not in parents]


# ----------------------------------------------------------------------------------------------------------------
# Store
# ----------------------------------------------------------------------------------------------------------------
class Store:
    def __init__(self, db_path: str, data_dir: str) -> None:
        self.db_path = os.path.abspath(os.path.expanduser(str(db_path)))
        self.data_dir = os.path.abspath(os.path.expanduser(str(data_dir)))
        self.images_dir = os.path.join(self.data_dir, IMAGES_DIR)
        os.makedirs(self.images_dir, exist_ok=True)
        os.makedirs(os.path.dirname(self.db_path) or ".", exist_ok=True)
        self._images_real = os.path.realpath(self.images_dir)

        url = URL.create("sqlite+pysqlite", database=self.db_path)
        self._engine = create_engine(
            url,
            connect_args={"timeout": BUSY_TIMEOUT_MS / 1000, "check_same_thread": False},
            pool_size=8,
            max_overflow=16,
        )
        event.listen(self._engine, "connect", _on_connect)
        event.listen(self._engine, "begin", _on_begin)
        self._write_engine = self._engine.execution_options(sqlite_begin="IMMEDIATE")
        self._read_sessions = sessionmaker(self._engine, expire_on_commit=False)
        self._write_sessions = sessionmaker(self._write_engine, expire_on_commit=False)
        self._write_mutex = threading.Lock()
        self._migrate()

    # --- lifecycle --------------------------------------------------------------------------------------------
    def _migrate(self) -> None:
        """``alembic upgrade head`` on our own connection (no alembic.ini needed); a no-op when up to date."""
        from alembic import command
        from alembic.config import Config

        cfg = Config()
        cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
        cfg.set_main_option("sqlalchemy.url", str(self._engine.url).replace("%", "%%"))
        with self._write_mutex, self._write_engine.begin() as conn:
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "head")

    @property
    def engine(self) -> Engine:
        """The SQLAlchemy engine (read-only use: the consistency checker, tests)."""
        return self._engine

    def close(self) -> None:
        self._engine.dispose()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextlib.contextmanager
    def _session(self, *, write: bool = False) -> Iterator[Session]:
        """One short transaction. Writes take SQLite's write lock at BEGIN (IMMEDIATE), after our own mutex."""
        if not write:
            with self._read_sessions.begin() as session:
                yield session
            return
        with self._write_mutex, self._write_sessions.begin() as session:
            session.connection()  # emit BEGIN IMMEDIATE now, before any file is touched
            yield session

    def transaction(self, *, write: bool = False) -> contextlib.AbstractContextManager[Session]:
        """The store's own transaction for modules with their own tables in this database (app.ratings_store):
        same engine, same write mutex and ``BEGIN IMMEDIATE``."""
        return self._session(write=write)

    # --- images -----------------------------------------------------------------------------------------------
    def image_path(self, rel: str) -> str:
        """Absolute path of a stored image. ValueError if ``rel`` is not a path inside ``data_dir/images``."""
        if not isinstance(rel, str) or not rel:
            raise ValueError(f"image path must be a non-empty string, got {rel!r}")
        if "\\" in rel or "\0" in rel or os.path.isabs(rel) or rel.startswith("/"):
            raise ValueError(f"image path {rel!r} must be relative, like 'images/ab/<sha256>.png'")
        parts = rel.split("/")
        if parts[0] != IMAGES_DIR or len(parts) < 2 or any(p in ("", ".", "..") for p in parts):
            raise ValueError(f"image path {rel!r} must stay inside '{IMAGES_DIR}/' (no '..' or empty parts)")
        path = os.path.join(self.data_dir, *parts)
        # no symlinks below images/ (data_dir itself may live behind one, e.g. /tmp -> /private/tmp)
        if os.path.realpath(path) != os.path.join(self._images_real, *parts[1:]):
            raise ValueError(f"image path {rel!r} leaves the image folder (through a symlink)")
        return path

    def save_image(self, image: PIL.Image.Image) -> str:
        """Store ``image`` as PNG; returns its relative path. Equal pixels (and mode) -> the same path."""
        data, rel = encode_png(image)
        with self._session(write=True):  # the write lock keeps a concurrent GC from racing this file
            self._write_file(rel, data)
        return rel

    def load_image(self, rel: str) -> PIL.Image.Image:
        path = self.image_path(rel)
        with PIL.Image.open(path) as im:
            im.load()
            return im.copy()

    def _write_file(self, rel: str, data: bytes) -> None:
        path = self.image_path(rel)
        if os.path.isfile(path):
            return  # content-addressed: same name, same bytes (files only appear through os.replace)
        write_atomic(path, data)

    def gc_images(self, candidates: Iterable[str] | None = None) -> list[str]:
        """Delete image files no row references. ``candidates``: relative paths to consider (None: every file
        under ``images/``, temp files of interrupted writes included). Returns the removed relative paths."""
        removed: list[str] = []
        with self._session(write=True) as s:
            if candidates is None:
                paths = sorted(self.image_files())
                referenced = set(s.execute(_referenced_paths_stmt()).scalars())
            else:
                paths = sorted(set(candidates))
                referenced = set()
                for i in range(0, len(paths), _IN_CHUNK):
                    referenced |= set(s.execute(_referenced_paths_stmt(paths[i : i + _IN_CHUNK])).scalars())
            for rel in paths:
                if rel in referenced:
                    continue
                try:
                    path = self.image_path(rel)
                except ValueError:
                    logger.warning("not removing %r: not a path inside the image folder", rel)
                    continue
                try:
                    os.unlink(path)
                except FileNotFoundError:
                    continue
                removed.append(rel)
                with contextlib.suppress(OSError):  # the shard folder, when it became empty
                    os.rmdir(os.path.dirname(path))
        if removed:
            logger.info("removed %d unreferenced image file(s)", len(removed))
        return removed

    def image_files(self) -> list[str]:
        """Every file under ``images/`` (relative paths, as rows hold them), temp files included."""
        out = []
        for root, dirs, files in os.walk(self.images_dir, followlinks=False):
            dirs.sort()
            for name in files:
                rel = os.path.relpath(os.path.join(root, name), self.data_dir)
                out.append(rel.replace(os.sep, "/"))
        return out

    # --- chains -----------------------------------------------------------------------------------------------
    def create_chain(
        self, user_id: str, source_image: PIL.Image.Image, title: str | None = None, *, is_demo: bool = False,
        domain_note: str | None = None,
    ) -> ChainInfo:
        """An empty chain. ``domain_note``: why ``source_image`` is outside the model's world (None: it is not)."""
        _check_user(user_id)
        title = DEFAULT_TITLE if title is None else _clean_title(title)
        domain_note = _clean_note(domain_note)
        data, rel = encode_png(source_image)
        now = _now()
        with self._session(write=True) as s:
            self._write_file(rel, data)
            row = ChainRow(
                id=uuid.uuid4().hex, user_id=user_id, title=title, source_image=rel,
                created_at=now, updated_at=now, is_demo=bool(is_demo), domain_note=domain_note,
            )
            s.add(row)
        return _chain_info(row, 0, None, None)

    def list_chains(
        self, user_id: str, query: str | None = None, limit: int = 50, offset: int = 0
    ) -> list[ChainInfo]:
        """The user's chains, most recently updated first. ``query`` matches the title or any step's
        instruction (case-insensitive substring; ``%`` and ``_`` match literally)."""
        _check_user(user_id)
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= 1000:
            raise ValueError(f"limit must be a whole number between 1 and 1000, got {limit!r}")
        if isinstance(offset, bool) or not isinstance(offset, int) or offset < 0:
            raise ValueError(f"offset must be a whole number >= 0, got {offset!r}")
        stmt = select(ChainRow).where(ChainRow.user_id == user_id)
        if query is not None and query.strip():
            pattern = f"%{_escape_like(query.strip())}%"
            in_steps = exists().where(
                StepRow.chain_id == ChainRow.id, StepRow.instruction.ilike(pattern, escape=_LIKE_ESCAPE)
            )
            stmt = stmt.where(or_(ChainRow.title.ilike(pattern, escape=_LIKE_ESCAPE), in_steps))
        stmt = stmt.order_by(ChainRow.updated_at.desc(), ChainRow.created_at.desc(), ChainRow.id)
        with self._session() as s:
            rows = list(s.execute(stmt.limit(limit).offset(offset)).scalars())
            summaries = _summaries(s, [r.id for r in rows])
        return [_chain_info(r, *summaries.get(r.id, (0, None, None))) for r in rows]

    def get_chain(self, user_id: str, chain_id: str, *, details: bool = True) -> ChainTree:
        """The chain and all its steps. ``details=False`` skips each step's (large) details JSON, which is what
        makes opening a long chain fast; those steps carry ``details=None``."""
        with self._session() as s:
            row = _owned_chain(s, user_id, chain_id)
            query = select(StepRow).where(StepRow.chain_id == chain_id)
            if not details:
                query = query.options(defer(StepRow.details_json))
            steps = list(s.execute(query.order_by(StepRow.position, StepRow.created_at, StepRow.id)).scalars())
            infos = [_step_info(r, details=details) for r in steps]
        return ChainTree(chain=_chain_info(row, *_summary_of(infos)), steps=infos)

    def require_chain(self, user_id: str, chain_id: str) -> None:
        """NotFound unless ``user_id`` owns the chain: a cheap check before expensive work."""
        with self._session() as s:
            _owned_chain(s, user_id, chain_id)

    def rename_chain(self, user_id: str, chain_id: str, title: str) -> ChainInfo:
        title = _clean_title(title)
        with self._session(write=True) as s:
            row = _owned_chain(s, user_id, chain_id)
            row.title = title
            row.updated_at = _now()
            s.flush()
            summary = _summaries(s, [chain_id]).get(chain_id, (0, None, None))
        return _chain_info(row, *summary)

    def delete_chain(self, user_id: str, chain_id: str) -> None:
        """Delete the chain and (by cascade) its steps, then the image files nothing references any more."""
        with self._session(write=True) as s:
            row = _owned_chain(s, user_id, chain_id)
            images = {row.source_image}
            for inp, out in s.execute(
                select(StepRow.input_image, StepRow.output_image).where(StepRow.chain_id == chain_id)
            ):
                images.update((inp, out))
            s.execute(delete(ChainRow).where(ChainRow.id == chain_id))
        self.gc_images(images)

    # --- steps ------------------------------------------------------------------------------------------------
    def add_step(
        self,
        user_id: str,
        chain_id: str,
        parent_id: str | None,
        *,
        instruction: str,
        input_image: PIL.Image.Image | str,
        output_image: PIL.Image.Image,
        seed: int,
        settings: dict[str, Any],
        preset: str,
        checkpoint_hash: str,
        timings: dict[str, Any],
        details: dict[str, Any],
    ) -> StepInfo:
        """Record one edit. ``parent_id`` None: a first step (edits the source image); otherwise the step whose
        output this edit starts from (same chain). ``input_image`` may be a stored relative path."""
        _check_user(user_id)
        row_fields, out_data = self._step_fields(instruction, output_image, seed, settings, preset,
                                                 checkpoint_hash, timings, details)
        if isinstance(input_image, str):
            in_data, in_rel = None, input_image
            self.image_path(in_rel)  # validates the form; existence is checked under the lock
        else:
            in_data, in_rel = encode_png(input_image)
        try:
            row = self._add_step_locked(user_id, chain_id, parent_id, in_rel, in_data, out_data, row_fields)
        except BaseException:
            self._discard_files([out_data[1]] + ([in_rel] if in_data is not None else []))
            raise
        return _step_info(row)

    def _add_step_locked(self, user_id: str, chain_id: str, parent_id: str | None, in_rel: str,
                         in_data: bytes | None, out_data: tuple[bytes, str], row_fields: dict[str, Any]) -> StepRow:
        with self._session(write=True) as s:
            chain = _owned_chain(s, user_id, chain_id)
            position = 1
            if parent_id is not None:
                parent = s.get(StepRow, parent_id)
                if parent is None:
                    raise NotFound(f"step {parent_id} not found")
                if parent.chain_id != chain_id:
                    _owned_chain(s, user_id, parent.chain_id, what=f"step {parent_id}")
                    raise ValueError(f"parent step {parent_id} belongs to another chain, not {chain_id}")
                position = parent.position + 1
            if in_data is None:
                if not os.path.isfile(self.image_path(in_rel)):
                    raise ValueError(f"input image {in_rel!r} is not stored; pass the image itself instead")
            else:
                self._write_file(in_rel, in_data)
            if parent_id is None and chain.title == DEFAULT_TITLE:
                has_steps = s.execute(select(exists().where(StepRow.chain_id == chain_id))).scalar()
                if not has_steps:
                    chain.title = _auto_title(row_fields["instruction"])
            return self._insert_step(s, chain, parent_id, position, in_rel, out_data, row_fields)

    def _discard_files(self, rels: list[str]) -> None:
        """After a failed write: remove the files it may have written that no committed row references."""
        try:
            self.gc_images(rels)
        except Exception:  # the original error matters more; `python -m app.consistency --fix` cleans up later
            logger.exception("could not remove the files of a failed write")

    def start_chain(
        self,
        user_id: str,
        source_image: PIL.Image.Image,
        *,
        title: str | None = None,
        instruction: str,
        output_image: PIL.Image.Image,
        seed: int,
        settings: dict[str, Any],
        preset: str,
        checkpoint_hash: str,
        timings: dict[str, Any],
        details: dict[str, Any],
        domain_note: str | None = None,
    ) -> StepInfo:
        """A new chain and its first step in one transaction (the first edit of an upload): both or neither.
        ``domain_note``: why ``source_image`` is outside the model's world (None: it is not)."""
        _check_user(user_id)
        domain_note = _clean_note(domain_note)
        row_fields, out_data = self._step_fields(instruction, output_image, seed, settings, preset,
                                                 checkpoint_hash, timings, details)
        title = _auto_title(row_fields["instruction"]) if title is None else _clean_title(title)
        src_data, src_rel = encode_png(source_image)
        try:
            with self._session(write=True) as s:
                self._write_file(src_rel, src_data)
                now = _now()
                chain = ChainRow(id=uuid.uuid4().hex, user_id=user_id, title=title, source_image=src_rel,
                                 created_at=now, updated_at=now, is_demo=False, domain_note=domain_note)
                s.add(chain)
                row = self._insert_step(s, chain, None, 1, src_rel, out_data, row_fields)
        except BaseException:
            self._discard_files([src_rel, out_data[1]])
            raise
        return _step_info(row)

    @staticmethod
    def _step_fields(instruction: Any, output_image: PIL.Image.Image, seed: Any, settings: Any, preset: Any,
                     checkpoint_hash: Any, timings: Any, details: Any) -> tuple[dict[str, Any], tuple[bytes, str]]:
        """Validated column values of a step row and the encoded output image (all before any lock)."""
        if not isinstance(instruction, str) or not instruction.strip():
            raise ValueError("instruction must be non-empty text")
        check_seed(seed)
        fields = {
            "instruction": instruction.strip(), "seed": seed, "preset": str(preset),
            "checkpoint_hash": str(checkpoint_hash),
            "settings_json": _dumps("settings", settings),
            "timings_json": _dumps("timings", timings),
            "details_json": _dumps("details", details),
        }
        return fields, encode_png(output_image)

    def _insert_step(self, s: Session, chain: ChainRow, parent_id: str | None, position: int, in_rel: str,
                     out_data: tuple[bytes, str], fields: dict[str, Any]) -> StepRow:
        data, out_rel = out_data
        self._write_file(out_rel, data)  # the file is on disk before the row is committed
        now = _now()
        chain.updated_at = now
        row = StepRow(id=uuid.uuid4().hex, chain_id=chain.id, parent_id=parent_id, position=position,
                      input_image=in_rel, output_image=out_rel, created_at=now, **fields)
        s.add(row)
        return row

    def get_step(self, user_id: str, step_id: str) -> StepInfo:
        with self._session() as s:
            return _step_info(_owned_step(s, user_id, step_id))

    def undo_step(self, user_id: str, step_id: str) -> StepInfo | None:
        """Delete a leaf step; returns its parent (None for a first step). ValueError if it has children."""
        with self._session(write=True) as s:
            row = _owned_step(s, user_id, step_id)
            n_children = s.execute(select(func.count()).where(StepRow.parent_id == step_id)).scalar_one()
            if n_children:
                raise ValueError(
                    f"step {step_id} has {n_children} later step(s) built on it; undo those first "
                    "(only the last step of a branch can be undone)"
                )
            parent = s.get(StepRow, row.parent_id) if row.parent_id is not None else None
            images = {row.input_image, row.output_image}
            s.execute(delete(StepRow).where(StepRow.id == step_id))
            chain = s.get(ChainRow, row.chain_id)
            if chain is not None:
                chain.updated_at = _now()
            parent_info = _step_info(parent) if parent is not None else None
        self.gc_images(images)
        return parent_info

    # --- queries across users -------------------------------------------------------------------------------
    def count_steps(self, user_id: str) -> int:
        _check_user(user_id)
        with self._session() as s:
            stmt = select(func.count(StepRow.id)).join(ChainRow, ChainRow.id == StepRow.chain_id)
            return int(s.execute(stmt.where(ChainRow.user_id == user_id)).scalar_one())

    def has_demo_chains(self) -> bool:
        with self._session() as s:
            return bool(s.execute(select(exists().where(ChainRow.is_demo.is_(True)))).scalar())

    def user_ids(self) -> list[str]:
        with self._session() as s:
            return list(s.execute(select(ChainRow.user_id).distinct().order_by(ChainRow.user_id)).scalars())


# ----------------------------------------------------------------------------------------------------------------
# Helpers
# ----------------------------------------------------------------------------------------------------------------
def _on_connect(dbapi_connection: Any, connection_record: Any) -> None:
    # We emit BEGIN ourselves (see _on_begin): pysqlite's implicit transactions cannot BEGIN IMMEDIATE.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        mode = cursor.execute("PRAGMA journal_mode=WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            logger.warning("SQLite refused WAL mode (journal_mode=%s); concurrent readers will block", mode)
        cursor.execute("PRAGMA foreign_keys=ON")
    finally:
        cursor.close()


def _on_begin(conn: Any) -> None:
    mode = conn.get_execution_options().get("sqlite_begin", "DEFERRED")
    conn.exec_driver_sql(f"BEGIN {mode}")


def _now() -> datetime:
    return datetime.now(timezone.utc)


def _fsync_dir(folder: str) -> None:
    """Make a rename durable (POSIX); not possible (nor needed) on every platform."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def write_atomic(path: str, data: bytes) -> None:
    """Write ``data`` to ``path`` so that readers (and a crash) see the whole file or none: a temp file in the same
    folder, fsync'd, renamed into place, then the folder fsync'd. Leftover temp files start with ``.tmp-``."""
    folder = os.path.dirname(path)
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=os.path.splitext(path)[1], dir=folder)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    _fsync_dir(folder)


def encode_png(image: PIL.Image.Image, folder: str = IMAGES_DIR) -> tuple[bytes, str]:
    """PNG bytes of the pixels only (metadata dropped, fixed settings) and their content-addressed path."""
    if not isinstance(image, PIL.Image.Image):
        raise ValueError(f"expected a PIL image, got {type(image).__name__}")
    if image.width < 1 or image.height < 1:
        raise ValueError(f"cannot store an empty image of size {image.size}")
    if image.mode not in ("RGB", "RGBA", "L", "LA"):
        has_alpha = "A" in image.getbands() or "transparency" in image.info
        image = image.convert("RGBA" if has_alpha else "RGB")
    clean = PIL.Image.frombytes(image.mode, image.size, image.tobytes())  # no info/ICC: equal pixels, equal bytes
    buf = io.BytesIO()
    clean.save(buf, format="PNG", compress_level=PNG_COMPRESS_LEVEL)
    data = buf.getvalue()
    sha = hashlib.sha256(data).hexdigest()
    return data, f"{folder}/{sha[:2]}/{sha}.png"


def _referenced_paths_stmt(paths: list[str] | None = None):
    """Every image path a row refers to (restricted to ``paths`` when given)."""
    parts = [select(ChainRow.source_image.label("p")), select(StepRow.input_image), select(StepRow.output_image)]
    if paths is not None:
        parts = [
            select(ChainRow.source_image.label("p")).where(ChainRow.source_image.in_(paths)),
            select(StepRow.input_image).where(StepRow.input_image.in_(paths)),
            select(StepRow.output_image).where(StepRow.output_image.in_(paths)),
        ]
    return union(*parts)


def _escape_like(value: str) -> str:
    return value.replace(_LIKE_ESCAPE, _LIKE_ESCAPE * 2).replace("%", _LIKE_ESCAPE + "%").replace(
        "_", _LIKE_ESCAPE + "_"
    )


def _check_user(user_id: str) -> None:
    if not isinstance(user_id, str) or not user_id or len(user_id) > MAX_USER_ID_CHARS:
        raise ValueError(f"user_id must be a non-empty string of at most {MAX_USER_ID_CHARS} characters")


def _clean_title(title: str) -> str:
    if not isinstance(title, str):
        raise ValueError(f"title must be text, got {type(title).__name__}")
    title = title.strip()
    if not 1 <= len(title) <= MAX_TITLE_CHARS:
        raise ValueError(f"title must be 1 to {MAX_TITLE_CHARS} characters after trimming, got {len(title)}")
    return title


def _clean_note(note: Any) -> str | None:
    if note is None:
        return None
    if not isinstance(note, str) or not note.strip():
        raise ValueError(f"domain_note must be None or non-empty text, got {note!r}")
    return note.strip()[:MAX_NOTE_CHARS]


def _auto_title(instruction: str) -> str:
    """The first instruction as the chain's title; a long one cut at its last whole word, marked with "…"."""
    title = " ".join(instruction.split())
    if len(title) > AUTO_TITLE_CHARS:
        cut = title[: AUTO_TITLE_CHARS - 1]
        if title[AUTO_TITLE_CHARS - 1] != " " and " " in cut:
            cut = cut[: cut.rindex(" ")]
        title = cut.rstrip(" ,;:-—") + "…"
    return title.strip() or DEFAULT_TITLE


def _dumps(name: str, value: dict[str, Any]) -> str:
    if not isinstance(value, dict):
        raise ValueError(f"{name} must be a dict, got {type(value).__name__}")
    try:
        return json.dumps(value, sort_keys=True)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{name} must be JSON-serialisable (str, numbers, lists, dicts): {err}") from err


def _owned_chain(s: Session, user_id: str, chain_id: str, *, what: str | None = None) -> ChainRow:
    _check_user(user_id)
    row = s.get(ChainRow, chain_id) if isinstance(chain_id, str) else None
    if row is None or row.user_id != user_id:
        raise NotFound(f"{what or 'chain ' + str(chain_id)} not found")
    return row


def _owned_step(s: Session, user_id: str, step_id: str) -> StepRow:
    _check_user(user_id)
    row = None
    if isinstance(step_id, str):
        row = s.execute(
            select(StepRow).join(ChainRow, ChainRow.id == StepRow.chain_id)
            .where(StepRow.id == step_id, ChainRow.user_id == user_id)
        ).scalar_one_or_none()
    if row is None:
        raise NotFound(f"step {step_id} not found")
    return row


def _summaries(s: Session, chain_ids: list[str]) -> dict[str, tuple[int, str | None, str | None]]:
    """chain id -> (number of steps, latest step's output, latest step's instruction)."""
    if not chain_ids:
        return {}
    counts = dict(
        s.execute(
            select(StepRow.chain_id, func.count()).where(StepRow.chain_id.in_(chain_ids)).group_by(StepRow.chain_id)
        ).all()
    )
    rank = func.row_number().over(
        partition_by=StepRow.chain_id, order_by=(StepRow.created_at.desc(), StepRow.position.desc(), StepRow.id)
    ).label("rank")
    ranked = select(StepRow.chain_id, StepRow.output_image, StepRow.instruction, rank).where(
        StepRow.chain_id.in_(chain_ids)
    ).subquery()
    latest = {
        cid: (out, ins)
        for cid, out, ins in s.execute(
            select(ranked.c.chain_id, ranked.c.output_image, ranked.c.instruction).where(ranked.c.rank == 1)
        )
    }
    return {cid: (int(counts.get(cid, 0)), *latest.get(cid, (None, None))) for cid in chain_ids}


def _summary_of(steps: list[StepInfo]) -> tuple[int, str | None, str | None]:
    """What ``_summaries`` computes for one chain, from its loaded steps (same order: newest, then highest
    position, then lowest id)."""
    if not steps:
        return 0, None, None
    latest = max(sorted(steps, key=lambda st: st.id), key=lambda st: (st.created_at, st.position))
    return len(steps), latest.output_image, latest.instruction


def _chain_info(row: ChainRow, num_steps: int, last_output: str | None, last_instruction: str | None) -> ChainInfo:
    return ChainInfo(
        id=row.id, user_id=row.user_id, title=row.title, source_image=row.source_image,
        created_at=row.created_at, updated_at=row.updated_at, is_demo=bool(row.is_demo),
        num_steps=num_steps, last_output=last_output, last_instruction=last_instruction,
        domain_note=row.domain_note,
    )


def _step_info(row: StepRow, *, details: bool = True) -> StepInfo:
    return StepInfo(
        id=row.id, chain_id=row.chain_id, parent_id=row.parent_id, position=row.position,
        instruction=row.instruction, input_image=row.input_image, output_image=row.output_image,
        seed=int(row.seed), settings=json.loads(row.settings_json), preset=row.preset,
        checkpoint_hash=row.checkpoint_hash, timings=json.loads(row.timings_json),
        details=json.loads(row.details_json) if details else None, created_at=row.created_at,
    )


__all__ = [
    "Base", "ChainInfo", "ChainRow", "ChainTree", "NotFound", "StepInfo", "StepRow", "Store",
]
