"""Binding an instruction to an object of the picture: by name, by similarity, or a plain "it is not here".

``bind_instruction(text, vocabulary, scene, similarity)``, with ``scene`` the objects the picture holds (from the
model's own scene recogniser at inference, from the record while training):

1. a word-for-word mention of a referable name (``vocabulary.mentions``) that the picture holds binds to it (the
   first such mention; colour and position words next to it become attributes);
2. mentions only of names the picture does not hold: ``ObjectNotInImageError`` ("There is no glass in this
   picture; the objects here are: ...");
3. no mention: the noun phrase the instruction is about (``referring`` heuristic) is compared, by the cosine of
   mean-pooled pretrained token embeddings (``PhraseSimilarity``), with every name, synonym and description of the
   picture's objects and of the scene itself ("this place", "the view"); the best one at ``BIND_THRESHOLD`` or
   above binds. A phrase after a hypothetical trigger ("what if the vase ...") that matches nothing in the picture
   is refused; a phrase found elsewhere is refused only when it matches nothing the world knows at all;
4. no noun phrase ("make it night", "what if it melted"): no object; the model reads the whole instruction.

``scene=None`` (a model without a recogniser): steps 1 and 3 over every name the world knows, and nothing is refused.
A scene without one confident entry (the recogniser is sure of none of the world's objects: a photo, say) is read
the same way: "there is no cheetah here" would be false; the app labels such pictures out of domain.

The text is read through ``normalize_instruction`` (the same normalisation the model's text side reads).
``BIND_THRESHOLD`` (0.4) was set on a calibration list of everyday objects that the world does not have (lamp,
shoe, clock, bicycle, cat, spoon, television, pillow, hat, kettle, sofa, fork: best match at most 0.35) against
the world's own descriptions; never on the free-form benchmark.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from reasonbrain.referring import (
    ObjectNotInImageError,
    ReferencedObject,
    Vocabulary,
    extract_referenced_object,
    reference_at,
    trigger_noun_phrase,
)
from reasonbrain.text import normalize_instruction

BIND_THRESHOLD = 0.4
NGRAM_THRESHOLD = 0.6  # stricter: every word n-gram of the text is tried


@dataclass(frozen=True)
class SceneEntry:
    """An object the picture holds: its canonical name, and colour / position words where known."""

    name: str
    colour: str | None = None
    position: str | None = None
    confident: bool = True  # False: possibly there (an instruction naming it is not refused), not listed as seen

    def describe(self) -> str:
        head = " ".join(x for x in (self.colour, self.name) if x)
        return f"{head} ({self.position})" if self.position else head


class PhraseSimilarity:
    """Cosine similarity of mean-pooled token embeddings from a pinned pretrained table."""

    def __init__(self, table: str) -> None:
        from tokenizers import Tokenizer

        from reasonbrain.pretrained_words import load_table, tokenizer_file

        self.tokenizer = Tokenizer.from_file(tokenizer_file(table))
        self.table = load_table(table)
        self.embed = lru_cache(maxsize=4096)(self._embed)

    def _embed(self, phrase: str) -> np.ndarray | None:
        ids = self.tokenizer.encode(normalize_instruction(phrase), add_special_tokens=False).ids
        if not ids:
            return None
        v = self.table[ids].mean(0)
        n = float(np.linalg.norm(v))
        return v / n if n > 0 else None

    def best(self, phrase: str, candidates: Mapping[str, Sequence[str]]) -> tuple[str | None, float]:
        """The candidate name whose best phrase is closest to ``phrase``, and that cosine."""
        e = self.embed(phrase)
        best_name, best_score = None, -1.0
        if e is None:
            return best_name, best_score
        for name, phrases in candidates.items():
            for p in phrases:
                v = self.embed(p)
                if v is not None and float(e @ v) > best_score:
                    best_name, best_score = name, float(e @ v)
        return best_name, best_score


_SKIP = frozenset("""a an the this that these those my your our his her their it its of on in at to by for and or but if
what would could should will can may might must was were is are be been being do does did how when then so now show me
let make give please just some any more much very really all left right centre center middle top bottom front back
""".split())


def _ngrams(low: str, n_max: int = 3) -> list[tuple[str, int, int]]:
    """(phrase, start, end) word n-grams of ``low`` that are not made only of function / position words."""
    words = [(m.group(0), m.start(), m.end()) for m in re.finditer(r"[a-z][a-z'-]*", low)]
    out = []
    for i in range(len(words)):
        for j in range(i + 1, min(i + n_max, len(words)) + 1):
            chunk = words[i:j]
            if chunk[0][0] in _SKIP or chunk[-1][0] in _SKIP:
                continue
            out.append((" ".join(w for w, _, _ in chunk), chunk[0][1], chunk[-1][2]))
    return out


def _attributes(low: str, start: int, end: int, vocabulary: Vocabulary) -> dict[str, str]:
    """Colour word right before ``low[start:end]`` and position phrase right after it."""
    attrs = {}
    c = vocabulary._colour_re.search(low, 0, start)
    if c is not None:
        attrs["colour"] = vocabulary.colours[c.group("colour")]
    p = vocabulary._position_re.match(low, end)
    if p is not None:
        attrs["position"] = vocabulary.positions[p.group("pos")]
    return attrs


def bind_instruction(text: str, vocabulary: Vocabulary, scene: Sequence[SceneEntry] | None,
                     similarity: PhraseSimilarity | None) -> ReferencedObject:
    """The object ``text`` is about, among ``scene`` (see the module docstring); ``scene=None``: the parser alone."""
    low = normalize_instruction(text)
    if scene is not None and not any(e.confident for e in scene):
        scene = None
    if scene is None and similarity is None:
        return extract_referenced_object(low, vocabulary)
    level = vocabulary.scene_level
    # without a scene every name the world knows is a candidate, and nothing is refused
    present = ({e.name for e in scene} if scene is not None else set(vocabulary.canonical.values())) | (
        {level} if level else set())
    mentions = vocabulary.mentions(low)
    for m in mentions:
        if vocabulary.canonical[m.group(0)] in present:
            return reference_at(low, vocabulary, m)
    listed = [e.describe() for e in scene if e.confident] if scene is not None else []
    if mentions:
        raise ObjectNotInImageError(mentions[0].group(0), listed)
    if similarity is None:
        return extract_referenced_object(low, None)
    # an object of the picture described in other words ("the snow sculpture", "the bananna")
    objects = {name: vocabulary.phrases(name) for name in present if name != level}
    best = (None, -1.0, 0, 0)
    for phrase, start, end in _ngrams(low):
        name, score = similarity.best(phrase, objects)
        if score > best[1]:
            best = (name, score, start, end)
    name, score, start, end = best
    if name is not None and score >= NGRAM_THRESHOLD:
        return ReferencedObject(name=name, phrase=low[start:end], attributes=_attributes(low, start, end, vocabulary),
                                source="similarity")
    # the subject after a hypothetical trigger: the scene itself ("this place"), or something the picture lacks
    subject = trigger_noun_phrase(low)
    if subject is None or not subject.name:
        return ReferencedObject(name=None, phrase="")
    name, score = similarity.best(subject.name, {n: vocabulary.phrases(n) for n in present})
    if score >= BIND_THRESHOLD:
        return ReferencedObject(name=name, phrase=subject.phrase, attributes=dict(subject.attributes),
                                source="similarity")
    if scene is None:
        return ReferencedObject(name=None, phrase="")
    raise ObjectNotInImageError(subject.name, listed)
