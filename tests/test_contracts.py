"""The shared contracts (tests/contracts.py) applied to the tiny pipeline (the default preset and the paper's
"MLLM + diffusion" baseline ablation), the bundled synth checkpoint and the tiny model."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from reasonbrain.bundled import default_checkpoint
from reasonbrain.models.reasonbrain import ReasonBrainModel
from reasonbrain.pipelines.pipeline_reasonbrain import ReasonBrainEditPipeline
from reasonbrain.synthworld.dataset import generate_sample
from reasonbrain.training.task import ablation_config

from .conftest import get_dummy_components, pipeline_for, tiny_config
from .contracts import ModelContract, PipelineContract

CHECKPOINT = Path(default_checkpoint())


def synth_scenes(*indices: int) -> tuple[list, list[str]]:
    """Scenes of the synthetic world with their hypothetical instructions (any model edits them; synth reads them)."""
    samples = [generate_sample(0, i, resolution=64) for i in indices]
    return [s.src for s in samples], [s.record.instruction for s in samples]


class SynthScenes:
    def edit_inputs(self):
        (image,), (instruction,) = synth_scenes(7)
        return image, instruction

    def batch_inputs(self):
        return synth_scenes(7, 8)


class TestTinyPipeline(SynthScenes, PipelineContract):
    ablation: dict[str, bool] = {}

    def make_pipeline(self):
        torch.manual_seed(0)
        return pipeline_for(ReasonBrainModel.from_config(ablation_config(tiny_config(), **self.ablation)))


class TestTinyBaselinePipeline(TestTinyPipeline):
    ablation = {"baseline": True}  # no FRCE, no CME, no region branch


@pytest.mark.skipif(not (CHECKPOINT / "reasonbrain_config.json").exists(), reason="no bundled checkpoint")
class TestSynthCheckpointPipeline(SynthScenes, PipelineContract):
    def make_pipeline(self):
        return ReasonBrainEditPipeline.from_pretrained(CHECKPOINT)


class TestTinyModel(ModelContract):
    def make_model(self):
        return get_dummy_components().eval()
