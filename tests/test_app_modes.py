"""The app in both edit modes: the mode setting, the Engine's pipeline per mode (never switched silently), the model
and mode label on every result, in History and in the JSON, and the Edit tab's reasoning panel for a reason-then-edit
result. Tiny random-weight components on CPU, offline; a scripted MLLM answer where the panel's text must be fixed."""

from __future__ import annotations

import json
import uuid

import gradio as gr
import PIL.Image
import pytest
import torch

from app import render
from app.engine import EditRequest, Engine, names_backbones
from app.settings import Settings
from app.store import Store
from app.tabs import edit, history
from app.tabs.edit.views import HEATMAP_LABEL, MASK_LABEL
from reasonbrain.configuration import REASON_THEN_EDIT_MODE, REASONBRAIN_MODE, ReasonBrainConfig
from reasonbrain.pipelines.reason_then_edit import ReasonThenEditPipeline

from .conftest import tiny_config
from .test_reason_then_edit import GOOD_ANSWER, INSTRUCTION, BoxRegions, photo, with_parts

ALICE = str(uuid.UUID(int=1))
RTE = REASON_THEN_EDIT_MODE
BOX = (0.25, 0.25, 0.75, 0.75)  # GOOD_ANSWER's box: the scripted proposer's one region matches it
FAST = (1, 7.5, 1.5, 3, False, None)  # steps, guidance, image guidance, seed, randomise, scheduler


def scripted_pipeline(answer: str = GOOD_ANSWER) -> ReasonThenEditPipeline:
    torch.manual_seed(0)
    return with_parts(ReasonThenEditPipeline.from_config(tiny_config()), answer=answer, proposer=BoxRegions(BOX))


@pytest.fixture(scope="module")
def rte_engine(tmp_path_factory) -> Engine:
    """The tiny preset in reason-then-edit mode, its MLLM's answer scripted."""
    d = tmp_path_factory.mktemp("rte")
    eng = Engine(Settings(preset="tiny", mode=RTE, data_dir=str(d), examples=False), pipeline_factory=scripted_pipeline)
    eng.load()
    return eng


@pytest.fixture(scope="module")
def rb_engine(tmp_path_factory) -> Engine:
    d = tmp_path_factory.mktemp("rb")
    eng = Engine(Settings(preset="tiny", data_dir=str(d), examples=False))
    eng.load()
    return eng


@pytest.fixture
def store(tmp_path) -> Store:
    s = Store(str(tmp_path / "db.sqlite"), str(tmp_path / "data"))
    yield s
    s.close()


