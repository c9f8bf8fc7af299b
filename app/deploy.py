"""``python -m app.deploy --space OWNER/NAME [--dry-run] [--out DIR] [--private] [--manifest space.yaml]``.

Renders a Hugging Face Space folder from ``space.yaml`` and pushes it. ``serve`` in the manifest chooses what the
Space serves (:func:`serving`): the bundled synth checkpoint, or a real preset's pretrained backbones in
reason-then-edit mode (GPU only); it decides the model's Space variables and the README's ``models`` and
``preload_from_hub``, read from the preset's json (``reasonbrain/presets/<name>.json``).

- ``README.md``: YAML front matter = the manifest's ``readme`` part, verbatim, with the rendered backbones, plus a
  short description;
- ``requirements.txt``: the GPU install (``requirements-gpu.txt`` with ``requirements.txt`` inlined): no CPU torch
  pin, no index URL; gradio with its ``oauth`` extra at the pinned version (= ``sdk_version``);
- the entry file named by ``app_file`` (calls :func:`space_main`), and copies of ``app/``, ``reasonbrain/`` and
  ``checkpoints/``.

Then (unless ``--dry-run``) through ``HfApi``: create the Space (gradio SDK, hardware), the storage for history
snapshots, add the secrets (values from this shell's environment) and variables, remove model variables the
choice does not set (left by an earlier choice), upload the folder, set the sleep time. The API object is
injectable, so tests check the calls with a fake.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import sys
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

REPO_ROOT = Path(__file__).resolve().parent.parent
MANIFEST = REPO_ROOT / "space.yaml"
COPIED = ("app", "reasonbrain", "checkpoints")  # the project, copied into the Space folder
_IGNORED = shutil.ignore_patterns("__pycache__", "*.pyc", ".DS_Store", ".tmp-*")

# The keys the Hub reads from a Space README's front matter (https://huggingface.co/docs/hub/spaces-config-reference)
# plus the general repo-card keys it honours there (license, tags, models, datasets).
README_KEYS = frozenset({
    "title", "emoji", "colorFrom", "colorTo", "sdk", "python_version", "sdk_version", "suggested_hardware",
    "suggested_storage", "app_file", "app_port", "base_path", "fullWidth", "header", "short_description",
    "models", "datasets", "tags", "thumbnail", "pinned", "hf_oauth", "hf_oauth_scopes",
    "hf_oauth_expiration_minutes", "hf_oauth_authorized_org", "disable_embedding", "startup_duration_timeout",
    "custom_headers", "preload_from_hub", "license",
})
DEPLOY_KEYS = frozenset({"hardware", "private", "sleep_time", "secrets", "optional_secrets", "variables", "storage"})
STORAGE_KEYS = frozenset({"dataset", "bucket", "mount_path", "every_s", "keep"})
TOP_KEYS = frozenset({"serve", "readme", "deploy"})

# What the Space serves (``serve:``): the bundled synth checkpoint, or "reason_then_edit[:PRESET]".
SERVE_SYNTH = "synth"
DEFAULT_PRESET = "reasonbrain-3b"
# the app settings (app/settings.py) that choose the model; only ``serve`` sets them
MODEL_VARIABLES = ("REASONBRAIN_CHECKPOINT", "REASONBRAIN_PRESET", "REASONBRAIN_MODE")
RENDERED_README_KEYS = ("models", "preload_from_hub")  # from the preset's json, never written in the manifest
# The files diffusers' StableDiffusionInstructPix2PixPipeline.from_pretrained reads from a Hub repo in the diffusers
# layout (safetensors): every component, the UNet and the safety checker included; not the original .ckpt files.
EDITOR_PIPELINE_FILES = (
    "model_index.json", "scheduler/scheduler_config.json",
    "tokenizer/merges.txt", "tokenizer/special_tokens_map.json", "tokenizer/tokenizer_config.json",
    "tokenizer/vocab.json", "text_encoder/config.json", "text_encoder/model.safetensors",
    "unet/config.json", "unet/diffusion_pytorch_model.safetensors",
    "vae/config.json", "vae/diffusion_pytorch_model.safetensors",
    "safety_checker/config.json", "safety_checker/model.safetensors", "feature_extractor/preprocessor_config.json",
)
_SPACE_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[A-Za-z0-9][\w.-]*$")
_CPU_ONLY = re.compile(r"^(-c|--constraint|-i|--index-url|--extra-index-url|-f|--find-links)\b|\+cpu\b")

README_BODY = """\
# ReasonBrain Studio

