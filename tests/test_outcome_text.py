"""The model says what it inferred (issue 18, item 5): the outcome text's builder and scorer, the generation-only
outcome adapter (save/load, edits bit-identical with and without it, the reader's states in its prompt, teacher
forcing that matches generation), the training script and the benchmark, the CLI's sidecar and the app's panel."""

from __future__ import annotations

import json
import os
import shutil

import numpy as np
import pytest
import torch

from reasonbrain.synthworld.dataset import generate_sample, sample_matching
from reasonbrain.synthworld.outcome import outcome_text, read_outcome, score_outcome
from tests.conftest import pipeline_for, tiny_config

from .scripts import load_script

TABLE = "wordllama-l2-supercat-256"
SENTENCE = "the green apple on the left becomes a rotten, shrivelled brown apple"
ADAPTER = {"r": 8, "alpha": 16}


def outcome_config(**overrides):
    """The tiny preset with a fully fine-tuned MLLM and an outcome adapter."""
    mllm = {"lora": None, "generate_reasoning": True, "outcome_adapter": dict(ADAPTER), **overrides.pop("mllm", {})}
    return tiny_config(mllm=mllm, **overrides)


def reader_overrides() -> dict:
    return {"text_encoder": {"pretrained_table": TABLE, "pretrained_model_name_or_path": None,
                             "config": {"hidden_size": 32, "num_layers": 1, "num_heads": 4, "max_length": 24},
                             "max_length": 24}}


def teach(model, image, instruction: str, sentence: str, steps: int = 60) -> None:
    """Train the outcome adapter (alone) until it writes ``sentence`` for (image, instruction)."""
    from reasonbrain.training.train_outcome import outcome_losses

    prompt, rows = pipeline_for(model).edit_sequences([image], [instruction])
    assert rows == [0]
    model.requires_grad_(False)
    params = model.mllm.outcome_parameters()
    for p in params:
        p.requires_grad_(True)
    opt = torch.optim.AdamW(params, lr=1e-2)
    model.mllm.outcome_lm.train()
    for _ in range(steps):
        loss = outcome_losses(model, prompt, [sentence])["nll"]
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.mllm.outcome_lm.eval()
    for p in params:
        p.requires_grad_(False)


@pytest.fixture(scope="module")
def apple():
    return sample_matching("apple_rot", "outcome-test", colour="green", position="left")


@pytest.fixture(scope="module")
def taught(apple, tmp_path_factory):
    """A tiny checkpoint whose outcome adapter says SENTENCE for the apple scene, and that scene as a file."""
    from reasonbrain.models.reasonbrain import ReasonBrainModel

    folder = tmp_path_factory.mktemp("taught")
    torch.manual_seed(0)
    model = ReasonBrainModel.from_config(outcome_config()).eval()
    teach(model, apple.src, apple.record.instruction, SENTENCE)
    pipeline_for(model).save_pretrained(folder / "ckpt")
    apple.src.save(folder / "scene.png")
    return {"checkpoint": str(folder / "ckpt"), "image": str(folder / "scene.png"), "model": model}


def without_adapter(checkpoint: str, into: str) -> str:
    """A copy of ``checkpoint`` with its outcome adapter removed (every other weight as it was)."""
    shutil.copytree(checkpoint, into)
    shutil.rmtree(os.path.join(into, "mllm_outcome_adapter"))
    path = os.path.join(into, "reasonbrain_config.json")
    with open(path, encoding="utf-8") as f:
        config = json.load(f)
    config["mllm"].update(outcome_adapter=None, generate_reasoning=False)
    with open(path, "w", encoding="utf-8") as f:
        json.dump(config, f)
    return into


# ------------------------------------------------------------------------------------------------ builder, scorer
def test_builder_says_the_object_and_its_outcome_in_the_describers_words(apple):
    assert outcome_text(apple.record) == SENTENCE
    ice = sample_matching("ice_melt", "outcome-ice", colour="blue", position="right").record
    assert outcome_text(ice) == "the blue ice cube on the right becomes a puddle of melted water"
    sky = sample_matching("sky_snow", "outcome-sky").record
    assert outcome_text(sky) == "the scene is now in snowy winter weather"
    for record in (apple.record, ice, sky):  # the same describer as the records' output descriptions
        outcome = outcome_text(record).split(" becomes ")[-1].split(" is now ")[-1]
        assert outcome in record.output_description and outcome not in record.input_description


