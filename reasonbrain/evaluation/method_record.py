"""Which method and model made a folder of edits: ``method.json`` beside ``edits/``, written by ``python -m
reasonbrain evaluate`` and read by the Rate tab's import (so the method is named without anyone typing it)::

    OUT/method.json   {"method": "reason_then_edit", "model": "reasonbrain-3b", "records": ".../test.jsonl", ...}
    OUT/edits/<record id>.png
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from typing import Any

METHOD_FILE = "method.json"
EDITS_FOLDER = "edits"


@dataclass
class MethodRecord:
    method: str  # one of reasonbrain.pipelines.modes.COMPARISON_METHODS
    model: str  # the preset, and the checkpoint when there is one ("reasonbrain-3b", "tiny @ckpt")
    description: str = ""  # the method in words
    backbones: dict[str, str | None] = field(default_factory=dict)  # Hub ids / folders the model loaded
    records: str | None = None  # the Reason50K jsonl the edits answer (absolute path)
    edits: str = EDITS_FOLDER  # the folder of <record id>.png, relative to the record's folder
    settings: dict[str, Any] = field(default_factory=dict)  # seed, steps, split

    @property
    def rating_name(self) -> str:
        """The method's name in a rating study (hidden from annotators): the method and the model."""
        return f"{self.method} ({self.model})"[:128]

    def save(self, folder: str | os.PathLike) -> str:
        os.makedirs(folder, exist_ok=True)
        path = os.path.join(str(folder), METHOD_FILE)
        with open(path, "w", encoding="utf-8") as f:
            json.dump(asdict(self), f, indent=2)
        return path


def model_label(preset: str, checkpoint: str | os.PathLike | None = None) -> str:
    """``preset`` alone, or ``preset @<checkpoint's folder name or Hub id>``."""
    if checkpoint is None:
        return preset
    where = str(checkpoint).rstrip("/\\")
    return f"{preset} @{os.path.basename(where) if os.path.isdir(where) else where}"


def find_method_record(folder: str | os.PathLike) -> tuple[MethodRecord, str] | None:
    """``(record, its edits folder)`` for an evaluate output folder or its ``edits/`` folder, else None."""
    folder = os.path.abspath(folder)
    for home in (folder, os.path.dirname(folder)):
        path = os.path.join(home, METHOD_FILE)
        if not os.path.isfile(path):
            continue
        with open(path, encoding="utf-8") as f:
            try:
                data = json.load(f)
                record = MethodRecord(**data)
            except (json.JSONDecodeError, TypeError) as err:
                raise ValueError(f"{path} is not a method record ({err})") from err
        edits = os.path.join(home, record.edits)
        if home == folder or (os.path.isdir(edits) and os.path.samefile(edits, folder)):
            return record, edits
    return None