Hypothetical-instruction image editing: type *"What would happen if the ice cube were left in the sun?"*, see the
edit, the reasoning behind it, the SAM regions and the object the model bound the instruction to, and keep
editing the result (multi-hop chains).

- **Edit**: upload an image, write a hypothetical instruction, inspect the reasoning panel; continue from any result.
- **History**: your chains, newest first. Sign in with Hugging Face to keep them across browsers and devices.
- **Presenter**: replay a chain step by step.

{model}History lives in SQLite on the Space's local disk; {storage}.

This folder is rendered by `python -m app.deploy` from the project's `space.yaml`: edit that, not this file.
"""
REASON_THEN_EDIT_BODY = """\
**Model**: the `{preset}` preset's pretrained backbones in reason-then-edit mode, for your own photos:
`{mllm}` reads the photo and the question and writes an explicit edit, `{sam}` masks the object it names,
and `{editor}` edits inside that mask (the rest of the photo is kept). No trained ReasonBrain weights are used:
none exist yet. Every result names the model and its mode; the reasoning panel shows the MLLM's outcome, the
instruction the editor got, the mask and anything that fell back.

**Limits**: this mode was verified offline on tiny random-weight components only; its edit quality, speed and
memory with these real weights were not measured before this deploy. The editor works at 512 px and reads the
first 77 tokens of its instruction; the reasoning is only as good as `{mllm}`.