@pytest.fixture(scope="module")
def cheetah(tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp("photo") / "cheetah.png"
    photo((96, 64)).save(path)
    return str(path)


# --- the setting ----------------------------------------------------------------------------------------------------
def test_mode_setting_from_env_and_flag(tmp_path):
    env = {"REASONBRAIN_PRESET": "reasonbrain-3b", "REASONBRAIN_MODE": RTE, "REASONBRAIN_DATA_DIR": str(tmp_path)}
    assert Settings.from_env_and_args([], env=env).mode == RTE
    assert Settings.from_env_and_args(["--mode", REASONBRAIN_MODE], env=env).mode == REASONBRAIN_MODE
    assert Settings.from_env_and_args([], env={**env, "REASONBRAIN_MODE": " "}).mode is None  # empty: the checkpoint's
    assert Settings(data_dir=str(tmp_path), mode="").mode is None
    with pytest.raises(ValueError, match=r"unknown mode 'reason-then-edit'; choose one of reasonbrain, reason_then_edit"):
        Settings.from_env_and_args(["--mode", "reason-then-edit"], env=env)


# --- the engine's pipeline per mode -----------------------------------------------------------------------------------
def test_a_real_preset_in_reason_then_edit_mode_names_its_pretrained_backbones(tmp_path):
    """REASONBRAIN_PRESET=reasonbrain-3b REASONBRAIN_MODE=reason_then_edit: the pretrained backbones (not loaded here:
    they come from the Hub), labelled as such; the tiny preset names none and runs on random weights."""
    assert names_backbones(ReasonBrainConfig.from_preset("reasonbrain-3b"))
    assert names_backbones(ReasonBrainConfig.from_preset("reasonbrain-7b"))
    assert not names_backbones(tiny_config())
    eng = Engine(Settings(preset="reasonbrain-3b", mode=RTE, data_dir=str(tmp_path)))
    assert (eng.mode, eng.checkpoint_hash) == (RTE, "pretrained-reasonbrain-3b")
    assert eng.model_label == "reasonbrain-3b · reason-then-edit (pretrained MLLM + InstructPix2Pix)"
    assert eng.domain_check(photo()) is None and not eng.loaded  # no photo warning for a real preset
    plain = Engine(Settings(preset="reasonbrain-3b", data_dir=str(tmp_path)))
    assert plain.mode == REASONBRAIN_MODE and plain.model_label == "reasonbrain-3b · ReasonBrain (random weights)"


def test_tiny_preset_in_reason_then_edit_mode_builds_its_pipeline_offline(tmp_path):
    eng = Engine(Settings(preset="tiny", mode=RTE, data_dir=str(tmp_path), examples=False))
    assert eng.mode == RTE and eng.checkpoint_hash == "random-tiny" and not eng.loaded
    eng.load()
    assert isinstance(eng._pipeline, ReasonThenEditPipeline) and eng.mode == RTE
    assert eng.defaults()["scheduler"] == type(eng._pipeline.editor.scheduler).__name__
    result = eng.edit(EditRequest(image=photo((80, 48)), instruction=INSTRUCTION, steps=1, seed=5))
    assert result.image.size == (80, 48) and result.details["mode"] == RTE and result.output.mode == RTE
    json.dumps(result.details)  # what the store keeps


def test_reason_then_edit_input_checks_and_prompt_counter(rte_engine):
    with pytest.raises(ValueError, match="instruction is empty"):
        rte_engine.edit(EditRequest(image=photo(), instruction="   ", steps=1))
    with pytest.raises(ValueError, match="num_inference_steps must be between"):
        rte_engine.edit(EditRequest(image=photo(), instruction=INSTRUCTION, steps=0))
    n = rte_engine.instruction_length(INSTRUCTION)
    tokenizer = rte_engine._pipeline.reasoner.mllm.tokenizer
    from reasonbrain.models.reasoner import PROMPT_TOKEN_LIMIT
    from reasonbrain.reasoning_prompt import structured_prompt

    whole = len(tokenizer.encode(structured_prompt(INSTRUCTION), add_special_tokens=False))
    assert n.tokens + (PROMPT_TOKEN_LIMIT - n.max_tokens) == whole  # what check_prompt counts, less the prompt's own
    assert 0 < n.tokens < n.max_tokens < PROMPT_TOKEN_LIMIT and not n.too_long
    assert "tokens" in edit.prompt_counter(rte_engine, INSTRUCTION)


def test_a_checkpoint_is_never_switched_to_a_mode_it_cannot_edit_in(tmp_path):
    """A reason-then-edit checkpoint holds no trained modules: a ReasonBrain request is refused, its own mode is read
    from its config without loading; a factory's pipeline in another mode than the one requested is refused."""
    folder = tmp_path / "rte-checkpoint"
    tiny_config(mode=RTE).save(folder)  # all a reason-then-edit checkpoint holds (save_pretrained writes just this)
    declared = Engine(Settings(checkpoint=str(folder), data_dir=str(tmp_path)))
    assert declared.mode == RTE and not declared.loaded
    assert declared.model_label.startswith("tiny · reason-then-edit (pretrained")  # its config names its backbones
    with pytest.raises(ValueError, match="holds no trained ReasonBrain modules"):
        Engine(Settings(checkpoint=str(folder), mode=REASONBRAIN_MODE, data_dir=str(tmp_path))).load()
    with pytest.raises(ValueError, match="edits in mode 'reasonbrain', not the requested 'reason_then_edit'"):
        Engine(Settings(preset="tiny", mode=RTE, data_dir=str(tmp_path)),
               pipeline_factory=lambda: _tiny_reasonbrain_pipeline()).load()


def test_python_m_app_refuses_a_mode_the_checkpoint_cannot_edit_in(tmp_path, capsys):
    from app.__main__ import main

    folder = tmp_path / "rte-checkpoint"
    tiny_config(mode=RTE).save(folder)
    assert main(["--checkpoint", str(folder), "--mode", REASONBRAIN_MODE, "--data-dir", str(tmp_path / "d")]) == 2
    assert "holds no trained ReasonBrain modules" in capsys.readouterr().err


def _tiny_reasonbrain_pipeline():
    from reasonbrain.pipelines.pipeline_reasonbrain import ReasonBrainEditPipeline

    return ReasonBrainEditPipeline.from_config(tiny_config())


# --- labels ---------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("preset, mode, checkpoint_hash, label", [
    ("reasonbrain-3b", RTE, "pretrained-reasonbrain-3b",
     "reasonbrain-3b · reason-then-edit (pretrained MLLM + InstructPix2Pix)"),
    ("synth", REASONBRAIN_MODE, "0123456789ab", "synth · ReasonBrain (trained)"),
    ("synth", None, "0123456789ab", "synth · ReasonBrain (trained)"),  # a step saved before modes existed
    ("tiny", RTE, "random-tiny", "tiny · reason-then-edit (random weights)"),
    ("tiny", None, "random-tiny", "tiny · ReasonBrain (random weights)"),
    ("tiny", RTE, "custom", "tiny · reason-then-edit"),  # a pipeline built in code: weights unknown
])
def test_model_label(preset, mode, checkpoint_hash, label):
    assert render.model_label(preset, mode, checkpoint_hash) == label


