"""The reason-then-edit mode on tiny random components of the real classes (LLaVA, SAM 2, InstructPix2Pix's UNet,
VAE and CLIP text encoder), offline on CPU; a scripted MLLM answer where the answer must be fixed."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import PIL.Image
import pytest
import torch

from reasonbrain.configuration import REASON_THEN_EDIT_MODE, ReasonBrainConfig
from reasonbrain.edit_mask import (
    BOX,
    BOX_PROMPT,
    BOX_REGION,
    OBJECT_REGION,
    WHOLE_IMAGE,
    box_mask,
    choose_object_mask,
    latent_edit_area,
)
from reasonbrain.image_io import load_image
from reasonbrain.models.reasoner import StructuredReasoner
from reasonbrain.pipelines.latent_blend import LatentBlend
from reasonbrain.pipelines.reason_then_edit import ReasonThenEditPipeline, build_editor
from reasonbrain.reasoning_prompt import (
    FROM_MLLM,
    FROM_RAW_INSTRUCTION,
    parse_reasoned_edit,
    structured_prompt,
)
from reasonbrain.regions import finalize_regions
from reasonbrain.schedulers import SCHEDULERS

from .conftest import tiny_config

INSTRUCTION = "What would happen if the cheetah were caught in heavy rain?"
GOOD_ANSWER = ("Object: the cheetah\nBox: [0.25, 0.25, 0.75, 0.75]\n"
               "Outcome: The cheetah's fur is soaked and dripping with rain.\n"
               "Edit: make the cheetah's fur soaking wet with rain drops")


def _package_folder(package: str, *parts: str) -> Path | None:
    """A package's data folder, found without importing the package (gradio and scikit-image import slowly)."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return None
    folder = Path(next(iter(spec.submodule_search_locations)), *parts)
    return folder if folder.is_dir() else None


GRADIO_IMAGES = _package_folder("gradio", "media_assets", "images")
SKIMAGE_DATA = _package_folder("skimage", "data")
PHOTOS = ([pytest.param(GRADIO_IMAGES / n, id=f"gradio-{n}") for n in
           ("cheetah.jpg", "bus.png", "tower.jpg", "groot.jpeg", "hf-logo_transpng.png")] if GRADIO_IMAGES else []) + (
    [pytest.param(SKIMAGE_DATA / n, id=f"skimage-{n}") for n in
     ("astronaut.png", "chelsea.png", "coffee.png", "rocket.jpg", "camera.png", "hubble_deep_field.jpg")]
    if SKIMAGE_DATA else [])


class ScriptedReasoner(StructuredReasoner):
    """The tiny MLLM with a fixed answer; it records the prompt sequences it was given."""

    def __init__(self, reasoner: StructuredReasoner, script: str) -> None:
        super().__init__(mllm=reasoner.mllm, max_new_tokens=reasoner.max_new_tokens)
        self.script = script
        self.sequences: list[dict[str, torch.Tensor]] = []

    def generate(self, sequence):
        self.sequences.append(sequence)
        return self.script


class BoxRegions:
    """A region proposer with one object region: the given normalised box (and the background)."""

    max_regions = 8

    def __init__(self, box):
        self.box = box

    def __call__(self, image):
        return finalize_regions(box_mask(self.box, image.size)[None], torch.ones(1), label_prefix="region")


@pytest.fixture(scope="module")
def tiny_pipeline():
    torch.manual_seed(0)
    return ReasonThenEditPipeline.from_config(tiny_config())


def with_parts(pipe, *, answer=None, proposer=None, **settings):
    """The pipeline with a scripted answer, another region proposer or other reason_then_edit settings."""
    config = pipe.config.replace(reason_then_edit=settings) if settings else pipe.config
    reasoner = ScriptedReasoner(pipe.reasoner, answer) if answer is not None else pipe.reasoner
    return ReasonThenEditPipeline(config=config, reasoner=reasoner, region_proposer=proposer or pipe.region_proposer,
                                  editor=pipe.editor)


