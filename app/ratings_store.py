"""Human ratings (Ins-Align) in the studio's database: candidate outputs, rating tasks, per-annotator queues.

Tables (created by migration 0002, in the same SQLite file as the history store, through the store's sessions:
same write mutex, ``BEGIN IMMEDIATE`` for writes):

- ``rating_outputs``: one edited image per (method, prompt). A *prompt* is a source image plus an instruction,
  keyed by the pixels and the normalised text, so outputs of different methods for the same prompt meet.
  ``method`` never leaves the server while rating (blind). Images are copied (re-encoded: metadata dropped,
  resized to the source's size so resolution does not give a method away) into ``<data_dir>/rating-images/``,
  a folder the history store's image GC does not touch.
- ``rating_tasks``: what gets rated: ``absolute`` (one output) or ``pairwise`` (two outputs of one prompt).
  Gold tasks (known answers) come from a ground-truth reference and the unchanged source ("identity").
- ``rating_assignments``: an annotator's queue (order and left/right sides seeded by the annotator id),
  status ``pending`` / ``done`` / ``skipped`` / ``flagged``, when the item was last shown.
- ``ratings``: the answers (pairwise choices stored in task orientation ``a``/``b``, not screen sides), time on
  task measured on the server, a too-fast flag; undo marks a rating undone (kept for the audit trail).
- ``rating_sessions``: hashes of the sign-in tokens held in the browser.

The tables and plain results live in :mod:`app.storage.rating_models`, importing in :mod:`app.storage.rating_import`;
the scores' scale and the rule that scores a gold answer come from :mod:`reasonbrain.evaluation.ratings`.

Every method that acts for an annotator takes the annotator id resolved on the server and only ever touches that
annotator's rows: another annotator's item id is "not found".
"""

from __future__ import annotations

import hashlib
import json
import math
import random
import secrets
import uuid
from collections.abc import Iterable
from datetime import timedelta
from typing import Any

import PIL.Image
from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from app.storage import rating_import
from app.storage.database import MAX_USER_ID_CHARS, NotFound, utc_now
from app.storage.images import ImageFolder
from app.storage.rating_import import DEFAULT_SPLIT, IDENTITY_METHOD, REFERENCE_METHOD
from app.storage.rating_models import (
    KIND_IDENTITY,
    KIND_METHOD,
    KIND_REFERENCE,
    Answer,
    ImportReport,
    Item,
    Progress,
    RatingAssignmentRow,
    RatingOutputRow,
    RatingRow,
    RatingSessionRow,
    RatingTaskRow,
)
from app.storage.rating_settings import RatingSettings
from app.store import Store
from reasonbrain.evaluation.ratings import SCORE_SCALE, gold_correct

IMAGES_DIR = "rating-images"
MODES: tuple[str, ...] = ("absolute", "pairwise")
MAX_NOTE_CHARS = 500
# Gold items: the ground truth deserves the top Ins-Align score, the unchanged source the bottom one; an answer
# within GOLD_TOLERANCE of that is right (4-5 and 1-2 on the 1-5 scale).
GOLD_SCORE = {KIND_REFERENCE: SCORE_SCALE[1], KIND_IDENTITY: SCORE_SCALE[0]}
GOLD_TOLERANCE = 1


