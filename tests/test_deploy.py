"""The Space manifest and `python -m app.deploy`: rendering, requirements, and the Hub calls (with a fake HfApi)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import gradio
import pytest
import yaml

from app import deploy
from app.deploy import DeployError

REPO = Path(__file__).resolve().parent.parent
SPACE = "alice/rb-studio"
ENV = {"HF_TOKEN": "hf_secret_value"}


class FakeHfApi:
    """Records every method call as (name, args, kwargs); no network."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, tuple[Any, ...], dict[str, Any]]] = []

    def __getattr__(self, name: str):
        def record(*args: Any, **kwargs: Any) -> None:
            self.calls.append((name, args, kwargs))

        return record

    def named(self, name: str) -> list[tuple[tuple[Any, ...], dict[str, Any]]]:
        return [(a, k) for n, a, k in self.calls if n == name]


class SpaceWithVariables(FakeHfApi):
    """A Space that already has some variables (an earlier deploy)."""

    def __init__(self, variables: dict[str, str]) -> None:
        super().__init__()
        self.variables = variables

    def get_space_variables(self, repo_id: str) -> dict[str, str]:
        self.calls.append(("get_space_variables", (repo_id,), {}))
        return self.variables


def raw_manifest() -> dict[str, Any]:
    return yaml.safe_load((REPO / "space.yaml").read_text(encoding="utf-8"))


def preset_json(name: str) -> dict[str, Any]:
    return json.loads((REPO / "reasonbrain" / "presets" / f"{name}.json").read_text(encoding="utf-8"))


def manifest_serving(serve: str, tmp_path: Path, **deploy_changes: Any) -> deploy.Manifest:
    data = raw_manifest()
    data["serve"] = serve
    data["deploy"].update(deploy_changes)
    path = tmp_path / f"space-{len(list(tmp_path.iterdir()))}.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    return deploy.load_manifest(path)


def front_matter_of(readme_text: str) -> tuple[str, str]:
    assert readme_text.startswith("---\n")
    front, body = readme_text[4:].split("\n---\n", 1)
    return front, body


# What the Space rendered before `serve` existed (the synth checkpoint; reasonbrain-3b's backbones preloaded): the
# synth choice must keep rendering exactly this.
SYNTH_FRONT_MATTER = """\
title: ReasonBrain Studio
emoji: 🧠
colorFrom: indigo
colorTo: pink
sdk: gradio
sdk_version: 6.31.0
python_version: '3.11'
app_file: space_app.py
suggested_hardware: a10g-small
short_description: Hypothetical-instruction image editing (ReasonBrain)
license: apache-2.0
tags:
- image-editing
- reasoning
- multimodal
models:
- xtuner/llava-phi-3-mini-hf
- timbrooks/instruct-pix2pix
- facebook/sam2.1-hiera-small
preload_from_hub:
- xtuner/llava-phi-3-mini-hf
- timbrooks/instruct-pix2pix text_encoder/config.json,text_encoder/model.safetensors,vae/config.json,vae/diffusion_pytorch_model.safetensors
- facebook/sam2.1-hiera-small
hf_oauth: true
hf_oauth_expiration_minutes: 43200"""
SYNTH_BODY = (
    '\n'
    '# ReasonBrain Studio\n'
    '\n'
    'Hypothetical-instruction image editing: type *"What would happen if the ice cube were left in the sun?"*, see the\n'
    'edit, the reasoning behind it, the SAM regions and the object the model bound the instruction to, and keep\n'
    'editing the result (multi-hop chains).\n'
    '\n'
    '- **Edit**: upload an image, write a hypothetical instruction, inspect the reasoning panel; continue from any result.\n'
    '- **History**: your chains, newest first. Sign in with Hugging Face to keep them across browsers and devices.\n'
    '- **Presenter**: replay a chain step by step.\n'
    '\n'
    "History lives in SQLite on the Space's local disk; it is snapshotted to the private dataset `alice/rb-studio-history`.\n"
    '\n'
    "This folder is rendered by `python -m app.deploy` from the project's `space.yaml`: edit that, not this file.\n"
)
SYNTH_VARIABLES = {"REASONBRAIN_CHECKPOINT": "checkpoints/synth", "REASONBRAIN_EXAMPLES": "1",
                   "REASONBRAIN_SNAPSHOT_REPO": "alice/rb-studio-history", "REASONBRAIN_SNAPSHOT_EVERY_S": "300",
                   "REASONBRAIN_SNAPSHOT_KEEP": "10"}


