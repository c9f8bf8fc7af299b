"""SAM 2 prompted with the MLLM's box (``segment_box``) and the first step of edit_mask's rule, ``box_prompt``: the tiny
random-weight Sam2Model end to end, scripted proposer doubles for the rule, and the reason-then-edit pipeline."""

from __future__ import annotations

import json

import numpy as np
import PIL.Image
import pytest
import torch

from reasonbrain.edit_mask import (
    BOX,
    BOX_PROMPT,
    BOX_PROMPT_MIN_INSIDE,
    BOX_REGION,
    MASK_SOURCES,
    OBJECT_REGION,
    WHOLE_IMAGE,
    BoxPrompt,
    box_mask,
    choose_object_mask,
)
from reasonbrain.pipelines.reason_then_edit import ReasonThenEditPipeline
from reasonbrain.regions import RegionProposer, Sam2PackageRegionProposer, TransformersSam2RegionProposer
from reasonbrain.regions.container import BoxSegmenter

from .conftest import tiny_config
from .test_reason_then_edit import GOOD_ANSWER, INSTRUCTION, BoxRegions, photo, with_parts
from .test_regions import OPEN_FILTERS, TINY_SAM2_CONFIG, noise_image

BOX_OF_ANSWER = (0.25, 0.25, 0.75, 0.75)  # GOOD_ANSWER's box
INNER = (0.375, 0.375, 0.625, 0.625)  # a mask well inside it


# --- the tiny SAM 2 prompted with a box ----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def tiny_sam2() -> TransformersSam2RegionProposer:
    return TransformersSam2RegionProposer.from_config(
        TINY_SAM2_CONFIG, seed=0, points_per_side=4, points_per_batch=16, max_regions=8, **OPEN_FILTERS
    )


def test_tiny_sam2_segments_a_box_at_the_image_size(tiny_sam2):
    assert isinstance(tiny_sam2, BoxSegmenter) and isinstance(tiny_sam2, RegionProposer)
    image = noise_image(80, 48)
    mask, score = tiny_sam2.segment_box(image, BOX_OF_ANSWER)
    assert tuple(mask.shape) == (48, 80) and mask.dtype == torch.bool and mask.device.type == "cpu"
    assert isinstance(score, float) and 0.0 <= score <= 1.0
    again, score_again = tiny_sam2.segment_box(image, BOX_OF_ANSWER)
    assert torch.equal(mask, again) and score == score_again  # deterministic
    grey, _ = tiny_sam2.segment_box(image.convert("L"), BOX_OF_ANSWER)  # any mode, converted to RGB
    assert tuple(grey.shape) == (48, 80)
    other, _ = tiny_sam2.segment_box(image, (0.0, 0.5, 0.3, 1.0))
    assert not torch.equal(mask, other)  # the box reaches the decoder
    for bad in [(0.5, 0.2, 0.4, 0.6), (0.1, 0.1, 1.2, 0.5), (0.1, 0.1, 0.5)]:
        with pytest.raises(ValueError, match="normalised xyxy"):
            tiny_sam2.segment_box(image, bad)
    with pytest.raises(ValueError, match="PIL"):
        tiny_sam2.segment_box(np.zeros((8, 8, 3), dtype=np.uint8), BOX_OF_ANSWER)



def test_prompting_the_image_the_automatic_pass_saw_reuses_its_embeddings():
    proposer = TransformersSam2RegionProposer.from_config(
        TINY_SAM2_CONFIG, seed=0, points_per_side=2, points_per_batch=4, max_regions=4, **OPEN_FILTERS)
    encoder, calls = proposer.model.get_image_embeddings, []
    proposer.model.get_image_embeddings = lambda pixels: calls.append(1) or encoder(pixels)
    image = noise_image(80, 48)
    proposer(image)
    mask, score = proposer.segment_box(image, BOX_OF_ANSWER)
    assert len(calls) == 1  # one encoder pass for the regions and the box
    fresh = TransformersSam2RegionProposer.from_config(
        TINY_SAM2_CONFIG, seed=0, points_per_side=2, points_per_batch=4, max_regions=4, **OPEN_FILTERS)
    expected, expected_score = fresh.segment_box(image, BOX_OF_ANSWER)
    assert torch.equal(mask, expected) and score == expected_score  # the same answer as without the cache
    proposer.segment_box(noise_image(80, 48, seed=1), BOX_OF_ANSWER)
    assert len(calls) == 2  # another image: encoded again
    proposer.to("cpu")
    proposer.segment_box(image, BOX_OF_ANSWER)
    assert len(calls) == 3  # moving the model drops the kept embeddings

