"""ReasonBrainEditPipeline on the tiny preset: output fields, CFG, schedulers, determinism, bad input, chains."""

from __future__ import annotations

import io
import json
import struct
import zlib

import numpy as np
import PIL.Image
import pytest
import torch

from reasonbrain.configuration import ReasonBrainConfig
from reasonbrain.pipelines.pipeline_reasonbrain import ReasonBrainEditOutput, ReasonBrainEditPipeline
from reasonbrain.regions import Regions

INSTRUCTION = "What would happen if the ice cube were left in the sun?"


@pytest.fixture(scope="module")
def pipe():
    torch.manual_seed(0)
    return ReasonBrainEditPipeline.from_config(ReasonBrainConfig.from_preset("tiny"))


def scene(w: int = 96, h: int = 64) -> PIL.Image.Image:
    rng = np.random.default_rng(0)
    arr = np.full((h, w, 3), (120, 180, 230), dtype=np.uint8)
    arr[h // 2 :] = (90, 160, 70)
    arr[10:30, 20:40] = (230, 240, 255)
    arr += rng.integers(0, 3, arr.shape, dtype=np.uint8)
    return PIL.Image.fromarray(arr)


def pixels(out: ReasonBrainEditOutput) -> np.ndarray:
    return np.asarray(out.images[0], dtype=np.int16)


def test_every_output_field(pipe):
    out = pipe(scene(96, 64), "  What would happen if the ice cube were left\nin the sun?  ", seed=7)
    assert isinstance(out, ReasonBrainEditOutput)
    assert len(out.images) == 1 and out.images[0].size == (96, 64) and out.images[0].mode == "RGB"
    assert out.seed == 7
    assert out.instruction == INSTRUCTION  # whitespace normalised
    assert out.referenced_object.name == "ice cube" and out.referenced_object.source == "parser"
    assert out.object_token == "<obj> ice cube </obj>"
    assert out.object_token_ids and all(isinstance(i, int) for i in out.object_token_ids)
    assert out.object_token_ids == pipe.model.text_tokenizer(out.object_token, add_special_tokens=False).input_ids
    assert isinstance(out.regions, Regions) and out.regions.labels[-1] == "background"
    assert out.regions.masks.shape[-2:] == (64, 64)  # at the model's resolution
    assert len(out.region_attention) == len(out.regions)
    assert abs(sum(out.region_attention) - 1) < 1e-4 and min(out.region_attention) >= 0
    side = pipe.model.grid_size // pipe.config.frce.patch_size
    assert np.asarray(out.patch_attention).shape == (side, side)
    assert out.reasoning is None  # the tiny preset does not generate reasoning text
    assert {"preprocess", "regions", "referring", "conditioning", "encode_image", "denoise", "decode",
            "total"} <= set(out.timings)
    stages = sum(v for k, v in out.timings.items() if k != "total")
    assert out.timings["total"] >= stages and out.timings["denoise"] > 0  # total: the call's wall time
    assert out.settings["num_inference_steps"] == 4 and out.settings["preset"] == "tiny"
    assert out.settings["scheduler"] == "EulerAncestralDiscreteScheduler"
    data = json.loads(out.to_json())
    assert data["seed"] == 7 and data["image_size"] == [96, 64]
    assert Regions.from_dict(data["regions"]).labels == out.regions.labels


def test_the_bound_region_and_its_heatmap_come_with_the_output(pipe):
    """The bound region (index, label) and the attention heatmap are the library's: the output computes them, its
    JSON carries them (the CLI's sidecar and the app's details alike)."""
    from reasonbrain.visualization import OUTLINE_COLOUR, bound_region, render_attention_heatmap

    out = pipe(scene(96, 64), INSTRUCTION, seed=7, num_inference_steps=1)
    objects = out.region_attention[: out.regions.num_objects]
    assert out.bound_region == objects.index(max(objects)) == bound_region(out.regions, out.region_attention)
    assert out.bound_region_label == out.regions.labels[out.bound_region] != "background"
    data = json.loads(out.to_json())
    assert (data["bound_region"], data["bound_region_label"]) == (out.bound_region, out.bound_region_label)
    assert data["region_labels"] == out.regions.labels
    assert data["region_scores"] == [float(v) for v in out.regions.scores.tolist()]
    heat = out.attention_heatmap(scene(96, 64))
    expected = render_attention_heatmap(scene(96, 64), out.regions, out.region_attention,
                                        patch_attention=out.patch_attention, bound=out.bound_region)
    assert heat.size == (96, 64) and heat.tobytes() == expected.tobytes() != scene(96, 64).tobytes()
    assert (np.asarray(heat) == OUTLINE_COLOUR).all(axis=-1).any()  # the bound region outlined


def test_reasoning_text_when_the_preset_generates_it():
    torch.manual_seed(0)
    cfg = ReasonBrainConfig.from_preset("tiny", mllm={"generate_reasoning": True, "reasoning_max_new_tokens": 5})
    p = ReasonBrainEditPipeline.from_config(cfg)
    out = p(scene(), INSTRUCTION, seed=0, num_inference_steps=1)
    assert isinstance(out.reasoning, str) and "reasoning" in out.timings


def test_mllm_referring_path_returns_an_object(pipe):
    out = pipe(scene(), INSTRUCTION, seed=0, num_inference_steps=1, referring="mllm")
    assert out.referenced_object.source in ("mllm", "parser")
    assert out.object_token.startswith("<obj>")


def test_seeds_share_one_range(pipe):
    from reasonbrain.seeds import MAX_SEED

    assert MAX_SEED == 2**31 - 1
    out = pipe(scene(), INSTRUCTION, seed=MAX_SEED, num_inference_steps=1)
    assert out.seed == MAX_SEED and 0 <= pipe(scene(), INSTRUCTION, num_inference_steps=1).seed <= MAX_SEED
    for bad in (MAX_SEED + 1, -1, 1.5, True):
        with pytest.raises(ValueError, match="seed must be a whole number from 0 to 2147483647"):
            pipe(scene(), INSTRUCTION, seed=bad, num_inference_steps=1)


def test_an_instruction_naming_no_picture_object_still_edits(pipe):
    """No scene recogniser (tiny preset): nothing to refuse with, so the edit runs on what the parser read."""
    from reasonbrain.referring import serialize_object_token

    out = pipe(scene(), "Suppose it rained for a week.", seed=0, num_inference_steps=1)
    assert out.images[0].size == (96, 64)
    assert out.referenced_object.name == "week" and out.object_token == serialize_object_token(out.referenced_object)
    assert not np.array_equal(pixels(out), np.asarray(scene(), dtype=pixels(out).dtype))


def _count_unet_batches(p):
    sizes = []
    handle = p.model.unet.register_forward_pre_hook(lambda mod, args: sizes.append(args[0].shape[0]))
    return sizes, handle


def test_cfg_on_runs_three_branches_and_off_runs_one(pipe):
    sizes, handle = _count_unet_batches(pipe)
    try:
        on = pipe(scene(), INSTRUCTION, seed=3, num_inference_steps=2, guidance_scale=7.5, image_guidance_scale=1.5)
        assert sizes == [3, 3]
        sizes.clear()
        off = pipe(scene(), INSTRUCTION, seed=3, num_inference_steps=2, guidance_scale=1.0, image_guidance_scale=1.0)
        assert sizes == [1, 1]
    finally:
        handle.remove()
    assert not np.array_equal(pixels(on), pixels(off))


def test_guidance_scales_change_the_result(pipe):
    a = pipe(scene(), INSTRUCTION, seed=3, num_inference_steps=2, guidance_scale=3.0)
    b = pipe(scene(), INSTRUCTION, seed=3, num_inference_steps=2, guidance_scale=9.0)
    c = pipe(scene(), INSTRUCTION, seed=3, num_inference_steps=2, guidance_scale=9.0, image_guidance_scale=3.0)
    assert not np.array_equal(pixels(a), pixels(b)) and not np.array_equal(pixels(b), pixels(c))


def test_seeded_determinism_and_generator(pipe):
    a = pipe(scene(), INSTRUCTION, seed=11, num_inference_steps=2)
    b = pipe(scene(), INSTRUCTION, seed=11, num_inference_steps=2)
    c = pipe(scene(), INSTRUCTION, seed=12, num_inference_steps=2)
    assert np.array_equal(pixels(a), pixels(b))
    assert not np.array_equal(pixels(a), pixels(c))
    d = pipe(scene(), INSTRUCTION, generator=torch.Generator().manual_seed(11), num_inference_steps=2)
    assert d.seed == 11 and np.array_equal(pixels(a), pixels(d))
    e = pipe(scene(), INSTRUCTION, num_inference_steps=1)
    assert isinstance(e.seed, int) and e.seed >= 0  # a fresh seed is drawn and reported


@pytest.mark.parametrize("name", ["DDIMScheduler", "DPMSolverMultistepScheduler", "UniPCMultistepScheduler"])
def test_scheduler_swap(name):
    torch.manual_seed(0)
    p = ReasonBrainEditPipeline.from_config(ReasonBrainConfig.from_preset("tiny"))
    base = p(scene(), INSTRUCTION, seed=5, num_inference_steps=3)
    p.swap_scheduler(name)
    assert type(p.scheduler).__name__ == name
    out = p(scene(), INSTRUCTION, seed=5, num_inference_steps=3)
    assert out.settings["scheduler"] == name
    assert not np.array_equal(pixels(base), pixels(out))
    again = p(scene(), INSTRUCTION, seed=5, num_inference_steps=3)
    assert np.array_equal(pixels(out), pixels(again))
    with pytest.raises(ValueError, match="unknown scheduler"):
        p.swap_scheduler("NoSuchScheduler")


def test_progress_callback_per_step(pipe):
    calls = []
    pipe(scene(), INSTRUCTION, seed=0, num_inference_steps=3, progress_callback=lambda i, n: calls.append((i, n)))
    assert calls == [(1, 3), (2, 3), (3, 3)]


def test_num_images_per_prompt(pipe):
    out = pipe(scene(), INSTRUCTION, seed=0, num_inference_steps=1, num_images_per_prompt=2)
    assert len(out.images) == 2 and not np.array_equal(np.asarray(out.images[0]), np.asarray(out.images[1]))


@pytest.mark.parametrize("mode", ["RGBA", "L", "P", "CMYK", "I;16"])
def test_any_pil_mode_is_normalised(pipe, mode):
    img = scene(40, 56).convert(mode) if mode != "I;16" else PIL.Image.new("I;16", (40, 56), 30000)
    out = pipe(img, INSTRUCTION, seed=0, num_inference_steps=1)
    assert out.images[0].size == (40, 56) and out.images[0].mode == "RGB"


def _bomb_png(width: int, height: int) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00" * 4)) + chunk(b"IEND", b"")


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"instruction": ""}, "instruction is empty"),
        ({"instruction": "   \n\t "}, "instruction is empty"),
        ({"instruction": "\x00\x01\x02"}, "control characters \\(U\\+0000, U\\+0001, U\\+0002\\)"),
        ({"instruction": "What if the ice\x1b[31m melted?"}, "control characters \\(U\\+001B\\)"),
        ({"instruction": " \t\n "}, "instruction is empty"),
        ({"instruction": "What if " + "very " * 300 + "hot?"}, "characters"),
        ({"instruction": "What if " + "the ice cube melted and " * 30}, "tokens long"),
        ({"instruction": 42}, "must be text"),
        ({"image": b"this is not an image"}, "not a readable image"),
        ({"image": b""}, "image"),
        ({"image": _bomb_png(100_000, 100_000)}, "pixels"),
        ({"num_inference_steps": 0}, "between 1 and"),
        ({"num_inference_steps": 2.5}, "whole number"),
        ({"num_inference_steps": 5000}, "between 1 and"),
        ({"guidance_scale": -1.0}, "between 0 and"),
        ({"guidance_scale": float("nan")}, "finite"),
        ({"image_guidance_scale": -0.5}, "between 0 and"),
        ({"num_images_per_prompt": 0}, "between 1 and 8"),
        ({"referring": "oracle"}, "referring"),
    ],
)
def test_bad_input_raises_actionable_value_error(pipe, kwargs, match):
    args = {"image": scene(), "instruction": INSTRUCTION, "num_inference_steps": 1} | kwargs
    image, instruction = args.pop("image"), args.pop("instruction")
    with pytest.raises(ValueError, match=match):
        pipe(image, instruction, **args)


