"""The reason-then-edit prompt and its lenient parser.

The MLLM answers one structured prompt (:func:`structured_prompt`) with four lines::

    Object: the ice cube
    Box: [0.41, 0.52, 0.63, 0.78]
    Outcome: The ice cube has melted into a small puddle of water.
    Edit: turn the ice cube into a small puddle of water

:func:`parse_reasoned_edit` reads good, partial and junk answers alike: labels in any case, with markdown or list
markers around them, on one line or several, or a JSON object; placeholder and "none"-like values count as missing.
Whatever is missing falls back visibly: without an explicit edit the raw instruction is used, and the result says so.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

# The fields in the order the prompt asks for them, each with what the prompt says about it.
FIELD_DESCRIPTIONS = {
    "object": "the object in the picture that the instruction is about",
    "box": "its bounding box as [x1, y1, x2, y2] with coordinates from 0 to 1, or none",
    "outcome": "one sentence saying what the picture shows after it happens",
    "edit": 'an explicit editing instruction that makes the picture show that outcome, e.g. "turn the ice cube into '
            'a small puddle of water"',
}
STRUCTURED_PROMPT = (
    "Instruction: {instruction}\n"
    "Work out what this instruction implies for the picture, then reply with exactly these four lines:\n"
    + "\n".join(f"{name.capitalize()}: {text}" for name, text in FIELD_DESCRIPTIONS.items())
)
# where the explicit edit instruction came from
FROM_MLLM = "mllm"
FROM_RAW_INSTRUCTION = "raw_instruction"

# labels the parser accepts for each field (longest first, so "edit instruction" wins over "edit")
_LABELS = {
    "object": ("referenced object", "target object", "object"),
    "box": ("bounding box", "bbox", "box"),
    "outcome": ("expected outcome", "outcome"),
    "edit": ("explicit edit instruction", "edit instruction", "explicit edit", "explicit instruction", "edit"),
}
_LABEL_TO_FIELD = {label: name for name, labels in _LABELS.items() for label in labels}
_LABEL_RE = re.compile(
    r"(?:^|(?<=[\s;|,{\"'*#>-]))(?:\d+[.)]\s*)?[*_\"']*("
    + "|".join(re.escape(label) for label in sorted(_LABEL_TO_FIELD, key=len, reverse=True))
    + r")[*_\"']*\s*[:=]",
    re.IGNORECASE,
)
_MISSING = {"", "none", "n/a", "na", "null", "nil", "unknown", "not applicable", "nothing", "-", "--", "...", "?"}
_NUMBER_RE = re.compile(r"-?\d+(?:\.\d+)?|-?\.\d+")
MAX_FIELD_CHARS = 300
MAX_OBJECT_CHARS = 60


@dataclass(frozen=True)
class ReasonedEdit:
    """What the MLLM's structured answer gave, with the fallbacks it needed."""

    object: str | None  # the referenced object ("ice cube"), None when not given
    box: tuple[float, float, float, float] | None  # normalised xyxy in [0, 1], None when not given or unusable
    outcome: str | None  # the outcome in one sentence
    edit_instruction: str  # what the editor is given: the MLLM's explicit edit, else the raw instruction
    edit_instruction_source: str  # FROM_MLLM or FROM_RAW_INSTRUCTION
    found: tuple[str, ...]  # the fields the answer held (in prompt order)
    notes: list[str] = field(default_factory=list)  # what fell back or was ignored, in words


def structured_prompt(instruction: str) -> str:
    """The text of the reason-then-edit prompt for ``instruction`` (the user turn's text slot)."""
    return STRUCTURED_PROMPT.format(instruction=instruction)