class FakePredictor:
    """Stands in for SAM2ImagePredictor: three masks for a pixel box, the middle one predicted best."""

    def set_image(self, image: np.ndarray) -> None:
        assert image.dtype == np.uint8 and image.ndim == 3
        self.hw = image.shape[:2]

    def predict(self, *, box: np.ndarray, multimask_output: bool):
        assert multimask_output and box.shape == (4,)
        self.box = box
        masks = np.zeros((3, *self.hw), dtype=np.float32)
        x1, y1, x2, y2 = (int(v) for v in box)
        masks[1, y1:y2, x1:x2] = 1.0
        return masks, np.array([0.4, 1.3, 0.2]), np.zeros((3, 8, 8))


def test_sam2_package_segments_a_box_through_the_generators_predictor():
    class Generator:
        predictor = FakePredictor()

        def generate(self, image):
            return []

    proposer = Sam2PackageRegionProposer(generator=Generator())
    assert isinstance(proposer, BoxSegmenter)
    mask, score = proposer.segment_box(PIL.Image.new("RGB", (40, 20)), (0.25, 0.5, 0.75, 1.0))
    assert Generator.predictor.box.tolist() == [10.0, 10.0, 30.0, 20.0]  # the image's pixel frame
    assert torch.equal(mask, box_mask((0.25, 0.5, 0.75, 1.0), (40, 20))) and score == 1.0  # clamped

    class NoPredictor:
        def generate(self, image):
            return []

    with pytest.raises(ValueError, match="no predictor"):
        Sam2PackageRegionProposer(generator=NoPredictor()).segment_box(PIL.Image.new("RGB", (8, 8)), (0, 0, 1, 1))


@pytest.mark.gpu
def test_sam2_package_real_random_weights_segments_a_box():
    pytest.importorskip("sam2")
    device = "cuda" if torch.cuda.is_available() else "cpu"
    proposer = Sam2PackageRegionProposer(model_cfg="configs/sam2.1/sam2.1_hiera_t.yaml", device=device)
    mask, score = proposer.segment_box(noise_image(96, 64), BOX_OF_ANSWER)
    assert tuple(mask.shape) == (64, 96) and mask.dtype == torch.bool and 0.0 <= score <= 1.0


# --- the rule's first step -------------------------------------------------------------------------------------------
def _scripted(mask_box, score, calls=None):
    """A BoxPrompt whose segment gives ``mask_box``'s rectangle (None: an empty mask) on a 64 x 64 picture."""

    def segment(box):
        if calls is not None:
            calls.append(box)
        if mask_box is None:
            return torch.zeros(64, 64, dtype=torch.bool), score
        return box_mask(mask_box, (64, 64)), score

    return BoxPrompt(segment, 0.5)


def _regions(*boxes):
    from reasonbrain.regions import finalize_regions

    return finalize_regions(torch.stack([box_mask(b, (64, 64)) for b in boxes]), torch.ones(len(boxes)),
                            label_prefix="region")


def _never(_regions):
    raise AssertionError("no region scores are needed here")


def test_a_confident_mask_inside_the_box_is_the_object_mask():
    calls = []
    chosen = choose_object_mask((64, 64), box=BOX_OF_ANSWER, object_name="cat", regions=_regions(BOX_OF_ANSWER),
                                scores=_never, min_iou=0.5, box_prompt=_scripted(INNER, 0.9, calls))
    assert (chosen.source, chosen.region, chosen.note) == (BOX_PROMPT, None, None) and calls == [BOX_OF_ANSWER]
    assert torch.equal(chosen.mask, box_mask(INNER, (64, 64)))
    assert MASK_SOURCES[0] == BOX_PROMPT and len(set(MASK_SOURCES)) == 5


