"""SceneRecogniser (ours): which objects a picture holds, and roughly where.

A small convolutional network over the model-resolution image gives, per cell of a coarse grid, a score for every
object name; an object's presence is the maximum over cells (multiple-instance pooling), and that cell says where
it is. The pipeline binds an instruction among the present objects and refuses one that names an absent object
(``reasonbrain.binding``). It reads pixels only, so it is trained apart from the edit model (on rendered scenes
whose objects are known).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin
from torch import nn


@dataclass
class Recognised:
    probabilities: torch.Tensor  # (B, n) presence of each object name
    cells: torch.Tensor  # (B, n) index of the grid cell (row-major) where each name scores highest
    grid: int  # side of that grid


class SceneRecogniser(ModelMixin, ConfigMixin):
    @register_to_config
    def __init__(self, *, object_names: list[str], channels: list[int] = (32, 64, 128, 128)) -> None:
        super().__init__()
        if not object_names:
            raise ValueError("SceneRecogniser needs at least one object name")
        layers, c_in = [], 3
        for i, c in enumerate(channels):
            layers += [nn.Conv2d(c_in, c, 3, stride=1 if i == 0 else 2, padding=1), nn.GroupNorm(8, c), nn.GELU()]
            c_in = c
        self.features = nn.Sequential(*layers)
        self.classify = nn.Conv2d(c_in, len(object_names), 1)

    def logits(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """pixel_values (B, 3, R, R) in [-1, 1] -> per-cell logits (B, n, g, g)."""
        return self.classify(self.features(pixel_values))

    def forward(self, pixel_values: torch.Tensor) -> Recognised:
        cells = self.logits(pixel_values).flatten(2)  # (B, n, g*g)
        best, where = cells.max(-1)  # (B, n)
        grid = int(round(cells.shape[-1] ** 0.5))
        return Recognised(probabilities=best.sigmoid(), cells=where, grid=grid)
