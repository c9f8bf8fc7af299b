"""Reading people's wording: normalisation, the pinned pretrained table, the InstructionReader, binding to the
picture's objects (and refusing absent ones), the richer synth language and the free-form benchmark's scenes."""

from __future__ import annotations

import dataclasses
import random

import pytest
import torch

from reasonbrain.binding import BIND_THRESHOLD, PhraseSimilarity, SceneEntry, bind_instruction
from reasonbrain.pretrained_words import TABLES, PinnedFile, load_table, tokenizer_file
from reasonbrain.referring import ObjectNotInImageError
from reasonbrain.synthworld import VOCABULARY
from reasonbrain.text import normalize_instruction
from tests.conftest import tiny_config

TABLE = "wordllama-l2-supercat-256"
KITCHEN = [SceneEntry("glass", "blue", "left"), SceneEntry("apple", "red", "centre"), SceneEntry("apple", "green", "right")]


@pytest.fixture(scope="module")
def similarity():
    return PhraseSimilarity(TABLE)


def test_normalisation_is_what_parser_and_model_read():
    assert normalize_instruction("  What\u00a0if the ICE CUBE\u2019s\u2026  melted?? ") == "what if the ice cube's... melted??"
    assert normalize_instruction("\u201cLight\u201d the \uff43andle \u2014 now") == '"light" the candle - now'
    with pytest.raises(ValueError, match="must be a string"):
        normalize_instruction(None)


def test_pinned_table_is_checked(monkeypatch):
    table = load_table(TABLE)
    assert table.shape == (32000, 256) and not table.flags.writeable
    bad = dataclasses.replace(TABLES[TABLE], tokenizer=PinnedFile(TABLES[TABLE].tokenizer.path, "0" * 64))
    monkeypatch.setitem(TABLES, "bad", bad)
    with pytest.raises(ValueError, match="sha256.*reinstall, pip install wordllama==0.4.0.post1"):
        tokenizer_file("bad")
    monkeypatch.setitem(TABLES, "old", dataclasses.replace(TABLES[TABLE], version="0.0.1"))
    with pytest.raises(ValueError, match="was made with wordllama 0.0.1, found 0.4.0.post1"):
        tokenizer_file("old")
    with pytest.raises(ValueError, match="unknown pretrained table"):
        load_table("nope")


@pytest.mark.parametrize("text, name, attrs", [
    ("What would happen if the red apple were left for weeks?", "apple", {"colour": "red"}),
    ("WHAT IF THE APPLE ON THE RIGHT ROTTED", "apple", {"position": "right"}),
    ("what if the tumbler fell", "glass", {}),  # a synonym, word for word
    ("what if the glass of water got knocked over", "glass", {}),
    ("so the round fruit in the middle sat for a month", "apple", {"position": "centre"}),  # a description
    ("what would this place look like at night?", "sky", {}),  # the scene itself
])
def test_binding_names_synonyms_descriptions_and_the_scene(similarity, text, name, attrs):
    ref = bind_instruction(text, VOCABULARY, KITCHEN, similarity)
    assert ref.name == name
    assert ref.attributes == attrs


def test_binding_without_a_noun_phrase_leaves_the_whole_instruction_to_the_model(similarity):
    assert bind_instruction("make it night", VOCABULARY, KITCHEN, similarity).name is None


@pytest.mark.parametrize("text, named", [
    ("What if the candle were lit?", "candle"),  # a world object this picture lacks
    ("What would happen if the cheetah were left in the snow?", "cheetah"),  # not a world object at all
    ("What if the vase fell off the table?", "vase"),
])
def test_absent_objects_are_refused_with_what_is_here(similarity, text, named):
    with pytest.raises(ObjectNotInImageError) as err:
        bind_instruction(text, VOCABULARY, KITCHEN, similarity)
    assert err.value.named == named
    assert str(err.value).startswith(f"There is no {named} in this picture; the objects here are: blue glass (left), "
                                     "red apple (centre), green apple (right).")


def test_a_picture_with_none_of_the_worlds_objects_refuses_nothing(similarity):
    """A photo: the recogniser is sure of nothing, so "There is no cheetah in this picture" would be false."""
    text = "What would happen if the cheetah were left in the snow?"
    unsure = [SceneEntry("banana", "brown", "right", confident=False)]
    for scene in ([], unsure):
        assert bind_instruction(text, VOCABULARY, scene, similarity) == bind_instruction(text, VOCABULARY, None,
                                                                                          similarity)
    assert bind_instruction("What if the glass fell?", VOCABULARY, [], similarity).name == "glass"


def test_a_present_object_wins_over_an_absent_one(similarity):
    ref = bind_instruction("The candle fell and knocked the glass over.", VOCABULARY, KITCHEN, similarity)
    assert ref.name == "glass"