# ----------------------------------------------------------------------------------------------------------------
# Store
# ----------------------------------------------------------------------------------------------------------------
class RatingStore:
    """The rating tables, reached through ``store``'s sessions (one database, one write lock)."""

    def __init__(self, store: Store, settings: RatingSettings | None = None) -> None:
        self.store = store
        self.settings = settings or RatingSettings.from_env(store.data_dir)
        self._images = ImageFolder(store.data_dir, IMAGES_DIR)  # never garbage-collected
        self.images_dir = self._images.root

    # --- images -----------------------------------------------------------------------------------------------
    def image_path(self, rel: str) -> str:
        """Absolute path of a rating image. ValueError if ``rel`` is not a path inside ``data_dir/rating-images``."""
        return self._images.path(rel)

    def _save_image(self, image: PIL.Image.Image) -> str:
        """RGB PNG of the pixels only (no metadata that could name a method), content-addressed; the rel path."""
        return self._images.save(image.convert("RGB"))

    # --- importing outputs ------------------------------------------------------------------------------------
    def add_output(
        self,
        *,
        method: str,
        source: PIL.Image.Image,
        output: PIL.Image.Image,
        instruction: str,
        kind: str = KIND_METHOD,
        record_id: str | None = None,
        category: str | None = None,
        origin: str = "",
    ) -> tuple[str, bool]:
        """Add one candidate output; returns ``(output id, created)``. The same method on the same prompt is
        stored once (the first import wins)."""
        method = _clean_method(method)
        if kind not in (KIND_METHOD, KIND_REFERENCE, KIND_IDENTITY):
            raise ValueError(f"kind must be method, reference or identity, got {kind!r}")
        if not isinstance(instruction, str) or not instruction.strip():
            raise ValueError("instruction must be non-empty text")
        key = prompt_key(source, instruction)
        with self.store.transaction() as s:
            found = s.execute(select(RatingOutputRow.id).where(
                RatingOutputRow.method == method, RatingOutputRow.prompt_key == key)).scalar_one_or_none()
        if found is not None:
            return found, False
        src = source.convert("RGB")
        out = output.convert("RGB")
        if out.size != src.size:  # same display size for every method: resolution must not give one away
            out = out.resize(src.size, PIL.Image.Resampling.LANCZOS)
        src_rel, out_rel = self._save_image(src), self._save_image(out)
        with self.store.transaction(write=True) as s:
            found = s.execute(select(RatingOutputRow.id).where(
                RatingOutputRow.method == method, RatingOutputRow.prompt_key == key)).scalar_one_or_none()
            if found is not None:
                return found, False
            row = RatingOutputRow(
                id=uuid.uuid4().hex, method=method, kind=kind, prompt_key=key, record_id=record_id,
                category=category, instruction=" ".join(instruction.split()), source_image=src_rel,
                output_image=out_rel, origin=str(origin), created_at=utc_now(),
            )
            s.add(row)
        return row.id, True

    def import_method_folder(self, name: str | None, folder: str, *, records: str | None = None,
                             reference: bool = False, split: str | None = None) -> ImportReport:
        """Import a method's outputs (or, ``reference=True``, the ground truth as gold) from ``folder``; ``name``
        may be None for a folder ``python -m reasonbrain evaluate`` wrote: see
        :func:`app.storage.rating_import.import_method_folder`."""
        return rating_import.import_method_folder(self, name, folder, records=records, reference=reference,
                                                  split=split)

    def import_steps(self, *, user_ids: Iterable[str] | None = None, method: str | None = None) -> ImportReport:
        """Import edits saved in the history store: see :func:`app.storage.rating_import.import_steps`."""
        return rating_import.import_steps(self, user_ids=user_ids, method=method)

    def sync_tasks(self) -> int:
        """Create the tasks the stored outputs call for (idempotent); returns how many were added.

        absolute: every method output (not gold), every reference and identity output (gold: ``gold_answer``);
        pairwise: every pair of different methods on one prompt, and the reference
        against the identity (gold: the reference wins)."""
        with self.store.transaction(write=True) as s:
            outputs = s.execute(select(RatingOutputRow.id, RatingOutputRow.prompt_key, RatingOutputRow.kind,
                                       RatingOutputRow.method)).all()
            existing = set(s.execute(select(RatingTaskRow.key)).scalars())
            by_prompt: dict[str, list[Any]] = {}
            for o in outputs:
                by_prompt.setdefault(o.prompt_key, []).append(o)
            new: list[RatingTaskRow] = []
            now = utc_now()

            def add(mode: str, a: Any, b: Any | None, gold: dict[str, Any] | None) -> None:
                key = task_key(mode, a.prompt_key, a.method, b.method if b is not None else None)
                if key in existing:
                    return
                existing.add(key)
                new.append(RatingTaskRow(
                    id=uuid.uuid4().hex, key=key, mode=mode, prompt_key=a.prompt_key, output_a_id=a.id,
                    output_b_id=None if b is None else b.id, is_gold=gold is not None,
                    gold_json=None if gold is None else json.dumps(gold, sort_keys=True), created_at=now,
                ))

            for group in by_prompt.values():
                group.sort(key=lambda o: (o.method, o.id))
                for o in group:
                    add("absolute", o, None, gold_answer(o.kind))
                methods = [o for o in group if o.kind == KIND_METHOD]
                for i, a in enumerate(methods):
                    for b in methods[i + 1:]:
                        add("pairwise", a, b, None)
                refs = [o for o in group if o.kind == KIND_REFERENCE]
                ids = [o for o in group if o.kind == KIND_IDENTITY]
                if refs and ids:
                    add("pairwise", refs[0], ids[0], {"choice": "a"})
            s.add_all(new)
        return len(new)

    # --- sessions ---------------------------------------------------------------------------------------------
    def create_session(self, annotator: str) -> str:
        """A new sign-in token for ``annotator`` (only its hash is stored)."""
        _check_annotator(annotator)
        token = secrets.token_urlsafe(32)
        now = utc_now()
        with self.store.transaction(write=True) as s:
            s.execute(delete(RatingSessionRow).where(RatingSessionRow.expires_at < now))
            s.add(RatingSessionRow(token_hash=_token_hash(token), annotator=annotator, created_at=now,
                                   expires_at=now + timedelta(hours=self.settings.session_hours)))
        return token

    def session_annotator(self, token: Any) -> str | None:
        """The annotator a token belongs to, None if it is unknown or expired."""
        if not isinstance(token, str) or not 16 <= len(token) <= 128:
            return None
        with self.store.transaction() as s:
            row = s.get(RatingSessionRow, _token_hash(token))
            if row is None or row.expires_at <= utc_now():
                return None
            return row.annotator

    def end_session(self, token: Any) -> None:
        if isinstance(token, str) and token:
            with self.store.transaction(write=True) as s:
                s.execute(delete(RatingSessionRow).where(RatingSessionRow.token_hash == _token_hash(token)))

    # --- queues -----------------------------------------------------------------------------------------------
    def next_item(self, annotator: str, mode: str) -> Item | None:
        """The annotator's current item (filling the queue when it ran out); None when nothing is left.

        Order: pending items by queue position (claiming new ones when they run out), then the skipped ones
        again, the longest-skipped first. Showing an item restarts its clock.
        """
        _check_annotator(annotator)
        _check_mode(mode)
        with self.store.transaction(write=True) as s:
            row = _first(s, annotator, mode, "pending")
            if row is None:
                self._fill(s, annotator, mode)
                row = _first(s, annotator, mode, "pending") or _first(s, annotator, mode, "skipped")
            if row is None:
                return None
            row.shown_at = utc_now()
            return self._item(s, row)

    def progress(self, annotator: str, mode: str) -> Progress:
        _check_annotator(annotator)
        _check_mode(mode)
        with self.store.transaction() as s:
            return _progress(s, annotator, mode)

    def task_count(self, mode: str) -> int:
        """How many tasks the study has in ``mode`` (whoever they are assigned to)."""
        _check_mode(mode)
        with self.store.transaction() as s:
            return s.execute(select(func.count()).select_from(RatingTaskRow).where(RatingTaskRow.mode == mode)
                             ).scalar_one()

    def queue(self, annotator: str, mode: str) -> list[tuple[str, bool]]:
        """``(task id, swapped)`` in the annotator's queue order (tests, exports; no method names)."""
        with self.store.transaction() as s:
            rows = s.execute(select(RatingAssignmentRow.task_id, RatingAssignmentRow.swapped).where(
                RatingAssignmentRow.annotator == annotator, RatingAssignmentRow.mode == mode,
            ).order_by(RatingAssignmentRow.position)).all()
        return [(r.task_id, bool(r.swapped)) for r in rows]

    def _fill(self, s: Session, annotator: str, mode: str) -> None:
        """Claim new tasks for ``annotator``: unclaimed regular tasks, overlap tasks (seen by up to
        ``overlap_annotators`` people) in proportion, and gold tasks; shuffled with the annotator's seed.

        Every random choice hashes (study seed, annotator, task key) and the task key is content (prompt and
        methods), so the same study imported twice gives each annotator the same order and sides."""
        cfg = self.settings
        tasks = s.execute(select(RatingTaskRow.id, RatingTaskRow.key, RatingTaskRow.is_gold).where(
            RatingTaskRow.mode == mode)).all()
        if not tasks:
            return
        key_of = {t.id: t.key for t in tasks}
        counts = dict(s.execute(select(RatingAssignmentRow.task_id, func.count()).where(
            RatingAssignmentRow.mode == mode).group_by(RatingAssignmentRow.task_id)).all())
        mine = set(s.execute(select(RatingAssignmentRow.task_id).where(
            RatingAssignmentRow.annotator == annotator, RatingAssignmentRow.mode == mode)).scalars())

        def order(ids: list[str]) -> list[str]:  # the annotator's own random order
            return sorted(ids, key=lambda t: _unit(cfg.seed, annotator, key_of[t], "pick"))

        regular, overlap, gold = [], [], []
        for t in tasks:
            if t.id in mine:
                continue
            if t.is_gold:
                gold.append(t.id)
            elif self.is_overlap(t.key):
                if cfg.overlap_annotators == 0 or counts.get(t.id, 0) < cfg.overlap_annotators:
                    overlap.append(t.id)
            elif counts.get(t.id, 0) == 0:
                regular.append(t.id)
        take = order(regular)[: cfg.batch_size]
        f = cfg.overlap_fraction
        n_overlap = len(overlap) if not take or f >= 1 else math.ceil(len(take) * f / (1 - f))
        take += order(overlap)[: min(n_overlap, cfg.batch_size)]
        if take:
            take += order(gold)[: math.ceil(len(take) * cfg.gold_fraction)]
        elif all(t.is_gold for t in tasks):
            # a mode whose study is only gold (say pairwise after import-reference alone): the gold is the work
            take = order(gold)[: cfg.batch_size]
        else:
            return  # the study's regular items are all claimed: never a queue of gold alone
        start = s.execute(select(func.coalesce(func.max(RatingAssignmentRow.position), 0)).where(
            RatingAssignmentRow.annotator == annotator, RatingAssignmentRow.mode == mode)).scalar_one()
        random.Random("\x1f".join([cfg.seed, annotator, mode, str(start)])).shuffle(take)
        for i, task_id in enumerate(take, start=start + 1):
            s.add(RatingAssignmentRow(
                id=uuid.uuid4().hex, annotator=annotator, task_id=task_id, mode=mode, position=i,
                swapped=mode == "pairwise" and _unit(cfg.seed, annotator, key_of[task_id], "side") < 0.5,
                overlap=self.is_overlap(key_of[task_id]), status="pending",
            ))
        s.flush()

    def is_overlap(self, task_key: str) -> bool:
        """Whether a (non-gold) task is in the overlap share: a stable hash of the study seed and the task key."""
        return _unit(self.settings.seed, task_key, "overlap") < self.settings.overlap_fraction

    def _item(self, s: Session, row: RatingAssignmentRow) -> Item:
        task = s.get(RatingTaskRow, row.task_id)
        a = s.get(RatingOutputRow, task.output_a_id)
        outputs = [a]
        if task.output_b_id is not None:
            b = s.get(RatingOutputRow, task.output_b_id)
            outputs = [b, a] if row.swapped else [a, b]
        return Item(
            assignment_id=row.id, mode=row.mode, instruction=a.instruction,
            source_image=self.image_path(a.source_image), images=[self.image_path(o.output_image) for o in outputs],
            position=row.position, status=row.status, progress=_progress(s, row.annotator, row.mode),
        )

    # --- actions ----------------------------------------------------------------------------------------------
    def rate_absolute(self, annotator: str, assignment_id: str, *, ins_align: Any, consistency: Any,
                      plausibility: Any) -> Answer:
        scores = {"ins_align": ins_align, "consistency": consistency, "plausibility": plausibility}
        for name, value in scores.items():
            scores[name] = _score(name, value)
        return self._rate(annotator, assignment_id, "absolute", scores)

    def rate_pairwise(self, annotator: str, assignment_id: str, side: Any) -> Answer:
        """``side`` as on screen: ``left`` / ``right`` / ``tie`` / ``both_bad``; stored in task orientation."""
        if side not in ("left", "right", "tie", "both_bad"):
            raise ValueError(f"choice must be left, right, tie or both_bad, got {side!r}")
        return self._rate(annotator, assignment_id, "pairwise", {"side": side})

    def _rate(self, annotator: str, assignment_id: str, mode: str, answer: dict[str, Any]) -> Answer:
        with self.store.transaction(write=True) as s:
            row = _open_assignment(s, annotator, assignment_id)
            if row.mode != mode:
                raise ValueError(f"this item is rated in {row.mode} mode, not {mode}")
            now = utc_now()
            seconds = None if row.shown_at is None else max(0.0, (now - row.shown_at).total_seconds())
            too_fast = seconds is None or seconds < self.settings.min_seconds
            choice = None
            if mode == "pairwise":
                side = answer.pop("side")
                choice = {"left": "b" if row.swapped else "a", "right": "a" if row.swapped else "b"}.get(side, side)
            s.add(RatingRow(
                id=uuid.uuid4().hex, assignment_id=row.id, annotator=annotator, task_id=row.task_id, mode=mode,
                choice=choice, swapped=row.swapped, seconds=seconds, too_fast=too_fast, created_at=now, **answer,
            ))
            row.status, row.acted_at, row.note = "done", now, None
        return Answer(assignment_id=assignment_id, status="done", seconds=seconds, too_fast=too_fast)

    def skip(self, annotator: str, assignment_id: str) -> Answer:
        """Leave the item for later: skipped items come back once the pending ones are done."""
        with self.store.transaction(write=True) as s:
            row = _open_assignment(s, annotator, assignment_id)
            row.status, row.acted_at = "skipped", utc_now()
        return Answer(assignment_id=assignment_id, status="skipped")

    def flag(self, annotator: str, assignment_id: str, note: Any = "") -> Answer:
        """Report a broken or unanswerable item (with an optional reason); it leaves the queue."""
        text = note.strip()[:MAX_NOTE_CHARS] if isinstance(note, str) else ""
        with self.store.transaction(write=True) as s:
            row = _open_assignment(s, annotator, assignment_id)
            row.status, row.acted_at, row.note = "flagged", utc_now(), text or None
        return Answer(assignment_id=assignment_id, status="flagged")

    def undo(self, annotator: str, mode: str) -> Answer | None:
        """Take back the annotator's latest answer, skip or flag in ``mode`` (repeatable); the item is pending
        again and comes next. None when there is nothing to undo."""
        _check_annotator(annotator)
        _check_mode(mode)
        with self.store.transaction(write=True) as s:
            row = s.execute(select(RatingAssignmentRow).where(
                RatingAssignmentRow.annotator == annotator, RatingAssignmentRow.mode == mode,
                RatingAssignmentRow.status != "pending", RatingAssignmentRow.acted_at.is_not(None),
            ).order_by(RatingAssignmentRow.acted_at.desc(), RatingAssignmentRow.position.desc()).limit(1)
            ).scalar_one_or_none()
            if row is None:
                return None
            previous = row.status
            now = utc_now()
            s.execute(update(RatingRow).where(RatingRow.assignment_id == row.id, RatingRow.undone_at.is_(None))
                      .values(undone_at=now))
            row.status, row.acted_at, row.note = "pending", None, None
        return Answer(assignment_id=row.id, status=previous)

    # --- reading ratings --------------------------------------------------------------------------------------
    def my_ratings(self, annotator: str, mode: str | None = None) -> list[dict[str, Any]]:
        """The annotator's own active ratings (no method names): what the isolation tests compare."""
        _check_annotator(annotator)
        stmt = select(RatingRow).where(RatingRow.annotator == annotator, RatingRow.undone_at.is_(None))
        if mode is not None:
            stmt = stmt.where(RatingRow.mode == mode)
        with self.store.transaction() as s:
            rows = s.execute(stmt.order_by(RatingRow.created_at)).scalars().all()
            return [{"id": r.id, "assignment_id": r.assignment_id, "task_id": r.task_id, "mode": r.mode,
                     "ins_align": r.ins_align, "consistency": r.consistency, "plausibility": r.plausibility,
                     "choice": r.choice, "seconds": r.seconds, "too_fast": r.too_fast} for r in rows]

    def records(self, *, include_undone: bool = False) -> list[dict[str, Any]]:
        """Every rating joined with its task and outputs, method names included (results and export only)."""
        with self.store.transaction() as s:
            outputs = {o.id: o for o in s.execute(select(RatingOutputRow)).scalars()}
            tasks = {t.id: t for t in s.execute(select(RatingTaskRow)).scalars()}
            stmt = select(RatingRow, RatingAssignmentRow.overlap).join(
                RatingAssignmentRow, RatingAssignmentRow.id == RatingRow.assignment_id)
            if not include_undone:
                stmt = stmt.where(RatingRow.undone_at.is_(None))
            rows = s.execute(stmt.order_by(RatingRow.created_at, RatingRow.id)).all()
        out = []
        for r, overlap in rows:
            t = tasks[r.task_id]
            a = outputs[t.output_a_id]
            b = outputs.get(t.output_b_id) if t.output_b_id else None
            gold = json.loads(t.gold_json) if t.gold_json else None
            out.append({
                "rating_id": r.id, "annotator": r.annotator, "task_id": t.id, "mode": r.mode,
                "prompt_key": t.prompt_key, "record_id": a.record_id, "category": a.category,
                "instruction": a.instruction, "method": a.method, "method_b": b.method if b else None,
                "kind": a.kind, "ins_align": r.ins_align, "consistency": r.consistency,
                "plausibility": r.plausibility, "choice": r.choice,
                "winner": _winner(r.choice, a.method, b.method if b else None), "swapped": r.swapped,
                "seconds": r.seconds, "too_fast": r.too_fast, "overlap": bool(overlap), "gold": t.is_gold,
                "gold_expected": gold, "gold_correct": is_gold_correct(gold, r.ins_align, r.choice) if gold else None,
                "created_at": r.created_at.isoformat(), "undone": r.undone_at is not None,
            })
        return out

    def flags(self) -> list[dict[str, Any]]:
        """Flagged items with their reasons (admin)."""
        with self.store.transaction() as s:
            rows = s.execute(select(RatingAssignmentRow, RatingTaskRow).join(
                RatingTaskRow, RatingTaskRow.id == RatingAssignmentRow.task_id).where(
                RatingAssignmentRow.status == "flagged").order_by(RatingAssignmentRow.acted_at)).all()
            return [{"annotator": a.annotator, "task_id": t.id, "mode": t.mode, "prompt_key": t.prompt_key,
                     "note": a.note or "", "flagged_at": a.acted_at.isoformat() if a.acted_at else None}
                    for a, t in rows]

    def counts(self) -> dict[str, int]:
        with self.store.transaction() as s:
            return {
                "outputs": s.execute(select(func.count()).select_from(RatingOutputRow)).scalar_one(),
                "tasks": s.execute(select(func.count()).select_from(RatingTaskRow)).scalar_one(),
                "assignments": s.execute(select(func.count()).select_from(RatingAssignmentRow)).scalar_one(),
                "ratings": s.execute(select(func.count()).select_from(RatingRow).where(
                    RatingRow.undone_at.is_(None))).scalar_one(),
            }

    def task_methods(self, task_id: str) -> tuple[str, str | None]:
        """The hidden method names of a task (admin, tests)."""
        with self.store.transaction() as s:
            t = s.get(RatingTaskRow, task_id)
            if t is None:
                raise NotFound(f"task {task_id} not found")
            b = s.get(RatingOutputRow, t.output_b_id) if t.output_b_id else None
            return s.get(RatingOutputRow, t.output_a_id).method, (b.method if b else None)