def test_chain_feeds_each_result_into_the_next_step(pipe):
    steps = [INSTRUCTION, "What if the puddle evaporated?", "Imagine night falls."]
    outs = pipe.chain(scene(), steps, seed=20, num_inference_steps=2)
    assert [o.instruction for o in outs] == steps and [o.seed for o in outs] == [20, 21, 22]
    replay = pipe(outs[0].images[0], steps[1], seed=21, num_inference_steps=2)
    assert np.array_equal(pixels(replay), pixels(outs[1]))
    with pytest.raises(ValueError, match="list of instructions"):
        pipe.chain(scene(), "not a list")


def test_colour_segment_region_backend_in_the_pipeline():
    torch.manual_seed(0)
    cfg = ReasonBrainConfig.from_preset("tiny", regions={"backend": "color_segments", "config": {}})
    p = ReasonBrainEditPipeline.from_config(cfg)
    out = p(scene(), INSTRUCTION, seed=0, num_inference_steps=1)
    assert len(out.regions) >= 2  # the bright square and the background at least


def test_region_branch_off_skips_regions():
    torch.manual_seed(0)
    cfg = ReasonBrainConfig.from_preset("tiny", components={"region_branch": False})
    p = ReasonBrainEditPipeline.from_config(cfg)
    assert p.region_proposer is None
    out = p(scene(), INSTRUCTION, seed=0, num_inference_steps=1)
    assert out.regions is None and out.region_attention is None and out.patch_attention is not None
    assert out.bound_region is None and out.bound_region_label is None
    data = out.to_dict()
    assert data["bound_region"] is None and data["bound_region_label"] is None and data["region_labels"] == []