def test_threshold_separates_unknown_everyday_objects(similarity):
    world = {n: VOCABULARY.phrases(n) for n in set(VOCABULARY.canonical.values())}
    for thing in ("lamp", "shoe", "clock", "bicycle", "cat", "spoon", "television", "pillow", "hat", "kettle", "sofa",
                  "fork"):  # the calibration list in reasonbrain.binding
        assert similarity.best(thing, world)[1] < BIND_THRESHOLD, thing


def test_without_a_scene_the_parser_alone_reads_normalised_text():
    ref = bind_instruction("WHAT IF THE ICE CUBE MELTED", VOCABULARY, None, None)
    assert ref.name == "ice cube" and ref.phrase == "the ice cube"


def test_rephrase_keeps_held_out_families_out_of_training():
    from reasonbrain.synthworld import language

    rng = random.Random(0)
    train = [language.rephrase(transformation=t, ref="the apple", rng=rng, split="train")
             for t in ("apple_rot", "candle_light", "sky_night", "egg_drop") for _ in range(300)]
    low = " ".join(normalize_instruction(t) for t in train)
    for held in ("could you show what happens if", "here's the story", "i want ", "can you "):
        assert held not in low
    for tid in ("apple_rot", "candle_light"):
        assert normalize_instruction(language.CONDITION_PARAPHRASES[tid][-1]) not in low
    test = " ".join(normalize_instruction(language.rephrase(transformation="apple_rot", ref="the apple", rng=rng,
                                                            split="test")) for _ in range(300))
    assert "could you show what happens if" in test or "picture " in test


def test_story_transformations_are_told_many_ways_with_the_last_of_each_held_out():
    from reasonbrain.synthworld import language
    from reasonbrain.synthworld.world import TRANSFORMATIONS

    rng = random.Random(1)
    for tr in (t for t in TRANSFORMATIONS if t.stories):
        assert len(language.STORY_PARAPHRASES[tr.id]) >= 5, tr.id
        ref = "the thing"
        train = {normalize_instruction(language.rephrase(transformation=tr.id, ref=ref, rng=rng, split="train"))
                 for _ in range(400)}
        held = normalize_instruction(language.STORY_PARAPHRASES[tr.id][-1].format(ref=ref)).rstrip(".")
        assert not any(held in t for t in train), tr.id
        told = [normalize_instruction(s.format(ref=ref)).rstrip(".") for s in language.STORY_PARAPHRASES[tr.id][:-1]]
        assert sum(any(s in t for t in train) for s in told) >= len(told) - 1, tr.id  # the paraphrases are used
        if tr.id in language.COMMANDS:  # an outcome of its own: other families too
            assert any(normalize_instruction(c.format(ref=ref)) in " ".join(train)
                       for c in language.COMMANDS[tr.id][:-1]), tr.id


def test_reader_model_round_trips_and_feeds_the_mllm(tmp_path):
    from reasonbrain.models.instruction_reader import InstructionReader
    from reasonbrain.models.reasonbrain import ReasonBrainModel

    torch.manual_seed(0)
    cfg = tiny_config(text_encoder={"pretrained_table": TABLE, "pretrained_model_name_or_path": None,
                                    "config": {"hidden_size": 32, "num_layers": 1, "num_heads": 4, "max_length": 24},
                                    "max_length": 24})
    model = ReasonBrainModel.from_config(cfg).eval()
    assert isinstance(model.text_encoder, InstructionReader) and model.reads_normalized_text
    hidden, padding = model.encode_text(["What if the ICE cube melted?", ""])
    assert hidden.shape == (2, 24, 32) and padding[1, 1:].all() and not padding[1, 0]
    same, _ = model.encode_text(["what if the ice cube melted?", ""])
    assert torch.allclose(hidden, same)  # it reads normalised text
    model.save_pretrained(tmp_path / "ckpt")
    assert not any("table" in k for k in __import__("safetensors.torch").torch.load_file(
        str(next((tmp_path / "ckpt" / "text_encoder").glob("*.safetensors")))))  # referenced, not copied
    loaded = ReasonBrainModel.from_pretrained(tmp_path / "ckpt")
    again, _ = loaded.encode_text(["What if the ICE cube melted?", ""])
    assert torch.allclose(hidden, again, atol=1e-6)
    # the reader's states stand for the instruction in the MLLM sequence
    ia = torch.randn(1, 4, model.mllm.hidden_size)
    states = torch.randn(1, 5, model.mllm.hidden_size)
    keep = torch.tensor([[True, True, True, False, False]])
    seq = model.mllm.build_sequence(["ignored"], ia, instruction_embeds=(states, keep))
    placed = seq["inputs_embeds"][0][seq["input_ids"][0] == model.mllm.placeholder_id]
    assert torch.equal(placed[4:], states[0])
    assert seq["attention_mask"][0].sum() == seq["attention_mask"].shape[1] - 2