# ----------------------------------------------------------------------------------------------------------------
# Helpers
# ----------------------------------------------------------------------------------------------------------------
def prompt_key(source: PIL.Image.Image, instruction: str) -> str:
    """What identifies a prompt: the source's pixels and the instruction (whitespace and case folded)."""
    rgb = source.convert("RGB")
    h = hashlib.sha256(f"{rgb.width}x{rgb.height}\n".encode())
    h.update(rgb.tobytes())
    h.update(b"\n" + " ".join(instruction.split()).lower().encode())
    return h.hexdigest()


def task_key(mode: str, prompt: str, method_a: str, method_b: str | None) -> str:
    """A task's identity from its content (not row ids): the seed of its random order, sides and overlap."""
    return hashlib.sha256("\x1f".join([mode, prompt, method_a, method_b or ""]).encode()).hexdigest()


def _first(s: Session, annotator: str, mode: str, status: str) -> RatingAssignmentRow | None:
    """The next pending item by queue position, or the skipped item skipped longest ago."""
    order = (RatingAssignmentRow.position,) if status == "pending" else (
        RatingAssignmentRow.acted_at, RatingAssignmentRow.position)
    return s.execute(select(RatingAssignmentRow).where(
        RatingAssignmentRow.annotator == annotator, RatingAssignmentRow.mode == mode,
        RatingAssignmentRow.status == status).order_by(*order).limit(1)).scalar_one_or_none()


