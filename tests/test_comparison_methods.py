"""Methods for comparison (plain editor, reason-then-edit, trained ReasonBrain): one list, one loader, each method on a
photo gradio ships at its own aspect ratio, ``evaluate --method`` writing ``method.json`` and the Rate tab's import
naming the method from it while annotators stay blind. Tiny random-weight components, offline, CPU."""

from __future__ import annotations

import json

import numpy as np
import PIL.Image
import pytest
import torch

from reasonbrain.__main__ import main
from reasonbrain.configuration import ReasonBrainConfig
from reasonbrain.image_io import load_image, prepare_image, restore_size, tensor_to_pil
from reasonbrain.pipelines import COMPARISON_METHODS, PlainEditPipeline, ReasonThenEditPipeline, load_method
from reasonbrain.pipelines.modes import resolve_method
from reasonbrain.pipelines.pipeline_reasonbrain import ReasonBrainEditPipeline

from .conftest import tiny_config
from .method_fixtures import gradio_images, save_backbones_checkpoint, write_photo_split

INSTRUCTION = "What would happen if the cheetah were caught in heavy rain?"
PHOTOS = gradio_images()
needs_photos = pytest.mark.skipif(PHOTOS is None, reason="gradio's media_assets/images is not installed")


@pytest.fixture(scope="module")
def backbones(tmp_path_factory):
    return save_backbones_checkpoint(tmp_path_factory.mktemp("backbones"))


@pytest.fixture(scope="module")
def reasonbrain_checkpoint(tmp_path_factory):
    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("rb") / "ckpt"
    ReasonBrainEditPipeline.from_config(tiny_config()).save_pretrained(folder)
    return folder


def test_one_list_of_methods_with_descriptions():
    assert list(COMPARISON_METHODS) == ["plain_editor", "reason_then_edit", "reasonbrain"]
    assert all(isinstance(d, str) and len(d) > 20 for d in COMPARISON_METHODS.values())
    assert resolve_method(None, tiny_config()) == "reasonbrain"  # a preset declares no other mode
    assert resolve_method(None, tiny_config(mode="reason_then_edit")) == "reason_then_edit"
    with pytest.raises(ValueError, match="unknown method 'ip2p'; choose from plain_editor, reason_then_edit, "
                                         "reasonbrain"):
        resolve_method("ip2p", tiny_config())


def test_the_loader_refuses_clearly(tmp_path, backbones, reasonbrain_checkpoint):
    with pytest.raises(ValueError, match="exactly one of checkpoint= or preset="):
        load_method("plain_editor")
    with pytest.raises(ValueError, match="exactly one"):
        load_method("plain_editor", checkpoint=backbones, preset="tiny")
    with pytest.raises(ValueError, match="no trained ReasonBrain weights: preset 'reasonbrain-3b'"):
        load_method("reasonbrain", preset="reasonbrain-3b")
    with pytest.raises(ValueError, match="no trained ReasonBrain weights: preset 'tiny'"):
        load_method(preset="tiny")  # the preset's declared mode is reasonbrain
    with pytest.raises(ValueError, match="no trained ReasonBrain weights: .* declares mode 'reason_then_edit'"):
        load_method("reasonbrain", checkpoint=backbones)
    with pytest.raises(ValueError, match="names no editor"):  # the tiny ReasonBrain checkpoint names no Hub editor
        load_method("plain_editor", checkpoint=reasonbrain_checkpoint)
    with pytest.raises(ValueError, match="unknown method 'magic'; choose from"):
        load_method("magic", preset="tiny")


def test_each_method_loads_as_its_pipeline(backbones, reasonbrain_checkpoint):
    assert isinstance(load_method(checkpoint=backbones), ReasonThenEditPipeline)  # the checkpoint's declared mode
    assert isinstance(load_method("plain_editor", checkpoint=backbones), PlainEditPipeline)
    assert isinstance(load_method(checkpoint=reasonbrain_checkpoint), ReasonBrainEditPipeline)
    assert isinstance(load_method("plain_editor", preset="tiny", load_backbones=False), PlainEditPipeline)


@needs_photos
@pytest.mark.parametrize("method", list(COMPARISON_METHODS))
def test_each_method_edits_a_photo_at_its_aspect_ratio(method, backbones, reasonbrain_checkpoint):
    checkpoint = reasonbrain_checkpoint if method == "reasonbrain" else backbones
    pipe = load_method(method, checkpoint=checkpoint)
    path = PHOTOS / "cheetah.jpg"
    source = load_image(path)
    assert source.width != source.height
    out = pipe(path, INSTRUCTION, seed=5, num_inference_steps=2)
    assert out.images[0].size == source.size and out.images[0].mode == "RGB" and out.seed == 5
    json.dumps(out.to_dict())
    assert type(out).__name__ == {"plain_editor": "PlainEditOutput", "reason_then_edit": "ReasonThenEditOutput",
                                  "reasonbrain": "ReasonBrainEditOutput"}[method]


