"""App settings: dataclass defaults < environment variables (``REASONBRAIN_*``) < command-line flags."""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from reasonbrain.bundled import default_checkpoint

DEFAULT_DATA_DIR = "./studio-data"
DB_NAME = "studio.db"

# flag -> (dataclass field, environment variable)
_OPTIONS: dict[str, tuple[str, str]] = {
    "--preset": ("preset", "REASONBRAIN_PRESET"),
    "--checkpoint": ("checkpoint", "REASONBRAIN_CHECKPOINT"),
    "--mode": ("mode", "REASONBRAIN_MODE"),
    "--host": ("host", "REASONBRAIN_HOST"),
    "--port": ("port", "REASONBRAIN_PORT"),
    "--db": ("db_path", "REASONBRAIN_DB"),
    "--data-dir": ("data_dir", "REASONBRAIN_DATA_DIR"),
    "--device": ("device", "REASONBRAIN_DEVICE"),
    "--snapshot-dir": ("snapshot_dir", "REASONBRAIN_SNAPSHOT_DIR"),
    "--snapshot-repo": ("snapshot_repo", "REASONBRAIN_SNAPSHOT_REPO"),
    "--snapshot-every-s": ("snapshot_every_s", "REASONBRAIN_SNAPSHOT_EVERY_S"),
    "--snapshot-keep": ("snapshot_keep", "REASONBRAIN_SNAPSHOT_KEEP"),
}
_INT_FIELDS = ("port", "snapshot_every_s", "snapshot_keep")
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


@dataclass
class Settings:
    preset: str | None = None  # a bundled preset built with random weights; None -> load ``checkpoint``
    checkpoint: str = field(default_factory=default_checkpoint)  # checkpoint folder or Hub repo id
    # how the model edits (reasonbrain.configuration.EDIT_MODES); None -> the checkpoint's declared mode (a preset:
    # reasonbrain). reason_then_edit with a real preset serves its pretrained backbones
    mode: str | None = None
    host: str = "127.0.0.1"
    port: int = 7860
    db_path: str | None = None  # None -> <data_dir>/studio.db
    data_dir: str = DEFAULT_DATA_DIR
    max_upload_mb: float = 20
    max_image_side: int = 4096  # uploads with a longer side are rejected before decoding
    queue_size: int = 64  # pending requests across users; more get a clear "queue is full" answer
    device: str | None = None  # None -> the available accelerator, else CPU
    examples: bool = True
    gpu_duration: int = 120  # seconds requested per edit from ZeroGPU (``spaces.GPU``), when it is present
    # history snapshots (app/snapshots.py); both unset -> none. A folder (e.g. a mounted bucket) or a Hub dataset.
    snapshot_dir: str | None = None
    snapshot_repo: str | None = None
    snapshot_every_s: int = 0  # periodic snapshots every N seconds; 0 -> only at shutdown
    snapshot_keep: int = 5  # database snapshots kept in the remote

    def __post_init__(self) -> None:
        self.data_dir = os.path.abspath(os.path.expanduser(str(self.data_dir)))
        if self.db_path is None or str(self.db_path) == "":
            self.db_path = os.path.join(self.data_dir, DB_NAME)
        else:
            self.db_path = os.path.abspath(os.path.expanduser(str(self.db_path)))
        self.checkpoint = os.path.expanduser(str(self.checkpoint))
        if self.preset == "":
            self.preset = None
        if self.mode == "":
            self.mode = None
        if self.device == "":
            self.device = None
        self.snapshot_dir = os.path.abspath(os.path.expanduser(str(self.snapshot_dir))) if self.snapshot_dir else None
        self.snapshot_repo = self.snapshot_repo or None
        self.validate()

    def validate(self) -> None:
        """Raise ValueError naming the bad value and what would be accepted."""
        if self.preset is not None:
            from reasonbrain.configuration import list_presets

            if self.preset not in list_presets():
                raise ValueError(
                    f"unknown preset {self.preset!r}; choose one of {', '.join(list_presets())} "
                    "or leave it unset to load --checkpoint"
                )
        if self.mode is not None:
            from reasonbrain.configuration import EDIT_MODES

            if self.mode not in EDIT_MODES:
                raise ValueError(
                    f"unknown mode {self.mode!r}; choose one of {', '.join(EDIT_MODES)} "
                    "or leave it unset for the checkpoint's own mode (a preset: reasonbrain)"
                )
        if not self.checkpoint.strip():
            raise ValueError("checkpoint is empty; give a checkpoint folder or a Hub repo id")
        if not self.host.strip():
            raise ValueError("host is empty; use e.g. 127.0.0.1 (local) or 0.0.0.0 (all interfaces)")
        _check_int("port", self.port, 1, 65535)
        _check_int("max_image_side", self.max_image_side, 16, 65536)
        _check_int("queue_size", self.queue_size, 1, 10_000)
        _check_int("gpu_duration", self.gpu_duration, 1, 3600)
        _check_int("snapshot_every_s", self.snapshot_every_s, 0, 86_400)
        _check_int("snapshot_keep", self.snapshot_keep, 1, 1000)
        if self.snapshot_dir and self.snapshot_repo:
            raise ValueError("set either snapshot_dir (a folder) or snapshot_repo (a Hub dataset), not both")
        if isinstance(self.max_upload_mb, bool) or not isinstance(self.max_upload_mb, (int, float)) or not (
            0 < self.max_upload_mb <= 1024
        ):
            raise ValueError(f"max_upload_mb must be a number in (0, 1024], got {self.max_upload_mb!r}")
        if not isinstance(self.examples, bool):
            raise ValueError(f"examples must be True or False, got {self.examples!r}")
        if self.device is not None:
            import torch

            try:
                torch.device(self.device)
            except (RuntimeError, ValueError, TypeError) as err:
                raise ValueError(
                    f"device {self.device!r} is not a torch device (e.g. 'cpu', 'cuda', 'cuda:1'); "
                    "leave it unset to pick automatically"
                ) from err

    @property
    def max_upload_bytes(self) -> int:
        return int(self.max_upload_mb * 1024 * 1024)

    @classmethod
    def from_env_and_args(
        cls, argv: Sequence[str] | None = None, env: Mapping[str, str] | None = None
    ) -> Settings:
        """Settings from ``env`` (default ``os.environ``) overridden by ``argv`` flags (default: none).

        An explicit ``--checkpoint`` without ``--preset`` ignores ``REASONBRAIN_PRESET``.
        Raises ValueError for bad values or unknown flags (``--help`` prints usage and exits).
        """
        env = os.environ if env is None else env
        args = _parser().parse_args(list(argv or []))
        values: dict[str, object] = {}
        for name, var in _OPTIONS.values():
            if env.get(var, "").strip():
                values[name] = env[var].strip()
        examples_env = env.get("REASONBRAIN_EXAMPLES", "").strip().lower()
        if examples_env:
            if examples_env not in _TRUE | _FALSE:
                raise ValueError(f"REASONBRAIN_EXAMPLES must be 1/0/true/false, got {examples_env!r}")
            values["examples"] = examples_env in _TRUE
        for name, _ in _OPTIONS.values():
            value = getattr(args, name)
            if value is not None:
                values[name] = value
        if args.checkpoint is not None and args.preset is None:
            values.pop("preset", None)
        if args.no_examples:
            values["examples"] = False
        for name in _INT_FIELDS:
            if name in values:
                values[name] = _parse_int(name, values[name])
        return cls(**values)  # type: ignore[arg-type]