"""


class DeployError(ValueError):
    """The manifest, the project files or the environment do not allow this deploy; the message says why."""


@dataclass
class Manifest:
    readme: dict[str, Any]
    deploy: dict[str, Any]
    serve: str = SERVE_SYNTH


@dataclass(frozen=True)
class Serving:
    """What ``serve`` renders: the model's Space variables and the README's backbones (Hub ids; preload lines)."""

    choice: str  # SERVE_SYNTH or reasonbrain.configuration.REASON_THEN_EDIT_MODE
    preset: str  # the preset whose backbones the README names
    variables: dict[str, str]
    models: list[str]
    preload_from_hub: list[str]

    def describe(self) -> str:
        if self.choice == SERVE_SYNTH:
            what = f"the bundled synth checkpoint ({self.variables['REASONBRAIN_CHECKPOINT']})"
        else:
            what = f"the {self.preset} preset's pretrained backbones in {self.choice} mode"
        lines = [f"serves {what}", "  Space variables (model):"]
        lines += [f"    {k}={v}" for k, v in self.variables.items()]
        lines += ["  README models / preload_from_hub:"] + [f"    {line}" for line in self.preload_from_hub]
        return "\n".join(lines)


@dataclass
class Call:
    """One HfApi method call. For a secret the last argument is its value: never printed."""

    method: str
    args: tuple[Any, ...] = ()
    kwargs: dict[str, Any] = field(default_factory=dict)
    secret_env: str | None = None  # the environment variable the secret value came from
    if_present: bool = False  # delete_space_variable: only when the Space has that variable

    def describe(self, env: Mapping[str, str] | None = None) -> str:
        shown = [repr(a) for a in self.args]
        if self.secret_env is not None:
            present = bool((env or {}).get(self.secret_env))
            shown[-1] = f"<value of ${self.secret_env}>" if present else f"<MISSING: ${self.secret_env} is not set>"
        shown += [f"{k}={v!r}" for k, v in self.kwargs.items()]
        return f"{self.method}({', '.join(shown)})" + (" if the Space has it" if self.if_present else "")


# --- manifest -------------------------------------------------------------------------------------------------
def load_manifest(path: str | os.PathLike = MANIFEST, root: Path = REPO_ROOT) -> Manifest:
    """Read and check ``space.yaml``: known keys only, gradio SDK at the pinned version, a hardware flavour."""
    with open(path, encoding="utf-8") as f:
        data = yaml.safe_load(f)
    if not isinstance(data, dict) or not isinstance(data.get("readme"), dict) or not isinstance(data.get("deploy"), dict):
        raise DeployError(f"{path} must have two mappings, 'readme' and 'deploy'")
    _unknown("the manifest", data, TOP_KEYS)
    m = Manifest(readme=data["readme"], deploy=data["deploy"], serve=data.get("serve", SERVE_SYNTH))
    _unknown("readme", m.readme, README_KEYS)
    _unknown("deploy", m.deploy, DEPLOY_KEYS)
    _unknown("deploy.storage", m.deploy.get("storage") or {}, STORAGE_KEYS)
    rendered = sorted(set(m.readme) & set(RENDERED_README_KEYS))
    if rendered:
        raise DeployError(f"readme.{', readme.'.join(rendered)}: rendered from 'serve' and the preset's json "
                          f"(reasonbrain/presets/); remove them from {path}")
    for key in ("title", "sdk", "sdk_version", "app_file"):
        if not m.readme.get(key):
            raise DeployError(f"readme.{key} is required in {path}")
    if m.readme["sdk"] != "gradio":
        raise DeployError(f"readme.sdk must be 'gradio' (this is a Gradio app), got {m.readme['sdk']!r}")
    pinned = pinned_gradio_version(root / "requirements.txt")
    if str(m.readme["sdk_version"]) != pinned:
        raise DeployError(f"readme.sdk_version is {m.readme['sdk_version']!r} but requirements.txt pins "
                          f"gradio=={pinned}; make them equal")
    app_file = str(m.readme["app_file"])
    if not app_file.endswith(".py") or "/" in app_file or app_file == "app.py":
        raise DeployError(f"readme.app_file must be a top-level .py file other than app.py (next to the app/ "
                          f"package), got {app_file!r}")
    from huggingface_hub import SpaceHardware

    flavours = {h.value for h in SpaceHardware}
    if m.deploy.get("hardware") not in flavours:
        raise DeployError(f"deploy.hardware must be one of {', '.join(sorted(flavours))}, got {m.deploy.get('hardware')!r}")
    storage = m.deploy.get("storage") or {}
    if storage.get("dataset") and storage.get("bucket"):
        raise DeployError("deploy.storage: give either 'dataset' or 'bucket', not both")
    serving(m)  # the choice, its preset and the hardware agree
    return m


def serving(manifest: Manifest) -> Serving:
    """What ``manifest.serve`` renders. ``synth``: the bundled checkpoint (copied into the Space); the README lists
    the default preset's backbones as a trained checkpoint of it would load them (frozen text encoder and VAE; its
    UNet is in the checkpoint), so pointing the Space at one later needs no new build. ``reason_then_edit[:PRESET]``
    (default reasonbrain-3b): the preset's MLLM and SAM 2, and the editor's whole diffusers pipeline; GPU only."""
    from reasonbrain.bundled import SUBDIR
    from reasonbrain.configuration import REASON_THEN_EDIT_MODE, ReasonBrainConfig, list_presets

    choice, _, preset = str(manifest.serve).partition(":")
    if choice == SERVE_SYNTH and not preset:
        variables = {"REASONBRAIN_CHECKPOINT": "/".join(SUBDIR)}
        preset = DEFAULT_PRESET
    elif choice == REASON_THEN_EDIT_MODE:
        preset = preset or DEFAULT_PRESET
        if preset not in list_presets():
            raise DeployError(f"serve: unknown preset {preset!r}; choose one of {', '.join(list_presets())}")
        variables = {"REASONBRAIN_PRESET": preset, "REASONBRAIN_MODE": REASON_THEN_EDIT_MODE}
        hardware = {"deploy.hardware": manifest.deploy.get("hardware"),
                    "readme.suggested_hardware": manifest.readme.get("suggested_hardware")}
        cpu = [f"{where} is {value}" for where, value in hardware.items() if str(value or "").startswith("cpu")]
        if cpu:
            raise DeployError(f"serve: {manifest.serve} runs an MLLM, SAM 2 and a diffusion editor and needs a GPU, "
                              f"but {' and '.join(cpu)}; choose a GPU flavour (a10g-small: 24 GB, enough for "
                              f"reasonbrain-3b in fp16) or serve: {SERVE_SYNTH}")
    else:
        raise DeployError(f"serve must be {SERVE_SYNTH!r}, {REASON_THEN_EDIT_MODE!r} or "
                          f"'{REASON_THEN_EDIT_MODE}:PRESET', got {manifest.serve!r}")
    taken = sorted(set(manifest.deploy.get("variables") or {}) & set(MODEL_VARIABLES))
    if taken:
        raise DeployError(f"deploy.variables sets {', '.join(taken)}, which 'serve' decides; remove them")
    backbones = _backbones(ReasonBrainConfig.from_preset(preset), choice)
    preload = [f"{repo} {','.join(files)}" if files else repo for repo, files in backbones.items()]
    return Serving(choice=choice, preset=preset, variables=variables, models=list(backbones), preload_from_hub=preload)


def _backbones(config: Any, choice: str) -> dict[str, list[str]]:
    """``{Hub id: files}`` (no files: the whole repo) that serving ``config`` loads from the Hub, in load order."""
    from reasonbrain.configuration import BUNDLED_TOKENIZER, REASON_THEN_EDIT_MODE

    out: dict[str, list[str]] = {}

    def whole(repo: str | None) -> None:
        if repo:
            out[repo] = []

    def files(repo: str | None, names: Sequence[str]) -> None:
        if not repo or out.get(repo) == []:  # nothing to name, or the whole repo already
            return
        listed = out.setdefault(repo, [])
        listed += [n for n in names if n not in listed]

    mllm = config.mllm
    whole(mllm.pretrained_model_name_or_path)
    if mllm.tokenizer != BUNDLED_TOKENIZER:
        whole(mllm.tokenizer)
    if choice == REASON_THEN_EDIT_MODE:
        needed = {"mllm.pretrained_model_name_or_path": mllm.pretrained_model_name_or_path,
                  "regions.pretrained_model_name_or_path": config.regions.pretrained_model_name_or_path,
                  "reason_then_edit.editor": config.reason_then_edit.editor}
        missing = [key for key, repo in needed.items() if not repo]
        if missing:
            raise DeployError(f"serve: preset {config.name!r} names no pretrained {', '.join(missing)}; "
                              "reason-then-edit serves a real preset's Hub backbones (reasonbrain-3b, reasonbrain-7b)")
        files(config.reason_then_edit.editor, EDITOR_PIPELINE_FILES)
    else:
        te, diffusion = config.text_encoder, config.diffusion
        te_sub, vae_sub = (te.subfolder + "/" if te.subfolder else ""), (
            diffusion.vae_subfolder + "/" if diffusion.vae_subfolder else "")
        files(te.pretrained_model_name_or_path, [f"{te_sub}config.json", f"{te_sub}model.safetensors"])
        files(diffusion.vae_pretrained, [f"{vae_sub}config.json", f"{vae_sub}diffusion_pytorch_model.safetensors"])
    whole(config.regions.pretrained_model_name_or_path)
    return out


def pinned_gradio_version(requirements: Path) -> str:
    """The X in ``gradio==X`` (extras allowed) of a requirements file; DeployError when gradio is not pinned."""
    for line in _requirement_lines(requirements):
        match = re.match(r"^gradio(\[[^\]]*\])?\s*==\s*([^\s;]+)$", line)
        if match:
            return match.group(2)
    raise DeployError(f"{requirements} must pin gradio exactly (gradio==X.Y.Z): the Space runs readme.sdk_version")


def _unknown(where: str, mapping: Mapping[str, Any], known: frozenset[str]) -> None:
    extra = sorted(set(mapping) - known)
    if extra:
        raise DeployError(f"unknown key(s) in {where}: {', '.join(extra)} (known: {', '.join(sorted(known))})")


def _requirement_lines(path: Path) -> list[str]:
    """Requirement lines without comments, ``-r`` includes inlined (relative to the including file)."""
    out: list[str] = []
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = re.sub(r"(^|\s)#.*$", "", raw).strip()
        if line.startswith(("-r ", "--requirement ")):
            out += _requirement_lines(path.parent / line.split(maxsplit=1)[1])
        elif line:
            out.append(line)
    return out


# --- rendering ------------------------------------------------------------------------------------------------
def render_readme(readme: Mapping[str, Any], body: str) -> str:
    front = yaml.safe_dump(dict(readme), sort_keys=False, allow_unicode=True, width=1000)
    return f"---\n{front}---\n\n{body}"


def front_matter(manifest: Manifest, served: Serving | None = None) -> dict[str, Any]:
    """The manifest's ``readme`` part with the served backbones as ``models`` and ``preload_from_hub``, right after
    ``tags`` (at the end without tags)."""
    served = served or serving(manifest)
    backbones = {"models": served.models, "preload_from_hub": served.preload_from_hub}
    out: dict[str, Any] = {}
    for key, value in manifest.readme.items():
        out[key] = value
        if key == "tags":
            out.update(backbones)
    out.update({k: v for k, v in backbones.items() if k not in out})
    return out


def space_requirements(root: Path = REPO_ROOT) -> str:
    """The Space's requirements: GPU extras and the runtime list, without anything CPU-only."""
    pinned = pinned_gradio_version(root / "requirements.txt")
    lines = ["# Rendered by `python -m app.deploy` from requirements-gpu.txt (GPU install: no CPU torch pin)."]
    for line in _requirement_lines(root / "requirements-gpu.txt"):
        if _CPU_ONLY.search(line):
            raise DeployError(f"requirement line {line!r} is for CPU installs; keep it in constraints-cpu.txt")
        if re.match(r"^gradio\b", line):
            line = f"gradio[oauth]=={pinned}"  # the extra the Hugging Face login needs
        lines.append(line)
    return "\n".join(lines) + "\n"