def photo(size=(64, 64)) -> PIL.Image.Image:
    if GRADIO_IMAGES is None:
        rng = np.random.default_rng(0)
        return PIL.Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8))
    return load_image(GRADIO_IMAGES / "cheetah.jpg").resize(size, PIL.Image.Resampling.BICUBIC)


# --- the prompt in each real preset's chat format -----------------------------------------------------------------
@pytest.mark.parametrize("preset, expected", [
    ("reasonbrain-7b", "USER: <image>\n{} ASSISTANT:"),
    ("reasonbrain-3b", "<|user|>\n<image>\n{}<|end|>\n<|assistant|>\n"),
])
def test_prompt_is_built_from_each_real_presets_template(preset, expected):
    mc = ReasonBrainConfig.from_preset(preset).mllm
    torch.manual_seed(0)
    reasoner = StructuredReasoner.from_config(tiny_config(mllm={"chat_template": mc.chat_template,
                                                                "user_message": mc.user_message}))
    prompt = structured_prompt(INSTRUCTION)
    assert reasoner.prompt_text(INSTRUCTION) == expected.format(prompt)
    assert INSTRUCTION in prompt and all(f"\n{k}: " in prompt for k in ("Object", "Box", "Outcome", "Edit"))
    ia_tokens = reasoner.encode_image(torch.zeros(1, 3, 64, 64))
    sequence = reasoner.sequence(ia_tokens, INSTRUCTION)
    layout, tok = reasoner.mllm.prompt, reasoner.mllm.tokenizer
    n_visual = ia_tokens.shape[1]
    assert sequence["input_ids"][0].tolist() == (
        layout.lead + [reasoner.mllm.placeholder_id] * n_visual + layout.between
        + tok.encode(prompt, add_special_tokens=False) + layout.tail)
    assert bool(sequence["attention_mask"].all())


def test_an_overlong_instruction_is_refused_not_cut(tiny_pipeline):
    with pytest.raises(ValueError, match="reasoning prompt .* tokens long"):
        tiny_pipeline.reasoner.check_prompt("rain " * 2000)
    with pytest.raises(ValueError, match="empty"):
        tiny_pipeline(photo(), "   ")


# --- parsing good, partial and junk answers -----------------------------------------------------------------------
def test_a_good_answer_gives_every_field():
    parsed = parse_reasoned_edit(GOOD_ANSWER, INSTRUCTION)
    assert parsed.object == "cheetah"
    assert parsed.box == (0.25, 0.25, 0.75, 0.75)
    assert parsed.outcome == "The cheetah's fur is soaked and dripping with rain."
    assert parsed.edit_instruction == "make the cheetah's fur soaking wet with rain drops"
    assert parsed.edit_instruction_source == FROM_MLLM
    assert parsed.found == ("object", "box", "outcome", "edit") and parsed.notes == []


@pytest.mark.parametrize("answer, fields", [
    ("**Object:** ice cube\n**Box:** none\n**Outcome**: It melts.\n- Edit instruction: \"melt the ice cube\"\nDone!",
     {"object": "ice cube", "box": None, "outcome": "It melts.", "edit_instruction": "melt the ice cube"}),
    ("1. Object: the apple; 2. Box: 10%, 20%, 50%, 60%; 3) Edit: make the apple rotten",
     {"object": "apple", "box": (0.1, 0.2, 0.5, 0.6), "outcome": None, "edit_instruction": "make the apple rotten"}),
    ('```json\n{"object": "glass", "box": [0.6, 0.1, 0.2, 0.4], "edit_instruction": "shatter the glass"}\n```',
     {"object": "glass", "box": (0.2, 0.1, 0.6, 0.4), "edit_instruction": "shatter the glass"}),
    ("OBJECT = candle\nEDIT = \nOutcome: the candle burns down.",
     {"object": "candle", "outcome": "the candle burns down.", "edit_instruction": INSTRUCTION}),
])
def test_partial_answers_are_read_leniently(answer, fields):
    parsed = parse_reasoned_edit(answer, INSTRUCTION)
    for name, value in fields.items():
        assert getattr(parsed, name) == value, name
    assert parsed.edit_instruction_source == (FROM_MLLM if "edit" in parsed.found else FROM_RAW_INSTRUCTION)


