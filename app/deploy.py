"""``python -m app.deploy --space OWNER/NAME [--dry-run] [--out DIR] [--private] [--manifest space.yaml]``.

Renders a Hugging Face Space folder from ``space.yaml`` and pushes it:

- ``README.md``: YAML front matter = the manifest's ``readme`` part, verbatim, plus a short description;
- ``requirements.txt``: the GPU install (``requirements-gpu.txt`` with ``requirements.txt`` inlined): no CPU torch
  pin, no index URL; gradio with its ``oauth`` extra at the pinned version (= ``sdk_version``);
- the entry file named by ``app_file`` (calls :func:`space_main`), and copies of ``app/``, ``reasonbrain/`` and
  ``checkpoints/``.

Then (unless ``--dry-run``) through ``HfApi``: create the Space (gradio SDK, hardware), the storage for history
snapshots, add the secrets (values from this shell's environment) and variables, upload the folder, set the
sleep time. The API object is injectable, so tests check the calls with a fake.
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
DEPLOY_KEYS = frozenset({"hardware", "private", "sleep_time", "secrets", "variables", "storage"})
STORAGE_KEYS = frozenset({"dataset", "bucket", "mount_path", "every_s", "keep"})
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

History lives in SQLite on the Space's local disk; {storage}.

This folder is rendered by `python -m app.deploy` from the project's `space.yaml`: edit that, not this file.
"""


class DeployError(ValueError):
    """The manifest, the project files or the environment do not allow this deploy; the message says why."""


@dataclass
class Manifest:
    readme: dict[str, Any]
    deploy: dict[str, Any]


@dataclass
class Call:
    """One HfApi method call. For a secret the last argument is its value: never printed."""

    method: str
    args: tuple[Any, ...] = ()
    kwargs: dict[str, Any] = field(default_factory=dict)
    secret_env: str | None = None  # the environment variable the secret value came from

    def describe(self, env: Mapping[str, str] | None = None) -> str:
        shown = [repr(a) for a in self.args]
        if self.secret_env is not None:
            present = bool((env or {}).get(self.secret_env))
            shown[-1] = f"<value of ${self.secret_env}>" if present else f"<MISSING: ${self.secret_env} is not set>"
        shown += [f"{k}={v!r}" for k, v in self.kwargs.items()]
        return f"{self.method}({', '.join(shown)})"


# --- manifest -------------------------------------------------------------------------------------------------
def load_manifest(path: str | os.PathLike = MANIFEST, root: Path = REPO_ROOT) -> Manifest:
    """Read and check ``space.yaml``: known keys only, gradio SDK at the pinned version, a hardware flavour."""
    with open(path, encoding="utf-8") as f:
        data = yaml.safe_load(f)
    if not isinstance(data, dict) or not isinstance(data.get("readme"), dict) or not isinstance(data.get("deploy"), dict):
        raise DeployError(f"{path} must have two mappings, 'readme' and 'deploy'")
    m = Manifest(readme=data["readme"], deploy=data["deploy"])
    _unknown("readme", m.readme, README_KEYS)
    _unknown("deploy", m.deploy, DEPLOY_KEYS)
    _unknown("deploy.storage", m.deploy.get("storage") or {}, STORAGE_KEYS)
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
    return m


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
    storage = _storage_sentence(manifest, space_id)
    (out / "README.md").write_text(render_readme(manifest.readme, README_BODY.format(storage=storage)),
                                   encoding="utf-8")
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
    calls = [Call("create_repo", (space_id,), dict(repo_type="space", space_sdk="gradio",
                                                    space_hardware=d["hardware"], private=private, exist_ok=True))]
    variables = {str(k): _expand(v, space_id) for k, v in (d.get("variables") or {}).items()}
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
    for call in calls:
        getattr(api, call.method)(*call.args, **call.kwargs)
    return calls


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
        if args.dry_run:
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