def test_cli_edit_writes_image_and_sidecar(tmp_path):
    from reasonbrain.__main__ import main

    src = tmp_path / "in.png"
    scene(50, 40).save(src)
    out = tmp_path / "out" / "edit.png"
    rc = main(["edit", "--preset", "tiny", "--image", str(src), "--instruction", INSTRUCTION, "--out", str(out),
               "--steps", "2", "--seed", "3", "--scheduler", "DDIMScheduler", "--device", "cpu"])
    assert rc == 0
    assert PIL.Image.open(out).size == (50, 40)
    sidecar = json.loads((tmp_path / "out" / "edit.json").read_text())
    assert sidecar["seed"] == 3 and sidecar["settings"]["scheduler"] == "DDIMScheduler"
    assert sidecar["referenced_object"]["name"] == "ice cube"
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"nope")
    assert main(["edit", "--preset", "tiny", "--image", str(bad), "--instruction", "x", "--out", str(out)]) == 2


def test_image_bytes_and_buffers_are_accepted(pipe):
    buf = io.BytesIO()
    scene().save(buf, format="PNG")
    a = pipe(buf.getvalue(), INSTRUCTION, seed=1, num_inference_steps=1)
    b = pipe(scene(), INSTRUCTION, seed=1, num_inference_steps=1)
    assert np.array_equal(pixels(a), pixels(b))