def test_reader_with_an_mlp_into_the_mllm_space_round_trips(tmp_path):
    from reasonbrain.models.reasonbrain import ReasonBrainModel

    torch.manual_seed(0)
    cfg = tiny_config(text_encoder={"pretrained_table": TABLE, "pretrained_model_name_or_path": None,
                                    "config": {"hidden_size": 32, "num_layers": 1, "num_heads": 4, "max_length": 24,
                                               "llm_mlp": 48}, "max_length": 24})
    model = ReasonBrainModel.from_config(cfg).eval()
    assert isinstance(model.text_encoder.to_llm, torch.nn.Sequential)
    embeds, keep = model.instruction_embeds(*model.encode_text(["melt the ice"]))
    assert embeds.shape == (1, 24, model.mllm.hidden_size) and keep[0, :3].all()
    model.save_pretrained(tmp_path / "ckpt")
    again, _ = ReasonBrainModel.from_pretrained(tmp_path / "ckpt").instruction_embeds(*model.encode_text(["melt the ice"]))
    assert torch.allclose(embeds, again, atol=1e-6)


def test_freeform_benchmark_covers_the_world_and_builds_its_scenes():
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
    import freeform_eval

    from reasonbrain.synthworld.dataset import sample_matching
    from reasonbrain.synthworld.world import CATEGORIES, TRANSFORMATIONS

    items = freeform_eval.load_items()
    assert len(items) >= 200
    assert {t.id for t in TRANSFORMATIONS} <= {i.transformation for i in items if not i.absent}
    absent = [i for i in items if i.absent]
    assert len(absent) >= 20
    styles = {i.style for i in items}
    assert {"colour", "position", "synonym", "description", "story", "terse", "noisy", "absent"} <= styles
    for item in items[:: max(1, len(items) // 40)] + absent[:5]:
        s = sample_matching(item.transformation, f"freeform:{item.id}", colour=item.colour, position=item.position,
                            exclude=item.exclude)
        kinds = {o.kind for o in s.record.scene.objects}
        assert not kinds & set(item.exclude)
        if item.colour:
            assert s.record.target.colour == item.colour
        if item.position:
            assert s.record.target.position == item.position
        assert s.record.category in CATEGORIES


def test_scene_recogniser_round_trips_and_drives_binding(tmp_path):
    from reasonbrain.models.reasonbrain import ReasonBrainModel
    from reasonbrain.models.scene_recogniser import SceneRecogniser
    from reasonbrain.pipelines.pipeline_reasonbrain import ReasonBrainEditPipeline

    torch.manual_seed(0)
    model = ReasonBrainModel.from_config(tiny_config(recogniser={"object_names": ["apple", "glass"]},
                                                     defaults={"referring_vocabulary": "synthworld"})).eval()
    assert isinstance(model.recogniser, SceneRecogniser)
    with torch.no_grad():  # the apple reads as present (far left), the glass as absent
        model.recogniser.classify.weight.zero_()
        model.recogniser.classify.bias.copy_(torch.tensor([4.0, -4.0]))
    model.save_pretrained(tmp_path / "ckpt")
    pipe = ReasonBrainEditPipeline.from_pretrained(tmp_path / "ckpt")
    image = torch.zeros(3, 64, 64)
    with torch.no_grad():
        found = pipe.model.recogniser(image[None])
    assert found.probabilities.shape == (1, 2) and float(found.probabilities[0, 0]) > 0.98
    out = pipe(PIL_image(), "What if the apple rotted?", seed=0, num_inference_steps=1)
    assert out.referenced_object.name == "apple"
    # names only: the recogniser's coarse cells are too unreliable to tell a user where or what colour
    assert out.to_dict()["scene_objects"] == [{"name": "apple", "colour": None, "position": None, "confident": True}]
    with pytest.raises(ObjectNotInImageError, match=r"There is no glass in this picture; the objects here are: apple\."):
        pipe(PIL_image(), "What if the glass fell?", seed=0, num_inference_steps=1)


def PIL_image():
    from PIL import Image

    return Image.new("RGB", (64, 64), (120, 160, 90))


def test_the_reasoning_panel_names_what_the_model_sees():
    """The panel's line, for today's names-only entries and for steps stored with colour and position before."""
    from app import render

    names_only = [{"name": "ice cube", "colour": None, "position": None, "confident": True},
                  {"name": "log", "colour": None, "position": None, "confident": True}]
    assert "**Objects the model sees:** ice cube, log" in render.object_markdown({"scene_objects": names_only})
    stored = [{"name": "apple", "colour": "red", "position": "left", "confident": True}]
    assert "**Objects the model sees:** red apple (left)" in render.object_markdown({"scene_objects": stored})
    assert "**Objects the model sees:** none it recognises" in render.object_markdown({"scene_objects": []})
    assert "Objects the model sees" not in render.object_markdown({})  # a model without a recogniser
