"""Examples for a model that edits photos (reason-then-edit mode): photos an installed package ships (gradio's
``media_assets/images``), each with a hypothetical instruction that fits it, and instructions per reasoning
category written for photos. Which examples a model gets is decided by ``Engine.photo_examples``."""

from __future__ import annotations

import importlib.util
import logging
from pathlib import Path

import PIL.Image

logger = logging.getLogger(__name__)

PROMPT_HINT = "What would this look like after a night of heavy snow?"  # the instruction box's placeholder

# (file in gradio's media_assets/images, an instruction that fits that photo)
PHOTOS: tuple[tuple[str, str], ...] = (
    ("cheetah.jpg", "What would this cheetah look like after a swim in a muddy river?"),
    ("lion.jpg", "What would the lion look like if it had slept through a heavy snowfall on that rock?"),
    ("tower.jpg", "What would the tower look like after a century with no paint and no repairs?"),
    ("cheetah1.jpg", "What would this cheetah's face look like after a night out in a downpour?"),
    ("groot.jpeg", "What would this tree creature look like after a long, wet spring in the forest?"),
)

INSTRUCTIONS: dict[str, list[str]] = {
    "physical": [
        "What would the animal's fur look like if it were soaking wet?",
        "What would this scene look like if everything in it were carved from ice?",
        "What would happen to the metal if it were heated until it glowed?",
    ],
    "temporal": [
        "What would this place look like fifty years from now, abandoned?",
        "What would the scene look like in the middle of a snowy winter?",
        "What would this look like late at night, lit only by street lamps?",
    ],
    "causal": [
        "What would happen to the ground if it rained all night?",
        "What would the scene look like right after a sandstorm passed through?",
        "What if a fire had swept through here an hour ago?",
    ],
    "story": [
        "The animal has just finished a long chase across a dusty plain. What does it look like now?",
        "A festival came to town and everyone decorated for it. How would this picture look?",
        "After a week of storms the sun finally came out. What changed?",
    ],
}


def photo_folder() -> Path | None:
    """gradio's ``media_assets/images`` folder, found without importing gradio; None when it is not there."""
    spec = importlib.util.find_spec("gradio")
    if spec is None or not spec.submodule_search_locations:
        return None
    folder = Path(next(iter(spec.submodule_search_locations)), "media_assets", "images")
    return folder if folder.is_dir() else None


def example_photos(folder: Path | None = None) -> list[tuple[PIL.Image.Image, str]]:
    """The photos of ``PHOTOS`` that ``folder`` (default: ``photo_folder()``) holds, as RGB, each with its
    instruction; none when the folder is missing (a photo that is missing or unreadable is left out)."""
    folder = photo_folder() if folder is None else folder
    if folder is None:
        logger.info("no example photos: gradio's media_assets/images was not found")
        return []
    examples = []
    for name, instruction in PHOTOS:
        try:
            with PIL.Image.open(folder / name) as image:
                examples.append((image.convert("RGB"), instruction))
        except (OSError, ValueError) as err:
            logger.info("example photo %s left out: %s", name, err)
    return examples


def example_instructions() -> dict[str, list[str]]:
    """A few instructions per reasoning category (physical, temporal, causal, story), for photos."""
    return {category: list(texts) for category, texts in INSTRUCTIONS.items()}