def test_a_missing_edit_falls_back_to_the_raw_instruction_visibly():
    parsed = parse_reasoned_edit("Object: candle\nOutcome: the candle burns down.", INSTRUCTION)
    assert parsed.edit_instruction == INSTRUCTION and parsed.edit_instruction_source == FROM_RAW_INSTRUCTION
    assert any("raw instruction" in note for note in parsed.notes)


def test_an_unusable_box_is_ignored_and_said():
    parsed = parse_reasoned_edit("Object: cup\nBox: [12, 40, 300, 310]\nEdit: fill the cup", INSTRUCTION)
    assert parsed.box is None and parsed.edit_instruction == "fill the cup"
    assert any("box was ignored" in note and "outside 0 to 1" in note for note in parsed.notes)
    assert parse_reasoned_edit("Box: [0.5, 0.5, 0.5, 0.9]", INSTRUCTION).box is None  # no area


@pytest.mark.parametrize("answer", [
    "", "   ", "::::::::::::", "I cannot help with that.", "{not json", "Sure! Here is the answer.",
    "Object: the object in the picture that the instruction is about\nEdit: none",  # the template echoed back
])
def test_junk_answers_give_nothing_and_fall_back(answer):
    parsed = parse_reasoned_edit(answer, INSTRUCTION)
    assert (parsed.object, parsed.box, parsed.outcome) == (None, None, None)
    assert parsed.edit_instruction == INSTRUCTION and parsed.edit_instruction_source == FROM_RAW_INSTRUCTION


# --- the mask choice ------------------------------------------------------------------------------------------------
def _regions(*boxes, size=(64, 64)):
    masks = torch.stack([box_mask(b, size) for b in boxes]) if boxes else torch.zeros(0, size[1], size[0], dtype=bool)
    return finalize_regions(masks, torch.ones(len(boxes)), label_prefix="region")


def _never(_regions):
    raise AssertionError("no region scores are needed here")


def test_a_box_picks_the_region_it_overlaps_most():
    regions = _regions((0.0, 0.0, 0.4, 0.4), (0.5, 0.5, 1.0, 1.0))
    chosen = choose_object_mask((64, 64), box=(0.45, 0.5, 1.0, 1.0), object_name="cat", regions=regions,
                                scores=_never, min_iou=0.5)
    assert (chosen.source, chosen.region, chosen.note) == (BOX_REGION, 1, None)
    assert torch.equal(chosen.mask, regions.masks[1])


def test_a_box_no_region_matches_is_the_mask_itself():
    regions = _regions((0.0, 0.0, 0.3, 0.3))
    chosen = choose_object_mask((64, 64), box=(0.5, 0.5, 0.9, 0.8), object_name=None, regions=regions,
                                scores=_never, min_iou=0.5)
    assert chosen.source == BOX and chosen.region is None and "box itself" in chosen.note
    assert torch.equal(chosen.mask, box_mask((0.5, 0.5, 0.9, 0.8), (64, 64)))
    assert int(chosen.mask.sum()) == round(0.4 * 64) * round(0.3 * 64)


def test_without_a_box_the_object_picks_the_best_scored_region():
    regions = _regions((0.0, 0.0, 0.4, 0.4), (0.5, 0.5, 1.0, 1.0), (0.0, 0.5, 0.4, 1.0))
    chosen = choose_object_mask((64, 64), box=None, object_name="cat", regions=regions,
                                scores=lambda r: torch.tensor([0.1, -0.2, 0.7]), min_iou=0.5)
    assert (chosen.source, chosen.region) == (OBJECT_REGION, 2) and "'cat'" in chosen.note
    assert torch.equal(chosen.mask, regions.masks[2])


