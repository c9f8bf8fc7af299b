"""``python -m reasonbrain edit``: a mistake in the input is one ``error:`` line, before any model load or
progress bar; a good edit draws the bar and writes the image and its JSON."""

from __future__ import annotations

import json

import pytest

from reasonbrain import cli
from reasonbrain.__main__ import main

MELT = "What would happen if the ice cube were left in the sun?"


@pytest.fixture(scope="module")
def scene(tmp_path_factory) -> str:
    from reasonbrain.synthworld import sample_scene

    path = tmp_path_factory.mktemp("cli") / "scene.png"
    sample_scene(seed=0, resolution=64).src.save(path)
    return str(path)


@pytest.fixture(scope="module")
def tiny_pipeline():
    return cli.load_pipeline(preset="tiny", device="cpu")


@pytest.fixture
def loaded_once(tiny_pipeline, monkeypatch):
    """The tiny model loaded once for the module (loading is not what these tests are about)."""
    monkeypatch.setattr(cli, "load_pipeline", lambda *args, **kwargs: tiny_pipeline)


def edit(*args: str) -> int:
    return main(["edit", "--preset", "tiny", "--device", "cpu", *args])


def test_a_bad_image_is_refused_before_the_model_loads(tmp_path, capsys, monkeypatch):
    def no_load(*args, **kwargs):
        raise AssertionError("the model was loaded for an input that was never going to work")

    monkeypatch.setattr(cli, "load_pipeline", no_load)
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    notes = tmp_path / "notes.png"
    notes.write_text("not an image")
    for image, message in ((empty, "empty (0 bytes)"), (notes, "not a readable image"),
                           (tmp_path / "missing.png", "no such image file")):
        assert edit("--image", str(image), "--instruction", MELT, "--out", str(tmp_path / "o.png")) == 2
        err = capsys.readouterr().err
        assert err.startswith("error: ") and message in err and "Traceback" not in err
        assert "denoising" not in err and err.count("\n") == 1  # one line, no progress bar


@pytest.mark.parametrize("args,message", [
    (["--instruction", "   "], "instruction is empty"),
    (["--instruction", "x" * 5000], "5000 characters"),
    (["--instruction", MELT, "--steps", "0"], "num_inference_steps"),
    (["--instruction", MELT, "--guidance-scale", "-1"], "guidance_scale"),
])
def test_bad_arguments_are_refused_before_the_progress_bar(scene, tmp_path, capsys, loaded_once, args, message):
    assert edit("--image", scene, "--out", str(tmp_path / "o.png"), *args) == 2
    err = capsys.readouterr().err
    assert "error: " in err and message in err and "denoising" not in err and "Traceback" not in err
    assert not (tmp_path / "o.png").exists()


def test_a_good_edit_draws_the_bar_and_writes_image_and_json(scene, tmp_path, capsys, loaded_once):
    out = tmp_path / "out" / "edit.png"
    assert edit("--image", scene, "--instruction", MELT, "--out", str(out), "--steps", "2", "--seed", "5") == 0
    captured = capsys.readouterr()
    assert "denoising" in captured.err and "wrote" in captured.out
    assert out.is_file() and json.loads(out.with_suffix(".json").read_text())["seed"] == 5


def test_console_scripts_point_at_the_library_and_the_app():
    from importlib.metadata import entry_points

    import app.__main__
    import reasonbrain.__main__

    scripts = {e.name: e for e in entry_points(group="console_scripts") if e.name.startswith("reasonbrain")}
    assert scripts["reasonbrain"].load() is reasonbrain.__main__.main
    assert scripts["reasonbrain-studio"].load() is app.__main__.main


def test_one_resolver_finds_the_bundled_checkpoint_from_a_clone_or_the_working_directory(tmp_path):
    from pathlib import Path

    from app.settings import Settings
    from reasonbrain.bundled import default_checkpoint

    repo = Path(__file__).resolve().parent.parent
    assert default_checkpoint() == str(repo / "checkpoints" / "synth") == Settings().checkpoint
    installed, clone = tmp_path / "site-packages", tmp_path / "clone"  # a non-editable install, run from a clone
    (clone / "checkpoints" / "synth").mkdir(parents=True)
    assert default_checkpoint(installed, cwd=clone) == str(clone / "checkpoints" / "synth")
    assert default_checkpoint(installed, cwd=tmp_path) == str(installed / "checkpoints" / "synth")  # named in errors


def test_the_bundled_model_says_which_objects_it_sees_by_name(tmp_path, capsys):
    from reasonbrain.synthworld import sample_scene

    sample = sample_scene(seed=5)  # an ice cube and a log
    sample.src.save(tmp_path / "scene.png")
    assert main(["edit", "--image", str(tmp_path / "scene.png"), "--instruction", "make it night time",
                     "--out", str(tmp_path / "out.png"), "--device", "cpu", "--seed", "0"]) == 0
    line = capsys.readouterr().out.split("objects seen: ")[1].split(")\n")[0]
    assert sorted(line.split(", ")) == ["ice cube", "log"]  # names only, no "(None)" places


def test_the_cli_json_and_the_app_json_describe_an_edit_alike(tmp_path, monkeypatch):
    """The same edit (bundled model, same image, seed and steps) through the CLI and through the app's engine: the
    sidecar and the engine's details agree on every field the sidecar has (timings aside), the bound region, its
    label and the reasoning included."""
    from app.engine import EditRequest, Engine
    from app.settings import Settings
    from reasonbrain.pipelines.output import INFERRED_OUTCOME
    from reasonbrain.synthworld import sample_scene

    pipe = cli.load_pipeline(device="cpu")  # one pipeline for both (the engine would fuse the LoRA of its own)
    monkeypatch.setattr(cli, "load_pipeline", lambda *args, **kwargs: pipe)
    image = tmp_path / "scene.png"
    sample_scene(seed=5).src.save(image)  # an ice cube and a log
    out = tmp_path / "edit.png"
    assert main(["edit", "--image", str(image), "--instruction", MELT, "--out", str(out), "--device", "cpu",
                 "--seed", "3", "--steps", "2"]) == 0
    sidecar = json.loads(out.with_suffix(".json").read_text())

    engine = Engine(Settings(data_dir=str(tmp_path / "studio"), device="cpu"), pipeline_factory=lambda: pipe)
    result = engine.edit(EditRequest(image=str(image), instruction=MELT, steps=2, seed=3))
    details = json.loads(json.dumps(result.details))

    compared = set(sidecar) - {"timings", "detailed_timings"}
    assert {"bound_region", "bound_region_label", "region_labels", "reasoning", "reasoning_kind"} <= compared
    assert {k: sidecar[k] for k in compared} == {k: details[k] for k in compared}
    bound = sidecar["bound_region"]
    assert isinstance(bound, int) and 0 <= bound < len(sidecar["region_labels"]) - 1  # an object, not the background
    assert sidecar["bound_region_label"] == sidecar["region_labels"][bound] == result.output.bound_region_label
    assert sidecar["reasoning"] and sidecar["reasoning_kind"] == INFERRED_OUTCOME
