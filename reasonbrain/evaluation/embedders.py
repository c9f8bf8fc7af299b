"""Image and text embedders behind the CLIP and DINO metrics.

The metric formulas in :mod:`reasonbrain.evaluation.metrics` only need two small protocols:

- :class:`ImageTextEmbedder` (CLIP): ``embed_images(images) -> (N, D)`` and ``embed_texts(texts) -> (N, D)``
  in one joint space;
- :class:`ImageEmbedder` (DINO): ``embed_images(images) -> (N, D)``.

:class:`ClipEmbedder` and :class:`DinoEmbedder` implement them with transformers models (``CLIPModel`` with
its tokenizer and image processor; ``ViTModel`` CLS features). Both are built from objects you already have
(tests pass tiny random models built from config) or loaded by Hub id / local folder with ``from_pretrained``.
Defaults follow MagicBrush's evaluation script: CLIP ViT-B/32 and DINO ViT-S/16. Loading never happens at import
and a model that cannot be loaded (offline, not cached) raises :class:`MetricModelUnavailable` naming the id and
how to pass a local copy instead.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

import numpy as np
from PIL import Image

logger = logging.getLogger(__name__)

DEFAULT_CLIP_MODEL = "openai/clip-vit-base-patch32"
DEFAULT_DINO_MODEL = "facebook/dino-vits16"


class MetricModelUnavailable(ValueError):
    """A metric's model could not be loaded (typically: offline and not in the local cache)."""


@runtime_checkable
class ImageEmbedder(Protocol):
    def embed_images(self, images: Sequence[Image.Image]) -> np.ndarray:
        """(N, D) float array, one row per image (not necessarily normalised)."""
        ...


@runtime_checkable
class ImageTextEmbedder(ImageEmbedder, Protocol):
    def embed_texts(self, texts: Sequence[str]) -> np.ndarray:
        """(N, D) float array in the same space as ``embed_images``."""
        ...


def unavailable_message(kind: str, name: str, flag: str, metrics: Sequence[str], err: BaseException) -> str:
    return (
        f"could not load the {kind} model {name!r} needed by the metric(s) {', '.join(metrics)} "
        f"({type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}). Without Hub access, pass a local "
        f"folder holding a save_pretrained() copy of it (model + processor files) with {flag} /path/to/folder, "
        f"or leave those metrics out of --metrics."
    )


def _features(output: Any):
    """transformers 5 returns a model output from get_*_features; older versions return the tensor."""
    return output.pooler_output if hasattr(output, "pooler_output") else output


def _rgb(images: Sequence[Image.Image]) -> list[Image.Image]:
    if isinstance(images, Image.Image):
        raise ValueError("pass a list of images, not a single image")
    return [im.convert("RGB") for im in images]


class _ImageEmbedder:
    """Shared by the CLIP and DINO embedders: device handling and batched image embedding."""

    model: Any
    image_processor: Any
    batch_size: int

    def to(self, device: Any):
        self.model.to(device)
        return self

    @property
    def device(self):
        return next(self.model.parameters()).device

    def _image_features(self, pixels):  # (B, 3, S, S) -> (B, D)
        raise NotImplementedError

    def _dim(self) -> int:
        raise NotImplementedError

    def embed_images(self, images: Sequence[Image.Image]) -> np.ndarray:
        import torch

        images = _rgb(images)
        rows = []
        with torch.no_grad():
            for i in range(0, len(images), self.batch_size):
                pixels = self.image_processor(images=images[i : i + self.batch_size], return_tensors="pt")["pixel_values"]
                pixels = pixels.to(device=self.device, dtype=self.model.dtype)  # (B, 3, S, S)
                rows.append(self._image_features(pixels).float().cpu().numpy())
        return np.concatenate(rows) if rows else np.zeros((0, self._dim()), np.float32)