# --- the Edit tab, History and the JSON -------------------------------------------------------------------------------
def test_reason_then_edit_result_shows_model_mode_reasoning_and_mask(rte_engine, store, cheetah):
    view = edit.run_edit(rte_engine, store, ALICE, None, cheetah, INSTRUCTION, *FAST)
    assert "tiny · reason-then-edit (random weights)" in view.status
    md = view.object_md
    assert "**Outcome (the MLLM's reasoning):** The cheetah&#x27;s fur is soaked and dripping with rain." in md
    assert ("**Edit instruction given to the editor:** “make the cheetah&#x27;s fur soaking wet with rain drops” "
            "(the MLLM's explicit edit)") in md
    assert "**Referenced object:** cheetah · box [0.25, 0.25, 0.75, 0.75]" in md
    assert "**Mask:** the region from SAM 2 that matches the MLLM&#x27;s box" in md
    assert "**Fallbacks:** none" in md and "Object token" not in md and "Bound region" not in md
    assert "not applicable in reason-then-edit mode" in view.region_info and "The edit mask:" in view.region_info
    assert [row[3] for row in view.regions_table] == ["—", "—"]  # no attention: one region and the background
    clicked = edit.region_info(view.session, 0)  # a click on the region (the session keeps labels and scores)
    assert clicked.startswith("**Region 1 · brown, centre**") and "mask score 1.000" in clicked
    assert "attention not applicable in reason-then-edit mode · found by SAM 2" in clicked

    heatmap, regions = edit.reasoning_images(store, ALICE, view.session)
    assert heatmap["label"] == MASK_LABEL
    shown = heatmap["value"]
    assert isinstance(shown, PIL.Image.Image) and shown.size == (384, 256)
    pixels = shown.load()
    corner, centre = pixels[5, 5], pixels[192, 128]
    source = edit.display_image(PIL.Image.open(cheetah).convert("RGB")).load()
    assert sum(corner) < 0.5 * sum(source[5, 5]) + 3  # dimmed outside the edited area
    assert centre == source[192, 128]  # untouched inside it
    assert regions["label"] == "Regions: SAM 2" and len(regions["value"][1]) == 1

    payload = edit.step_payload(store.get_step(ALICE, view.session["step_id"]))
    assert payload["mode"] == RTE and payload["model"] == "tiny · reason-then-edit (random weights)"
    assert payload["edit_instruction_source"] == "mllm" and payload["mask_source"] == "box_region"
    assert json.loads(json.dumps(payload))["outcome"].startswith("The cheetah")

    cards = history.list_chains(store, ALICE)
    assert cards.models == {view.session["chain_id"]: "tiny · reason-then-edit (random weights)"}
    assert '<span class="rb-card-model">tiny · reason-then-edit (random weights)</span>' in cards.html


