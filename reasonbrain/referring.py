"""Deterministic referenced-object parser: which object does a hypothetical instruction talk about?

``extract_referenced_object("What would happen if the red apple on the left were left in the sun?")``
returns ``ReferencedObject(name="apple", phrase="the red apple on the left",
attributes={"colour": "red", "position": "left"})``. The result feeds the TRCB branch as the object
token (``serialize_object_token`` -> ``"<obj> red apple | left </obj>"``).

Two modes:

* with a :class:`Vocabulary` (e.g. ``reasonbrain.synthworld.VOCABULARY``): the first mention of a known
  object name or synonym (longest match wins, so "ice cream" beats "ice") is the referent; a colour word
  right before it and a position phrase right after it ("on the left", "in the middle") are attributes.
  No known name -> ``name=None, phrase=""``: callers then use the whole image.
* without one: a general-English heuristic. The noun phrase after a hypothetical trigger ("if the ...",
  "Imagine the ...", "Suppose a ...", "What would happen to the ...") up to the first verb-like word,
  template words stripped; pronouns and generic nouns ("it", "the scene") give ``None``.

The parser never raises on any input string. This module imports nothing from ``synthworld``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

DETERMINERS = ("the", "a", "an", "this", "that", "these", "those", "my", "your", "our", "his", "her", "their")
DEFAULT_COLOURS: dict[str, str] = {
    c: c for c in ("red", "green", "blue", "yellow", "pink", "orange", "white", "brown", "purple", "grey",
                   "black", "gold", "silver", "beige", "violet", "cyan", "magenta")
} | {"gray": "grey"}
DEFAULT_POSITIONS: dict[str, str] = {
    "left": "left", "far left": "left", "right": "right", "far right": "right",
    "centre": "centre", "center": "centre", "middle": "centre",
    "centre-left": "centre-left", "center-left": "centre-left", "centre left": "centre-left", "center left": "centre-left",
    "centre-right": "centre-right", "center-right": "centre-right", "centre right": "centre-right",
    "center right": "centre-right", "top": "top", "bottom": "bottom", "front": "front", "back": "back",
}
# Words that end a noun phrase in the heuristic parser (auxiliaries, frequent irregular verbs, prepositions).
_STOP = frozenset("""
were was is are be been being am got gets had has have went goes would will could should can may might must
did does do look looks looked like if when while after before and but or so then for from into onto with
without at to by under over next near beside behind on in off up down out through during until since
than as kept stood sat lay fell grew caught lost took came ran broke froze left burnt became began felt
against across along around toward towards past inside outside beneath below above upon within among
between away back slid blew hit cut put set let spent forgot stayed turned changed change changes turn turns become becomes happen happens appear
appears melt melts break breaks fall falls burn burns rot rots grow grows float floats sink sinks roll rolls
""".split())
_PRONOUNS = frozenset("it its they them this that these those he she him her one something everything anything".split())
_GENERIC = frozenset("scene image picture photo result outcome world way thing things view situation".split())
_TRIGGER = re.compile(
    r"(?:\bwhat would happen to|\bwhat would become of|\bwhat would|\bhow would|\bwhat if|\bif|\bimagine(?: that)?"
    r"|\bsuppose(?: that)?|\bpicture|\bassume(?: that)?|\bconsider|\blet's say|\bwhere|\bhappens? to|\bwhen)"
    r"\s+(?P<det>" + "|".join(DETERMINERS) + r")\s+(?=(?P<rest>[a-z][^.?!:;,]*))"
)  # `rest` is a look-ahead so that overlapping triggers ("Picture the scene if the apple ...") are all seen
_FALLBACK = re.compile(r"\b(?P<det>the|a|an)\s+(?=(?P<rest>[a-z][^.?!:;,]*))")
_POSITION_RE = re.compile(
    r"\s+(?:on|in|at|to)\s+the\s+(?P<pos>" + "|".join(sorted(DEFAULT_POSITIONS, key=len, reverse=True)) + r")(?![a-z-])"
)
# Nouns that look like participles.
_NOT_VERBS = frozenset("""building painting ceiling string pudding wedding clothing icing morning evening thing things
bedding frosting ring king wing speed steed breed seed shed sled""".split())


@dataclass(frozen=True, eq=False)
class Vocabulary:
    """Referable object names: ``kinds`` maps a canonical name to its synonyms; colour and position
    words map to canonical values."""

    kinds: Mapping[str, tuple[str, ...]]
    colours: Mapping[str, str] = field(default_factory=lambda: dict(DEFAULT_COLOURS))
    positions: Mapping[str, str] = field(default_factory=lambda: dict(DEFAULT_POSITIONS))
    # looser descriptions per canonical name ("piece of ice"): never matched word for word, only by similarity
    descriptions: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    scene_level: str | None = None  # the canonical name that stands for the whole scene ("sky"), always present

    def phrases(self, name: str) -> tuple[str, ...]:
        """Every way of naming ``name`` (canonical first): synonyms, other names mapping to it, descriptions."""
        same = [p for p, n in self.canonical.items() if n == name and p != name]
        return (name, *same, *self.descriptions.get(name, ()))

    def mentions(self, low: str) -> list[re.Match]:
        """Word-for-word mentions of referable names in lower-case ``low``, in order (longest match wins)."""
        return list(self._noun_re.finditer(low))

    @cached_property
    def canonical(self) -> dict[str, str]:
        """Every referable phrase (lower case) -> its canonical name."""
        out: dict[str, str] = {}
        for name, synonyms in self.kinds.items():
            for phrase in (name, *synonyms):
                out.setdefault(phrase.lower(), name)
        return out

    @cached_property
    def _noun_re(self) -> re.Pattern:
        return re.compile(r"(?<![a-z])(?:" + _alternation(self.canonical) + r")(?![a-z])")

    @cached_property
    def _colour_re(self) -> re.Pattern:
        return re.compile(r"(?<![a-z])(?P<colour>" + _alternation(self.colours) + r")\s+$")

    @cached_property
    def _position_re(self) -> re.Pattern:
        return re.compile(r"\s+(?:on|in|at|to)\s+the\s+(?P<pos>" + _alternation(self.positions) + r")(?![a-z-])")


class ObjectNotInImageError(ValueError):
    """The instruction names an object the picture does not hold (a user's mistake, said plainly)."""

    def __init__(self, named: str, present: list[str]) -> None:
        self.named, self.present = named, list(present)
        here = ", ".join(self.present) if self.present else "none that I recognise"
        super().__init__(f"There is no {named} in this picture; the objects here are: {here}. "
                         "Name one of them, or describe a change to the whole scene.")


@dataclass
class ReferencedObject:
    """The object an instruction refers to. ``attributes`` holds canonical ``colour`` / ``position``."""

    name: str | None
    phrase: str
    attributes: dict[str, str] = field(default_factory=dict)
    box: tuple[int, int, int, int] | None = None
    source: str = "parser"

    def to_token(self) -> str:
        return serialize_object_token(self)


def _alternation(words: Mapping[str, Any] | tuple[str, ...]) -> str:
    return "|".join(re.escape(w) for w in sorted((w.lower() for w in words), key=len, reverse=True)) or "(?!)"


def _empty() -> ReferencedObject:
    return ReferencedObject(name=None, phrase="")


def extract_referenced_object(instruction: str, vocabulary: Vocabulary | None = None) -> ReferencedObject:
    """Find the object ``instruction`` refers to; ``name=None`` and ``phrase=""`` when there is none."""
    if not isinstance(instruction, str) or not instruction.strip():
        return _empty()
    text = " ".join(instruction.split())  # collapse whitespace; offsets below index this string
    low = text.lower()
    if vocabulary is not None:
        return _with_vocabulary(text, low, vocabulary)
    return _heuristic(text, low)


def _with_vocabulary(text: str, low: str, vocab: Vocabulary, m: re.Match | None = None) -> ReferencedObject:
    m = m or vocab._noun_re.search(low)
    if m is None:
        return _empty()
    start, end = m.span()
    attrs: dict[str, str] = {}
    c = vocab._colour_re.search(low, 0, start)
    if c is not None:
        attrs["colour"] = vocab.colours[c.group("colour")]
        start = c.start()
    p = vocab._position_re.match(low, end)
    if p is not None:
        attrs["position"] = vocab.positions[p.group("pos")]
        end = p.end()
    d = re.search(r"(?<![a-z])(?:" + "|".join(DETERMINERS) + r")\s+$", low[:start])
    if d is not None:
        start = d.start()
    return ReferencedObject(name=vocab.canonical[m.group(0)], phrase=text[start:end], attributes=attrs)


def reference_at(low: str, vocabulary: Vocabulary, mention: re.Match) -> ReferencedObject:
    """The reference around one of ``vocabulary.mentions(low)`` (its colour and position words included)."""
    return _with_vocabulary(low, low, vocabulary, mention)


def trigger_noun_phrase(low: str) -> ReferencedObject | None:
    """The noun phrase right after a hypothetical trigger ("what if the vase ..."), or None (general English)."""
    for m in _TRIGGER.finditer(low):
        ref = _noun_phrase(low, low, m)
        if ref is not None:
            return ref
    return None


def _heuristic(text: str, low: str) -> ReferencedObject:
    for m in [*_TRIGGER.finditer(low), *_FALLBACK.finditer(low)]:
        ref = _noun_phrase(text, low, m)
        if ref is not None:
            return ref
    return _empty()


def _noun_phrase(text: str, low: str, m: re.Match) -> ReferencedObject | None:
    words: list[str] = []
    pos = m.start("rest")
    tokens = list(re.finditer(r"[a-z][a-z'-]*", low[pos:m.end("rest")]))
    for i, w in enumerate(tokens):
        word = w.group(0)
        nxt = tokens[i + 1].group(0) if i + 1 < len(tokens) else None
        # a participle ends the phrase unless a noun follows it ("the drinking glass", "a potted plant")
        participle = words and word.endswith(("ed", "ing")) and word not in _NOT_VERBS and (
            nxt is None or nxt in _STOP or nxt in DETERMINERS or nxt.endswith("ly"))
        if word in _STOP or word in DETERMINERS or participle:
            break
        words.append(word)
        pos = m.start("rest") + w.end()
        if len(words) == 5:
            break
    while words and words[-1] in ("of", "'s"):
        words.pop()
    if not words or words[0] in _PRONOUNS:
        return None
    attrs: dict[str, str] = {}
    if words[0] in DEFAULT_COLOURS and len(words) > 1:
        attrs["colour"] = DEFAULT_COLOURS[words.pop(0)]
    if words[-1] in _GENERIC or words[0] in _GENERIC:
        return None
    end = pos
    p = _POSITION_RE.match(low, pos)
    if p is not None:
        attrs["position"] = DEFAULT_POSITIONS[p.group("pos")]
        end = p.end()
    return ReferencedObject(name=" ".join(words), phrase=text[m.start("det"):end], attributes=attrs)


def serialize_object_token(obj: ReferencedObject | None) -> str:
    """``"<obj> red apple | left </obj>"``; ``"<obj> </obj>"`` when no object was found."""
    name = getattr(obj, "name", None)
    if not name:
        return "<obj> </obj>"
    attrs = getattr(obj, "attributes", None) or {}
    head = " ".join(x for x in (attrs.get("colour"), name) if x)
    pos = attrs.get("position")
    return f"<obj> {head} | {pos} </obj>" if pos else f"<obj> {head} </obj>"
