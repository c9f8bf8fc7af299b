"""ReasonBrainEditOutput: what one edit returns (the edit, the object it was bound to, the regions and the ID
Controller's attention, the reasoning text), and its JSON form shared by the CLI's sidecar and the app."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import PIL.Image

from reasonbrain import visualization

if TYPE_CHECKING:  # pragma: no cover
    from reasonbrain.referring import ReferencedObject
    from reasonbrain.regions import Regions

# what the reasoning text is: the outcome an outcome adapter writes (synth), or the MLLM's free explanation
INFERRED_OUTCOME = "inferred_outcome"
EXPLANATION = "explanation"


@dataclass
class ReasonBrainEditOutput:
    images: list[PIL.Image.Image]  # the edit(s), at the input image's size
    seed: int
    instruction: str
    referenced_object: ReferencedObject  # what the instruction was bound to
    object_token: str  # the serialised object token O fed to the ID Controller
    object_token_ids: list[int]  # O's ids in the text encoder's vocabulary
    regions: Regions | None  # SAM regions at the model resolution (None when the region branch is off)
    # ID Controller attention over the regions (sums to 1) and over the patch grid (heatmap): the attention the
    # grounding map spreads (O's last token) when that component is on, else the average over O's tokens
    region_attention: list[float] | None
    patch_attention: list[list[float]] | None
    reasoning: str | None  # the MLLM's reasoning text, on presets that generate one
    # the objects the model's scene recogniser found in the picture (name, colour, position), where it has one;
    # the instruction is bound among these (and the scene itself)
    scene_objects: list[dict[str, Any]] | None
    timings: dict[str, float]  # seconds per stage
    settings: dict[str, Any] = field(default_factory=dict)
    # with ``detailed_timings=True``: {"conditioning": {sub-stage: s}, "denoise_steps": [s per step]}
    detailed_timings: dict[str, Any] | None = None
    # what ``reasoning`` is: INFERRED_OUTCOME (the model's inferred outcome, written by its outcome adapter),
    # EXPLANATION (the MLLM's free explanation), None when no reasoning text is generated
    reasoning_kind: str | None = None

    @property
    def bound_region(self) -> int | None:
        """Index of the object region the ID Controller attends to most (None without regions or attention)."""
        return visualization.bound_region(self.regions, self.region_attention)

    @property
    def bound_region_label(self) -> str | None:
        """The bound region's label (``regions.labels``), None when there is no bound region."""
        index = self.bound_region
        return self.regions.labels[index] if self.regions is not None and index is not None else None

    def attention_heatmap(self, image: PIL.Image.Image, **kwargs: Any) -> PIL.Image.Image:
        """The ID Controller's attention drawn over ``image`` (the input, at any size), the bound region outlined
        (:func:`reasonbrain.visualization.render_attention_heatmap`; ``kwargs`` go to it)."""
        return visualization.render_attention_heatmap(image, self.regions, self.region_attention,
                                                      patch_attention=self.patch_attention, bound=self.bound_region,
                                                      **kwargs)

    def to_dict(self) -> dict[str, Any]:
        """Everything but the pixels, JSON-serialisable (the CLI's sidecar, the app's download)."""
        return {
            "seed": self.seed,
            "instruction": self.instruction,
            "referenced_object": dataclasses.asdict(self.referenced_object),
            "object_token": self.object_token,
            "object_token_ids": self.object_token_ids,
            "regions": self.regions.to_dict() if self.regions is not None else None,
            "region_labels": list(self.regions.labels) if self.regions is not None else [],
            "region_scores": [float(v) for v in self.regions.scores.tolist()] if self.regions is not None else [],
            "region_attention": self.region_attention,
            "bound_region": self.bound_region,
            "bound_region_label": self.bound_region_label,
            "patch_attention": self.patch_attention,
            "reasoning": self.reasoning,
            "reasoning_kind": self.reasoning_kind,
            "scene_objects": self.scene_objects,
            "timings": self.timings,
            "settings": self.settings,
            "image_size": list(self.images[0].size) if self.images else None,
            **({"detailed_timings": self.detailed_timings} if self.detailed_timings is not None else {}),
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)