def render_space(manifest: Manifest, space_id: str, out: Path, root: Path = REPO_ROOT) -> Path:
    """Write the Space folder into ``out`` (which must be missing or empty); returns ``out``."""
    out = Path(out)
    if out.exists() and any(out.iterdir()):
        raise DeployError(f"--out {out} is not empty; give a new or empty folder")
    out.mkdir(parents=True, exist_ok=True)
    served = serving(manifest)
    model = ""
    if served.choice != SERVE_SYNTH:
        from reasonbrain.configuration import ReasonBrainConfig

        config = ReasonBrainConfig.from_preset(served.preset)
        model = REASON_THEN_EDIT_BODY.format(preset=served.preset, mllm=config.mllm.pretrained_model_name_or_path,
                                             sam=config.regions.pretrained_model_name_or_path,
                                             editor=config.reason_then_edit.editor)
    body = README_BODY.format(model=model, storage=_storage_sentence(manifest, space_id))
    (out / "README.md").write_text(render_readme(front_matter(manifest, served), body), encoding="utf-8")
    (out / "requirements.txt").write_text(space_requirements(root), encoding="utf-8")
    (out / manifest.readme["app_file"]).write_text(
        '"""Hugging Face Space entry point (written by `python -m app.deploy`): ReasonBrain Studio with Space '
        'settings."""\n\nimport sys\n\nfrom app.deploy import space_main\n\nsys.exit(space_main())\n',
        encoding="utf-8",
    )
    for name in COPIED:
        shutil.copytree(root / name, out / name, ignore=_IGNORED)
    return out


