"""Pinned outputs of the tiny pipeline (diffusers' expected-slice tests): the default, each ablation, the grounding
map and guidance off. Any change to the denoising loop, the guidance terms, the conditioning or a component moves
these numbers; a deliberate change re-pins them (``python tests/test_pinned_outputs.py`` prints the new values)."""

from __future__ import annotations

import numpy as np
import PIL.Image
import pytest
import torch

from reasonbrain.configuration import ReasonBrainConfig
from reasonbrain.pipelines.pipeline_reasonbrain import ReasonBrainEditPipeline
from reasonbrain.training.task import ablation_config

INSTRUCTION = "What would happen if the ice cube were left in the sun?"
CASES = {
    "default": ({}, {}),
    "no_patch_branch": ({"patch_branch": False}, {}),
    "no_region_branch": ({"region_branch": False}, {}),
    "no_id_controller": ({"id_controller": False, "text_enhancer": False}, {}),  # the enhancer attends to R_T
    "no_visual_enhancer": ({"visual_enhancer": False}, {}),
    "no_text_enhancer": ({"text_enhancer": False}, {}),
    "baseline": ({"baseline": True}, {}),
    "grounding_map": ({"grounding_map": True}, {}),
    "guidance_off": ({}, {"guidance_scale": 1.0, "image_guidance_scale": 1.0}),
    "text_guidance_only": ({}, {"guidance_scale": 7.5, "image_guidance_scale": 1.0}),
}
# (mean of the whole output on 0..255, the 3 x 3 x RGB patch at rows 30-32, columns 46-48)
EXPECTED: dict[str, tuple[float, list[int]]] = {
    'default': (110.545, [102, 139, 64, 107, 116, 95, 111, 87, 74, 100, 73, 135, 114, 27, 162, 66, 0, 143, 0, 116, 140, 3, 98, 160, 24, 49, 138]),
    'no_patch_branch': (112.396, [132, 157, 70, 139, 130, 83, 133, 97, 66, 95, 106, 139, 125, 41, 149, 92, 1, 135, 0, 172, 132, 0, 155, 136, 11, 100, 108]),
    'no_region_branch': (118.936, [135, 141, 60, 140, 114, 98, 141, 87, 103, 137, 84, 148, 139, 38, 179, 88, 6, 178, 0, 112, 163, 2, 110, 159, 26, 91, 128]),
    'no_id_controller': (116.573, [140, 131, 77, 146, 107, 105, 148, 88, 92, 113, 92, 156, 135, 39, 186, 104, 4, 176, 0, 132, 130, 3, 124, 138, 29, 87, 122]),
    'no_visual_enhancer': (116.901, [134, 121, 57, 135, 95, 96, 140, 70, 85, 109, 72, 141, 126, 34, 157, 95, 11, 147, 0, 100, 121, 3, 106, 131, 29, 110, 110]),
    'no_text_enhancer': (115.350, [135, 140, 76, 140, 116, 102, 146, 93, 85, 111, 94, 155, 134, 41, 181, 101, 0, 165, 0, 138, 127, 3, 127, 143, 28, 78, 131]),
    'baseline': (116.062, [143, 136, 74, 145, 111, 98, 145, 90, 86, 122, 90, 155, 141, 33, 181, 100, 0, 165, 0, 137, 144, 2, 125, 151, 26, 82, 126]),
    'grounding_map': (111.007, [79, 158, 40, 81, 126, 71, 90, 87, 88, 72, 89, 88, 83, 50, 125, 43, 10, 133, 0, 105, 115, 7, 86, 118, 47, 52, 113]),
    'guidance_off': (114.730, [129, 141, 75, 135, 116, 102, 137, 94, 85, 111, 95, 157, 133, 44, 185, 95, 2, 163, 0, 137, 134, 2, 125, 146, 24, 78, 128]),
    'text_guidance_only': (110.415, [99, 140, 67, 103, 117, 94, 106, 90, 73, 99, 77, 137, 112, 33, 164, 62, 0, 144, 0, 117, 142, 2, 99, 160, 21, 53, 134]),
}


def scene() -> PIL.Image.Image:
    rng = np.random.default_rng(0)
    return PIL.Image.fromarray(rng.integers(0, 256, (64, 96, 3), dtype=np.uint8))


def run(case: str) -> tuple[float, list[int]]:
    switches, call = CASES[case]
    torch.manual_seed(0)
    pipe = ReasonBrainEditPipeline.from_config(ablation_config(ReasonBrainConfig.from_preset("tiny"), **switches))
    if switches.get("grounding_map"):  # it starts at zero (a no-op) when switched on: give it a trained-like value
        with torch.no_grad():
            vector = pipe.model.conditioning.grounding_to_input
            vector.copy_(torch.linspace(-2.0, 2.0, steps=vector.numel()))
    kwargs = {"seed": 3, "num_inference_steps": 2, "guidance_scale": 7.5, "image_guidance_scale": 1.5, **call}
    arr = np.asarray(pipe(scene(), INSTRUCTION, **kwargs).images[0], dtype=np.int16)
    return float(arr.mean()), arr[30:33, 46:49].flatten().tolist()


@pytest.mark.parametrize("case", list(CASES))
def test_output_is_pinned(case):
    mean, patch = run(case)
    want_mean, want_patch = EXPECTED[case]
    assert abs(mean - want_mean) < 0.5, (case, mean)
    assert np.abs(np.array(patch) - np.array(want_patch)).max() <= 2, (case, patch)


def test_the_cases_differ_from_each_other():
    """Each switch and each guidance setting changes the output, so a pin cannot pass by accident."""
    patches = {case: tuple(patch) for case, (_, patch) in EXPECTED.items()}
    assert len(set(patches.values())) == len(patches)


if __name__ == "__main__":
    for name in CASES:
        mean, patch = run(name)
        print(f"    {name!r}: ({mean:.3f}, {patch}),")
