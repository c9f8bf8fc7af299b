"""Latent blending for a diffusers pipeline's ``callback_on_step_end``: outside the edited area, the latents are
replaced after every step by the source latents noised to the level the sampler has reached, and after the last step
by the exact source latents, so only the edited area is denoised freely (blended latent diffusion)."""

from __future__ import annotations

from typing import Any

import torch


class LatentBlend:
    """``callback_on_step_end`` keeping the latents outside ``area`` on the source's trajectory.

    ``source``: (B, C, h, w) source latents in the sampler's space (VAE mean times its scaling factor); ``area``:
    (1, 1, h, w) in [0, 1], 1 where the edit may change the latents; ``noise``: (B, C, h, w), drawn once, so the
    background follows one noisy trajectory.
    """

    def __init__(self, source: torch.Tensor, area: torch.Tensor, noise: torch.Tensor) -> None:
        if source.shape != noise.shape or area.shape[-2:] != source.shape[-2:]:
            raise ValueError(f"source {tuple(source.shape)}, noise {tuple(noise.shape)} and area "
                             f"{tuple(area.shape)} must share the latent grid")
        self.source, self.area, self.noise = source, area, noise

    def __call__(self, pipe: Any, step: int, timestep: Any, tensors: dict[str, torch.Tensor]) -> dict[str, Any]:
        latents = tensors["latents"]  # (B, C, h, w), now at the noise level of the next timestep
        timesteps = pipe.scheduler.timesteps
        if step + 1 < len(timesteps):
            background = pipe.scheduler.add_noise(self.source, self.noise, timesteps[step + 1 : step + 2])
        else:
            background = self.source
        area = self.area.to(latents.dtype)
        return {"latents": area * latents + (1 - area) * background.to(latents.dtype)}
