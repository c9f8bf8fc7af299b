"""Procedural synthetic reasoning world in the Reason50K format.

Small PIL-rendered scenes (backgrounds, 2-4 objects in left/centre/right slots) and hypothetical
instructions whose outcome needs physical, temporal, causal or story reasoning
(proportions 35/25/25/15%), with multi-hop chains, alternative outcomes for a reasoning-accuracy metric,
and train/val/test splits with held-out templates and kind x background combinations.

    from reasonbrain.synthworld import sample_scene, write_dataset, reasoning_accuracy
"""

from reasonbrain.synthworld.accuracy import image_distance, is_correct, psnr, reasoning_accuracy
from reasonbrain.synthworld.dataset import (
    Alternative,
    SynthChain,
    SynthRecord,
    SynthSample,
    TargetInfo,
    generate_chain,
    generate_sample,
    load_chains,
    load_split,
    plan_sample,
    sample_chain,
    sample_scene,
    write_dataset,
)
from reasonbrain.synthworld.instructions import (
    CLAUSE_TEMPLATES,
    HELDOUT_TEMPLATES,
    STORY_TEMPLATES,
    TEMPLATES,
    example_instructions,
)
from reasonbrain.synthworld.render import Renderer
from reasonbrain.synthworld.world import (
    BACKGROUNDS,
    CATEGORIES,
    CATEGORY_WEIGHTS,
    HELDOUT_COMBOS,
    KINDS,
    TRANSFORMATIONS,
    VOCABULARY,
    Scene,
    SceneObject,
    distinct_transitions,
    object_kinds,
)

__all__ = [
    "Alternative", "BACKGROUNDS", "CATEGORIES", "CATEGORY_WEIGHTS", "CLAUSE_TEMPLATES", "HELDOUT_COMBOS",
    "HELDOUT_TEMPLATES", "KINDS", "Renderer", "STORY_TEMPLATES", "Scene", "SceneObject", "SynthChain", "SynthRecord",
    "SynthSample", "TEMPLATES", "TRANSFORMATIONS", "TargetInfo", "VOCABULARY", "distinct_transitions",
    "example_instructions", "generate_chain", "generate_sample", "image_distance", "is_correct", "load_chains",
    "load_split", "object_kinds", "plan_sample", "psnr", "reasoning_accuracy", "sample_chain", "sample_scene", "write_dataset",
]