def gradio_pin() -> str:
    pins = re.findall(r"^gradio(?:\[[^\]]*\])?==(\S+)\s*$", (REPO / "requirements.txt").read_text(), re.M)
    assert len(pins) == 1, "requirements.txt must pin gradio exactly once"
    return pins[0]


@pytest.fixture(scope="module")
def rendered(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("space") / "out"
    return deploy.render_space(deploy.load_manifest(), SPACE, out)


def test_readme_front_matter_is_the_manifest_readme_part(rendered):
    front, body = front_matter_of((rendered / "README.md").read_text(encoding="utf-8"))
    rendered_keys = {"models", "preload_from_hub"}
    assert {k: v for k, v in yaml.safe_load(front).items() if k not in rendered_keys} == raw_manifest()["readme"]
    assert "ReasonBrain Studio" in body and "alice/rb-studio-history" in body


def test_synth_is_the_default_and_renders_what_it_rendered_before(rendered):
    assert raw_manifest()["serve"] == deploy.SERVE_SYNTH == deploy.Manifest({}, {}).serve
    front, body = front_matter_of((rendered / "README.md").read_text(encoding="utf-8"))
    assert front == SYNTH_FRONT_MATTER
    assert body == SYNTH_BODY
    api = FakeHfApi()
    deploy.deploy(deploy.load_manifest(), SPACE, rendered, api=api, env=ENV)
    assert {a[1]: a[2] for a, _ in api.named("add_space_variable")} == SYNTH_VARIABLES
    assert [a[1] for a, _ in api.named("add_space_variable")][:2] == ["REASONBRAIN_CHECKPOINT", "REASONBRAIN_EXAMPLES"]
    assert api.named("create_repo")[0][1]["space_hardware"] == "a10g-small"
    assert api.named("delete_space_variable") == []  # a fresh Space has nothing to remove


def test_sdk_version_is_the_pinned_gradio():
    readme = raw_manifest()["readme"]
    assert readme["sdk"] == "gradio"
    assert str(readme["sdk_version"]) == gradio_pin() == gradio.__version__


def test_readme_part_uses_only_hub_keys_and_preset_models(rendered):
    readme = raw_manifest()["readme"]
    assert set(readme) <= deploy.README_KEYS and not set(readme) & {"models", "preload_from_hub"}
    assert readme["hf_oauth"] is True and readme["app_file"] == "space_app.py"
    front = yaml.safe_load(front_matter_of((rendered / "README.md").read_text(encoding="utf-8"))[0])
    assert set(front) <= deploy.README_KEYS
    preset = (REPO / "reasonbrain" / "presets" / "reasonbrain-3b.json").read_text()
    for repo_id in front["models"]:
        assert f'"{repo_id}"' in preset
    assert {line.split()[0] for line in front["preload_from_hub"]} == set(front["models"])


@pytest.mark.parametrize("preset", [None, "reasonbrain-3b", "reasonbrain-7b"])
def test_reason_then_edit_serves_the_preset_backbones(tmp_path, capsys, preset):
    serve = "reason_then_edit" + (f":{preset}" if preset else "")
    name = preset or "reasonbrain-3b"
    manifest = manifest_serving(serve, tmp_path)
    out = deploy.render_space(manifest, SPACE, tmp_path / "out")
    front, body = front_matter_of((out / "README.md").read_text(encoding="utf-8"))
    front = yaml.safe_load(front)
    cfg = preset_json(name)
    mllm, sam, editor = (cfg["mllm"]["pretrained_model_name_or_path"], cfg["regions"]["pretrained_model_name_or_path"],
                         cfg["reason_then_edit"]["editor"])
    assert front["models"] == [mllm, editor, sam]
    preload = {line.split()[0]: line.split()[1].split(",") if " " in line else None
               for line in front["preload_from_hub"]}
    assert preload[mllm] is None and preload[sam] is None  # whole repos
    # the editor's whole diffusers pipeline (its UNet too), not the multi-GB original checkpoint files
    assert {"model_index.json", "unet/diffusion_pytorch_model.safetensors", "text_encoder/model.safetensors",
            "vae/diffusion_pytorch_model.safetensors", "scheduler/scheduler_config.json", "tokenizer/vocab.json",
            "safety_checker/model.safetensors"} <= set(preload[editor])
    assert [f for f in preload[editor] if "/" not in f] == ["model_index.json"]  # no top-level .ckpt/.safetensors
    assert f"`{name}` preset's pretrained backbones in reason-then-edit mode" in body and editor in body
    api = SpaceWithVariables({"REASONBRAIN_CHECKPOINT": "checkpoints/synth", "REASONBRAIN_EXAMPLES": "1"})
    deploy.deploy(manifest, SPACE, out, api=api, env=ENV)
    variables = {a[1]: a[2] for a, _ in api.named("add_space_variable")}
    assert variables["REASONBRAIN_PRESET"] == name and variables["REASONBRAIN_MODE"] == "reason_then_edit"
    assert "REASONBRAIN_CHECKPOINT" not in variables
    # the synth choice's variable from the earlier deploy goes, before the upload starts the new build
    assert api.named("delete_space_variable") == [((SPACE, "REASONBRAIN_CHECKPOINT"), {})]
    names = [n for n, _, _ in api.calls]
    assert names.index("delete_space_variable") < names.index("upload_folder")
    capsys.readouterr()
    assert deploy.main(["--space", SPACE, "--dry-run", "--out", str(tmp_path / "dry"), "--manifest",
                        str(sorted(tmp_path.glob("space-*.yaml"))[0])], api=api, env=ENV) == 0
    printed = capsys.readouterr().out
    assert f"REASONBRAIN_PRESET={name}" in printed and "REASONBRAIN_MODE=reason_then_edit" in printed


def test_going_back_to_synth_removes_the_reason_then_edit_variables(rendered):
    api = SpaceWithVariables({"REASONBRAIN_PRESET": "reasonbrain-3b", "REASONBRAIN_MODE": "reason_then_edit"})
    deploy.deploy(deploy.load_manifest(), SPACE, rendered, api=api, env=ENV)
    assert sorted(a[1] for a, _ in api.named("delete_space_variable")) == ["REASONBRAIN_MODE", "REASONBRAIN_PRESET"]
    assert {a[1]: a[2] for a, _ in api.named("add_space_variable")} == SYNTH_VARIABLES


def test_reason_then_edit_refuses_cpu_hardware(tmp_path):
    with pytest.raises(DeployError, match="needs a GPU.*deploy.hardware is cpu-basic"):
        manifest_serving("reason_then_edit", tmp_path, hardware="cpu-basic")
    data = raw_manifest()
    data["serve"], data["readme"]["suggested_hardware"] = "reason_then_edit", "cpu-upgrade"
    (tmp_path / "m.yaml").write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    with pytest.raises(DeployError, match="needs a GPU.*suggested_hardware is cpu-upgrade"):
        deploy.load_manifest(tmp_path / "m.yaml")
    manifest = manifest_serving("synth", tmp_path, hardware="cpu-basic")  # the synth model runs on a CPU
    assert deploy.serving(manifest).variables == {"REASONBRAIN_CHECKPOINT": "checkpoints/synth"}


def test_optional_browser_secret(rendered, tmp_path, capsys):
    assert raw_manifest()["deploy"]["optional_secrets"] == ["REASONBRAIN_BROWSER_SECRET"]
    api = FakeHfApi()
    deploy.deploy(deploy.load_manifest(), SPACE, rendered, api=api, env=ENV)  # unset: skipped, no error
    assert [a[1] for a, _ in api.named("add_space_secret")] == ["HF_TOKEN"]
    env = {**ENV, "REASONBRAIN_BROWSER_SECRET": "browser-key-value-0123456789"}
    api = FakeHfApi()
    deploy.deploy(deploy.load_manifest(), SPACE, rendered, api=api, env=env)
    assert ((SPACE, "REASONBRAIN_BROWSER_SECRET", env["REASONBRAIN_BROWSER_SECRET"]), {}) in api.named(
        "add_space_secret")
    assert deploy.main(["--space", SPACE, "--dry-run", "--out", str(tmp_path / "o")], env=env) == 0
    out = capsys.readouterr().out
    assert "<value of $REASONBRAIN_BROWSER_SECRET>" in out and env["REASONBRAIN_BROWSER_SECRET"] not in out
    assert deploy.main(["--space", SPACE, "--dry-run", "--out", str(tmp_path / "o2")], env=ENV) == 0
    assert "not set, so not added: REASONBRAIN_BROWSER_SECRET" in capsys.readouterr().out


def test_space_requirements_are_the_gpu_install(rendered):
    text = (rendered / "requirements.txt").read_text()
    lines = [line for line in text.splitlines() if line and not line.startswith("#")]
    assert not any(re.match(r"torch\s*==", line) for line in lines)
    for cpu_only in ("--index-url", "--extra-index-url", "download.pytorch.org", "+cpu", "-c ", "constraints"):
        assert cpu_only not in "\n".join(lines)
    assert {"xformers", "sam2"} <= set(lines)
    assert f"gradio[oauth]=={gradio_pin()}" in lines
    runtime = [re.split(r"[<>=!~\[ ]", line)[0] for line in (REPO / "requirements.txt").read_text().splitlines()
               if line.strip() and not line.startswith("#")]
    names = {re.split(r"[<>=!~\[ ]", line)[0] for line in lines}
    assert set(runtime) <= names


def test_rendered_folder_holds_the_project_and_entry(rendered):
    for path in ("app/__main__.py", "app/deploy.py", "app/migrations", "reasonbrain/__init__.py",
                 "checkpoints/synth/reasonbrain_config.json", "space_app.py"):
        assert (rendered / path).exists(), path
    assert not list(rendered.rglob("__pycache__"))
    compile((rendered / "space_app.py").read_text(), "space_app.py", "exec")
    assert "space_main()" in (rendered / "space_app.py").read_text()


def test_deploy_makes_the_hub_calls(rendered):
    api = FakeHfApi()
    deploy.deploy(deploy.load_manifest(), SPACE, rendered, api=api, env=ENV)
    names = [n for n, _, _ in api.calls]
    args, kw = api.named("create_repo")[0]
    assert args == (SPACE,) and kw["repo_type"] == "space" and kw["space_sdk"] == "gradio"
    assert kw["space_hardware"] == "a10g-small" and kw["exist_ok"] is True and kw["private"] is False
    assert api.named("create_repo")[1] == (("alice/rb-studio-history",),
                                            {"repo_type": "dataset", "private": True, "exist_ok": True})
    assert api.named("add_space_secret") == [((SPACE, "HF_TOKEN", "hf_secret_value"), {})]
    variables = {a[1]: a[2] for a, _ in api.named("add_space_variable")}
    assert variables["REASONBRAIN_SNAPSHOT_REPO"] == "alice/rb-studio-history"
    assert variables["REASONBRAIN_CHECKPOINT"] == "checkpoints/synth"  # the bundled model, copied into the Space
    assert (variables["REASONBRAIN_SNAPSHOT_EVERY_S"], variables["REASONBRAIN_SNAPSHOT_KEEP"]) == ("300", "10")
    (_, upload), = api.named("upload_folder")
    assert upload["repo_id"] == SPACE and upload["repo_type"] == "space"
    assert upload["folder_path"] == str(rendered)
    assert api.named("set_space_sleep_time") == [((SPACE, 3600), {})]
    # secrets and variables are in place before the upload starts the first build
    assert names.index("upload_folder") > max(i for i, n in enumerate(names) if n.startswith("add_space_"))


def test_private_flag_overrides_the_manifest(rendered):
    api = FakeHfApi()
    deploy.deploy(deploy.load_manifest(), SPACE, rendered, api=api, env=ENV, private=True)
    assert api.named("create_repo")[0][1]["private"] is True


def test_missing_secret_fails_before_any_call(rendered, capsys):
    api = FakeHfApi()
    with pytest.raises(DeployError, match="HF_TOKEN"):
        deploy.deploy(deploy.load_manifest(), SPACE, rendered, api=api, env={})
    assert api.calls == []
    assert deploy.main(["--space", SPACE], api=api, env={}) == 2
    assert "HF_TOKEN" in capsys.readouterr().err and api.calls == []


def test_dry_run_is_offline_and_prints_the_plan(tmp_path, capsys):
    api = FakeHfApi()
    assert deploy.main(["--space", SPACE, "--dry-run", "--out", str(tmp_path / "out")], api=api, env=ENV) == 0
    out = capsys.readouterr().out
    assert api.calls == []
    assert "would call create_repo('alice/rb-studio'" in out and "would call upload_folder(" in out
    assert "hf_secret_value" not in out and "<value of $HF_TOKEN>" in out
    assert (tmp_path / "out" / "README.md").is_file()
    assert deploy.main(["--space", SPACE, "--dry-run", "--out", str(tmp_path / "o2")], api=api, env={}) == 0
    assert "<MISSING: $HF_TOKEN is not set>" in capsys.readouterr().out


def test_bucket_storage_mounts_a_volume(rendered):
    manifest = deploy.load_manifest()
    manifest.deploy["storage"] = {"bucket": "{owner}/{name}-data", "mount_path": "/snapshots", "every_s": 60}
    api = FakeHfApi()
    deploy.deploy(manifest, SPACE, rendered, api=api, env=ENV)
    assert api.named("create_bucket") == [(("alice/rb-studio-data",), {"private": True, "exist_ok": True})]
    (args, kw), = api.named("set_space_volumes")
    volume = kw["volumes"][0]
    assert args == (SPACE,) and (volume.type, volume.source, volume.mount_path) == (
        "bucket", "alice/rb-studio-data", "/snapshots")
    variables = {a[1]: a[2] for a, _ in api.named("add_space_variable")}
    assert variables["REASONBRAIN_SNAPSHOT_DIR"] == "/snapshots" and variables["REASONBRAIN_SNAPSHOT_EVERY_S"] == "60"


@pytest.mark.parametrize("edit, match", [
    (lambda m: m["readme"].update(sdk_version="5.0.0"), "sdk_version"),
    (lambda m: m["readme"].update(colour="red"), "unknown key"),
    (lambda m: m["readme"].update(app_file="app.py"), "app_file"),
    (lambda m: m["deploy"].update(hardware="h100-mega"), "hardware"),
    (lambda m: m["deploy"]["storage"].update(bucket="x/y"), "not both"),
    (lambda m: m.update(serve="photos"), "serve must be"),
    (lambda m: m.update(serve="synth:reasonbrain-3b"), "serve must be"),
    (lambda m: m.update(serve="reason_then_edit:nope"), "unknown preset 'nope'"),
    (lambda m: m.update(serve="reason_then_edit:tiny"), "names no pretrained"),
    (lambda m: m.update(server="synth"), "unknown key"),
    (lambda m: m["readme"].update(models=["a/b"]), "rendered from 'serve'"),
    (lambda m: m["deploy"]["variables"].update(REASONBRAIN_PRESET="reasonbrain-3b"), "which 'serve' decides"),
])
def test_manifest_errors(tmp_path, edit, match):
    manifest = raw_manifest()
    edit(manifest)
    path = tmp_path / "space.yaml"
    path.write_text(yaml.safe_dump(manifest, allow_unicode=True))
    with pytest.raises(DeployError, match=match):
        deploy.load_manifest(path)


def test_bad_space_id_and_non_empty_out(tmp_path):
    with pytest.raises(DeployError, match="OWNER/NAME"):
        deploy.plan(deploy.load_manifest(), "no-slash", tmp_path, ENV)
    (tmp_path / "x").write_text("x")
    with pytest.raises(DeployError, match="not empty"):
        deploy.render_space(deploy.load_manifest(), SPACE, tmp_path)


def test_space_environment(tmp_path):
    env = deploy.space_environment({}, data_root=str(tmp_path))
    assert env["REASONBRAIN_HOST"] == "0.0.0.0" and env["REASONBRAIN_PORT"] == "7860"
    assert env["REASONBRAIN_DATA_DIR"] == str(tmp_path / "reasonbrain-studio")
    assert deploy.space_environment({}, data_root=str(tmp_path / "none"))["REASONBRAIN_DATA_DIR"] == "./studio-data"
    assert "REASONBRAIN_PORT" not in deploy.space_environment({"REASONBRAIN_PORT": "9000"}, str(tmp_path))


@pytest.mark.parametrize("serve, preset, mode", [("synth", None, None),
                                                 ("reason_then_edit", "reasonbrain-3b", "reason_then_edit")])
def test_the_app_reads_the_rendered_variables(tmp_path, serve, preset, mode):
    from app.settings import Settings

    variables = deploy.serving(manifest_serving(serve, tmp_path)).variables
    settings = Settings.from_env_and_args([], env={**variables, "REASONBRAIN_DATA_DIR": str(tmp_path / "data")})
    assert (settings.preset, settings.mode) == (preset, mode)
    if serve == "synth":
        assert settings.checkpoint == "checkpoints/synth"  # relative to the Space's folder, where it is copied
