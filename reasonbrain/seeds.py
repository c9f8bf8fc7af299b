"""The seed range every consumer shares (pipeline, app engine, history store, the UI's seed field)."""

from __future__ import annotations

import numbers
import random

MAX_SEED = 2**31 - 1  # seeds are 0..MAX_SEED (a browser's number field holds it exactly)


def check_seed(seed: object) -> int:
    """``seed`` as an int in [0, MAX_SEED], or a ValueError that says the range."""
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or not 0 <= int(seed) <= MAX_SEED:
        raise ValueError(f"seed must be a whole number from 0 to {MAX_SEED}, got {seed!r}")
    return int(seed)


def random_seed() -> int:
    return random.randrange(MAX_SEED + 1)