def _progress(s: Session, annotator: str, mode: str) -> Progress:
    by_status = dict(s.execute(select(RatingAssignmentRow.status, func.count()).where(
        RatingAssignmentRow.annotator == annotator, RatingAssignmentRow.mode == mode,
    ).group_by(RatingAssignmentRow.status)).all())
    return Progress(total=sum(by_status.values()), done=by_status.get("done", 0),
                    flagged=by_status.get("flagged", 0), skipped=by_status.get("skipped", 0))


def _open_assignment(s: Session, annotator: str, assignment_id: Any) -> RatingAssignmentRow:
    """The annotator's own assignment, still open (pending or skipped). Someone else's is "not found"."""
    _check_annotator(annotator)
    row = s.get(RatingAssignmentRow, assignment_id) if isinstance(assignment_id, str) and assignment_id else None
    if row is None or row.annotator != annotator:
        raise NotFound(f"item {assignment_id!r} not found")
    if row.status not in ("pending", "skipped"):
        raise ValueError("this item is already answered (undo it first to change the answer)")
    return row


def _winner(choice: str | None, a: str, b: str | None) -> str | None:
    return {"a": a, "b": b}.get(choice or "")


def gold_answer(kind: str) -> dict[str, Any] | None:
    """The expected answer stored on an absolute gold task (None: ``kind`` is not gold), e.g. ``{"ins_align": [4, 5]}``:
    the scores within ``GOLD_TOLERANCE`` of the gold score."""
    if kind not in GOLD_SCORE:
        return None
    lo, hi = SCORE_SCALE
    return {"ins_align": [max(lo, GOLD_SCORE[kind] - GOLD_TOLERANCE), min(hi, GOLD_SCORE[kind] + GOLD_TOLERANCE)]}


