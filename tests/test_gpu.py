"""CUDA checks (``-m gpu``): the same edits as on CPU within float noise, and a bf16 training step.

Run on a GPU machine with ``python -m pytest -m gpu tests/test_gpu.py``; skipped elsewhere.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from .conftest import dummy_batch, get_dummy_components

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU"),
]

CHECKPOINT = Path(__file__).resolve().parent.parent / "checkpoints" / "synth"
INSTRUCTION = "What would happen if the ice cube were left in the sun?"  # any text: only devices are compared


def _scene(size: int = 64):
    from reasonbrain.synthworld.dataset import generate_sample

    return generate_sample(0, 7, resolution=size).src


def _edit(pipe, image, **kwargs) -> np.ndarray:
    out = pipe(image, INSTRUCTION, seed=3, **kwargs)
    return np.asarray(out.images[0], dtype=np.float32) / 255.0


def test_tiny_pipeline_edits_match_cpu():
    from reasonbrain.pipelines.pipeline_reasonbrain import ReasonBrainEditPipeline
    from reasonbrain.regions import build_region_proposer

    model = get_dummy_components().eval()
    proposer = build_region_proposer(model.config.regions) if model.config.components.region_branch else None
    pipe = ReasonBrainEditPipeline(model=model, region_proposer=proposer)
    image = _scene(model.config.resolution)
    on_cpu = _edit(pipe, image, num_inference_steps=4)
    on_gpu = _edit(pipe.to("cuda"), image, num_inference_steps=4)
    assert pipe.device.type == "cuda"
    assert np.abs(on_gpu - on_cpu).mean() < 0.01  # float32 on both; kernels differ, not the result


@pytest.mark.skipif(not (CHECKPOINT / "reasonbrain_config.json").exists(), reason="no bundled checkpoint")
def test_synth_checkpoint_same_edit_on_gpu_and_bf16():
    from reasonbrain.pipelines.pipeline_reasonbrain import ReasonBrainEditPipeline

    pipe = ReasonBrainEditPipeline.from_pretrained(CHECKPOINT)
    image = _scene(pipe.config.resolution)
    on_cpu = _edit(pipe, image)
    on_gpu = _edit(pipe.to("cuda"), image)
    bf16 = _edit(ReasonBrainEditPipeline.from_pretrained(CHECKPOINT, torch_dtype=torch.bfloat16).to("cuda"), image)
    assert np.abs(on_gpu - on_cpu).mean() < 0.01
    assert np.abs(bf16 - on_cpu).mean() < 0.05


def test_bf16_training_step_on_gpu():
    from accelerate import Accelerator

    from reasonbrain.training.task import ReasonBrainTrainingTask

    model = get_dummy_components()
    task = ReasonBrainTrainingTask(model, edit_region_weight=5.0)
    accelerator = Accelerator(mixed_precision="bf16")
    optimizer = torch.optim.AdamW(task.trainable_parameters(), lr=1e-3)
    task, optimizer = accelerator.prepare(task, optimizer)
    before = {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}
    losses = task(dummy_batch(model, batch_size=4))
    accelerator.backward(losses["loss"])
    optimizer.step()
    assert model.device.type == "cuda"
    assert all(torch.isfinite(v).item() for v in losses.values())
    moved = [n for n, p in model.named_parameters() if p.requires_grad and not torch.equal(p, before[n])]
    assert len(moved) > len(before) // 2