@pytest.mark.parametrize("mask_box, score, why", [
    (INNER, 0.3, "predicted IoU of 0.30 (below 0.5)"),
    ((0.0, 0.0, 0.3, 1.0), 0.9, "inside the box (below 50%)"),
    (None, 0.9, "is empty"),
])
def test_a_rejected_prompted_mask_falls_to_the_region_matching_the_box(mask_box, score, why):
    regions = _regions((0.0, 0.0, 0.2, 0.2), (0.25, 0.25, 0.7, 0.75))
    chosen = choose_object_mask((64, 64), box=BOX_OF_ANSWER, object_name="cat", regions=regions, scores=_never,
                                min_iou=0.5, box_prompt=_scripted(mask_box, score))
    assert (chosen.source, chosen.region) == (BOX_REGION, 1) and torch.equal(chosen.mask, regions.masks[1])
    assert why in chosen.note and chosen.note.endswith(": the SAM region that matches the box is the mask")


def test_a_mask_mostly_outside_the_box_with_no_region_leaves_the_box():
    outside = (0.0, 0.0, 0.5, 0.5)  # a quarter of it inside the box
    chosen = choose_object_mask((64, 64), box=BOX_OF_ANSWER, object_name=None, regions=_regions((0.0, 0.0, 0.2, 0.2)),
                                scores=_never, min_iou=0.5, box_prompt=_scripted(outside, 0.99))
    assert chosen.source == BOX and torch.equal(chosen.mask, box_mask(BOX_OF_ANSWER, (64, 64)))
    assert chosen.note.startswith("only 25% of SAM's mask for the MLLM's box lies inside the box")
    assert "the box itself is the mask" in chosen.note
    half_inside = choose_object_mask((64, 64), box=BOX_OF_ANSWER, object_name=None, regions=None, scores=_never,
                                     min_iou=0.5, box_prompt=_scripted((0.25, 0.0, 0.75, 0.5), 0.99))
    assert BOX_PROMPT_MIN_INSIDE == 0.5 and half_inside.source == BOX_PROMPT  # exactly half inside is enough


def test_without_a_box_the_prompt_is_never_asked():
    calls = []
    regions = _regions((0.0, 0.0, 0.4, 0.4), (0.5, 0.5, 1.0, 1.0))
    chosen = choose_object_mask((64, 64), box=None, object_name="cat", regions=regions,
                                scores=lambda r: torch.tensor([0.1, 0.7]), min_iou=0.5,
                                box_prompt=_scripted(INNER, 0.9, calls))
    assert (chosen.source, chosen.region) == (OBJECT_REGION, 1) and calls == []
    nothing = choose_object_mask((64, 64), box=None, object_name=None, regions=regions, scores=_never, min_iou=0.5,
                                 box_prompt=_scripted(INNER, 0.9, calls))
    assert nothing.source == WHOLE_IMAGE and calls == []


def test_a_prompted_mask_of_another_size_is_refused():
    prompt = BoxPrompt(lambda box: (torch.ones(32, 32, dtype=torch.bool), 0.9), 0.5)
    with pytest.raises(ValueError, match="segment_box gave a"):
        choose_object_mask((64, 64), box=BOX_OF_ANSWER, object_name=None, regions=None, scores=_never, min_iou=0.5,
                           box_prompt=prompt)


def test_the_score_threshold_is_a_checked_setting():
    assert tiny_config().reason_then_edit.box_prompt_min_score == 0.5
    assert tiny_config(reason_then_edit={"box_prompt_min_score": 0.0}).reason_then_edit.box_prompt_min_score == 0.0
    for bad in (-0.1, 1.5):
        with pytest.raises(ValueError, match="box_prompt_min_score in"):
            tiny_config(reason_then_edit={"box_prompt_min_score": bad})


# --- the pipeline -----------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def tiny_pipeline():
    torch.manual_seed(0)
    return ReasonThenEditPipeline.from_config(tiny_config())


