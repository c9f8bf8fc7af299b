"""The ``"transformers_sam2"`` backend (the default): ``transformers.Sam2Model`` with our own automatic mask
generation (a grid of point prompts), and the same model prompted with one box (``segment_box``). Runs on CPU and GPU
without torchvision."""

from __future__ import annotations

import hashlib
import json
import os
import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import PIL.Image
import torch
import torch.nn.functional as F

from reasonbrain.regions.container import Regions, as_rgb_image, check_normalised_box
from reasonbrain.regions.postprocess import check_postprocess_args, finalize_regions, select_regions

if TYPE_CHECKING:  # pragma: no cover
    from transformers import Sam2Config, Sam2Model

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def point_grid(points_per_side: int) -> torch.Tensor:
    """(n*n, 2) xy points in [0, 1], cell centres of a regular grid (as SAM's automatic mask generator)."""
    offset = 1.0 / (2 * points_per_side)
    side = torch.linspace(offset, 1 - offset, points_per_side, dtype=torch.float64)
    ys, xs = torch.meshgrid(side, side, indexing="ij")
    return torch.stack([xs.reshape(-1), ys.reshape(-1)], dim=-1).float()


def stability_scores(logits: torch.Tensor, *, mask_threshold: float, offset: float) -> torch.Tensor:
    """IoU between the masks binarised at ``mask_threshold +/- offset``. logits (N, h, w) -> (N,)."""
    flat = logits.flatten(1)
    inter = (flat > mask_threshold + offset).sum(dim=1).float()
    union = (flat > mask_threshold - offset).sum(dim=1).float()
    return torch.where(union > 0, inter / union.clamp(min=1.0), torch.ones_like(inter))


