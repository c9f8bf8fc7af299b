"""The training task: L = L_MLLM (eq. A1) + L_DM (eq. A2), returned as a dict of named losses."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from diffusers import SchedulerMixin
from torch import nn

from reasonbrain.configuration import ReasonBrainConfig
from reasonbrain.models.reasonbrain import ReasonBrainModel
from reasonbrain.schedulers import make_scheduler

ABLATION_SWITCHES = ("patch_branch", "region_branch", "id_controller", "visual_enhancer", "text_enhancer")
EXTRA_SWITCHES = ("grounding_map",)  # ours, not in the paper's table 4


def ablation_config(config: ReasonBrainConfig, **switches: bool) -> ReasonBrainConfig:
    """A copy of ``config`` with components switched off, e.g. ``ablation_config(c, region_branch=False)``.

    ``baseline=True`` turns every FRCE/CME component off (the paper's "MLLM + diffusion" baseline), and
    ours (``grounding_map``) with them.
    """
    if switches.pop("baseline", False):
        switches = {name: False for name in ABLATION_SWITCHES + EXTRA_SWITCHES} | switches
    unknown = set(switches) - set(ABLATION_SWITCHES + EXTRA_SWITCHES)
    if unknown:
        raise ValueError(f"unknown ablation switches {sorted(unknown)}; "
                         f"valid: {', '.join(ABLATION_SWITCHES + EXTRA_SWITCHES)}")
    return config.replace(components=switches)


@dataclass
class Batch:
    source: torch.Tensor  # (B, 3, H, W) in [-1, 1]
    target: torch.Tensor  # (B, 3, H, W) in [-1, 1]
    instructions: list[str]
    object_tokens: list[str]
    region_masks: torch.Tensor | None  # (B, R, g, g) soft masks on the vision grid
    region_valid: torch.Tensor | None  # (B, R) bool


class ReasonBrainTrainingTask(nn.Module):
    """Computes {"mllm_loss", "dm_loss", "loss"} for one batch (an nn.Module so accelerate/DDP can wrap it).

    Classifier-free guidance is trained as in InstructPix2Pix: each sample independently drops its instruction
    (empty text and no object), its source image (zero image latent), or both, with probability ``cond_dropout``.

    ``edit_region_weight`` (ours, not in the paper; 0 turns it off) multiplies the diffusion loss by
    ``1 + edit_region_weight`` on the latent cells whose pixels change between source and target, so that
    small edits in large unchanged scenes are not drowned by learning to copy the background.

    ``grounding_loss_weight`` (ours, not in the paper; 0 turns it off) supervises the ID Controller's attention
    from the object token's last token (``id_focus``) over R_V = [patch tokens; region tokens]: cross-entropy
    against each token's share of changed pixels (a patch's changed fraction, a region mask's changed
    fraction), normalised per sample. Samples whose
    instruction was dropped or whose target equals the source are left out. The losses then also hold
    ``grounding_loss`` and ``grounding_hit`` (share of samples whose most-attended token overlaps the edit).
    """

    EDIT_THRESHOLD = 0.05  # per-pixel max |target - source| on the [-1, 1] scale that counts as changed

    def __init__(
        self,
        model: ReasonBrainModel,
        *,
        noise_scheduler: SchedulerMixin | None = None,
        cond_dropout: float = 0.05,
        mllm_loss_weight: float = 1.0,
        edit_region_weight: float = 0.0,
        target_latents: str = "sample",
        grounding_loss_weight: float = 0.0,
    ) -> None:
        super().__init__()
        self.model = model
        self.noise_scheduler = noise_scheduler or make_scheduler(model.config.diffusion.train_scheduler)
        self.cond_dropout = cond_dropout
        self.mllm_loss_weight = mllm_loss_weight
        self.edit_region_weight = edit_region_weight
        self.grounding_loss_weight = grounding_loss_weight
        if target_latents not in ("sample", "mode"):
            raise ValueError(f"target_latents must be 'sample' or 'mode', got {target_latents!r}")
        self.target_latents = target_latents

    def forward(self, batch: Batch, generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
        model = self.model
        device = model.device
        source = batch.source.to(device)
        target = batch.target.to(device)
        b = source.shape[0]
        instructions, object_tokens = list(batch.instructions), list(batch.object_tokens)
        drop_image = torch.zeros(b, dtype=torch.bool)
        if self.cond_dropout > 0:
            u = torch.rand(b, generator=generator)
            drop_text = u < 2 * self.cond_dropout  # [0, p): text only, [p, 2p): both, [2p, 3p): image only
            drop_image = (u >= self.cond_dropout) & (u < 3 * self.cond_dropout)
            for i in torch.nonzero(drop_text).flatten().tolist():
                instructions[i], object_tokens[i] = "", ""
        with torch.no_grad():
            if self.target_latents == "mode":  # a VAE trained from scratch keeps a wide posterior: use its mean
                latents = model.encode_image_latents(target) * model.vae.config.scaling_factor
            else:
                latents = model.encode_target_latents(target, generator=None)  # (B, C, h, w)
            image_latents = model.encode_image_latents(source)
        image_latents = image_latents * (~drop_image).to(device, image_latents.dtype)[:, None, None, None]
        cond = model.encode_condition(
            source, instructions, object_tokens, batch.region_masks, batch.region_valid,
            latent_hw=tuple(latents.shape[-2:]), compute_mllm_loss=True,
        )
        noise = torch.randn(latents.shape, generator=generator).to(device, latents.dtype)
        steps = self.noise_scheduler.config.num_train_timesteps
        timesteps = torch.randint(0, steps, (b,), generator=generator).to(device)
        noisy = self.noise_scheduler.add_noise(latents, noise, timesteps)
        pred = model.predict_noise(noisy, timesteps, image_latents, cond.input_offset, cond.context)
        prediction_type = self.noise_scheduler.config.prediction_type
        if prediction_type == "epsilon":
            target_pred = noise
        elif prediction_type == "v_prediction":
            target_pred = self.noise_scheduler.get_velocity(latents, noise, timesteps)
        elif prediction_type == "sample":  # x0-prediction: learns to copy the source fast (synth preset)
            target_pred = latents
        else:
            raise ValueError(f"unsupported prediction_type {prediction_type!r}; use epsilon, v_prediction or sample")
        sq_err = (pred.float() - target_pred.float()) ** 2
        if self.edit_region_weight:
            weight = 1.0 + self.edit_region_weight * self.edit_mask(source, target, latents.shape[-2:])
            dm_loss = (sq_err * weight).mean()
        else:
            dm_loss = sq_err.mean()
        mllm_loss = cond.mllm_loss
        losses = {"mllm_loss": mllm_loss, "dm_loss": dm_loss, "loss": dm_loss + self.mllm_loss_weight * mllm_loss}
        if self.grounding_loss_weight:
            if cond.frce is None or cond.frce.id_focus is None:
                raise ValueError("grounding_loss_weight needs the ID Controller (components.id_controller)")
            referred = torch.tensor([bool(o) for o in object_tokens], device=device)
            g_loss, hit = self.grounding_loss(cond.frce, source, target, batch.region_masks, referred)
            losses["grounding_loss"], losses["grounding_hit"] = g_loss, hit
            losses["loss"] = losses["loss"] + self.grounding_loss_weight * g_loss
        return losses

    def grounding_loss(self, frce, source, target, region_masks, referred) -> tuple[torch.Tensor, torch.Tensor]:
        """(cross-entropy of id_focus against the changed-pixel share of each R_V token, hit rate)."""
        attention = frce.id_focus.float()  # (B, Lp + R)
        grid = self.model.grid_size
        changed = F.adaptive_avg_pool2d(self.changed_pixels(source, target), grid)[:, 0]  # (B, g, g) fraction
        shares = []
        if frce.num_patch_tokens:
            side = math.isqrt(frce.num_patch_tokens)
            shares.append(F.adaptive_avg_pool2d(changed[:, None], side).flatten(1))  # (B, Lp)
        if attention.shape[1] > frce.num_patch_tokens:
            masks = region_masks.to(changed.device, changed.dtype)  # (B, R, g, g)
            shares.append((masks * changed[:, None]).flatten(2).sum(-1) / masks.flatten(2).sum(-1).clamp(min=1e-6))
        share = torch.cat(shares, dim=1)
        total = share.sum(-1)
        keep = referred & (total > 0)
        if not bool(keep.any()):
            zero = attention.new_zeros(())
            return zero, zero
        dist = share[keep] / total[keep, None]
        ce = -(dist * attention[keep].clamp(min=1e-8).log()).sum(-1).mean()
        top = attention[keep].argmax(-1, keepdim=True)
        hit = (share[keep].gather(1, top) > 0).float().mean()
        return ce, hit.detach()

    @classmethod
    def edit_mask(cls, source: torch.Tensor, target: torch.Tensor, latent_hw) -> torch.Tensor:
        """(B, 1, h, w) 1.0 where any pixel under a latent cell changes from source to target, else 0.0."""
        return F.adaptive_max_pool2d(cls.changed_pixels(source, target), tuple(latent_hw))

    @classmethod
    def changed_pixels(cls, source: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """(B, 1, H, W) 1.0 where a pixel changes by more than ``EDIT_THRESHOLD`` in any channel, else 0.0."""
        return ((target - source).abs().amax(dim=1, keepdim=True) > cls.EDIT_THRESHOLD).float()

    def trainable_parameters(self) -> list[torch.nn.Parameter]:
        return [p for p in self.model.parameters() if p.requires_grad]
