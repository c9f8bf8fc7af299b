"""Build a region proposer from a regions config, dispatching on its ``backend`` field."""

from __future__ import annotations

import dataclasses
from typing import Any

from reasonbrain.regions.container import RegionProposer
from reasonbrain.regions.sam2_package import Sam2PackageRegionProposer
from reasonbrain.regions.transformers_sam2 import TransformersSam2RegionProposer

BACKENDS = ("transformers_sam2", "sam2", "color_segments")
_CONFIG_KEYS = (
    "backend",
    "pretrained_model_name_or_path",
    "config",
    "points_per_side",
    "max_regions",
    "min_area",
    "iou_threshold",
)


def build_region_proposer(config: dict[str, Any] | Any, *, load_pretrained: bool = True) -> RegionProposer:
    """Build a region proposer from a regions config (a dict or ``RegionsConfig``), dispatching on ``backend``.

    Keys: ``backend`` (one of ``"transformers_sam2"``, ``"sam2"``, ``"color_segments"``),
    ``pretrained_model_name_or_path`` (Hub id or local path), ``config`` (dict), ``points_per_side``,
    ``max_regions``, ``min_area``, ``iou_threshold``. What ``config`` holds depends on the backend:

    - ``transformers_sam2``: ``Sam2Config`` kwargs, used (random weights, no download) when there is no
      pretrained path or ``load_pretrained`` is False; ``pred_iou_thresh`` / ``stability_score_thresh`` /
      ``points_per_batch`` inside it are proposer arguments instead.
    - ``sam2``: ``SAM2AutomaticMaskGenerator`` kwargs, plus ``model_cfg`` (a sam2 hydra config) for random weights.
    - ``color_segments``: :class:`~reasonbrain.synthworld.segmenter.ColorSegmentsRegionProposer` kwargs (``color_threshold``, ...).

    Only a pretrained path with ``load_pretrained=True`` touches the network (through ``from_pretrained``).
    """
    if dataclasses.is_dataclass(config) and not isinstance(config, type):
        config = dataclasses.asdict(config)
    if not isinstance(config, dict):
        raise ValueError(f"build_region_proposer takes a dict or RegionsConfig, got {type(config).__name__}")
    unknown = set(config) - set(_CONFIG_KEYS)
    if unknown:
        raise ValueError(f"Unknown region config keys {sorted(unknown)}; valid keys: {list(_CONFIG_KEYS)}")
    backend = config.get("backend", "transformers_sam2")
    if backend not in BACKENDS:
        raise ValueError(f"Unknown region backend {backend!r}; valid backends: {', '.join(BACKENDS)}")
    path = config.get("pretrained_model_name_or_path")
    extra = dict(config.get("config") or {})
    common = {k: config[k] for k in ("max_regions", "min_area", "iou_threshold") if config.get(k) is not None}

    if backend == "color_segments":  # the synth world's own proposer, imported only when asked for
        from reasonbrain.synthworld.segmenter import ColorSegmentsRegionProposer

        return ColorSegmentsRegionProposer(**common, **extra)

    points_per_side = config.get("points_per_side")
    if backend == "transformers_sam2":
        proposer_keys = (
            "pred_iou_thresh",
            "stability_score_thresh",
            "stability_score_offset",
            "points_per_batch",
            "mask_threshold",
        )
        kw = dict(common, **{k: extra.pop(k) for k in proposer_keys if k in extra})
        if points_per_side is not None:
            kw["points_per_side"] = points_per_side
        if path and load_pretrained:
            return TransformersSam2RegionProposer.from_pretrained(path, **kw)
        if not extra:
            raise ValueError(
                "backend 'transformers_sam2' needs pretrained_model_name_or_path (e.g. "
                "'facebook/sam2.1-hiera-large') or a 'config' dict of Sam2Config kwargs"
            )
        return TransformersSam2RegionProposer.from_config(extra, **kw)

    # backend == "sam2"
    model_cfg = extra.pop("model_cfg", None)
    if points_per_side is not None:
        extra["points_per_side"] = points_per_side
    if path and load_pretrained:
        return Sam2PackageRegionProposer.from_pretrained(path, model_cfg=model_cfg, **common, **extra)
    if model_cfg is None:
        raise ValueError(
            "backend 'sam2' needs pretrained_model_name_or_path (e.g. 'facebook/sam2.1-hiera-large') "
            "or config={'model_cfg': 'configs/sam2.1/sam2.1_hiera_t.yaml'} for random weights"
        )
    return Sam2PackageRegionProposer(model_cfg=model_cfg, **common, **extra)
