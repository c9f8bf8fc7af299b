"""Hypothetical instruction templates and referring expressions.

Clause templates wrap a transformation's condition ("were left in the hot sun for an hour") around a
referring expression ("the blue ice cube on the left"); story templates wrap a narrative that contains
the referring expression. ``HELDOUT_TEMPLATES`` (T05, T09, T13, S04) are used only in the test split.

A referring expression always identifies exactly one object of the scene: by name alone when the name
is unique, else by colour and/or position (positions are unique per scene).
"""

from __future__ import annotations

import random
import re
from collections.abc import Mapping
from types import MappingProxyType

from reasonbrain.synthworld.world import (
    CATEGORIES,
    KINDS,
    POSITION_PHRASES,
    TRANSFORMATIONS,
    SceneObject,
    Transformation,
)

CLAUSE_TEMPLATES: Mapping[str, str] = MappingProxyType({
    "T00": "What would happen if {ref} {cond}?",
    "T01": "What if {ref} {cond}?",
    "T02": "Imagine that {ref} {cond}. What would it look like?",
    "T03": "Suppose {ref} {cond}. Show the result.",
    "T04": "What would {ref} look like if it {cond}?",
    "T05": "Picture the scene if {ref} {cond}.",
    "T06": "How would {ref} change if it {cond}?",
    "T07": "If {ref} {cond}, what would we see?",
    "T08": "Let's say {ref} {cond}. What happens next?",
    "T09": "Assume {ref} {cond}. How would the image change?",
    "T10": "Hypothetically, if {ref} {cond}, what would it look like?",
    "T11": "What would become of {ref} if it {cond}?",
    "T12": "In a world where {ref} {cond}, how would this picture look?",
    "T13": "Consider {ref}: what if it {cond}?",
})
STORY_TEMPLATES: Mapping[str, str] = MappingProxyType({
    "S00": "{story} What would it look like afterwards?",
    "S01": "{story} Imagine the scene a little later.",
    "S02": "Picture this: {story} What changed?",
    "S03": "Suppose this happened: {story} Show the outcome.",
    "S04": "{story} What would happen next?",
    "S05": "Imagine: {story} How would it look now?",
})
TEMPLATES: Mapping[str, str] = MappingProxyType({**CLAUSE_TEMPLATES, **STORY_TEMPLATES})
HELDOUT_TEMPLATES: frozenset[str] = frozenset({"T05", "T09", "T13", "S04"})


def templates_for(tr: Transformation, *, heldout: bool | None) -> list[str]:
    """Template ids usable for ``tr``: only held-out ones (True), none of them (False) or all (None)."""
    ids = STORY_TEMPLATES if tr.stories else CLAUSE_TEMPLATES
    return [t for t in ids if heldout is None or (t in HELDOUT_TEMPLATES) == heldout]


def referring_expression(objects: list[SceneObject], index: int, rng: random.Random) -> str:
    """A definite description of ``objects[index]`` that no other object matches; ``index=-1``: the sky."""
    if index < 0:
        return "the " + rng.choice(["sky", "sky", *KINDS["sky"].synonyms])
    t = objects[index]
    noun = rng.choice([t.name, *(KINDS[t.kind].synonyms if t.name == KINDS[t.kind].name else ())])
    same = [o for o in objects if o.name == t.name]
    pos = rng.choice(POSITION_PHRASES[t.position])
    options = [f"the {noun} {pos}", f"the {t.shown_colour} {noun} {pos}"]  # positions are unique
    if len(same) == 1:
        options.append(f"the {noun}")
    if sum(o.shown_colour == t.shown_colour for o in same) == 1:
        options.append(f"the {t.shown_colour} {noun}")
    return rng.choice(options)


def make_instruction(tr: Transformation, template_id: str, ref: str, rng: random.Random) -> str:
    if tr.stories:
        story = rng.choice(tr.stories).format(ref=ref)
        text = STORY_TEMPLATES[template_id].format(story=story)
    else:
        text = CLAUSE_TEMPLATES[template_id].format(ref=ref, cond=rng.choice(tr.conditions))
    return text[0].upper() + text[1:]


_SLOT = re.compile(r"\{(ref|cond|story)\}")


def _pieces(template: str) -> list[str]:
    """``template``'s fixed text around its slots: [before, (between,) after]."""
    return _SLOT.split(template)[::2]


