"""The Space manifest and `python -m app.deploy`: rendering, requirements, and the Hub calls (with a fake HfApi)."""

from __future__ import annotations

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


def raw_manifest() -> dict[str, Any]:
    return yaml.safe_load((REPO / "space.yaml").read_text(encoding="utf-8"))


def gradio_pin() -> str:
    pins = re.findall(r"^gradio(?:\[[^\]]*\])?==(\S+)\s*$", (REPO / "requirements.txt").read_text(), re.M)
    assert len(pins) == 1, "requirements.txt must pin gradio exactly once"
    return pins[0]


@pytest.fixture(scope="module")
def rendered(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("space") / "out"
    return deploy.render_space(deploy.load_manifest(), SPACE, out)


def test_readme_front_matter_is_the_manifest_readme_part(rendered):
    text = (rendered / "README.md").read_text(encoding="utf-8")
    assert text.startswith("---\n")
    front, body = text[4:].split("\n---\n", 1)
    assert yaml.safe_load(front) == raw_manifest()["readme"]
    assert "ReasonBrain Studio" in body and "alice/rb-studio-history" in body


def test_sdk_version_is_the_pinned_gradio():
    readme = raw_manifest()["readme"]
    assert readme["sdk"] == "gradio"
    assert str(readme["sdk_version"]) == gradio_pin() == gradio.__version__


def test_readme_part_uses_only_hub_keys_and_preset_models():
    readme = raw_manifest()["readme"]
    assert set(readme) <= deploy.README_KEYS
    assert readme["hf_oauth"] is True and readme["app_file"] == "space_app.py"
    preset = (REPO / "reasonbrain" / "presets" / "reasonbrain-3b.json").read_text()
    for repo_id in readme["models"]:
        assert f'"{repo_id}"' in preset
    assert {line.split()[0] for line in readme["preload_from_hub"]} == set(readme["models"])


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
