"""The Edit tab's downloads: a step's PNG and JSON under readable names in a pruned temp folder."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from typing import Any

from app import render
from app.store import StepInfo, Store
from reasonbrain.configuration import REASONBRAIN_MODE

DOWNLOAD_DIR = os.path.join(tempfile.gettempdir(), "reasonbrain-studio-downloads")
MAX_DOWNLOAD_FILES = 400


def download_name(step: StepInfo, ext: str) -> str:
    return f"reasonbrain-{step.chain_id[:8]}-step{step.position}-{step.id[:8]}.{ext}"


def download_png(store: Store, step: StepInfo) -> str:
    """The stored PNG under a readable name (hard link when possible, else a copy) in the temp folder."""
    os.makedirs(DOWNLOAD_DIR, exist_ok=True)
    path = os.path.join(DOWNLOAD_DIR, download_name(step, "png"))
    if not os.path.isfile(path):
        src = store.image_path(step.output_image)
        try:
            os.link(src, path)
        except OSError:
            shutil.copyfile(src, path)
        _prune_downloads()
    return path


def step_payload(step: StepInfo) -> dict[str, Any]:
    """What "Download JSON" and the API return: the step's ids, the model and mode that made it (a step saved before
    modes existed: reasonbrain) and the engine's details (no pixels)."""
    return {
        "step_id": step.id, "chain_id": step.chain_id, "parent_id": step.parent_id, "position": step.position,
        "created_at": render.fmt_time(step.created_at), "model": render.step_model_label(step),
        "mode": REASONBRAIN_MODE, **(step.details or {}),
    }


def download_json(step: StepInfo) -> str:
    """:func:`step_payload` written once to a readable name in the temp folder."""
    os.makedirs(DOWNLOAD_DIR, exist_ok=True)
    path = os.path.join(DOWNLOAD_DIR, download_name(step, "json"))
    if not os.path.isfile(path):
        payload = step_payload(step)
        fd, tmp = tempfile.mkstemp(dir=DOWNLOAD_DIR, suffix=".json.tmp")
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(json.dumps(payload))  # dumps, not dump(indent=...): the C encoder, ~10x faster on masks
        os.replace(tmp, path)
    return path


def _prune_downloads() -> None:
    try:
        entries = [e for e in os.scandir(DOWNLOAD_DIR) if e.is_file()]
    except FileNotFoundError:
        return
    if len(entries) <= MAX_DOWNLOAD_FILES:
        return
    entries.sort(key=lambda e: e.stat().st_mtime)
    keep = MAX_DOWNLOAD_FILES * 3 // 4  # prune well below the cap, so the next edits do not sort again
    for e in entries[: len(entries) - keep]:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(e.path)