def _pattern(template: str, conditions: tuple[str, ...]) -> re.Pattern[str]:
    parts = _SLOT.split(template)
    slot = {"ref": "(?P<ref>.+?)", "story": "(?P<story>.+?)",
            "cond": "(?P<cond>" + "|".join(map(re.escape, conditions)) + ")"}
    body = "".join(re.escape(p) if i % 2 == 0 else slot[p] for i, p in enumerate(parts))
    return re.compile(body + r"\Z", re.IGNORECASE | re.DOTALL)


# framing text of the templates the training split may use (the held-out ones never contribute)
_TRAIN_CLAUSES = [_pieces(t) for tid, t in CLAUSE_TEMPLATES.items() if tid not in HELDOUT_TEMPLATES]
_TRAIN_STORIES = [_pieces(t) for tid, t in STORY_TEMPLATES.items() if tid not in HELDOUT_TEMPLATES]
_TRAIN_MIDDLES = [p[1] for p in _TRAIN_CLAUSES if len(p) == 3 and p[1].strip()]  # " look like if it "
_FRAME_WORDS = sorted({w for pieces in _TRAIN_CLAUSES + _TRAIN_STORIES for piece in pieces
                       for w in re.findall(r"[A-Za-z']+", piece)})


def split_instruction(instruction: str, template_id: str, transformation: str) -> dict[str, str] | None:
    """The slot texts (``ref`` and ``cond``, or ``story``) of an instruction made from ``template_id`` for the
    transformation with id ``transformation``; None when it does not parse."""
    template = TEMPLATES.get(template_id)
    tr = next((t for t in TRANSFORMATIONS if t.id == transformation), None)
    if template is None or tr is None:
        return None
    match = _pattern(template, tr.conditions or ("",)).match(instruction)
    return None if match is None else {k: v for k, v in match.groupdict().items() if v is not None}


def _random_words(rng: random.Random, low: int, high: int) -> str:
    return " ".join(rng.choice(_FRAME_WORDS) for _ in range(rng.randint(low, high)))


def _frame(rng: random.Random, real: list[str], *, end: bool) -> str:
    """A prefix (or, ``end``, a suffix): a training template's own, random framing words, or nothing."""
    roll = rng.random()
    if roll < 0.45:
        return real[-1] if end else real[0]
    if roll < 0.85:
        words = _random_words(rng, 1, 6)
        return f" {words}{rng.choice('?.')}" if end else f"{words}{rng.choice(['', ':', ','])} "
    return rng.choice("?.") if end else ""


def reframe_instruction(instruction: str, template_id: str, transformation: str, rng: random.Random) -> str:
    """``instruction`` re-worded around the same object and condition (or story) by a frame made of the
    training templates' own text: another template's start and end, random words from them, or none. A
    training augmentation that teaches the text side that the frame carries no information; the held-out
    templates' words are never used. Instructions that do not parse come back unchanged."""
    slots = split_instruction(instruction, template_id, transformation)
    if slots is None:
        return instruction
    if "story" in slots:
        start, end = (_frame(rng, rng.choice(_TRAIN_STORIES), end=e) for e in (False, True))
        text = f"{start}{slots['story']}{end}"
    else:
        ref, cond = slots["ref"], slots["cond"]
        start, end = (_frame(rng, rng.choice(_TRAIN_CLAUSES), end=e) for e in (False, True))
        if rng.random() < 0.5:
            middle = " "
        else:  # "{ref} look like if it {cond}"
            middle = rng.choice(_TRAIN_MIDDLES) if rng.random() < 0.5 else f" {_random_words(rng, 1, 4)} if it "
        text = f"{start}{ref}{middle}{cond}{end}"
    return text[0].upper() + text[1:]


def reframe_record(record, rng: random.Random, probability: float = 0.5) -> str:
    """A synthworld record's instruction, re-framed (``reframe_instruction``) with ``probability``."""
    extra = record.extra
    if rng.random() >= probability or "template_id" not in extra or "transformation" not in extra:
        return record.instruction
    return reframe_instruction(record.instruction, extra["template_id"], extra["transformation"], rng)


def example_instructions(per_category: int = 3, seed: int = 0) -> dict[str, list[str]]:
    """A few example instructions per category (for docs and the app), deterministic in ``seed``."""
    rng = random.Random(seed)
    out: dict[str, list[str]] = {}
    for category in CATEGORIES:
        pool = [t for t in TRANSFORMATIONS if t.category == category]
        items = out[category] = []
        for tr in rng.sample(pool, min(per_category, len(pool))):
            spec = KINDS[tr.kind]
            ref = "the sky" if spec.scene_level else f"the {spec.states[tr.src].noun or spec.name}"
            items.append(make_instruction(tr, rng.choice(templates_for(tr, heldout=False)), ref, rng))
    return out