@needs_photos
def test_the_plain_editor_is_the_editor_alone_on_the_raw_instruction(backbones):
    pipe = load_method("plain_editor", checkpoint=backbones)
    path = PHOTOS / "tower.jpg"
    out = pipe(path, INSTRUCTION, seed=7, num_inference_steps=2)
    again = pipe(path, INSTRUCTION, seed=7, num_inference_steps=2)
    assert np.array_equal(np.asarray(out.images[0]), np.asarray(again.images[0]))  # seeded
    assert out.instruction == INSTRUCTION and out.settings["editor"] == str(backbones.parent / "editor")
    # the same as diffusers' pipeline on the working-size picture with that seed, restored to the photo's size
    photo = load_image(path)
    pixels, _ = prepare_image(photo, pipe.config.resolution)
    direct = pipe.editor(prompt=INSTRUCTION, image=tensor_to_pil(pixels), num_inference_steps=2,
                         generator=torch.Generator().manual_seed(7), guidance_scale=out.settings["guidance_scale"],
                         image_guidance_scale=out.settings["image_guidance_scale"]).images[0]
    assert np.array_equal(np.asarray(restore_size(direct, photo.size)), np.asarray(out.images[0]))
    seen = []
    pipe(path, INSTRUCTION, seed=None, num_inference_steps=2, progress_callback=lambda d, t: seen.append((d, t)))
    assert seen == [(1, 2), (2, 2)]
    with pytest.raises(ValueError, match="empty"):
        pipe(path, "  ")
    assert out.fallbacks == [] and json.loads(out.to_json())["fallbacks"] == []
    long = pipe(path, "What would happen if " + "it rained and " * 20 + "then?", seed=0, num_inference_steps=1)
    limit = pipe.editor.tokenizer.model_max_length
    assert long.fallbacks and f"read only the first {limit} of the instruction's" in long.fallbacks[0]


@needs_photos
def test_evaluate_method_writes_its_record_and_the_rate_import_names_it(tmp_path, backbones):
    from app.ratings_store import RatingSettings, RatingStore
    from app.store import Store

    data = write_photo_split(tmp_path / "photos")
    out = tmp_path / "eval"
    assert main(["evaluate", "--checkpoint", str(backbones), "--method", "plain_editor", "--data", str(data),
                 "--metrics", "l1", "--steps", "1", "--out", str(out), "--no-progress"]) == 0
    record = json.loads((out / "method.json").read_text())
    assert record["method"] == "plain_editor" and record["model"] == "tiny @ckpt"
    assert record["records"] == str(data / "test.jsonl") and record["edits"] == "edits"
    assert record["backbones"] == {"editor": str(backbones.parent / "editor")}
    assert record["description"] == COMPARISON_METHODS["plain_editor"]
    for i, name in enumerate(("cheetah.jpg", "tower.jpg")):  # each photo's own size
        with PIL.Image.open(out / "edits" / f"photo{i}.png") as im, PIL.Image.open(PHOTOS / name) as src:
            assert im.size == src.size
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["settings"]["method"] == "plain_editor" and metrics["settings"]["model"] == "tiny @ckpt"
    assert "plain_editor (tiny @ckpt)" in (out / "metrics.md").read_text()

    store = Store(str(tmp_path / "db.sqlite"), str(tmp_path / "studio"))
    ratings = RatingStore(store, RatingSettings(annotators_file=str(tmp_path / "annotators.json"),
                                                overlap_fraction=0.0, gold_fraction=0.0))
    try:
        report = ratings.import_method_folder(None, str(out))  # nobody types the method's name
        assert (report.added, report.skipped) == (2, [])
        assert ratings.import_method_folder(None, str(out / "edits")).existing == 2  # edits/ finds it beside
        item = ratings.next_item("local:alice", "absolute")
        assert ratings.task_methods(ratings.queue("local:alice", "absolute")[0][0]) == ("plain_editor (tiny @ckpt)",
                                                                                       None)
        assert "plain_editor" not in repr(item) and "ckpt" not in repr(item)  # blind
    finally:
        store.close()


def test_evaluate_refuses_an_unknown_method_with_the_list(tmp_path, capsys):
    data = tmp_path / "d"
    data.mkdir()
    (data / "test.jsonl").write_text(json.dumps({"id": "a", "category": "physical", "src_image": "a.png",
                                                 "tgt_image": "a.png", "instruction": "What if?"}) + "\n")
    assert main(["evaluate", "--preset", "tiny", "--method", "ip2p", "--data", str(data), "--metrics", "l1",
                 "--out", str(tmp_path / "o")]) == 2
    assert "unknown method 'ip2p'; choose from plain_editor, reason_then_edit, reasonbrain" in capsys.readouterr().err
    assert main(["evaluate", "--preset", "reasonbrain-3b", "--data", str(data), "--metrics", "l1",
                 "--out", str(tmp_path / "o")]) == 2
    assert "no trained ReasonBrain weights" in capsys.readouterr().err
    assert main(["evaluate", "--outputs", str(data), "--method", "plain_editor", "--data", str(data),
                 "--metrics", "l1", "--out", str(tmp_path / "o")]) == 2
    assert "--method runs a method on --checkpoint or --preset" in capsys.readouterr().err
    assert not (tmp_path / "o" / "method.json").exists()


def test_a_real_preset_builds_every_method_offline_on_the_meta_device():
    """The real presets' construction path (random weights on the meta device, the bundled tokenizer standing in)."""
    config = ReasonBrainConfig.from_preset("reasonbrain-3b").replace(
        mllm={"tokenizer": "bundled"}, text_encoder={"tokenizer": "bundled", "tokenizer_subfolder": None})
    with torch.device("meta"):
        plain = PlainEditPipeline.from_config(config)
    assert type(plain.editor.unet).__name__ == "UNet2DConditionModel" and plain.editor.unet.config.in_channels == 8