def test_reason_then_edit_fallbacks_are_spelled_out(rte_engine, store, cheetah, monkeypatch):
    monkeypatch.setattr(rte_engine._pipeline.reasoner, "script", "I am not sure.")
    view = edit.run_edit(rte_engine, store, ALICE, None, cheetah, INSTRUCTION, *FAST)
    md = view.object_md
    assert "**Outcome (the MLLM's reasoning):** — (the MLLM gave none)" in md
    assert "(your instruction as typed: the MLLM gave no explicit edit)" in md
    assert "**Referenced object:** (none named)" in md
    assert "**Mask:** the whole picture (nothing confined the edit)" in md
    assert "**Fallbacks:** the MLLM gave no explicit edit instruction" in md
    heatmap, _ = edit.reasoning_images(store, ALICE, view.session)
    assert heatmap["value"].size == (384, 256)  # nothing dimmed, nothing outlined: still a picture


def test_no_photo_warning_in_reason_then_edit_mode(rte_engine, store, cheetah):
    assert not rte_engine.synth_only and rte_engine.domain_check(cheetah) is None
    assert edit.domain_notice(rte_engine, store, ALICE, edit.empty_session(), cheetah) == gr.skip()  # stays hidden
    view = edit.run_edit(rte_engine, store, ALICE, None, cheetah, INSTRUCTION, *FAST)
    assert "out of domain" not in view.status and "domain" not in view.step.details


def test_reasonbrain_result_and_history_name_the_model_and_old_rows_read_as_reasonbrain(rb_engine, store, cheetah):
    view = edit.run_edit(rb_engine, store, ALICE, None, cheetah, INSTRUCTION, *FAST)
    assert "tiny · ReasonBrain (random weights)" in view.status and "Object token" in view.object_md
    assert view.step.details["mode"] == REASONBRAIN_MODE
    heatmap, _ = edit.reasoning_images(store, ALICE, view.session)
    assert heatmap["label"] == HEATMAP_LABEL
    # a step saved before modes existed: no mode in its details
    old = {k: v for k, v in view.step.details.items() if k != "mode"}
    step = store.start_chain(ALICE, PIL.Image.new("RGB", (8, 8)), instruction="old edit",
                             output_image=PIL.Image.new("RGB", (8, 8), "red"), seed=1, settings={}, preset="synth",
                             checkpoint_hash="0123456789ab", timings={}, details=old)
    assert history.list_chains(store, ALICE).models[step.chain_id] == "synth · ReasonBrain (trained)"
    assert edit.step_payload(store.get_step(ALICE, step.id))["mode"] == REASONBRAIN_MODE
    assert "synth · ReasonBrain (trained)" in edit.select_step(store, ALICE, {"chain_id": step.chain_id}, step.id).status


