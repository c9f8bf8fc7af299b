"""Filling the ratings store: a method's outputs from a folder, the ground truth as gold, edits from the history.

Behind ``RatingStore.import_method_folder`` and ``RatingStore.import_steps`` (:mod:`app.ratings_store`).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable
from typing import TYPE_CHECKING

import PIL.Image

from app.storage.rating_models import KIND_IDENTITY, KIND_REFERENCE, ImportReport
from reasonbrain.evaluation.method_record import METHOD_FILE, find_method_record
from reasonbrain.reason50k import read_split

if TYPE_CHECKING:
    from app.ratings_store import RatingStore

logger = logging.getLogger(__name__)

REFERENCE_METHOD = "reference (ground truth)"
IDENTITY_METHOD = "identity (unchanged source)"
DEFAULT_SPLIT = "test"  # imported from a folder with several splits (a synthworld folder)


def import_method_folder(ratings: RatingStore, name: str | None, folder: str, *, records: str | None = None,
                         reference: bool = False, split: str | None = None) -> ImportReport:
    """Import a method's outputs from ``folder``.

    - ``folder`` is what ``python -m reasonbrain evaluate --method M`` wrote (or its ``edits/``): its
      ``method.json`` names the method and model (a ``name`` given here overrides it) and the records the
      ``edits/<record id>.png`` answer (``records`` given here overrides them);
    - or ``folder`` holds a Reason50K-format jsonl (``id, category, src_image, tgt_image, instruction``): its
      ``tgt_image`` is the method's output for the record. A folder with several (``python -m reasonbrain
      synthworld`` writes train / val / test / chains) is read at ``<split>.jsonl``, by default ``test``;
    - or ``folder`` holds images named by record id (``<id>.png|jpg|webp``) and ``records`` is the
      Reason50K jsonl they answer (sources and instructions come from it).

    ``reference=True`` imports the jsonl's targets as the ground truth instead: they and the unchanged
    sources ("identity") become gold tasks with known answers (``name`` is then ignored).
    """
    folder = os.path.abspath(folder)
    if not os.path.isdir(folder):
        raise ValueError(f"{folder} is not a folder")
    report = ImportReport()
    made_by = None if reference else find_method_record(folder)
    if made_by is not None:
        record, folder = made_by
        name = name or record.rating_name
        if records is None:
            records = record.records
            if not records or not os.path.isfile(records):
                raise ValueError(f"the {METHOD_FILE} beside {folder} names records {records!r}, which are not "
                                 "here: name the Reason50K jsonl the edits answer (--records)")
    if not reference and not name:
        raise ValueError(f"name the method (--name): {folder} has no {METHOD_FILE} that names it")
    if records is None:
        pairs = [(rec, rec.tgt_image) for rec in read_split(_records_file(folder, split))]
    else:
        by_id = _images_by_stem(folder)
        pairs = []
        for rec in read_split(records):
            path = by_id.get(rec.id)
            if path is None:
                report.skipped.append(f"{rec.id}: no output image in {folder}")
            else:
                pairs.append((rec, path))
    for rec, out_path in pairs:
        try:
            source = _open(rec.src_image)
            output = _open(out_path)
        except (OSError, ValueError) as err:
            report.skipped.append(f"{rec.id}: {err}")
            continue
        common = {"source": source, "instruction": rec.instruction, "record_id": rec.id,
                  "category": rec.category}
        if reference:
            added = [ratings.add_output(method=REFERENCE_METHOD, kind=KIND_REFERENCE, output=output,
                                     origin=out_path, **common)[1],
                     ratings.add_output(method=IDENTITY_METHOD, kind=KIND_IDENTITY, output=source,
                                     origin=rec.src_image, **common)[1]]
        else:
            added = [ratings.add_output(method=name, output=output, origin=out_path, **common)[1]]
        report.added += sum(added)
        report.existing += len(added) - sum(added)
    ratings.sync_tasks()
    return report

def import_steps(ratings: RatingStore, *, user_ids: Iterable[str] | None = None,
                 method: str | None = None) -> ImportReport:
    """Import edits saved in the history store (every user's when ``user_ids`` is None; edits are private
    to their owner, so an admin decides whose go to annotators). The method name is the step's model
    (``ReasonBrain <preset> @<checkpoint>``) unless ``method`` names it."""
    report = ImportReport()
    users = list(ratings.store.user_ids()) if user_ids is None else list(user_ids)
    for user in users:
        for chain in ratings.store.list_chains(user, limit=1000):
            for step in ratings.store.get_chain(user, chain.id, details=False).steps:
                name = method or f"ReasonBrain {step.preset} @{step.checkpoint_hash[:8]}"
                try:
                    _, created = ratings.add_output(
                        method=name, source=ratings.store.load_image(step.input_image),
                        output=ratings.store.load_image(step.output_image), instruction=step.instruction,
                        origin=f"step:{step.id}",
                    )
                except (OSError, ValueError) as err:
                    report.skipped.append(f"step {step.id}: {err}")
                    continue
                report.added += int(created)
                report.existing += int(not created)
    ratings.sync_tasks()
    return report


def _open(path: str) -> PIL.Image.Image:
    with PIL.Image.open(path) as im:
        im.load()
        return im.copy()


def _records_file(folder: str, split: str | None) -> str:
    """The Reason50K jsonl of ``folder`` to import: ``<split>.jsonl`` if named, the only one, or test.jsonl."""
    jsonls = sorted(f for f in os.listdir(folder) if f.endswith(".jsonl"))
    if split:
        if f"{split}.jsonl" not in jsonls:
            raise ValueError(f"{folder} has no {split}.jsonl (it holds {', '.join(jsonls) or 'no .jsonl'})")
        return os.path.join(folder, f"{split}.jsonl")
    if len(jsonls) == 1:
        return os.path.join(folder, jsonls[0])
    if DEFAULT_SPLIT + ".jsonl" in jsonls:
        logger.info("%s holds %s: importing %s.jsonl (choose another with --split)", folder, ", ".join(jsonls),
                    DEFAULT_SPLIT)
        return os.path.join(folder, DEFAULT_SPLIT + ".jsonl")
    raise ValueError(
        f"{folder} holds {len(jsonls)} .jsonl files ({', '.join(jsonls) or 'none'}): choose one with --split NAME, "
        "or name the records with --records and put the outputs in the folder as <record id>.png"
    )


def _images_by_stem(folder: str) -> dict[str, str]:
    out = {}
    for name in sorted(os.listdir(folder)):
        stem, ext = os.path.splitext(name)
        if ext.lower() in (".png", ".jpg", ".jpeg", ".webp"):
            out.setdefault(stem, os.path.join(folder, name))
    return out