def test_scorer_reads_good_wrong_and_junk_text(apple):
    record = apple.record
    good = score_outcome(SENTENCE, record)
    assert good.object_right and good.outcome_right and good.both_right
    assert score_outcome(SENTENCE.upper() + ".", record).both_right  # case and punctuation do not matter
    assert score_outcome("the apple on the left becomes a rotten brown apple", record).both_right  # close enough
    moved = score_outcome(SENTENCE.replace("on the left", "on the right"), record)
    assert not moved.object_right and moved.outcome_right
    other_kind = score_outcome(SENTENCE.replace("green apple", "grey bucket", 1), record)
    assert not other_kind.object_right and other_kind.outcome_right
    bitten = score_outcome("the green apple on the left becomes a green apple with a big bite taken out", record)
    assert bitten.object_right and not bitten.outcome_right and bitten.reading.outcome_state == "bitten"
    banana = score_outcome("the green apple on the left becomes a rotten black banana", record)
    assert banana.object_right and not banana.outcome_right and banana.reading.outcome_kind == "banana"
    for junk in ("", "asdf qwerty zxcv", "[IMG0][IMG1]", "the the the the the", "apple apple apple"):
        s = score_outcome(junk, record)
        assert not s.object_right and not s.outcome_right, junk
    sky = sample_matching("sky_snow", "outcome-sky").record
    assert score_outcome("the scene is now in snowy winter weather", sky).both_right
    night = score_outcome("the scene is now at night", sky)
    assert night.object_right and not night.outcome_right
    assert not score_outcome(SENTENCE, sky).object_right
    assert read_outcome("the blue puddle on the centre-left becomes a faint damp stain").position == "centre-left"


def test_every_builder_text_scores_right():
    for i in range(60):
        record = generate_sample(0, i).record
        assert score_outcome(outcome_text(record), record).both_right, outcome_text(record)


# ------------------------------------------------------------------------------------------------ the adapter
def test_adapter_save_load_round_trip(taught, apple, tmp_path):
    from reasonbrain.models.reasonbrain import ReasonBrainModel
    from reasonbrain.pipelines.pipeline_reasonbrain import INFERRED_OUTCOME, ReasonBrainEditPipeline

    folder = taught["checkpoint"]
    files = sorted(os.listdir(os.path.join(folder, "mllm_outcome_adapter")))
    assert "adapter_config.json" in files and "adapter_model.safetensors" in files  # PEFT's own format
    from safetensors.torch import load_file

    saved = load_file(os.path.join(folder, "mllm_outcome_adapter", "adapter_model.safetensors"))
    assert saved and all("lora_" in k for k in saved)  # the adapter only: the language model is not copied
    pipe = ReasonBrainEditPipeline.from_pretrained(folder)
    assert pipe.config.mllm.outcome_adapter["r"] == ADAPTER["r"] and pipe.reasoning_kind == INFERRED_OUTCOME
    mine = dict(taught["model"].mllm.outcome_lm.named_parameters())
    loaded = dict(pipe.model.mllm.outcome_lm.named_parameters())
    lora = [n for n in mine if "lora_" in n]
    assert lora and all(torch.equal(mine[n], loaded[n]) for n in lora)
    assert pipe.infer_outcomes([taught["image"]], [apple.record.instruction]) == [SENTENCE]
    # strict: a missing folder or a missing weight raises
    broken = shutil.copytree(folder, tmp_path / "broken")
    shutil.rmtree(broken / "mllm_outcome_adapter")
    with pytest.raises(ValueError, match="outcome adapter"):
        ReasonBrainModel.from_pretrained(broken)
    shutil.copytree(os.path.join(folder, "mllm_outcome_adapter"), broken / "mllm_outcome_adapter")
    from safetensors.torch import save_file

    save_file(dict(list(saved.items())[1:]), str(broken / "mllm_outcome_adapter" / "adapter_model.safetensors"))
    with pytest.raises(ValueError, match="does not match"):
        ReasonBrainModel.from_pretrained(broken)


