"""Parameter counts per component for any preset, built on the meta device (no weights, no downloads)."""

from __future__ import annotations

import torch

from reasonbrain.configuration import ReasonBrainConfig


def parameter_table(preset: str | ReasonBrainConfig) -> dict[str, tuple[int, int]]:
    """component -> (parameters, trainable parameters); plus "FRCE+ID", "total" rows."""
    from reasonbrain.models.reasonbrain import ReasonBrainModel

    config = ReasonBrainConfig.from_preset(preset) if isinstance(preset, str) else preset
    with torch.device("meta"):
        model = ReasonBrainModel.from_config(config, bundled_tokenizers=True)
    rows = model.component_parameters()
    rows["total"] = (sum(v[0] for v in rows.values()), sum(v[1] for v in rows.values()))
    return rows
