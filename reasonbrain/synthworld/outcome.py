"""The outcome text the synth MLLM learns to write, and the scorer that reads it back.

``outcome_text(record)`` says which object changes and what it becomes, in the words of the world's own describer
(``SceneObject.description``, the sky's state descriptions, ``POSITION_PHRASES``: the same words as the records'
input/output descriptions)::

    "the green apple on the left becomes a rotten, shrivelled brown apple"
    "the scene is now in snowy winter weather"

``read_outcome(text)`` parses such a text into (object kind, position, outcome state), and ``score_outcome(text,
record)`` says whether the object and the outcome are the record's target and ``to_state``. The outcome is matched
by word similarity (colour words masked) against every state description of every kind, so a text that names
another kind's state, or nothing recognisable, is wrong.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass
from functools import lru_cache

from reasonbrain.synthworld.world import COLOURS, KINDS, POSITION_PHRASES

OBJECT_VERB = " becomes "
SCENE_SUBJECT = "the scene"
SCENE_VERB = " is now "
COLOUR_MASK = "<colour>"
MIN_OUTCOME_SIMILARITY = 0.75  # word-sequence similarity (difflib ratio) for a state description to count
SCENE_WORDS = ("scene", "sky", "weather")


def outcome_text(record) -> str:
    """The outcome of a synth record's transformation, e.g. "the green apple on the left becomes a rotten,
    shrivelled brown apple" (objects) or "the scene is now at night" (the sky)."""
    target = record.target
    if target.kind == "sky":
        return f"{SCENE_SUBJECT}{SCENE_VERB}{KINDS['sky'].states[record.to_state].desc}"
    index = target_index(record)
    obj = record.scene.objects[index]
    after = record.scene.with_state(index, record.to_state).objects[index].description()
    return f"the {obj.shown_colour} {obj.name} {POSITION_PHRASES[obj.position][0]}{OBJECT_VERB}{after}"


def target_index(record) -> int:
    """The index of the record's target among its scene's objects (kind and position identify it)."""
    target = record.target
    found = [i for i, o in enumerate(record.scene.objects) if o.kind == target.kind and o.position == target.position]
    if len(found) != 1:
        raise ValueError(f"record {record.id}: {len(found)} scene objects match its target "
                         f"{target.kind} ({target.position}); expected exactly one")
    return found[0]


@dataclass(frozen=True)
class OutcomeReading:
    """What a generated outcome text says: the object (kind id, position; "sky" with no position for the scene)
    and the state it ends in (kind id and state of the best-matching description), None where unreadable."""

    object_kind: str | None
    position: str | None
    outcome_kind: str | None
    outcome_state: str | None


@dataclass(frozen=True)
class OutcomeScore:
    object_right: bool
    outcome_right: bool
    reading: OutcomeReading

    @property
    def both_right(self) -> bool:
        return self.object_right and self.outcome_right


def read_outcome(text: str) -> OutcomeReading:
    """Parse a generated outcome text (see the module docstring)."""
    low = " ".join(re.sub(r"[^a-z\- ]", " ", (text or "").lower()).split())
    subject, result = _split(low)
    kind, position = _read_subject(subject)
    outcome = _match_state(result) if result else None
    return OutcomeReading(kind, position, *(outcome or (None, None)))


def score_outcome(text: str, record) -> OutcomeScore:
    """Right object: the text names the target's kind at the target's position (the scene for the sky). Right
    outcome: its result reads as the target kind's ``to_state``."""
    reading = read_outcome(text)
    target = record.target
    position = None if target.kind == "sky" else target.position
    object_right = reading.object_kind == target.kind and reading.position == position
    outcome_right = (reading.outcome_kind, reading.outcome_state) == (target.kind, record.to_state)
    return OutcomeScore(object_right, outcome_right, reading)


