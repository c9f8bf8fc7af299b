"""Region proposals: the SAM 2 region masks that FRCE's region branch pools over (paper sec. 3.2).

Every backend returns a :class:`Regions` object built by the same deterministic post-processing
(:func:`postprocess_regions`): tiny masks dropped, duplicates removed by mask-IoU NMS, regions sorted by
score, capped to ``max_regions - 1``, and a ``"background"`` region (the complement of the kept masks)
always appended last.

Backends (pick one with :func:`build_region_proposer`, dispatching on the config field ``backend``):

- ``"transformers_sam2"`` -- :class:`TransformersSam2RegionProposer`: ``transformers.Sam2Model`` with our own
  automatic mask generation (a grid of point prompts). Runs on CPU and GPU without torchvision. The default.
- ``"sam2"`` -- :class:`Sam2PackageRegionProposer`: Meta's ``sam2`` package and its
  ``SAM2AutomaticMaskGenerator`` (GPU installs only: ``pip install -r requirements-gpu.txt``).
- ``"color_segments"`` -- :class:`reasonbrain.synthworld.segmenter.ColorSegmentsRegionProposer`: a classical
  segmenter for the flat-shaded synthetic world; the region backend of the offline ``synth`` preset.

Modules: ``container`` (Regions, RLE, the proposer interface), ``postprocess`` (filter, NMS, background),
``feature_grid`` (model-side helpers), ``transformers_sam2`` and ``sam2_package`` (the SAM 2 backends),
``dispatch`` (:func:`build_region_proposer`).

Nothing here downloads anything except the ``from_pretrained`` class methods.
"""

from reasonbrain.regions.container import (
    BACKGROUND_LABEL,
    RegionProposer,
    Regions,
    decode_mask_rle,
    encode_mask_rle,
)
from reasonbrain.regions.dispatch import BACKENDS, build_region_proposer
from reasonbrain.regions.feature_grid import masks_to_feature_grid, pad_regions
from reasonbrain.regions.postprocess import (
    finalize_regions,
    masks_to_boxes,
    postprocess_regions,
    select_regions,
)
from reasonbrain.regions.sam2_package import Sam2PackageRegionProposer
from reasonbrain.regions.transformers_sam2 import (
    TransformersSam2RegionProposer,
    point_grid,
    stability_scores,
)

__all__ = [
    "BACKENDS",
    "BACKGROUND_LABEL",
    "RegionProposer",
    "Regions",
    "Sam2PackageRegionProposer",
    "TransformersSam2RegionProposer",
    "build_region_proposer",
    "decode_mask_rle",
    "encode_mask_rle",
    "finalize_regions",
    "masks_to_boxes",
    "masks_to_feature_grid",
    "pad_regions",
    "point_grid",
    "postprocess_regions",
    "select_regions",
    "stability_scores",
]
