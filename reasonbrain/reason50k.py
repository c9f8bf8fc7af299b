"""The Reason50K record format (no torch, no model imports): one jsonl per split, each record ``id, category,
src_image, tgt_image, instruction, objects`` (image paths relative to the jsonl's folder) plus any extra fields,
which are kept in ``extra``."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from typing import Any

REQUIRED_FIELDS = ("id", "category", "src_image", "tgt_image", "instruction")


@dataclass
class Reason50KRecord:
    id: str
    category: str
    src_image: str  # absolute path
    tgt_image: str  # absolute path
    instruction: str
    objects: list[str] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)


def read_split(path: str | os.PathLike) -> list[Reason50KRecord]:
    """Read a Reason50K-format jsonl; raises ValueError naming the line of a malformed record."""
    path = str(path)
    root = os.path.dirname(os.path.abspath(path))
    records = []
    with open(path, encoding="utf-8") as f:
        for line_no, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                data = json.loads(line)
            except json.JSONDecodeError as err:
                raise ValueError(f"{path}:{line_no} is not valid JSON: {err}") from err
            missing = [k for k in REQUIRED_FIELDS if k not in data]
            if missing:
                raise ValueError(f"{path}:{line_no} lacks the Reason50K fields {missing}")
            extra = {k: v for k, v in data.items() if k not in REQUIRED_FIELDS and k != "objects"}
            records.append(
                Reason50KRecord(
                    id=str(data["id"]),
                    category=str(data["category"]),
                    src_image=os.path.join(root, data["src_image"]),
                    tgt_image=os.path.join(root, data["tgt_image"]),
                    instruction=str(data["instruction"]),
                    objects=list(data.get("objects") or []),
                    extra=extra,
                )
            )
    return records