def evaluate_outcomes(pipe, records: list, wordings: list[str], batch_size: int = 50) -> list[dict]:
    """Generate each record's outcome from its source image and ``wordings`` (the pipeline's ``infer_outcomes``:
    what its Reasoning field shows) and score it: one row per record (a refused edit says nothing: wrong)."""
    if len(records) != len(wordings):
        raise ValueError(f"{len(records)} records but {len(wordings)} wordings")
    rows = []
    for start in range(0, len(records), batch_size):
        part, texts = records[start : start + batch_size], wordings[start : start + batch_size]
        generated = pipe.infer_outcomes([str(r.path(r.src_image)) for r in part], texts)
        for r, instruction, text in zip(part, texts, generated):
            s = score_outcome(text or "", r)
            rows.append({"id": r.id, "category": r.category, "instruction": instruction, "generated": text,
                         "refused": text is None, "expected": outcome_text(r), "object_right": s.object_right,
                         "outcome_right": s.outcome_right, "both_right": s.both_right})
    return rows


def outcome_percentages(rows: list[dict]) -> dict[str, float]:
    """{"object", "outcome", "both"}: the share of ``evaluate_outcomes`` rows right, in percent."""
    n = max(len(rows), 1)
    return {k: round(100.0 * sum(bool(r[f"{k}_right"]) for r in rows) / n, 2) for k in ("object", "outcome", "both")}


# ---------------------------------------------------------------------------------------------- parsing
def _split(low: str) -> tuple[str, str]:
    """(subject, result) at the first verb; the whole text is the subject when there is none."""
    verb = re.search(rf" ({OBJECT_VERB.strip()}|{SCENE_VERB.strip()}) ", f" {low} ")
    if verb is None:
        return low, ""
    return low[: verb.start()].strip(), low[verb.end() - 1 :].strip()


@lru_cache(maxsize=1)
def _names() -> list[tuple[str, str]]:
    """(name, kind id) for every name, synonym and state noun, longest first; the scene's words for the sky."""
    pairs = {}
    for kind, spec in KINDS.items():
        if spec.scene_level:
            continue
        for name in (spec.name, *spec.synonyms, *(s.noun for s in spec.states.values() if s.noun)):
            pairs.setdefault(name, kind)
    pairs.update({w: "sky" for w in SCENE_WORDS})
    return sorted(pairs.items(), key=lambda p: -len(p[0]))


def _read_subject(subject: str) -> tuple[str | None, str | None]:
    padded = f" {subject} "
    kind = next((k for name, k in _names() if f" {name} " in padded), None)
    if kind == "sky":
        return kind, None
    phrases = sorted(((p, pos) for pos, ps in POSITION_PHRASES.items() for p in ps), key=lambda p: -len(p[0]))
    position = next((pos for p, pos in phrases if f" {p} " in padded), None)
    return kind, position


def _words(text: str) -> list[str]:
    colours = set(COLOURS) | {"{c}"}
    return [COLOUR_MASK if w in colours else w for w in re.sub(r"[^a-z{}\- ]", " ", text.lower()).split()]


@lru_cache(maxsize=1)
def _state_descriptions() -> list[tuple[str, str, list[str]]]:
    """(kind id, state, masked words) for every state description in the world."""
    return [(kind, state, _words(spec.desc)) for kind, ks in KINDS.items() for state, spec in ks.states.items()]


def _match_state(result: str) -> tuple[str, str] | None:
    words = _words(result)
    best, best_ratio = None, 0.0
    for kind, state, desc in _state_descriptions():
        ratio = difflib.SequenceMatcher(None, words, desc, autojunk=False).ratio()
        if ratio > best_ratio:
            best, best_ratio = (kind, state), ratio
    return best if best_ratio >= MIN_OUTCOME_SIMILARITY else None


__all__ = ["OutcomeReading", "OutcomeScore", "evaluate_outcomes", "outcome_percentages", "outcome_text", "read_outcome",
           "score_outcome", "target_index"]