class PromptableBoxRegions(BoxRegions):
    """BoxRegions that can also be prompted with a box: a known mask and score, the prompts recorded."""

    def __init__(self, box, mask_box, score):
        super().__init__(box)
        self.mask_box, self.score, self.prompts = mask_box, score, []

    def segment_box(self, image, box):
        self.prompts.append((image.size, box))
        return box_mask(self.mask_box, image.size), self.score


def test_the_pipeline_edits_inside_the_box_prompted_mask(tiny_pipeline):
    proposer = PromptableBoxRegions(BOX_OF_ANSWER, INNER, 0.9)
    pipe = with_parts(tiny_pipeline, answer=GOOD_ANSWER, proposer=proposer)
    image = photo()  # at the working resolution: the mask is not resized
    out = pipe(image, INSTRUCTION, num_inference_steps=2, seed=0)
    assert proposer.prompts == [(image.size, BOX_OF_ANSWER)]
    assert out.mask_source == BOX_PROMPT and out.fallbacks == []
    assert torch.equal(out.mask, box_mask(INNER, image.size))
    assert bool((out.edit_area | ~out.mask).all()) and out.edit_area.sum() > out.mask.sum()  # dilated around it
    assert out.edit_area.sum() < box_mask(BOX_OF_ANSWER, image.size).sum()  # tighter than the box's region
    outside = ~out.edit_area.numpy()
    assert np.array_equal(np.asarray(out.images[0])[outside], np.asarray(image)[outside])
    assert not np.array_equal(np.asarray(out.images[0])[~outside], np.asarray(image)[~outside])
    assert json.loads(out.to_json())["mask_source"] == "box_prompt"


def test_the_pipeline_says_why_a_prompted_mask_was_not_used(tiny_pipeline):
    proposer = PromptableBoxRegions(BOX_OF_ANSWER, INNER, 0.9)
    strict = with_parts(tiny_pipeline, answer=GOOD_ANSWER, proposer=proposer, box_prompt_min_score=0.95)
    out = strict(photo(), INSTRUCTION, num_inference_steps=1, seed=0)
    assert out.mask_source == BOX_REGION and torch.equal(out.mask, box_mask(BOX_OF_ANSWER, (64, 64)))
    assert len(out.fallbacks) == 1 and "predicted IoU of 0.90 (below 0.95)" in out.fallbacks[0]


def test_the_pipeline_prompts_the_tiny_sam2_with_the_box(tiny_pipeline):
    """The preset's own (random-weight) SAM 2: the whole picture as the box, so any non-empty mask lies inside it."""

    class Recording:
        def __init__(self, proposer):
            self.proposer, self.max_regions, self.prompted = proposer, proposer.max_regions, []

        def __call__(self, image):
            return self.proposer(image)

        def segment_box(self, image, box):
            self.prompted.append(self.proposer.segment_box(image, box))
            return self.prompted[-1]

    assert isinstance(tiny_pipeline.region_proposer, TransformersSam2RegionProposer)
    proposer = Recording(tiny_pipeline.region_proposer)
    answer = GOOD_ANSWER.replace("[0.25, 0.25, 0.75, 0.75]", "[0, 0, 1, 1]")
    pipe = with_parts(tiny_pipeline, answer=answer, proposer=proposer, box_prompt_min_score=0.0)
    out = pipe(photo(), INSTRUCTION, num_inference_steps=1, seed=0)
    (mask, score), = proposer.prompted
    assert bool(mask.any()) and 0.0 <= score <= 1.0
    assert out.mask_source == BOX_PROMPT and torch.equal(out.mask, mask) and out.fallbacks == []


def test_the_app_names_the_box_prompted_mask():
    from app.render import mask_source_text

    text = mask_source_text({"mask_source": BOX_PROMPT, "region_backend": "transformers_sam2",
                             "settings": {"mask_dilation": 2}})
    assert text.startswith("the mask from SAM 2 prompted with the MLLM&#x27;s box; the editor could change pixels "
                           "only inside it, grown by 2 latent cells")