class TransformersSam2RegionProposer:
    """SAM 2 automatic mask generation on ``transformers.Sam2Model`` (CPU or GPU, no torchvision).

    A regular grid of ``points_per_side**2`` positive point prompts is decoded in batches of
    ``points_per_batch`` against one image embedding (computed once per image), three masks per point
    (multimask output). Candidates are filtered by the predicted IoU (> ``pred_iou_thresh``) and the stability
    score (>= ``stability_score_thresh``), then de-duplicated and capped as in :func:`postprocess_regions`; the
    stability score, ``min_area`` and the mask IoU are all measured on the decoder's low-resolution logits
    (S/4 x S/4, the squashed image frame) rather than after upsampling as ``sam2`` does, which keeps memory
    bounded on CPU. Only the kept masks are upsampled (bilinear) to the image size and thresholded.

    Preprocessing follows SAM 2 (``SAM2Transforms``): the image is resized to the model's square input size
    (no letterbox padding: SAM 2 is trained on square-resized images), scaled to [0, 1] and normalised with the
    ImageNet mean/std. Masks are labelled ``"region 1"``, ``"region 2"``, ... (SAM has no classes).
    """

    def __init__(
        self,
        *,
        model: Sam2Model,
        points_per_side: int = 32,
        points_per_batch: int = 64,
        pred_iou_thresh: float = 0.8,
        stability_score_thresh: float = 0.95,
        stability_score_offset: float = 1.0,
        mask_threshold: float = 0.0,
        max_regions: int = 16,
        min_area: float = 0.002,
        iou_threshold: float = 0.7,
        image_mean: Sequence[float] = IMAGENET_MEAN,
        image_std: Sequence[float] = IMAGENET_STD,
    ) -> None:
        check_postprocess_args(max_regions, min_area, iou_threshold)
        if points_per_side < 1 or points_per_batch < 1:
            raise ValueError(
                f"points_per_side and points_per_batch must be >= 1, got {points_per_side} and "
                f"{points_per_batch}"
            )
        if len(image_mean) != 3 or len(image_std) != 3:
            raise ValueError("image_mean and image_std need 3 values (RGB)")
        self.model = model.eval()
        self.points_per_side = int(points_per_side)
        self.points_per_batch = int(points_per_batch)
        self.pred_iou_thresh = float(pred_iou_thresh)
        self.stability_score_thresh = float(stability_score_thresh)
        self.stability_score_offset = float(stability_score_offset)
        self.mask_threshold = float(mask_threshold)
        self.max_regions = int(max_regions)
        self.min_area = float(min_area)
        self.iou_threshold = float(iou_threshold)
        self.image_mean = tuple(float(v) for v in image_mean)
        self.image_std = tuple(float(v) for v in image_std)
        # the last image's embeddings: a reason-then-edit asks for regions, then prompts the same image with a box
        self._last_embeddings: tuple[tuple[Any, ...], list[torch.Tensor]] | None = None
        self._embeddings_lock = threading.Lock()
        # The prompt encoder's frame: points are given in pixels of the (square) model input.
        input_size = model.config.prompt_encoder_config.image_size
        self.input_size = int(input_size[0] if isinstance(input_size, (list, tuple)) else input_size)
        backbone_size = model.config.vision_config.backbone_config.image_size
        backbone_size = backbone_size if isinstance(backbone_size, (list, tuple)) else [backbone_size] * 2
        if list(backbone_size) != [self.input_size, self.input_size]:
            raise ValueError(
                f"Sam2Config mismatch: backbone image_size {backbone_size} vs prompt encoder "
                f"image_size {self.input_size}; they must describe the same square input"
            )

    # --- construction -----------------------------------------------------------------------------------------
    @classmethod
    def from_config(
        cls, config: Sam2Config | dict[str, Any], *, seed: int | None = 0, **kwargs: Any
    ) -> TransformersSam2RegionProposer:
        """Random-weight model from a ``Sam2Config`` (or its kwargs); no download. For tests and benchmarks."""
        from transformers import Sam2Config, Sam2Model

        if isinstance(config, dict):
            config = Sam2Config(**config)
        if seed is None:
            model = Sam2Model(config)
        else:
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(seed)
                model = Sam2Model(config)
        return cls(model=model, **kwargs)

    @classmethod
    def from_pretrained(
        cls,
        pretrained_model_name_or_path: str | os.PathLike,
        *,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
        revision: str | None = None,
        local_files_only: bool = False,
        **kwargs: Any,
    ) -> TransformersSam2RegionProposer:
        """Load transformers-format SAM 2.1 weights, e.g. ``"facebook/sam2.1-hiera-large"`` or a local folder.

        ``kwargs`` are the proposer's own arguments (``points_per_side``, ``max_regions``, ...).
        """
        from transformers import Sam2Model

        model_kwargs: dict[str, Any] = {"revision": revision, "local_files_only": local_files_only}
        if dtype is not None:
            model_kwargs["dtype"] = dtype
        model = Sam2Model.from_pretrained(pretrained_model_name_or_path, **model_kwargs)
        if "image_mean" not in kwargs and "image_std" not in kwargs:
            mean_std = _local_mean_std(pretrained_model_name_or_path)
            if mean_std is not None:
                kwargs["image_mean"], kwargs["image_std"] = mean_std
        proposer = cls(model=model, **kwargs)
        if device is not None:
            proposer.to(device)
        return proposer

    def to(
        self, device: torch.device | str | None = None, dtype: torch.dtype | None = None
    ) -> TransformersSam2RegionProposer:
        self.model.to(device=device, dtype=dtype)
        self._last_embeddings = None  # not kept on the old device
        return self

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        return next(self.model.parameters()).dtype

    # --- inference --------------------------------------------------------------------------------------------
    def preprocess(self, image: PIL.Image.Image) -> torch.Tensor:
        """PIL RGB -> (1, 3, S, S) normalised pixel values (S = the model's input size)."""
        image = as_rgb_image(image)
        resized = image.resize((self.input_size, self.input_size), PIL.Image.Resampling.BILINEAR)
        x = torch.from_numpy(np.asarray(resized, dtype=np.float32) / 255.0).permute(2, 0, 1)  # (3, S, S)
        mean = torch.tensor(self.image_mean).view(3, 1, 1)
        std = torch.tensor(self.image_std).view(3, 1, 1)
        return ((x - mean) / std)[None]  # (1, 3, S, S)

    def image_embeddings(self, image: PIL.Image.Image) -> list[torch.Tensor]:
        """SAM 2's image embeddings of one RGB image (computed once, then prompted any number of times); the last
        image's are kept, so prompting the image the automatic pass just saw costs no second encoder pass."""
        image = as_rgb_image(image)
        key = (hashlib.sha256(image.tobytes()).hexdigest(), image.size, self.device, self.dtype)
        with self._embeddings_lock:
            if self._last_embeddings is not None and self._last_embeddings[0] == key:
                return self._last_embeddings[1]
        pixel_values = self.preprocess(image).to(device=self.device, dtype=self.dtype)  # (1, 3, S, S)
        embeddings = self.model.get_image_embeddings(pixel_values)
        with self._embeddings_lock:
            self._last_embeddings = (key, embeddings)
        return embeddings

    def masks_at_size(self, logits: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        """(K, h, w) low-resolution logits -> (K, H, W) bool masks at the (width, height) ``size`` (bilinear)."""
        width, height = size
        if not logits.shape[0]:
            return torch.zeros(0, height, width, dtype=torch.bool)
        full = F.interpolate(logits[:, None], size=(height, width), mode="bilinear", align_corners=False)
        return full[:, 0] > self.mask_threshold

    @torch.inference_mode()
    def __call__(self, image: PIL.Image.Image) -> Regions:
        image = as_rgb_image(image)
        device, dtype = self.device, self.dtype
        image_embeddings = self.image_embeddings(image)  # once per image

        points = point_grid(self.points_per_side) * self.input_size  # (P, 2) in model-input pixels
        cand_logits: list[torch.Tensor] = []
        cand_scores: list[torch.Tensor] = []
        for start in range(0, points.shape[0], self.points_per_batch):
            batch = points[start : start + self.points_per_batch]  # (p, 2)
            input_points = batch.view(1, -1, 1, 2).to(device=device, dtype=dtype)  # (1, p, 1, 2)
            input_labels = torch.ones(1, batch.shape[0], 1, dtype=torch.long, device=device)  # (1, p, 1)
            out = self.model(
                image_embeddings=image_embeddings,
                input_points=input_points,
                input_labels=input_labels,
                multimask_output=True,
            )
            logits = out.pred_masks[0].flatten(0, 1).float()  # (p * 3, h, w) low-res
            iou = out.iou_scores[0].flatten().float()  # (p * 3,)
            keep = torch.ones_like(iou, dtype=torch.bool)
            if self.pred_iou_thresh > 0.0:
                keep &= iou > self.pred_iou_thresh
            stab = stability_scores(
                logits, mask_threshold=self.mask_threshold, offset=self.stability_score_offset
            )
            if self.stability_score_thresh > 0.0:
                keep &= stab >= self.stability_score_thresh
            cand_logits.append(logits[keep])
            cand_scores.append(iou[keep].clamp(0.0, 1.0))

        logits = torch.cat(cand_logits)  # (N, h, w)
        scores = torch.cat(cand_scores)  # (N,)
        keep = select_regions(
            logits > self.mask_threshold,
            scores,
            max_keep=self.max_regions - 1,
            min_area=self.min_area,
            iou_threshold=self.iou_threshold,
        ).to(logits.device)
        masks = self.masks_at_size(logits[keep], image.size)  # (K, H, W)
        return finalize_regions(masks, scores[keep], label_prefix="region")

    @torch.inference_mode()
    def segment_box(
        self, image: PIL.Image.Image, box: tuple[float, float, float, float]
    ) -> tuple[torch.Tensor, float]:
        """SAM 2 prompted with one box (normalised xyxy on ``image``): of the three masks it predicts (multimask
        output), the one with the best predicted IoU, as an (H, W) bool mask at the image size (on the CPU), and
        that IoU clamped to [0, 1]."""
        image = as_rgb_image(image)
        box = check_normalised_box(box)
        image_embeddings = self.image_embeddings(image)
        # the prompt encoder's frame: pixels of the square model input, as the points of __call__
        input_boxes = torch.tensor([[box]], dtype=torch.float32) * self.input_size  # (1, 1, 4)
        out = self.model(
            image_embeddings=image_embeddings,
            input_boxes=input_boxes.to(device=self.device, dtype=self.dtype),
            multimask_output=True,
        )
        logits = out.pred_masks[0, 0].float()  # (3, h, w) low-res
        iou = out.iou_scores[0, 0].float()  # (3,)
        best = int(iou.argmax())
        mask = self.masks_at_size(logits[best : best + 1], image.size)[0].cpu()  # (H, W)
        return mask, float(iou[best].clamp(0.0, 1.0))

def _local_mean_std(path: str | os.PathLike) -> tuple[list[float], list[float]] | None:
    """image_mean/image_std from a local folder's preprocessor_config.json, if there is one."""
    file = os.path.join(os.fspath(path), "preprocessor_config.json")
    if not os.path.isfile(file):
        return None
    with open(file, encoding="utf-8") as f:
        data = json.load(f)
    if "image_mean" in data and "image_std" in data:
        return list(data["image_mean"]), list(data["image_std"])
    return None