def gold_expected_score(gold: dict[str, Any] | None) -> float | None:
    """The Ins-Align a gold answer (``gold_answer``'s form) expects: the end of its range at the end of the scale."""
    if not gold or "ins_align" not in gold:
        return None
    lo, hi = gold["ins_align"]
    return float(hi if hi == SCORE_SCALE[1] else lo)


def is_gold_correct(gold: dict[str, Any], ins_align: int | None, choice: str | None) -> bool:
    """Whether a rating answers a gold task right: the library's gold rule with ``GOLD_TOLERANCE`` (absolute), the
    expected choice (pairwise)."""
    expected = gold_expected_score(gold)
    if expected is not None:
        return ins_align is not None and gold_correct(ins_align, expected, tolerance=GOLD_TOLERANCE)
    return choice == gold.get("choice")


def _score(name: str, value: Any) -> int:
    lo, hi = SCORE_SCALE
    try:
        score = int(value)
    except (TypeError, ValueError):
        score = None
    if score is None or isinstance(value, bool) or str(score) != str(value).strip() or not lo <= score <= hi:
        raise ValueError(f"{name} must be a whole number from {lo} to {hi}, got {value!r}")
    return score


def _unit(*parts: str) -> float:
    """A number in [0, 1) fixed by ``parts`` (stable across runs and machines, unlike ``hash``)."""
    digest = hashlib.sha256("\x1f".join(parts).encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _check_annotator(annotator: Any) -> None:
    if not isinstance(annotator, str) or not annotator or len(annotator) > MAX_USER_ID_CHARS:
        raise ValueError("annotator must be a non-empty id")


def _check_mode(mode: Any) -> None:
    if mode not in MODES:
        raise ValueError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")


def _clean_method(method: Any) -> str:
    if not isinstance(method, str) or not method.strip() or len(method.strip()) > 128:
        raise ValueError("a method name must be 1 to 128 characters")
    return method.strip()


__all__ = [  # what the app, its tools and the tests import from here
    "DEFAULT_SPLIT", "GOLD_TOLERANCE", "IDENTITY_METHOD", "IMAGES_DIR", "KIND_IDENTITY", "KIND_METHOD",
    "KIND_REFERENCE", "MODES", "REFERENCE_METHOD", "Answer", "ImportReport", "Item", "Progress",
    "RatingAssignmentRow", "RatingOutputRow", "RatingRow", "RatingSessionRow", "RatingSettings", "RatingStore",
    "RatingTaskRow", "gold_answer", "gold_expected_score", "is_gold_correct", "prompt_key", "task_key",
]
