"""Comparison methods offline: a tiny checkpoint whose config names local folders for its backbones (the tiny MLLM and
InstructPix2Pix editor saved with random weights), so ``load_method`` loads them the way it loads Hub ids; and a
Reason50K split whose sources are photos gradio ships (not square)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import torch

from reasonbrain.configuration import REASON_THEN_EDIT_MODE

from .conftest import tiny_config


def gradio_images() -> Path | None:
    """gradio's media_assets/images, found without importing gradio (it imports slowly)."""
    spec = importlib.util.find_spec("gradio")
    folder = Path(spec.origin).parent / "media_assets" / "images" if spec and spec.origin else None
    return folder if folder is not None and folder.is_dir() else None


def save_backbones_checkpoint(folder: Path, *, seed: int = 0) -> Path:
    """``folder/ckpt``: a tiny reason-then-edit checkpoint naming ``folder/mllm`` and ``folder/editor``."""
    from reasonbrain.pipelines.reason_then_edit import ReasonThenEditPipeline

    torch.manual_seed(seed)
    pipe = ReasonThenEditPipeline.from_config(tiny_config())
    pipe.editor.save_pretrained(folder / "editor")
    pipe.reasoner.mllm.base.save_pretrained(folder / "mllm")
    config = tiny_config(mode=REASON_THEN_EDIT_MODE, mllm={"pretrained_model_name_or_path": str(folder / "mllm")},
                         reason_then_edit={"editor": str(folder / "editor")})
    config.save(folder / "ckpt")
    return folder / "ckpt"


def write_photo_split(folder: Path, names=("cheetah.jpg", "tower.jpg")) -> Path:
    """``folder/test.jsonl``: one record per gradio photo (target = source: only the edits matter here)."""
    images = gradio_images()
    if images is None:
        raise FileNotFoundError("gradio's media_assets/images is not installed")
    folder.mkdir(parents=True, exist_ok=True)
    rows = [{"id": f"photo{i}", "category": "physical", "src_image": str(images / name),
             "tgt_image": str(images / name), "instruction": "What would happen if it rained for a week?"}
            for i, name in enumerate(names)]
    (folder / "test.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return folder