@pytest.mark.parametrize("name, boxes", [(None, ((0.0, 0.0, 0.4, 0.4),)), ("cat", ())])
def test_neither_box_nor_matched_region_edits_the_whole_image(name, boxes):
    chosen = choose_object_mask((64, 48), box=None, object_name=name, regions=_regions(*boxes, size=(64, 48)),
                                scores=_never, min_iou=0.5)
    assert chosen.source == WHOLE_IMAGE and bool(chosen.mask.all()) and tuple(chosen.mask.shape) == (48, 64)
    assert "whole picture" in chosen.note


def test_the_edited_area_is_the_mask_on_the_latent_grid_dilated():
    mask = box_mask((0.5, 0.5, 0.75, 0.75), (64, 64))  # pixels 32..47
    area = latent_edit_area(mask, (32, 32), dilation=0)
    assert area.shape == (1, 1, 32, 32) and int(area.sum()) == 8 * 8
    assert int(latent_edit_area(mask, (32, 32), dilation=2).sum()) == 12 * 12


# --- latent blending and the pixels outside the mask ------------------------------------------------------------------
def test_latents_outside_the_area_end_exactly_at_the_source_latents():
    torch.manual_seed(0)
    editor = build_editor(tiny_config())
    editor.set_progress_bar_config(disable=True)
    image = photo()
    pixels = editor.image_processor.preprocess(image)
    with torch.no_grad():
        source = editor.vae.encode(pixels).latent_dist.mode() * editor.vae.config.scaling_factor  # (1, 4, 32, 32)
    area = latent_edit_area(box_mask((0.25, 0.25, 0.5, 0.5), (64, 64)), (32, 32), dilation=1)
    blend = LatentBlend(source, area, torch.randn(source.shape, generator=torch.Generator().manual_seed(1)))
    seen = []

    def record(pipe, step, t, tensors):
        out = blend(pipe, step, t, tensors)
        seen.append(out["latents"])
        return out

    latents = editor("make it red", image=image, num_inference_steps=3, generator=torch.Generator().manual_seed(0),
                     callback_on_step_end=record, output_type="latent").images
    outside = area.expand_as(source) == 0
    assert torch.equal(latents[outside], source[outside])
    assert not torch.allclose(latents[~outside], source[~outside], atol=1e-3)
    assert not torch.allclose(seen[0][outside], source[outside], atol=1e-3)  # still noisy before the last step


@pytest.mark.parametrize("scheduler", SCHEDULERS)
def test_every_offered_scheduler_edits_with_the_blend(tiny_pipeline, scheduler):
    pipe = with_parts(tiny_pipeline, answer=GOOD_ANSWER, proposer=BoxRegions((0.25, 0.25, 0.75, 0.75)))
    out = pipe(photo(), INSTRUCTION, num_inference_steps=2, seed=0, scheduler=scheduler)
    outside = ~out.edit_area.numpy()
    assert out.settings["scheduler"] == scheduler
    assert np.array_equal(np.asarray(out.images[0])[outside], np.asarray(photo())[outside])
    assert type(tiny_pipeline.editor.scheduler).__name__ == "EulerAncestralDiscreteScheduler"  # per call only