def test_per_call_scheduler_leaves_the_pipeline_scheduler_alone(pipe):
    before = type(pipe.scheduler).__name__
    a = pipe(scene(), INSTRUCTION, seed=5, num_inference_steps=2, scheduler="DDIMScheduler")
    assert a.settings["scheduler"] == "DDIMScheduler" and type(pipe.scheduler).__name__ == before
    b = pipe(scene(), INSTRUCTION, seed=5, num_inference_steps=2, scheduler="DDIMScheduler")
    assert np.array_equal(pixels(a), pixels(b))
    with pytest.raises(ValueError, match="unknown scheduler"):
        pipe(scene(), INSTRUCTION, num_inference_steps=1, scheduler="Nope")


def test_a_sam_region_branch_needs_an_explicit_proposer():
    from reasonbrain.synthworld.segmenter import ColorSegmentsRegionProposer
    from tests.conftest import get_dummy_components

    with pytest.raises(ValueError, match="'transformers_sam2' region proposer: pass region_proposer="):
        ReasonBrainEditPipeline(model=get_dummy_components())  # never a silent random SAM 2
    colour = get_dummy_components(regions={"backend": "color_segments", "config": {}})
    assert isinstance(ReasonBrainEditPipeline(model=colour).region_proposer, ColorSegmentsRegionProposer)
