"""The deterministic referenced-object parser."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from reasonbrain.referring import (
    ReferencedObject,
    Vocabulary,
    extract_referenced_object,
    serialize_object_token,
)

REPO = Path(__file__).resolve().parents[1]


def test_does_not_import_synthworld():
    code = "import sys, reasonbrain.referring; assert not any(m.startswith('reasonbrain.synthworld') for m in sys.modules)"
    subprocess.run([sys.executable, "-c", code], cwd=REPO, check=True, timeout=60)


@pytest.mark.parametrize("text, name, attrs, phrase", [
    ("What would happen if the red apple on the left were left in the sun?", "apple",
     {"colour": "red", "position": "left"}, "the red apple on the left"),
    ("Imagine the ice cube in the middle sat on a windowsill.", "ice cube", {"position": "centre"}, "the ice cube in the middle"),
    ("Suppose a blue balloon were poked with a pin.", "balloon", {"colour": "blue"}, "a blue balloon"),
    ("What would become of the sheet of paper if it caught fire?", "sheet of paper", {}, "the sheet of paper"),
    ("What would happen to the old drinking glass if it fell?", "old drinking glass", {}, "the old drinking glass"),
    ("Picture the scene if the cat on the right were fed.", "cat", {"position": "right"}, "the cat on the right"),
    ("How would the weather change if it snowed?", "weather", {}, "the weather"),
])
def test_default_heuristic(text, name, attrs, phrase):
    ref = extract_referenced_object(text)
    assert (ref.name, ref.attributes, ref.phrase, ref.box, ref.source) == (name, attrs, phrase, None, "parser")


@pytest.mark.parametrize("text", ["", "   ", "Make it snowy", "What would happen if it rained?", "!!!", "Picture the scene.",
                                  "what if?", "é" * 500, "if the", "the the the", "\n\t", "<obj> </obj>"])
def test_no_object(text):
    for vocab in (None, Vocabulary(kinds={"apple": ("fruit",)})):
        ref = extract_referenced_object(text, vocab)
        assert ref.name is None and ref.phrase == ""


@pytest.mark.parametrize("junk", [None, 42, b"if the apple", ["the apple"], 3.5])
def test_never_raises_on_non_strings(junk):
    assert extract_referenced_object(junk).name is None  # type: ignore[arg-type]


def test_vocabulary_mode():
    vocab = Vocabulary(kinds={"ice cube": ("cube",), "ice cream": ("cone",), "apple": ()})
    ref = extract_referenced_object("What if the pink ice cream on the centre-right melted next to the ice cube?", vocab)
    assert ref.name == "ice cream" and ref.attributes == {"colour": "pink", "position": "centre-right"}
    assert ref.phrase == "the pink ice cream on the centre-right"
    assert extract_referenced_object("Suppose the cube were left out.", vocab).name == "ice cube"
    assert extract_referenced_object("What if the banana rotted?", vocab).name is None  # unknown object
    assert extract_referenced_object("What if the APPLE on the Left fell?", vocab).attributes == {"position": "left"}


def test_serialize_object_token():
    assert serialize_object_token(ReferencedObject("apple", "the red apple", {"colour": "red", "position": "left"})) \
        == "<obj> red apple | left </obj>"
    assert serialize_object_token(ReferencedObject("ice cube", "the ice cube")) == "<obj> ice cube </obj>"
    assert serialize_object_token(ReferencedObject(None, "")) == "<obj> </obj>"
    assert serialize_object_token(None) == "<obj> </obj>"
    assert ReferencedObject("ball", "", {"position": "centre"}).to_token() == "<obj> ball | centre </obj>"


def test_recovers_every_synth_target():
    from reasonbrain.synthworld import VOCABULARY, Renderer, generate_sample

    renderer = Renderer(64, supersample=1)  # images are irrelevant here
    n_heuristic = 0
    for i in range(400):
        rec = generate_sample(13, i, renderer=renderer).record
        ref = extract_referenced_object(rec.instruction, VOCABULARY)
        assert ref.phrase and ref.phrase.lower() in rec.instruction.lower(), rec.instruction
        assert rec.objects == [ref.name], (rec.instruction, ref)
        if rec.target.kind == "sky":
            continue
        matches = [o for o in rec.scene.objects if o.name == ref.name
                   and ref.attributes.get("colour", o.shown_colour) == o.shown_colour
                   and ref.attributes.get("position", o.position) == o.position]
        assert [o.position for o in matches] == [rec.target.position], (rec.instruction, ref)
        if rec.category != "story":  # the general-English heuristic also finds the noun phrase
            h = extract_referenced_object(rec.instruction)
            assert VOCABULARY.canonical.get(h.name) == ref.name, (rec.instruction, h)
            assert h.attributes == ref.attributes
            n_heuristic += 1
    assert n_heuristic > 200