def test_pixels_outside_the_edited_area_stay_within_the_vae_round_trip_error(tiny_pipeline):
    pipe = with_parts(tiny_pipeline, answer=GOOD_ANSWER, proposer=BoxRegions((0.25, 0.25, 0.75, 0.75)),
                      keep_original_pixels=False)
    image = photo()  # at the working resolution: no resize on either side
    out = pipe(image, INSTRUCTION, num_inference_steps=2, seed=0)
    editor = pipe.editor
    with torch.no_grad():
        pixels = editor.image_processor.preprocess(image)
        round_trip = editor.vae.decode(editor.vae.encode(pixels).latent_dist.mode()).sample.clamp(-1, 1)
    source = np.asarray(image, dtype=np.float32) / 255.0
    trip = ((round_trip[0].permute(1, 2, 0).numpy() + 1) / 2).round(3)
    edited = np.asarray(out.images[0], dtype=np.float32) / 255.0
    outside = ~out.edit_area.numpy()
    assert 0.1 < outside.mean() < 0.9
    trip_error = np.abs(trip - source)[outside].mean()
    edit_error = np.abs(edited - source)[outside].mean()
    assert edit_error <= trip_error + 0.02, (edit_error, trip_error)
    assert np.abs(edited - source)[~outside].mean() > edit_error  # the edited area did change more


def test_with_keep_original_pixels_the_photo_is_untouched_outside_the_edited_area(tiny_pipeline):
    pipe = with_parts(tiny_pipeline, answer=GOOD_ANSWER, proposer=BoxRegions((0.25, 0.25, 0.75, 0.75)))
    image = photo((150, 100))
    out = pipe(image, INSTRUCTION, num_inference_steps=2, seed=0)
    edited, source = np.asarray(out.images[0]), np.asarray(image)
    outside = ~out.edit_area.numpy()
    assert out.images[0].size == (150, 100) and outside.shape == (100, 150) and 0.1 < outside.mean() < 0.9
    assert np.array_equal(edited[outside], source[outside])
    assert not np.array_equal(edited[~outside], source[~outside])


# --- the output's fields --------------------------------------------------------------------------------------------
def test_the_output_carries_the_reasoning_the_mask_and_the_mode(tiny_pipeline):
    scripted = with_parts(tiny_pipeline, answer=GOOD_ANSWER, proposer=BoxRegions((0.25, 0.25, 0.75, 0.75)))
    out = scripted(photo((96, 64)), INSTRUCTION, num_inference_steps=2, seed=3)
    assert out.mode == REASON_THEN_EDIT_MODE and out.seed == 3 and out.instruction == INSTRUCTION
    assert out.mllm_answer == GOOD_ANSWER
    assert out.referenced_object == "cheetah" and out.box == (0.25, 0.25, 0.75, 0.75)
    assert out.outcome == "The cheetah's fur is soaked and dripping with rain."
    assert out.edit_instruction == "make the cheetah's fur soaking wet with rain drops"
    assert out.edit_instruction_source == FROM_MLLM and out.mask_source == BOX_REGION and out.fallbacks == []
    assert tuple(out.mask.shape) == tuple(out.edit_area.shape) == (64, 96)
    assert bool((out.edit_area | ~out.mask).all()) and out.edit_area.sum() > out.mask.sum()  # dilated around it
    ids = scripted.reasoner.sequences[0]["input_ids"][0].tolist()  # the MLLM was asked the structured prompt
    body = scripted.reasoner.mllm.tokenizer.encode(structured_prompt(INSTRUCTION), add_special_tokens=False)
    assert any(ids[i : i + len(body)] == body for i in range(len(ids)))
    data = json.loads(out.to_json())
    assert data["mode"] == "reason_then_edit" and data["mask_source"] == "box_region"
    assert data["edit_instruction_source"] == "mllm" and data["outcome"] == out.outcome
    assert data["mask"]["size"] == [64, 96] and sum(data["mask"]["counts"]) == 64 * 96
    assert data["image_size"] == [96, 64] and data["settings"]["preset"] == "tiny"


def test_the_output_says_what_fell_back(tiny_pipeline):
    out = with_parts(tiny_pipeline, answer="I think it gets wet.")(photo(), INSTRUCTION, num_inference_steps=1, seed=0)
    assert out.edit_instruction == INSTRUCTION and out.edit_instruction_source == FROM_RAW_INSTRUCTION
    assert out.mask_source == WHOLE_IMAGE and bool(out.mask.all()) and bool(out.edit_area.all())
    assert len(out.fallbacks) == 2 and "raw instruction" in out.fallbacks[0] and "whole picture" in out.fallbacks[1]