def test_the_edit_is_bit_identical_with_and_without_the_adapter(taught, apple, tmp_path):
    from reasonbrain.pipelines.pipeline_reasonbrain import ReasonBrainEditPipeline

    instruction = apple.record.instruction
    with_it = ReasonBrainEditPipeline.from_pretrained(taught["checkpoint"])
    plain = ReasonBrainEditPipeline.from_pretrained(without_adapter(taught["checkpoint"], str(tmp_path / "plain")))
    assert plain.model.mllm.outcome_lm is None and plain.reasoning_kind is None
    a = with_it(taught["image"], instruction, seed=5, num_inference_steps=3)
    b = plain(taught["image"], instruction, seed=5, num_inference_steps=3)
    assert a.reasoning == SENTENCE and b.reasoning is None  # the adapter is on while the MLLM writes...
    assert np.array_equal(np.asarray(a.images[0]), np.asarray(b.images[0]))  # ...and never in the edit
    # the conditioning itself, not only the rounded pixels
    model = with_it.model
    res, grid = model.config.resolution, model.grid_size
    pixels = torch.rand(2, 3, res, res, generator=torch.Generator().manual_seed(0)) * 2 - 1
    masks, valid = torch.ones(2, 1, grid, grid), torch.ones(2, 1, dtype=torch.bool)
    latent_hw = (res // model.vae_scale_factor,) * 2
    args = (pixels, [instruction, ""], ["<obj> apple </obj>", ""], masks, valid, latent_hw)
    with torch.no_grad():
        ca, cb = with_it.model.encode_condition(*args), plain.model.encode_condition(*args)
    for name in ("img_hidden", "guidance", "input_offset", "context"):
        assert torch.equal(getattr(ca, name), getattr(cb, name)), name


def test_generation_goes_on_after_the_edits_own_sequence_with_the_readers_states(monkeypatch):
    from reasonbrain.models.reasonbrain import ReasonBrainModel

    torch.manual_seed(0)
    model = ReasonBrainModel.from_config(outcome_config(**reader_overrides())).eval()
    assert model.reads_normalized_text
    calls = {"build": [], "generate": []}
    build, generate = model.mllm.build_sequence, model.mllm.generate_text

    def spy_build(*args, **kwargs):
        sequence = build(*args, **kwargs)
        calls["build"].append((kwargs, sequence))
        return sequence

    def spy_generate(sequence, *args, **kwargs):
        calls["generate"].append((sequence, kwargs))
        return generate(sequence, *args, **kwargs)

    monkeypatch.setattr(model.mllm, "build_sequence", spy_build)
    monkeypatch.setattr(model.mllm, "generate_text", spy_generate)
    text = "What if the APPLE on the left were forgotten for a month?"
    pipeline_for(model)(PIL_image(), text, seed=0, num_inference_steps=1)
    (prompt, kwargs), = calls["generate"]
    assert kwargs["outcome_adapter"] is True
    (edit_kwargs, edit), = calls["build"]  # the edit's sequence (the instruction's row and the CFG branch's)
    for key in ("input_ids", "inputs_embeds", "attention_mask"):
        assert torch.equal(prompt[key][0], edit[key][0])  # the prompt is the edit's own sequence...
    r = len(model.mllm.img_token_ids)
    assert prompt["input_ids"][0, -r:].tolist() == model.mllm.img_token_ids  # ...up to its [IMG] tokens
    states, keep = edit_kwargs["instruction_embeds"]
    expected = model.instruction_embeds(*model.encode_text([text]))
    assert torch.allclose(states[0], expected[0][0], atol=1e-6) and torch.equal(keep[0], expected[1][0])
    placed = prompt["inputs_embeds"][0][prompt["input_ids"][0] == model.mllm.placeholder_id]
    assert torch.equal(placed[-states.shape[1]:], states[0])  # the reader's states stand in the prompt...
    instruction_ids = set(model.mllm.tokenizer.encode(" apple forgotten", add_special_tokens=False))
    assert not instruction_ids & set(prompt["input_ids"][0].tolist())  # ...instead of the instruction's tokens


def test_a_token_model_writes_the_instruction_as_tokens(taught, apple):

    model = taught["model"]
    assert not model.reads_normalized_text
    prompt, _ = pipeline_for(model).edit_sequences([apple.src], [apple.record.instruction])
    apple_ids = set(model.mllm.tokenizer.encode(" apple", add_special_tokens=False))
    assert apple_ids <= set(prompt["input_ids"][0].tolist())


def test_teacher_forcing_predicts_what_generation_writes():
    """The training loss sees the positions and embeddings generation uses (reader padding inside the prompt)."""
    from reasonbrain.models.reasonbrain import ReasonBrainModel
    from reasonbrain.training.train_outcome import outcome_logits

    torch.manual_seed(1)
    model = ReasonBrainModel.from_config(outcome_config(**reader_overrides())).eval()
    for p in model.mllm.outcome_parameters():
        torch.nn.init.normal_(p, std=0.3)
    n, grid = model.mllm.grid_size ** 2, model.grid_size
    ia, features = torch.randn(2, n, model.mllm.hidden_size), torch.randn(2, n, model.mllm.vision_dim)
    masks, valid = torch.ones(2, 1, grid, grid), torch.ones(2, 1, dtype=torch.bool)
    texts = ["what if the ice cube melted?", "the apple on the left, a month later"]
    with torch.no_grad():
        prompt = model.edit_sequence(ia, features, texts, ["<obj> ice cube </obj>", "<obj> apple </obj>"], masks,
                                     valid).sequence
    assert not prompt["attention_mask"].all()  # the reader's padding sits inside the prompt
    generated = model.mllm.outcome_lm.get_base_model().generate(
        inputs_embeds=prompt["inputs_embeds"], attention_mask=prompt["attention_mask"], max_new_tokens=10,
        min_new_tokens=10, do_sample=False, pad_token_id=model.mllm.tokenizer.pad_token_id)  # (2, 10)
    with torch.no_grad():
        logits = outcome_logits(model, prompt, generated, torch.ones_like(generated, dtype=torch.bool))
    assert torch.equal(logits.argmax(-1), generated)


def test_an_outcome_adapter_needs_a_fully_fine_tuned_mllm():
    with pytest.raises(ValueError, match="outcome_adapter needs a fully fine-tuned MLLM"):
        tiny_config(mllm={"outcome_adapter": dict(ADAPTER)})  # the tiny preset's MLLM is LoRA-wrapped


# ------------------------------------------------------------------------------------------------ training, benchmark
def test_training_script_writes_a_pipeline_folder_and_resumes(tmp_path, capsys):
    from reasonbrain.models.reasonbrain import ReasonBrainModel
    from reasonbrain.pipelines.pipeline_reasonbrain import ReasonBrainEditPipeline
    from reasonbrain.synthworld.dataset import write_dataset
    from reasonbrain.training.train_outcome import main

    write_dataset(tmp_path / "data", n=40, n_chains=1, workers=1, progress=False)
    torch.manual_seed(0)
    source = tmp_path / "source"
    config = tiny_config(mllm={"lora": None, "max_instruction_tokens": 128})  # the synth preset reads 128 tokens
    pipeline_for(ReasonBrainModel.from_config(config)).save_pretrained(source)
    (source / "README.md").write_text("card", encoding="utf-8")
    out = tmp_path / "out"
    args = ["--checkpoint", str(source), "--out", str(out), "--data-dir", str(tmp_path / "data"), "--threads", "1",
            "--train-records", "12", "--val-records", "3", "--val-every", "2", "--batch-size", "4"]
    assert main([*args, "--steps", "4", "--max-minutes", "0"]) == 0  # stops after its first step, state saved
    assert not out.exists() and (tmp_path / "out.work" / "state.pt").exists()
    assert main([*args, "--steps", "4", "--resume"]) == 0
    summary = json.loads((out / "outcome_summary.json").read_text(encoding="utf-8"))
    assert summary["steps"] == 4 and summary["chosen_step"] in (2, 4) and summary["checkpoint_mb"] < 40
    assert (out / "README.md").read_text(encoding="utf-8") == "card"  # the source's other files come along
    assert not (source / "mllm_outcome_adapter").exists()  # the source is only read
    lines = (tmp_path / "out.work" / "validation.csv").read_text(encoding="utf-8").splitlines()
    assert len(lines) == 3 and "own_both" in lines[0]  # steps 2 and 4 (after the resume)
    trained = ReasonBrainEditPipeline.from_pretrained(out)
    assert trained.config.mllm.generate_reasoning and trained.model.mllm.outcome_lm is not None
    image = str(tmp_path / "data" / "images")
    scene = next(os.path.join(d, f) for d, _, fs in os.walk(image) for f in fs if f.endswith("_src.png"))
    a = trained(scene, "What if the apple were left for weeks?", seed=1, num_inference_steps=2)
    b = ReasonBrainEditPipeline.from_pretrained(source)(scene, "What if the apple were left for weeks?", seed=1,
                                                        num_inference_steps=2)
    assert np.array_equal(np.asarray(a.images[0]), np.asarray(b.images[0]))  # training left the edit alone

    outcome_eval = load_script("benchmarks/outcome_eval.py")
    capsys.readouterr()
    assert outcome_eval.main(["--checkpoint", str(out), "--data-dir", str(tmp_path / "data"), "--limit", "3",
                              "--threads", "1", "--json-out", str(tmp_path / "eval.json")]) == 0
    printed = capsys.readouterr().out
    assert "| **overall** |" in printed and "rephrased: both" in printed
    result = json.loads((tmp_path / "eval.json").read_text(encoding="utf-8"))
    rows = result["rows"]["own"] + result["rows"]["rephrased"]
    assert len(rows) == 2 * result["records"] and all("generated" in r and "expected" in r for r in rows)
    assert set(result["summary"]["overall"]["own"]) == {"object", "outcome", "both"}


# ------------------------------------------------------------------------------------------------ CLI and app
def test_cli_sidecar_holds_the_inferred_outcome(taught, apple, tmp_path, capsys):
    from reasonbrain.__main__ import main

    out = tmp_path / "edit.png"
    assert main(["edit", "--checkpoint", taught["checkpoint"], "--device", "cpu", "--image", taught["image"],
                 "--instruction", apple.record.instruction, "--out", str(out), "--steps", "2", "--seed", "3"]) == 0
    sidecar = json.loads(out.with_suffix(".json").read_text(encoding="utf-8"))
    assert sidecar["reasoning"] == SENTENCE and sidecar["reasoning_kind"] == "inferred_outcome"
    assert f"the model's inferred outcome: {SENTENCE}" in capsys.readouterr().out


def test_reasoning_panel_labels_the_inferred_outcome():
    from app.render import object_markdown

    base = {"referenced_object": {"name": "apple"}, "seed": 1}
    shown = object_markdown({**base, "reasoning": SENTENCE, "reasoning_kind": "inferred_outcome"})
    assert f"**Reasoning (the model's inferred outcome):** {SENTENCE}" in shown
    assert "**Reasoning:** why" in object_markdown({**base, "reasoning": "why", "reasoning_kind": "explanation"})
    assert "**Reasoning:** —" in object_markdown(base)


def test_the_app_shows_the_inferred_outcome_in_a_browser(taught, apple, tmp_path):
    from tests.test_app_browser import CHROMIUM, CHROMIUM_ARGS, SHOTS, TIMEOUT, wait_nodes
    from tests.test_app_client import launch_app

    if not os.path.exists(CHROMIUM):
        pytest.skip(f"Chromium not installed at {CHROMIUM}")
    sync_api = pytest.importorskip("playwright.sync_api")
    SHOTS.mkdir(parents=True, exist_ok=True)
    with launch_app(str(tmp_path / "data"), checkpoint=taught["checkpoint"]) as app, \
            sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 720})
            page.set_default_timeout(TIMEOUT)
            page.goto(app.url)
            page.locator("#input-image input[type=file]").set_input_files(taught["image"])
            page.wait_for_selector("#input-image img")
            prompt = page.locator("#prompt").get_by_role("textbox")
            prompt.fill(apple.record.instruction)
            prompt.press("Enter")
            wait_nodes(page, 2)  # the source + step 1
            info = page.locator("#object-info")
            info.scroll_into_view_if_needed()
            text = " ".join(info.inner_text().split())
            assert f"Reasoning (the model's inferred outcome): {SENTENCE}" in text
            box, viewport = info.bounding_box(), page.viewport_size
            assert box["width"] > 0 and box["height"] > 0 and box["y"] < viewport["height"]  # on screen
            page.screenshot(path=str(SHOTS / "inferred-outcome.png"), full_page=True)
        finally:
            browser.close()


def PIL_image():
    from PIL import Image

    return Image.new("RGB", (64, 64), (60, 165, 60))
