"""How rating studies run (:class:`RatingSettings`): defaults, overridden by environment variables."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

_ENV_VARS: dict[str, tuple[str, type]] = {
    "REASONBRAIN_RATE_MIN_SECONDS": ("min_seconds", float),
    "REASONBRAIN_RATE_OVERLAP": ("overlap_fraction", float),
    "REASONBRAIN_RATE_OVERLAP_K": ("overlap_annotators", int),
    "REASONBRAIN_RATE_GOLD": ("gold_fraction", float),
    "REASONBRAIN_RATE_BATCH": ("batch_size", int),
    "REASONBRAIN_RATE_SESSION_HOURS": ("session_hours", float),
    "REASONBRAIN_RATE_SEED": ("seed", str),
}


@dataclass
class RatingSettings:
    """How rating studies run. Environment variables (``from_env``) override the defaults."""

    annotators_file: str  # REASONBRAIN_ANNOTATORS (default <data_dir>/annotators.json)
    min_seconds: float = 2.0  # answers faster than this are flagged too_fast (REASONBRAIN_RATE_MIN_SECONDS)
    overlap_fraction: float = 0.15  # share of tasks shown to several annotators (REASONBRAIN_RATE_OVERLAP)
    overlap_annotators: int = 3  # how many annotators see an overlap task; 0 = all (REASONBRAIN_RATE_OVERLAP_K)
    gold_fraction: float = 0.1  # gold tasks mixed into each batch (REASONBRAIN_RATE_GOLD)
    batch_size: int = 50  # new tasks claimed when a queue runs out (REASONBRAIN_RATE_BATCH)
    session_hours: float = 24 * 7  # sign-in lifetime (REASONBRAIN_RATE_SESSION_HOURS)
    seed: str = "reasonbrain-rate"  # study seed: orders and sides derive from it and the annotator id

    def __post_init__(self) -> None:
        self.annotators_file = os.path.abspath(os.path.expanduser(str(self.annotators_file)))
        for name, lo, hi in (("min_seconds", 0, 3600), ("overlap_fraction", 0, 1), ("gold_fraction", 0, 1),
                             ("session_hours", 0.01, 24 * 365)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not lo <= value <= hi:
                raise ValueError(f"{name} must be a number in [{lo}, {hi}], got {value!r}")
        for name, lo in (("overlap_annotators", 0), ("batch_size", 1)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < lo:
                raise ValueError(f"{name} must be a whole number >= {lo}, got {value!r}")

    @classmethod
    def from_env(cls, data_dir: str, env: Mapping[str, str] | None = None, **overrides: Any) -> RatingSettings:
        env = os.environ if env is None else env
        values: dict[str, Any] = {
            "annotators_file": env.get("REASONBRAIN_ANNOTATORS", "").strip()
            or os.path.join(data_dir, "annotators.json")
        }
        for var, (name, cast) in _ENV_VARS.items():
            raw = env.get(var, "").strip()
            if raw:
                try:
                    values[name] = cast(raw)
                except ValueError as err:
                    raise ValueError(f"{var} must be a {cast.__name__}, got {raw!r}") from err
        values.update(overrides)
        return cls(**values)
