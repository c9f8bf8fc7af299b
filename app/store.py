"""Editing history in SQLite (SQLAlchemy 2 models, Alembic migrations) with content-addressed images on disk.

Layout under ``data_dir``::

    studio.db                       (default location; any path works)
    images/<sha[:2]>/<sha>.png      sha256 of the PNG bytes; rows hold "images/<sha[:2]>/<sha>.png"

Durability: an image file is written (temp file + fsync + ``os.replace``) *before* the row that references it
is committed, inside the same write transaction, so a crash at any point leaves at worst an unreferenced file
(``python -m app.consistency --fix`` removes those), never a row pointing at a missing file. Files are removed
only after the rows referencing them are gone, under the same SQLite write lock, so concurrent writers (threads
or processes) cannot lose an image they are about to reference.

Concurrency: see :mod:`app.storage.database` (WAL, ``BEGIN IMMEDIATE`` writes behind a mutex and ``busy_timeout``).
The tables and plain results live in :mod:`app.storage.history_models`, the image folder in
:mod:`app.storage.images`.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import uuid
from collections.abc import Iterable
from typing import Any

import PIL.Image
from sqlalchemy import Engine, delete, exists, func, or_, select, union
from sqlalchemy.orm import Session, defer

from app.storage.database import (
    BUSY_TIMEOUT_MS,
    MAX_USER_ID_CHARS,
    MIGRATIONS_DIR,
    Base,
    Database,
    NotFound,
    utc_now,
)
from app.storage.history_models import MAX_TITLE_CHARS, ChainInfo, ChainRow, ChainTree, StepInfo, StepRow
from app.storage.images import ImageFolder
from reasonbrain.seeds import check_seed

logger = logging.getLogger(__name__)

IMAGES_DIR = "images"
DEFAULT_TITLE = "Untitled chain"
AUTO_TITLE_CHARS = 60
MAX_NOTE_CHARS = 1000
_LIKE_ESCAPE = "\\"
_IN_CHUNK = 500  # SQLite's bound-parameter limit is far above this


class Store:
    def __init__(self, db_path: str, data_dir: str) -> None:
        self.data_dir = os.path.abspath(os.path.expanduser(str(data_dir)))
        self._images = ImageFolder(self.data_dir, IMAGES_DIR)
        self.images_dir = self._images.root
        self._db = Database(db_path)
        self.db_path = self._db.path

    # --- lifecycle --------------------------------------------------------------------------------------------
    @property
    def engine(self) -> Engine:
        """The SQLAlchemy engine (read-only use: the consistency checker, tests)."""
        return self._db.engine

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def transaction(self, *, write: bool = False) -> contextlib.AbstractContextManager[Session]:
        """The store's own transaction for modules with their own tables in this database (app.ratings_store):
        same engine, same write mutex and ``BEGIN IMMEDIATE``."""
        return self._db.session(write=write)

    # --- images -----------------------------------------------------------------------------------------------
    def image_path(self, rel: str) -> str:
        """Absolute path of a stored image. ValueError if ``rel`` is not a path inside ``data_dir/images``."""
        return self._images.path(rel)

    def save_image(self, image: PIL.Image.Image) -> str:
        """Store ``image`` as PNG; returns its relative path. Equal pixels (and mode) -> the same path."""
        data, rel = self._images.encode(image)
        with self._db.session(write=True):  # the write lock keeps a concurrent GC from racing this file
            self._write_file(rel, data)
        return rel

    def load_image(self, rel: str) -> PIL.Image.Image:
        return self._images.load(rel)

    def _write_file(self, rel: str, data: bytes) -> None:
        self._images.write(rel, data)

    def gc_images(self, candidates: Iterable[str] | None = None) -> list[str]:
        """Delete image files no row references. ``candidates``: relative paths to consider (None: every file
        under ``images/``, temp files of interrupted writes included). Returns the removed relative paths."""
        removed: list[str] = []
        with self._db.session(write=True) as s:
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
                    if self._images.remove(rel):
                        removed.append(rel)
                except ValueError:
                    logger.warning("not removing %r: not a path inside the image folder", rel)
        if removed:
            logger.info("removed %d unreferenced image file(s)", len(removed))
        return removed

    def image_files(self) -> list[str]:
        """Every file under ``images/`` (relative paths, as rows hold them), temp files included."""
        return self._images.files()

    # --- chains -----------------------------------------------------------------------------------------------
    def create_chain(
        self, user_id: str, source_image: PIL.Image.Image, title: str | None = None, *, is_demo: bool = False,
        domain_note: str | None = None,
    ) -> ChainInfo:
        """An empty chain. ``domain_note``: why ``source_image`` is outside the model's world (None: it is not)."""
        _check_user(user_id)
        title = DEFAULT_TITLE if title is None else _clean_title(title)
        domain_note = _clean_note(domain_note)
        data, rel = self._images.encode(source_image)
        now = utc_now()
        with self._db.session(write=True) as s:
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
        with self._db.session() as s:
            rows = list(s.execute(stmt.limit(limit).offset(offset)).scalars())
            summaries = _summaries(s, [r.id for r in rows])
        return [_chain_info(r, *summaries.get(r.id, (0, None, None))) for r in rows]

    def latest_step_models(self, user_id: str, chain_ids: list[str]) -> dict[str, tuple[str, str, str | None]]:
        """chain id -> ``(preset, checkpoint hash, mode)`` of the chain's latest step (the one its History card
        shows), for this user's chains among ``chain_ids``; mode None: a step saved before modes existed."""
        _check_user(user_id)
        rank = func.row_number().over(
            partition_by=StepRow.chain_id, order_by=(StepRow.created_at.desc(), StepRow.position.desc(), StepRow.id)
        ).label("rank")  # as _summaries orders them
        out: dict[str, tuple[str, str, str | None]] = {}
        with self._db.session() as s:
            for i in range(0, len(chain_ids), _IN_CHUNK):
                ranked = select(StepRow.id, rank).where(StepRow.chain_id.in_(chain_ids[i : i + _IN_CHUNK])).subquery()
                rows = s.execute(
                    select(StepRow.chain_id, StepRow.preset, StepRow.checkpoint_hash,
                           func.json_extract(StepRow.details_json, "$.mode"))  # only the latest steps' details
                    .join(ranked, ranked.c.id == StepRow.id).join(ChainRow, ChainRow.id == StepRow.chain_id)
                    .where(ranked.c.rank == 1, ChainRow.user_id == user_id)
                )
                for chain_id, preset, checkpoint_hash, mode in rows:
                    out[chain_id] = (preset, checkpoint_hash, mode if isinstance(mode, str) else None)
        return out

    def get_chain(self, user_id: str, chain_id: str, *, details: bool = True) -> ChainTree:
        """The chain and all its steps. ``details=False`` skips each step's (large) details JSON, which is what
        makes opening a long chain fast; those steps carry ``details=None``."""
        with self._db.session() as s:
            row = _owned_chain(s, user_id, chain_id)
            query = select(StepRow).where(StepRow.chain_id == chain_id)
            if not details:
                query = query.options(defer(StepRow.details_json))
            steps = list(s.execute(query.order_by(StepRow.position, StepRow.created_at, StepRow.id)).scalars())
            infos = [_step_info(r, details=details) for r in steps]
        return ChainTree(chain=_chain_info(row, *_summary_of(infos)), steps=infos)

    def require_chain(self, user_id: str, chain_id: str) -> None:
        """NotFound unless ``user_id`` owns the chain: a cheap check before expensive work."""
        with self._db.session() as s:
            _owned_chain(s, user_id, chain_id)

    def rename_chain(self, user_id: str, chain_id: str, title: str) -> ChainInfo:
        title = _clean_title(title)
        with self._db.session(write=True) as s:
            row = _owned_chain(s, user_id, chain_id)
            row.title = title
            row.updated_at = utc_now()
            s.flush()
            summary = _summaries(s, [chain_id]).get(chain_id, (0, None, None))
        return _chain_info(row, *summary)

    def delete_chain(self, user_id: str, chain_id: str) -> None:
        """Delete the chain and (by cascade) its steps, then the image files nothing references any more."""
        with self._db.session(write=True) as s:
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
            in_data, in_rel = self._images.encode(input_image)
        try:
            row = self._add_step_locked(user_id, chain_id, parent_id, in_rel, in_data, out_data, row_fields)
        except BaseException:
            self._discard_files([out_data[1]] + ([in_rel] if in_data is not None else []))
            raise
        return _step_info(row)

    def _add_step_locked(self, user_id: str, chain_id: str, parent_id: str | None, in_rel: str,
                         in_data: bytes | None, out_data: tuple[bytes, str], row_fields: dict[str, Any]) -> StepRow:
        with self._db.session(write=True) as s:
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
        src_data, src_rel = self._images.encode(source_image)
        try:
            with self._db.session(write=True) as s:
                self._write_file(src_rel, src_data)
                now = utc_now()
                chain = ChainRow(id=uuid.uuid4().hex, user_id=user_id, title=title, source_image=src_rel,
                                 created_at=now, updated_at=now, is_demo=False, domain_note=domain_note)
                s.add(chain)
                row = self._insert_step(s, chain, None, 1, src_rel, out_data, row_fields)
        except BaseException:
            self._discard_files([src_rel, out_data[1]])
            raise
        return _step_info(row)

    def _step_fields(self, instruction: Any, output_image: PIL.Image.Image, seed: Any, settings: Any, preset: Any,
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
        return fields, self._images.encode(output_image)

    def _insert_step(self, s: Session, chain: ChainRow, parent_id: str | None, position: int, in_rel: str,
                     out_data: tuple[bytes, str], fields: dict[str, Any]) -> StepRow:
        data, out_rel = out_data
        self._write_file(out_rel, data)  # the file is on disk before the row is committed
        now = utc_now()
        chain.updated_at = now
        row = StepRow(id=uuid.uuid4().hex, chain_id=chain.id, parent_id=parent_id, position=position,
                      input_image=in_rel, output_image=out_rel, created_at=now, **fields)
        s.add(row)
        return row

    def get_step(self, user_id: str, step_id: str) -> StepInfo:
        with self._db.session() as s:
            return _step_info(_owned_step(s, user_id, step_id))

    def undo_step(self, user_id: str, step_id: str) -> StepInfo | None:
        """Delete a leaf step; returns its parent (None for a first step). ValueError if it has children."""
        with self._db.session(write=True) as s:
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
                chain.updated_at = utc_now()
            parent_info = _step_info(parent) if parent is not None else None
        self.gc_images(images)
        return parent_info

    # --- queries across users -------------------------------------------------------------------------------
    def count_steps(self, user_id: str) -> int:
        _check_user(user_id)
        with self._db.session() as s:
            stmt = select(func.count(StepRow.id)).join(ChainRow, ChainRow.id == StepRow.chain_id)
            return int(s.execute(stmt.where(ChainRow.user_id == user_id)).scalar_one())

    def has_demo_chains(self) -> bool:
        with self._db.session() as s:
            return bool(s.execute(select(exists().where(ChainRow.is_demo.is_(True)))).scalar())

    def user_ids(self) -> list[str]:
        with self._db.session() as s:
            return list(s.execute(select(ChainRow.user_id).distinct().order_by(ChainRow.user_id)).scalars())


# ----------------------------------------------------------------------------------------------------------------
# Helpers
# ----------------------------------------------------------------------------------------------------------------
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


__all__ = [  # what the app, its tools and the tests import from here
    "BUSY_TIMEOUT_MS", "IMAGES_DIR", "MIGRATIONS_DIR", "Base", "ChainInfo", "ChainRow", "ChainTree", "NotFound",
    "StepInfo", "StepRow", "Store",
]