# --- what the app offers per mode: examples, the intro, demo chains ---------------------------------------------------
def test_reason_then_edit_app_offers_photos_and_says_what_happens(tmp_path, store):
    from app import photo_examples, ui
    from app.tabs.edit.handlers import PROMPT_HINT

    eng = Engine(Settings(preset="tiny", mode=RTE, data_dir=str(tmp_path)), pipeline_factory=scripted_pipeline)
    intro = ui.intro(eng)
    assert eng.photo_examples and intro == ui.INTRO_REASON_THEN_EDIT and intro.startswith("Reason-then-edit mode:")
    assert "an MLLM reasons about" in intro and "writes an explicit edit, SAM 2 masks the object" in intro
    assert "InstructPix2Pix edits only inside that mask." in intro and "not trained ReasonBrain weights" in intro
    _, h = ui.build_app(eng, store)
    assert h.edit.prompt.placeholder == photo_examples.PROMPT_HINT != PROMPT_HINT
    samples = [s[0] for d in h.edit.instruction_examples for s in d.samples]
    assert samples == [render.esc(t) for texts in photo_examples.INSTRUCTIONS.values() for t in texts]
    if photo_examples.photo_folder() is None:
        assert h.edit.examples is None  # no photos installed: no image examples, no crash
        return
    assert h.edit.examples.dataset.label == "Example photos (click one: image and instruction)"
    rows = h.edit.examples.examples
    assert [r[1] for r in rows] == [text for _, text in photo_examples.PHOTOS]
    assert all(r[0].endswith(".jpg") and PIL.Image.open(r[0]).size != (64, 64) for r in rows)


def test_missing_photos_build_the_edit_tab_without_image_examples(tmp_path, store, monkeypatch):
    from app import photo_examples, ui

    monkeypatch.setattr(photo_examples, "photo_folder", lambda: None)
    eng = Engine(Settings(preset="tiny", mode=RTE, data_dir=str(tmp_path)), pipeline_factory=scripted_pipeline)
    _, h = ui.build_app(eng, store)
    assert h.edit.examples is None and len(h.edit.instruction_examples) == 4


def test_a_reasonbrain_app_keeps_the_synthetic_worlds_examples_and_intro(tmp_path, store):
    from app import ui
    from app.tabs.edit.handlers import PROMPT_HINT

    eng = Engine(Settings(preset="tiny", data_dir=str(tmp_path)))
    assert not eng.photo_examples and ui.intro(eng) == ui.INTRO
    _, h = ui.build_app(eng, store)
    assert h.edit.examples.dataset.label == "Example scenes (click one: image and instruction)"
    assert h.edit.prompt.placeholder == PROMPT_HINT
    assert all(PIL.Image.open(r[0]).size == (64, 64) and r[0].endswith(".png") for r in h.edit.examples.examples)


def test_reason_then_edit_preloads_no_demo_chains_and_the_presenter_says_so(rte_engine, store, cheetah, caplog):
    from app.demo_chains import preload_demo_chains
    from app.tabs import presenter

    with caplog.at_level("INFO", logger="app.demo_chains"):
        assert preload_demo_chains(rte_engine, store, seeds=(1,)) == []
    assert "reason-then-edit mode: no demo chains preloaded" in caplog.text
    assert not store.has_demo_chains()
    dropdown, _, header, *_ = presenter.enter(store, ALICE)
    assert dropdown["choices"] == [] and header == presenter.NO_CHAINS and "Edit tab" in header
    view = edit.run_edit(rte_engine, store, ALICE, None, cheetah, INSTRUCTION, *FAST)  # the user's own chain
    dropdown, _, header, *_ = presenter.enter(store, ALICE)
    assert [v for _, v in dropdown["choices"]] == [view.session["chain_id"]] and "Step 1 of 1" in header


def test_an_empty_instruction_is_refused_with_an_example_for_the_model_served(rte_engine, rb_engine, store, cheetah):
    from app.photo_examples import PROMPT_HINT as PHOTO_HINT
    from app.tabs.edit.handlers import PROMPT_HINT

    for engine, hint in ((rte_engine, PHOTO_HINT), (rb_engine, PROMPT_HINT)):
        with pytest.raises(gr.Error) as refused:
            edit.run_edit(engine, store, ALICE, None, cheetah, "   ", *FAST)
        assert hint in str(refused.value.message)
    assert PHOTO_HINT != PROMPT_HINT