def _storage_sentence(manifest: Manifest, space_id: str) -> str:
    storage = manifest.deploy.get("storage") or {}
    if storage.get("dataset"):
        return f"it is snapshotted to the private dataset `{_expand(storage['dataset'], space_id)}`"
    if storage.get("bucket"):
        return f"it is snapshotted to the storage bucket `{_expand(storage['bucket'], space_id)}`"
    return "it is not snapshotted: it is lost when the Space restarts"


def _expand(value: Any, space_id: str) -> str:
    owner, name = space_id.split("/")
    return str(value).replace("{owner}", owner).replace("{name}", name)


# --- the push -------------------------------------------------------------------------------------------------
def plan(manifest: Manifest, space_id: str, folder: Path, env: Mapping[str, str], *, private: bool | None = None,
         require_secrets: bool = True) -> list[Call]:
    """The HfApi calls a deploy makes, in order. DeployError when a secret's value is missing from ``env``."""
    if not _SPACE_ID.match(space_id):
        raise DeployError(f"--space must look like OWNER/NAME, got {space_id!r}")
    d = manifest.deploy
    secrets = [str(s) for s in d.get("secrets") or []]
    missing = [s for s in secrets if not env.get(s)]
    if missing and require_secrets:
        raise DeployError(
            f"secret value(s) missing from the environment: {', '.join(missing)}. Export them before deploying "
            "(values go to the Space's secrets only, never to disk or logs), or remove them from deploy.secrets"
        )
    private = bool(d.get("private", False)) if private is None else private
    served = serving(manifest)
    secrets += [str(s) for s in d.get("optional_secrets") or [] if env.get(str(s))]  # set only when given
    calls = [Call("create_repo", (space_id,), dict(repo_type="space", space_sdk="gradio",
                                                    space_hardware=d["hardware"], private=private, exist_ok=True))]
    variables = {**served.variables, **{str(k): _expand(v, space_id) for k, v in (d.get("variables") or {}).items()}}
    storage = d.get("storage") or {}
    if storage.get("dataset"):
        dataset = _expand(storage["dataset"], space_id)
        calls.append(Call("create_repo", (dataset,), dict(repo_type="dataset", private=True, exist_ok=True)))
        variables["REASONBRAIN_SNAPSHOT_REPO"] = dataset
    elif storage.get("bucket"):
        from huggingface_hub import Volume

        bucket, mount = _expand(storage["bucket"], space_id), str(storage.get("mount_path", "/snapshots"))
        calls.append(Call("create_bucket", (bucket,), dict(private=True, exist_ok=True)))
        calls.append(Call("set_space_volumes", (space_id,),
                          dict(volumes=[Volume(type="bucket", source=bucket, mount_path=mount)])))
        variables["REASONBRAIN_SNAPSHOT_DIR"] = mount
    if storage and "every_s" in storage:
        variables["REASONBRAIN_SNAPSHOT_EVERY_S"] = str(storage["every_s"])
    if storage and "keep" in storage:
        variables["REASONBRAIN_SNAPSHOT_KEEP"] = str(storage["keep"])
    calls += [Call("add_space_secret", (space_id, s, env.get(s, "")), secret_env=s) for s in secrets]
    calls += [Call("add_space_variable", (space_id, k, v)) for k, v in variables.items()]
    # a variable an earlier choice set would still choose the model (e.g. REASONBRAIN_PRESET after going back to synth)
    calls += [Call("delete_space_variable", (space_id, k), if_present=True)
              for k in MODEL_VARIABLES if k not in served.variables]
    calls.append(Call("upload_folder", (), dict(
        repo_id=space_id, repo_type="space", folder_path=str(folder), commit_message="Deploy ReasonBrain Studio",
        delete_patterns=[f"{name}/**" for name in COPIED],  # no stale modules from earlier deploys
    )))
    if d.get("sleep_time"):
        calls.append(Call("set_space_sleep_time", (space_id, int(d["sleep_time"]))))
    return calls