def parse_reasoned_edit(answer: str, raw_instruction: str) -> ReasonedEdit:
    """Read the MLLM's ``answer`` leniently; ``raw_instruction`` is the fallback edit instruction."""
    values = _json_fields(answer) or _labelled_fields(answer)
    values = {k: v for k, v in ((k, _clean(v)) for k, v in values.items()) if v is not None}
    notes: list[str] = []
    box = None
    if "box" in values:
        box, problem = parse_box(values["box"])
        if problem:
            notes.append(f"the MLLM's box was ignored: {problem}")
    obj = values.get("object")
    if obj is not None:
        obj = re.sub(r"^(the|a|an)\s+", "", obj, flags=re.IGNORECASE).strip(" .")[:MAX_OBJECT_CHARS]
        obj = obj or None
    edit = values.get("edit")
    if edit is None:
        notes.append("the MLLM gave no explicit edit instruction: the editor was given the raw instruction")
    found = tuple(name for name in FIELD_DESCRIPTIONS if name in values)
    return ReasonedEdit(
        object=obj,
        box=box,
        outcome=values.get("outcome"),
        edit_instruction=edit if edit is not None else raw_instruction,
        edit_instruction_source=FROM_MLLM if edit is not None else FROM_RAW_INSTRUCTION,
        found=found,
        notes=notes,
    )


def parse_box(text: str) -> tuple[tuple[float, float, float, float] | None, str | None]:
    """(normalised xyxy box, None) from text holding four numbers in [0, 1] (or percentages), else (None, why)."""
    numbers = [float(n) for n in _NUMBER_RE.findall(text)]
    if len(numbers) < 4:
        return None, f"{text!r} does not hold four coordinates"
    coords = numbers[:4]
    if "%" in text and all(0.0 <= c <= 100.0 for c in coords):
        coords = [c / 100.0 for c in coords]
    if not all(0.0 <= c <= 1.0 for c in coords):
        return None, f"{text!r} has coordinates outside 0 to 1"
    x1, x2 = sorted(coords[0::2])
    y1, y2 = sorted(coords[1::2])
    if x2 - x1 <= 0.0 or y2 - y1 <= 0.0:
        return None, f"{text!r} encloses no area"
    return (x1, y1, x2, y2), None


def _json_fields(answer: str) -> dict[str, str]:
    """The fields of the first JSON object in ``answer`` (keys matched like labels), {} when there is none."""
    start, end = answer.find("{"), answer.rfind("}")
    if start < 0 or end <= start:
        return {}
    try:
        data = json.loads(answer[start : end + 1])
    except ValueError:
        return {}
    if not isinstance(data, dict):
        return {}
    out: dict[str, str] = {}
    for key, value in data.items():
        name = _LABEL_TO_FIELD.get(str(key).strip().lower().replace("_", " "))
        if name is not None and name not in out and value is not None:
            out[name] = json.dumps(value) if isinstance(value, list) else str(value)
    return out


def _labelled_fields(answer: str) -> dict[str, str]:
    """"Label: value" pairs: a value is the first non-empty line after its label, up to the next label; the first
    occurrence of a field counts."""
    matches = list(_LABEL_RE.finditer(answer))
    out: dict[str, str] = {}
    for i, match in enumerate(matches):
        name = _LABEL_TO_FIELD[match.group(1).lower()]
        end = matches[i + 1].start() if i + 1 < len(matches) else len(answer)
        lines = [line for line in answer[match.end() : end].splitlines() if line.strip()]
        if name not in out and lines:
            out[name] = lines[0]
    return out


def _clean(value: str) -> str | None:
    """A field's text without markup, quotes, list separators and surrounding space; None when it says nothing
    (empty, "none"-like, or the prompt's own description repeated)."""
    text = " ".join(value.replace("**", " ").replace("__", " ").split())
    text = text.strip(" \t;|,`*#-").strip().strip("\"'").strip()
    if text.lower().rstrip(".") in _MISSING:
        return None
    if any(text.lower().rstrip(".") == d.lower().rstrip(".") for d in FIELD_DESCRIPTIONS.values()):
        return None
    return text[:MAX_FIELD_CHARS]