class ClipEmbedder(_ImageEmbedder):
    """CLIP image and text embeddings (projected, un-normalised) from a transformers ``CLIPModel``.

    ``image_processor`` may be None: a CLIP-style processor (resize the short side, centre crop, CLIP
    mean/std) is then built from ``model.config.vision_config.image_size``.
    """

    def __init__(self, model, tokenizer, image_processor=None, *, batch_size: int = 32) -> None:
        if image_processor is None:
            from transformers import CLIPImageProcessorPil

            size = int(model.config.vision_config.image_size)
            image_processor = CLIPImageProcessorPil(size={"shortest_edge": size}, crop_size={"height": size, "width": size})
            logger.info("CLIP image processor built from config (image size %d)", size)
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.image_processor = image_processor
        self.batch_size = batch_size

    @classmethod
    def from_pretrained(cls, name_or_path: str = DEFAULT_CLIP_MODEL, *, device: Any = None,
                        metrics: Sequence[str] = ("clip",), **kwargs: Any) -> ClipEmbedder:
        """Load ``CLIPModel`` + its processor by Hub id or from a local folder."""
        from transformers import CLIPModel, CLIPProcessor

        try:
            model = CLIPModel.from_pretrained(name_or_path, **kwargs)
            processor = CLIPProcessor.from_pretrained(name_or_path)
        except (OSError, ValueError) as err:
            raise MetricModelUnavailable(unavailable_message("CLIP", name_or_path, "--clip-model", metrics, err)) from err
        emb = cls(model, processor.tokenizer, processor.image_processor)
        return emb.to(device) if device is not None else emb

    def _image_features(self, pixels):
        return _features(self.model.get_image_features(pixel_values=pixels))

    def _dim(self) -> int:
        return int(self.model.config.projection_dim)

    def embed_texts(self, texts: Sequence[str]) -> np.ndarray:
        import torch

        if isinstance(texts, str):
            raise ValueError("pass a list of texts, not a single string")
        max_len = int(self.model.config.text_config.max_position_embeddings)
        rows = []
        with torch.no_grad():
            for i in range(0, len(texts), self.batch_size):
                enc = self.tokenizer(list(texts[i : i + self.batch_size]), padding=True, truncation=True,
                                     max_length=max_len, return_tensors="pt")
                enc = {k: v.to(self.device) for k, v in enc.items() if k in ("input_ids", "attention_mask")}
                rows.append(_features(self.model.get_text_features(**enc)).float().cpu().numpy())  # (B, D)
        return np.concatenate(rows) if rows else np.zeros((0, self.model.config.projection_dim), np.float32)


class DinoEmbedder(_ImageEmbedder):
    """DINO features: the CLS token of a transformers ``ViTModel``'s last hidden state (after the final norm).

    ``image_processor`` may be None: a ViT processor (resize to ``config.image_size``, ImageNet mean/std) is then
    built from config.
    """

    def __init__(self, model, image_processor=None, *, batch_size: int = 32) -> None:
        if image_processor is None:
            from transformers import ViTImageProcessorPil

            size = int(model.config.image_size)
            image_processor = ViTImageProcessorPil(size={"height": size, "width": size},
                                                   image_mean=[0.485, 0.456, 0.406], image_std=[0.229, 0.224, 0.225])
            logger.info("DINO image processor built from config (image size %d)", size)
        self.model = model.eval()
        self.image_processor = image_processor
        self.batch_size = batch_size

    @classmethod
    def from_pretrained(cls, name_or_path: str = DEFAULT_DINO_MODEL, *, device: Any = None,
                        metrics: Sequence[str] = ("dino",), **kwargs: Any) -> DinoEmbedder:
        """Load ``ViTModel`` (no pooler) + ``AutoImageProcessor`` by Hub id or from a local folder."""
        from transformers import AutoImageProcessor, ViTModel

        try:
            model = ViTModel.from_pretrained(name_or_path, add_pooling_layer=False, **kwargs)
            processor = AutoImageProcessor.from_pretrained(name_or_path)
        except (OSError, ValueError) as err:
            raise MetricModelUnavailable(unavailable_message("DINO", name_or_path, "--dino-model", metrics, err)) from err
        emb = cls(model, processor)
        return emb.to(device) if device is not None else emb

    def _image_features(self, pixels):
        return self.model(pixel_values=pixels).last_hidden_state[:, 0]  # CLS of (B, 1 + patches, D)

    def _dim(self) -> int:
        return int(self.model.config.hidden_size)
