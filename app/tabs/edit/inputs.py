"""Raw values from the Edit tab's widgets -> typed values (a bad value is a ``ValueError`` naming the field)."""

from __future__ import annotations

import html
from typing import Any


def optional_int(name: str, value: Any) -> int | None:
    """A whole number from a slider / number box; None or "" -> None (the model's default)."""
    if value is None or value == "":
        return None
    if isinstance(value, float):
        if not value.is_integer():
            raise ValueError(f"{name} must be a whole number, got {value}")
        return int(value)
    try:
        return int(value)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{name} must be a whole number, got {value!r}") from err


def optional_float(name: str, value: Any) -> float | None:
    """A number from a slider; None or "" -> None (the model's default)."""
    if value is None or value == "":
        return None
    try:
        return float(value)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{name} must be a number, got {value!r}") from err


def pick_instruction(sample: Any) -> str:
    """A clicked example instruction (a Dataset row ``[instruction]``, HTML-escaped for display) -> the prompt."""
    if isinstance(sample, (list, tuple)) and sample:
        sample = sample[-1]
    return html.unescape(str(sample or ""))


def upload_file(upload: Any) -> tuple[Any, Any]:
    """``(path, original name)`` of gradio's raw upload payload (a dict or a FileData); either may be None."""
    path = upload.get("path") if isinstance(upload, dict) else getattr(upload, "path", upload)
    name = upload.get("orig_name") if isinstance(upload, dict) else getattr(upload, "orig_name", None)
    return path, name