# --- photos that packages ship, through the whole path -----------------------------------------------------------------
@pytest.mark.skipif(not PHOTOS, reason="neither gradio nor scikit-image ships its photos here")
@pytest.mark.parametrize("path", PHOTOS)
def test_package_photos_go_through_the_whole_path(tiny_pipeline, path):
    """The tiny MLLM's own (random) answer, the tiny SAM 2's regions (prompted with the box too), the tiny editor; the
    input's size restored."""
    source = load_image(path)
    out = tiny_pipeline(path, INSTRUCTION, num_inference_steps=2, seed=0)
    assert out.images[0].size == source.size and out.images[0].mode == "RGB"
    assert tuple(out.mask.shape) == tuple(out.edit_area.shape) == (source.height, source.width)
    assert out.regions is not None and out.regions.size == (64, 64)
    json.dumps(out.to_dict())
    boxed = with_parts(tiny_pipeline, answer=GOOD_ANSWER)(path, INSTRUCTION, num_inference_steps=1, seed=0)
    assert boxed.mask_source in (BOX_PROMPT, BOX_REGION, BOX) and boxed.images[0].size == source.size


# --- the mode is chosen, never switched silently ---------------------------------------------------------------------
def test_the_mode_is_declared_and_checked(tmp_path, tiny_pipeline):
    from reasonbrain.pipelines import load_edit_pipeline
    from reasonbrain.pipelines.pipeline_reasonbrain import ReasonBrainEditPipeline

    assert ReasonBrainConfig.from_preset("reasonbrain-7b").mode == "reasonbrain"
    assert ReasonBrainConfig.from_preset("reasonbrain-3b").reason_then_edit.editor == "timbrooks/instruct-pix2pix"
    with pytest.raises(ValueError, match="mode must be one of"):
        tiny_config(mode="edit_somehow")
    tiny_pipeline.save_pretrained(tmp_path / "rte")
    saved = ReasonBrainConfig.from_json_file(tmp_path / "rte" / "reasonbrain_config.json")
    assert saved.mode == REASON_THEN_EDIT_MODE
    with pytest.raises(ValueError, match="names no pretrained MLLM"):  # dispatched by the mode; tiny has no Hub MLLM
        load_edit_pipeline(tmp_path / "rte")
    with pytest.raises(ValueError, match="no trained ReasonBrain modules"):
        load_edit_pipeline(tmp_path / "rte", mode="reasonbrain")
    tiny_config().save(tmp_path / "rb")
    with pytest.raises(ValueError, match="declares mode 'reasonbrain'"):
        ReasonThenEditPipeline.from_pretrained(tmp_path / "rb")

    class Model:  # only the config is read before the refusal
        config = saved

    with pytest.raises(ValueError, match="declares mode 'reason_then_edit'"):
        ReasonBrainEditPipeline(model=Model())


# --- on a GPU: the 3B preset's real architectures (random weights) --------------------------------------------------
@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_real_size_reason_then_edit_on_gpu():
    config = ReasonBrainConfig.from_preset("reasonbrain-3b").replace(
        mllm={"tokenizer": "bundled"}, text_encoder={"tokenizer": "bundled", "tokenizer_subfolder": None})
    torch.manual_seed(0)
    pipe = ReasonThenEditPipeline.from_config(config).to("cuda", torch.float16)
    pipe = with_parts(pipe, answer=GOOD_ANSWER, proposer=BoxRegions((0.25, 0.25, 0.75, 0.75)))
    image = photo((768, 512))
    out = pipe(image, INSTRUCTION, num_inference_steps=2, seed=0)
    outside = ~out.edit_area.numpy()
    assert out.images[0].size == (768, 512) and out.mask_source == BOX_REGION
    assert np.array_equal(np.asarray(out.images[0])[outside], np.asarray(image)[outside])
    assert out.timings["total"] > 0 and pipe.device.type == "cuda"