class _RaisingParser(argparse.ArgumentParser):
    def error(self, message: str):  # argparse would sys.exit(2); we want a clear ValueError
        raise ValueError(f"{message} (see --help)")


def _parser() -> argparse.ArgumentParser:
    p = _RaisingParser(prog="python -m app", description="ReasonBrain Studio (Gradio app)")
    p.add_argument("--preset", dest="preset", help="bundled preset with random weights (tests, demos)")
    p.add_argument("--checkpoint", dest="checkpoint", help="checkpoint folder or Hub repo id")
    p.add_argument("--mode", dest="mode", help="reasonbrain or reason_then_edit (default: the checkpoint's own "
                   "mode; a preset: reasonbrain)")
    p.add_argument("--host", dest="host")
    p.add_argument("--port", dest="port")
    p.add_argument("--db", dest="db_path", help="SQLite file (default <data-dir>/studio.db)")
    p.add_argument("--data-dir", dest="data_dir", help="where the database and images live")
    p.add_argument("--device", dest="device", help="torch device (default: accelerator if available, else cpu)")
    p.add_argument("--snapshot-dir", dest="snapshot_dir", help="folder for history snapshots (e.g. a mounted bucket)")
    p.add_argument("--snapshot-repo", dest="snapshot_repo", help="Hub dataset repo id for history snapshots")
    p.add_argument("--snapshot-every-s", dest="snapshot_every_s", help="snapshot period in seconds (0: at shutdown only)")
    p.add_argument("--snapshot-keep", dest="snapshot_keep", help="database snapshots to keep (default 5)")
    p.add_argument("--no-examples", dest="no_examples", action="store_true", help="hide the example gallery")
    return p


def _parse_int(name: str, value: object) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    try:
        return int(str(value).strip())
    except ValueError as err:
        raise ValueError(f"{name} must be a whole number, got {value!r}") from err


def _check_int(name: str, value: object, lo: int, hi: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise ValueError(f"{name} must be a whole number between {lo} and {hi}, got {value!r}")
