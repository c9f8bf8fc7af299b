"""The ``"sam2"`` backend: Meta's ``sam2`` package and its ``SAM2AutomaticMaskGenerator``, prompted with a box
through the generator's ``SAM2ImagePredictor`` (GPU installs only: ``pip install -r requirements-gpu.txt``)."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Sequence
from typing import Any

import numpy as np
import PIL.Image
import torch

from reasonbrain.regions.container import Regions, as_rgb_image, check_normalised_box
from reasonbrain.regions.postprocess import check_postprocess_args, postprocess_regions

_SAM2_MISSING = (
    "The 'sam2' region backend needs Meta's sam2 package (and torchvision), which only the GPU install "
    "carries: pip install -r requirements-gpu.txt. On CPU use backend 'transformers_sam2' instead."
)


def _import_sam2_generator() -> type:
    try:
        from sam2.automatic_mask_generator import SAM2AutomaticMaskGenerator
    except ImportError as err:
        raise ImportError(f"{_SAM2_MISSING} ({err})") from err
    return SAM2AutomaticMaskGenerator


class Sam2PackageRegionProposer:
    """Regions from ``sam2.automatic_mask_generator.SAM2AutomaticMaskGenerator``.

    ``generator`` is anything with ``generate(np.ndarray (H, W, 3) uint8) -> list[dict]`` whose dicts carry
    ``segmentation`` ((H, W) bool array, i.e. ``output_mode="binary_mask"``) and ``predicted_iou``; the
    records go through :func:`postprocess_regions` (scored by the predicted IoU; boxes are recomputed from the
    masks). Without a generator, ``model_cfg`` (a sam2 hydra config name such as
    ``"configs/sam2.1/sam2.1_hiera_t.yaml"``) builds a random-weight model; real weights come from
    :meth:`from_pretrained`. Labels: ``"region 1"``, ...
    """

    def __init__(
        self,
        *,
        generator: Any | None = None,
        model_cfg: str | None = None,
        device: torch.device | str | None = None,
        max_regions: int = 16,
        min_area: float = 0.002,
        iou_threshold: float = 0.7,
        **generator_kwargs: Any,
    ) -> None:
        check_postprocess_args(max_regions, min_area, iou_threshold)
        if generator is None:
            if model_cfg is None:
                raise ValueError(
                    "Sam2PackageRegionProposer needs a mask `generator`, a sam2 `model_cfg` (random "
                    "weights) or Sam2PackageRegionProposer.from_pretrained('facebook/sam2.1-hiera-large')"
                )
            generator_cls = _import_sam2_generator()
            from sam2.build_sam import build_sam2

            model = build_sam2(
                model_cfg, ckpt_path=None, device=str(_default_device(device)), apply_postprocessing=False
            )
            generator = generator_cls(model, **generator_kwargs)
        elif generator_kwargs:
            raise ValueError(
                f"generator kwargs {sorted(generator_kwargs)} are only used when the proposer builds "
                "the generator itself; configure the injected generator instead"
            )
        if not callable(getattr(generator, "generate", None)):
            raise ValueError("generator must have a generate(image: np.ndarray) -> list[dict] method")
        self.generator = generator
        self.max_regions = int(max_regions)
        self.min_area = float(min_area)
        self.iou_threshold = float(iou_threshold)
        self._autocast_dtype: torch.dtype | None = None

    @classmethod
    def from_pretrained(
        cls,
        pretrained_model_name_or_path: str | os.PathLike,
        *,
        model_cfg: str | None = None,
        device: torch.device | str | None = None,
        max_regions: int = 16,
        min_area: float = 0.002,
        iou_threshold: float = 0.7,
        **generator_kwargs: Any,
    ) -> Sam2PackageRegionProposer:
        """A Hub id known to sam2 (``"facebook/sam2.1-hiera-large"``) or a local ``.pt`` file plus ``model_cfg``."""
        generator_cls = _import_sam2_generator()
        from sam2.build_sam import build_sam2, build_sam2_hf

        dev = str(_default_device(device))
        path = os.fspath(pretrained_model_name_or_path)
        if os.path.isfile(path):
            if model_cfg is None:
                raise ValueError(
                    f"{path} is a checkpoint file; also pass model_cfg (e.g. "
                    "'configs/sam2.1/sam2.1_hiera_l.yaml')"
                )
            model = build_sam2(model_cfg, ckpt_path=path, device=dev, apply_postprocessing=False)
        else:
            try:
                model = build_sam2_hf(path, device=dev, apply_postprocessing=False)
            except KeyError as err:
                raise ValueError(
                    f"{path!r} is neither a local .pt checkpoint nor a Hub id the sam2 package knows (e.g. "
                    "'facebook/sam2.1-hiera-large', 'facebook/sam2.1-hiera-tiny')"
                ) from err
        generator = generator_cls(model, **generator_kwargs)
        return cls(
            generator=generator, max_regions=max_regions, min_area=min_area, iou_threshold=iou_threshold
        )

    def _model(self) -> torch.nn.Module | None:
        predictor = getattr(self.generator, "predictor", None)
        return getattr(predictor, "model", None)

    def to(
        self, device: torch.device | str | None = None, dtype: torch.dtype | None = None
    ) -> Sam2PackageRegionProposer:
        """Moves the sam2 model; a half ``dtype`` runs ``generate`` under CUDA autocast (as sam2 recommends)."""
        model = self._model()
        if device is not None:
            if model is None:
                raise ValueError("the injected generator exposes no predictor.model to move")
            model.to(device)
        if dtype is not None:
            self._autocast_dtype = None if dtype == torch.float32 else dtype
        return self

    def _inference(self) -> contextlib.AbstractContextManager:
        """Inference mode, under CUDA autocast when a half dtype was asked for and the model is on a GPU."""
        model = self._model()
        device_type = next(model.parameters()).device.type if model is not None else "cpu"
        stack = contextlib.ExitStack()
        stack.enter_context(torch.inference_mode())
        if self._autocast_dtype is not None and device_type == "cuda":
            stack.enter_context(torch.autocast("cuda", dtype=self._autocast_dtype))
        return stack

    def __call__(self, image: PIL.Image.Image) -> Regions:
        image = as_rgb_image(image)
        array = np.asarray(image, dtype=np.uint8)  # (H, W, 3)
        with self._inference():
            records = self.generator.generate(array)
        return self.records_to_regions(records, image.size)

    def segment_box(
        self, image: PIL.Image.Image, box: tuple[float, float, float, float]
    ) -> tuple[torch.Tensor, float]:
        """SAM 2 prompted with one box (normalised xyxy) through the generator's ``SAM2ImagePredictor``: the
        multimask output's mask with the best predicted IoU, (H, W) bool at the image size, and that IoU."""
        predictor = getattr(self.generator, "predictor", None)
        if predictor is None:
            raise ValueError("the injected generator exposes no predictor (SAM2ImagePredictor) to prompt with a box")
        image = as_rgb_image(image)
        x1, y1, x2, y2 = check_normalised_box(box)
        width, height = image.size
        pixel_box = np.array([x1 * width, y1 * height, x2 * width, y2 * height], dtype=np.float32)
        with self._inference():
            predictor.set_image(np.asarray(image, dtype=np.uint8))
            masks, ious, _ = predictor.predict(box=pixel_box, multimask_output=True)  # (3, H, W), (3,)
        best = int(np.argmax(ious))
        mask = torch.from_numpy(np.asarray(masks[best]).astype(bool))
        if tuple(mask.shape) != (height, width):
            raise ValueError(f"the predictor's mask is {tuple(mask.shape)} but the image is {(height, width)}")
        return mask, float(np.clip(ious[best], 0.0, 1.0))

    def records_to_regions(self, records: Sequence[dict[str, Any]], size: tuple[int, int]) -> Regions:
        """SAM's list-of-dicts output -> :class:`Regions` (``size`` is the image's (width, height))."""
        width, height = size
        masks, scores = [], []
        for i, rec in enumerate(records):
            seg = rec.get("segmentation")
            if not isinstance(seg, np.ndarray):
                raise ValueError(
                    f"record {i}: 'segmentation' must be an (H, W) array; build the generator with "
                    "output_mode='binary_mask'"
                )
            if seg.shape != (height, width):
                raise ValueError(
                    f"record {i}: mask shape {seg.shape} does not match the image ({height}, {width})"
                )
            masks.append(torch.from_numpy(seg.astype(bool, copy=False)))
            scores.append(float(rec.get("predicted_iou", 1.0)))
        if masks:
            mask_t = torch.stack(masks)  # (N, H, W)
            score_t = torch.tensor(scores, dtype=torch.float32).clamp(0.0, 1.0)
        else:
            mask_t = torch.zeros(0, height, width, dtype=torch.bool)
            score_t = torch.zeros(0)
        return postprocess_regions(
            mask_t,
            score_t,
            max_regions=self.max_regions,
            min_area=self.min_area,
            iou_threshold=self.iou_threshold,
            label_prefix="region",
        )


def _default_device(device: torch.device | str | None) -> torch.device:
    if device is not None:
        return torch.device(device)
    return torch.device("cuda") if torch.cuda.is_available() else torch.device("cpu")