def deploy(manifest: Manifest, space_id: str, folder: Path, *, api: Any = None, env: Mapping[str, str] | None = None,
           private: bool | None = None) -> list[Call]:
    """Push ``folder`` (from :func:`render_space`) and configure the Space. ``api``: an HfApi or a test double."""
    calls = plan(manifest, space_id, folder, os.environ if env is None else env, private=private)
    if api is None:
        from huggingface_hub import HfApi

        api = HfApi()
    present: set[str] | None = None  # the Space's variables, asked once before the first conditional call
    done = []
    for call in calls:
        if call.if_present:
            if present is None:
                present = set(api.get_space_variables(space_id) or {})
            if call.args[1] not in present:
                continue
        getattr(api, call.method)(*call.args, **call.kwargs)
        done.append(call)
    return done


def main(argv: Sequence[str] | None = None, *, api: Any = None, env: Mapping[str, str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m app.deploy", description="Render and push the Hugging Face Space")
    p.add_argument("--space", required=True, help="OWNER/NAME of the Space")
    p.add_argument("--dry-run", action="store_true", help="render and print the plan; no network")
    p.add_argument("--out", help="folder to render into (new or empty; default: a temporary folder)")
    p.add_argument("--private", action="store_true", default=None, help="create the Space private")
    p.add_argument("--manifest", default=str(MANIFEST), help="the manifest (default: space.yaml)")
    args = p.parse_args(argv)
    env = os.environ if env is None else env
    try:
        manifest = load_manifest(args.manifest)
        # check the space id and the secrets before rendering or touching the network
        plan(manifest, args.space, Path("."), env, private=args.private, require_secrets=not args.dry_run)
        out = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="reasonbrain-space-"))
        render_space(manifest, args.space, out)
        print(f"rendered {out}")
        print(serving(manifest).describe())
        if args.dry_run:
            unset = [str(s) for s in manifest.deploy.get("optional_secrets") or [] if not env.get(str(s))]
            if unset:
                print(f"  optional secret(s) not set, so not added: {', '.join(unset)}")
            for call in plan(manifest, args.space, out, env, private=args.private, require_secrets=False):
                print(f"  would call {call.describe(env)}")
            return 0
        calls = deploy(manifest, args.space, out, api=api, env=env, private=args.private)
    except DeployError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"deployed https://huggingface.co/spaces/{args.space} ({len(calls)} API calls)")
    return 0


# --- on the Space -------------------------------------------------------------------------------------------------
def space_environment(env: Mapping[str, str], data_root: str = "/data") -> dict[str, str]:
    """Settings a Space needs that the Space's own variables do not set: every interface, port 7860, data under
    ``data_root`` when it is a writable (persistent) folder, else a local folder."""
    writable = os.path.isdir(data_root) and os.access(data_root, os.W_OK)
    defaults = {
        "REASONBRAIN_HOST": "0.0.0.0",
        "REASONBRAIN_PORT": "7860",
        "REASONBRAIN_DATA_DIR": os.path.join(data_root, "reasonbrain-studio") if writable else "./studio-data",
        "GRADIO_ANALYTICS_ENABLED": "False",
    }
    return {k: v for k, v in defaults.items() if not env.get(k)}


def space_main() -> int:
    """What the Space's entry file runs: ``python -m app`` with :func:`space_environment`."""
    os.environ.update(space_environment(os.environ))
    from app.__main__ import main as app_main

    return app_main([])


if __name__ == "__main__":
    sys.exit(main())
