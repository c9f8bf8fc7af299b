"""Engine (lazy pipeline owner, one edit at a time, rendering) and Settings, on the tiny preset (CPU, offline)."""

from __future__ import annotations

import io
import json
import os
import sys
import threading
import types

import numpy as np
import PIL.Image
import pytest

from app.engine import EditRequest, EditResult, Engine, render_attention_heatmap
from app.settings import Settings

INSTRUCTION = "What would happen if the red apple were left on the table for weeks?"
STEPS = 2  # keep the tiny denoising loop short


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    """The tiny model gains nothing from intra-op threads, and on a busy 2-core machine two threads can be
    10x slower (spinning); restored afterwards for the other test modules."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def engine(tmp_path_factory):
    return Engine(Settings(preset="tiny", data_dir=str(tmp_path_factory.mktemp("studio"))))


@pytest.fixture(scope="module")
def tiny_pipeline():
    import torch

    from reasonbrain import ReasonBrainConfig, ReasonBrainEditPipeline

    torch.manual_seed(0)
    return ReasonBrainEditPipeline.from_config(ReasonBrainConfig.from_preset("tiny"))


def scene(size=(96, 72)) -> PIL.Image.Image:
    rng = np.random.default_rng(0)
    arr = np.full((size[1], size[0], 3), 235, dtype=np.uint8)
    arr[size[1] // 4 : 3 * size[1] // 4, size[0] // 3 : 2 * size[0] // 3] = (200, 30, 30)
    arr += rng.integers(0, 10, arr.shape, dtype=np.uint8)
    return PIL.Image.fromarray(arr)


# --- engine -------------------------------------------------------------------------------------------------------
def test_lazy_then_edit_returns_everything(engine):
    assert not engine.loaded  # construction loads nothing
    assert engine.preset_name == "tiny" and engine.checkpoint_hash == "random-tiny"
    assert not engine.loaded
    calls = []
    image = scene()
    result = engine.edit(
        EditRequest(image=image, instruction=INSTRUCTION, steps=STEPS, seed=3, scheduler="DDIMScheduler"),
        progress=lambda done, total: calls.append((done, total)),
    )
    assert engine.loaded
    assert isinstance(result, EditResult)
    assert calls == [(i, STEPS) for i in range(1, STEPS + 1)]  # once per denoising step
    out = result.output
    assert out.images[0].size == image.size and out.seed == 3 and result.seed == 3
    assert result.input_image.mode == "RGB" and result.input_image.size == image.size
    assert result.preset == "tiny" and result.checkpoint_hash == "random-tiny"
    assert out.settings["scheduler"] == "DDIMScheduler" and out.settings["num_inference_steps"] == STEPS

    details = json.loads(json.dumps(result.details))  # JSON-serialisable
    for key in ["referenced_object", "object_token", "object_token_ids", "regions", "region_labels",
                "region_attention", "bound_region", "reasoning", "seed", "timings", "settings"]:
        assert key in details, key
    assert details["referenced_object"]["name"] == "apple"
    assert details["seed"] == 3 and details["input_size"] == list(image.size)
    assert details["region_labels"][-1] == "background"
    assert len(details["region_attention"]) == len(details["region_labels"])
    assert details["regions"]["mask_encoding"].startswith("rle")
    assert 0 <= details["bound_region"] < len(details["region_labels"]) - 1

    # a second edit reuses the loaded pipeline; an integral float from a slider is accepted for steps
    again = engine.edit(EditRequest(image=image, instruction=INSTRUCTION, steps=float(STEPS), seed=3,
                                    scheduler="DDIMScheduler"))
    assert np.array_equal(np.asarray(again.output.images[0]), np.asarray(out.images[0]))  # seeded


def test_image_inputs_and_limits(engine, tmp_path):
    png = io.BytesIO()
    scene((40, 30)).save(png, format="PNG")
    path = tmp_path / "in.png"
    path.write_bytes(png.getvalue())
    assert engine.read_image(png.getvalue()).size == (40, 30)
    assert engine.read_image(str(path)).size == (40, 30)
    assert engine.read_image(PIL.Image.new("RGBA", (8, 8))).mode == "RGB"
    small = Engine(Settings(preset="tiny", data_dir=str(tmp_path), max_image_side=32, max_upload_mb=0.001))
    with pytest.raises(ValueError, match="at most 32 px"):
        small.read_image(PIL.Image.new("RGB", (40, 8)))
    with pytest.raises(ValueError, match="limit is 0.001 MB"):
        small.read_image(b"x" * 2000)
    big = io.BytesIO()
    PIL.Image.new("L", (64, 8)).save(big, format="PNG")
    with pytest.raises(ValueError, match="at most 32 px"):
        Engine(Settings(preset="tiny", data_dir=str(tmp_path), max_image_side=32)).read_image(big.getvalue())
    with pytest.raises(ValueError):
        engine.read_image(b"not an image")
    with pytest.raises(ValueError):
        engine.read_image(None)
    assert not small.loaded  # input checks never load the model


def test_validation_errors_pass_through(engine):
    for bad in [EditRequest(image=scene(), instruction="   "),
                EditRequest(image=scene(), instruction=INSTRUCTION, steps=0),
                EditRequest(image=scene(), instruction=INSTRUCTION, guidance_scale=float("nan")),
                EditRequest(image=scene(), instruction=INSTRUCTION, scheduler="NoSuchScheduler"),
                EditRequest(image=scene(), instruction=INSTRUCTION, seed=-1),
                EditRequest(image=scene(), instruction=INSTRUCTION, seed=2**31)]:
        with pytest.raises(ValueError):
            engine.edit(bad)
    with pytest.raises(ValueError, match="empty"):
        engine.edit(EditRequest(image=scene(), instruction=""))


def test_concurrent_edits_are_serialised(tiny_pipeline, tmp_path):
    active, overlaps = [0], []

    class Watched:  # delegates to the real pipeline, records overlapping calls
        def __getattr__(self, name):
            return getattr(tiny_pipeline, name)

        def __call__(self, *args, **kwargs):
            active[0] += 1
            overlaps.append(active[0])
            try:
                return tiny_pipeline(*args, **kwargs)
            finally:
                active[0] -= 1

    engine = Engine(Settings(preset="tiny", data_dir=str(tmp_path)), pipeline_factory=Watched)
    results, errors = [], []

    def run(seed):
        try:
            results.append(engine.edit(EditRequest(image=scene(), instruction=INSTRUCTION, steps=1, seed=seed)))
        except BaseException as err:  # re-raised below
            errors.append(err)

    threads = [threading.Thread(target=run, args=(s,)) for s in (1, 2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == [] and len(results) == 2
    assert sorted(r.seed for r in results) == [1, 2]
    assert overlaps == [1, 1]  # never two pipeline calls at once


def test_checkpoint_hash_stable_and_sensitive(tiny_pipeline, tmp_path):
    folder = tmp_path / "ckpt"
    tiny_pipeline.save_pretrained(str(folder))
    settings = Settings(checkpoint=str(folder), data_dir=str(tmp_path))
    first, second = Engine(settings), Engine(settings)
    h = first.checkpoint_hash
    assert len(h) == 12 and int(h, 16) >= 0
    assert second.checkpoint_hash == h
    assert not first.loaded and not second.loaded  # hashing reads files, it does not load the model
    assert first.preset_name == "tiny"  # the checkpoint's config name
    assert first.defaults()["resolution"] == 64
    (folder / "README.md").write_text("docs do not change the model")
    assert Engine(settings).checkpoint_hash == h
    weights = folder / "unet" / "diffusion_pytorch_model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF
    weights.write_bytes(bytes(data))
    assert Engine(settings).checkpoint_hash != h


def test_missing_checkpoint_says_what_to_do(tmp_path):
    engine = Engine(Settings(checkpoint=str(tmp_path / "nowhere"), data_dir=str(tmp_path)))
    assert not engine.loaded
    with pytest.raises(FileNotFoundError, match="--preset tiny"):
        engine.load()


def test_examples_schedulers_defaults(engine):
    examples = engine.example_images()
    assert 4 <= len(examples) <= 8
    for image, instruction in examples:
        assert image.size == (64, 64) and isinstance(instruction, str) and instruction
    assert [i for _, i in engine.example_images()] == [i for _, i in examples]  # cached, deterministic
    cats = engine.example_instructions()
    assert set(cats) == {"physical", "temporal", "causal", "story"} and all(cats.values())
    assert "EulerAncestralDiscreteScheduler" in engine.scheduler_names()
    d = engine.defaults()
    assert {"steps", "guidance_scale", "image_guidance_scale", "scheduler"} <= set(d)
    assert d["scheduler"] in engine.scheduler_names() and d["resolution"] == 64


def test_zerogpu_wraps_only_the_pipeline_call(tiny_pipeline, tmp_path, monkeypatch):
    seen = {}

    def gpu(duration):
        seen["duration"] = duration

        def decorate(fn):
            def wrapped(*args, **kwargs):
                seen["calls"] = seen.get("calls", 0) + 1
                return fn(*args, **kwargs)

            return wrapped

        return decorate

    monkeypatch.setitem(sys.modules, "spaces", types.SimpleNamespace(GPU=gpu))
    engine = Engine(Settings(preset="tiny", data_dir=str(tmp_path), gpu_duration=42),
                    pipeline_factory=lambda: tiny_pipeline)
    assert engine.uses_zerogpu and seen == {"duration": 42}  # wrapped at construction, nothing called yet
    calls = []
    result = engine.edit(EditRequest(image=scene(), instruction=INSTRUCTION, steps=1, seed=0),
                         progress=lambda d, t: calls.append((d, t)))
    assert seen["calls"] == 1 and calls == [(1, 1)] and result.output.images[0].size == (96, 72)


def test_renderers_without_regions():
    import reasonbrain.visualization

    assert render_attention_heatmap is reasonbrain.visualization.render_attention_heatmap  # the library's, re-exported
    image = scene((50, 40))
    assert render_attention_heatmap(image, None, None).tobytes() == image.tobytes()
    heat = render_attention_heatmap(image, None, None, patch_attention=[[0.1, 0.9], [0.5, 0.2]])
    assert heat.size == (50, 40) and heat.tobytes() != image.tobytes()


# --- settings -----------------------------------------------------------------------------------------------------
def test_settings_env_and_flags(tmp_path):
    env = {"REASONBRAIN_PRESET": "tiny", "REASONBRAIN_PORT": "9000", "REASONBRAIN_HOST": "0.0.0.0",
           "REASONBRAIN_DATA_DIR": str(tmp_path / "env-data"), "REASONBRAIN_DEVICE": "cpu"}
    s = Settings.from_env_and_args([], env=env)
    assert (s.preset, s.port, s.host, s.device) == ("tiny", 9000, "0.0.0.0", "cpu")
    assert s.db_path == os.path.join(str(tmp_path / "env-data"), "studio.db")
    s = Settings.from_env_and_args(["--port", "7000", "--db", str(tmp_path / "x.db")], env=env)  # flags win
    assert s.port == 7000 and s.db_path == str(tmp_path / "x.db") and s.preset == "tiny"
    s = Settings.from_env_and_args(["--checkpoint", str(tmp_path)], env=env)  # explicit checkpoint beats env preset
    assert s.preset is None and s.checkpoint == str(tmp_path)
    d = Settings.from_env_and_args([], env={})
    assert d.preset is None and d.checkpoint.endswith(os.path.join("checkpoints", "synth"))
    assert (d.host, d.port, d.max_upload_mb, d.max_image_side, d.queue_size, d.examples) == (
        "127.0.0.1", 7860, 20, 4096, 64, True)
    assert d.data_dir == os.path.abspath("./studio-data")


@pytest.mark.parametrize("argv, env, match", [
    (["--port", "0"], {}, "port"),
    (["--port", "70000"], {}, "port"),
    (["--port", "http"], {}, "port"),
    ([], {"REASONBRAIN_PORT": "-1"}, "port"),
    (["--preset", "huge"], {}, "unknown preset"),
    (["--device", "quantum:9"], {}, "device"),
    (["--frobnicate"], {}, "unrecognized"),
    ([], {"REASONBRAIN_EXAMPLES": "maybe"}, "REASONBRAIN_EXAMPLES"),
])
def test_settings_bad_values(argv, env, match):
    with pytest.raises(ValueError, match=match):
        Settings.from_env_and_args(argv, env=env)


def test_engine_fuses_the_lora_of_pipelines_it_builds(engine):
    engine.load()
    assert engine._pipeline.model.mllm.uses_lora and engine._pipeline.lora_fused


# --- examples per model: the synthetic world's scenes, or photos ---------------------------------------------------
def test_a_reasonbrain_model_offers_the_synthetic_worlds_examples_unchanged(engine):
    from reasonbrain.synthworld import example_instructions, sample_scene

    assert not engine.photo_examples
    scenes = [sample_scene(seed=i, resolution=64) for i in range(6)]
    examples = engine.example_images()
    assert [text for _, text in examples] == [s.record.instruction for s in scenes]
    assert all(np.array_equal(np.asarray(im), np.asarray(s.src)) for (im, _), s in zip(examples, scenes, strict=True))
    assert engine.example_instructions() == example_instructions()


def test_reason_then_edit_offers_photos_and_instructions_written_for_them(tmp_path):
    from app import photo_examples
    from reasonbrain.configuration import REASON_THEN_EDIT_MODE

    folder = photo_examples.photo_folder()
    if folder is None:
        pytest.skip("gradio's media_assets/images not found")
    eng = Engine(Settings(preset="tiny", mode=REASON_THEN_EDIT_MODE, data_dir=str(tmp_path)))
    assert eng.photo_examples and not eng.loaded
    examples = eng.example_images()
    assert 3 <= len(examples) <= 6 and not eng.loaded  # photos need no model
    assert [text for _, text in examples] == [text for _, text in photo_examples.PHOTOS]
    for (image, _), (name, _) in zip(examples, photo_examples.PHOTOS, strict=True):
        with PIL.Image.open(folder / name) as original:
            assert image.mode == "RGB" and image.size == original.size and min(image.size) >= 256
    assert "cheetah" in examples[0][1] and "muddy river" in examples[0][1]
    cats = eng.example_instructions()
    assert cats == photo_examples.INSTRUCTIONS and set(cats) == {"physical", "temporal", "causal", "story"}
    assert all(len(texts) == 3 and all(t.endswith("?") for t in texts) for texts in cats.values())
    cats["physical"].append("changed")  # a copy: the next call is unchanged
    assert eng.example_instructions() == photo_examples.INSTRUCTIONS


def test_missing_example_photos_mean_no_image_examples_but_instructions_still(tmp_path, monkeypatch):
    from app import photo_examples
    from reasonbrain.configuration import REASON_THEN_EDIT_MODE

    assert photo_examples.example_photos(tmp_path) == []  # a folder without them
    monkeypatch.setattr(photo_examples, "photo_folder", lambda: None)  # gradio's folder not there
    eng = Engine(Settings(preset="tiny", mode=REASON_THEN_EDIT_MODE, data_dir=str(tmp_path)))
    assert eng.example_images() == [] and eng.example_instructions() == photo_examples.INSTRUCTIONS
