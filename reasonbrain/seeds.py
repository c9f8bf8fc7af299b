"""The seed range every consumer shares (pipeline, app engine, history store, the UI's seed field)."""

from __future__ import annotations

import numbers
import random
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    import torch

MAX_SEED = 2**31 - 1  # seeds are 0..MAX_SEED (a browser's number field holds it exactly)


def check_seed(seed: object) -> int:
    """``seed`` as an int in [0, MAX_SEED], or a ValueError that says the range."""
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or not 0 <= int(seed) <= MAX_SEED:
        raise ValueError(f"seed must be a whole number from 0 to {MAX_SEED}, got {seed!r}")
    return int(seed)


def random_seed() -> int:
    return random.randrange(MAX_SEED + 1)


def seeded_generator(seed: object | None, generator: torch.Generator | None = None) -> tuple[torch.Generator, int]:
    """The generator an edit draws from and its seed: an explicit ``generator`` wins (its initial seed is reported),
    then ``seed``, else a fresh random seed (reported back). CPU generators: results do not depend on the device."""
    import torch

    if generator is not None:
        return generator, int(generator.initial_seed())
    seed = random_seed() if seed is None else check_seed(seed)
    return torch.Generator(device="cpu").manual_seed(seed), seed
