"""Reason50K-format data: one jsonl per split, each record ``id, category, src_image, tgt_image, instruction,
objects`` (image paths relative to the jsonl's folder) plus any extra fields, which are kept in ``extra``."""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Callable
from typing import Any

import torch
from torch.utils.data import Dataset

from reasonbrain.image_io import load_image, prepare_image
from reasonbrain.reason50k import REQUIRED_FIELDS, Reason50KRecord, read_split
from reasonbrain.referring import extract_referenced_object, serialize_object_token
from reasonbrain.regions import masks_to_feature_grid, pad_regions
from reasonbrain.training.task import Batch

__all__ = ["REQUIRED_FIELDS", "Reason50KDataset", "Reason50KRecord", "ReconstructionImages", "object_token_for",
           "read_split"]

def object_token_for(record: Reason50KRecord, vocabulary=None) -> str:
    """The object token as at inference (the parser), falling back to the record's first listed object."""
    obj = extract_referenced_object(record.instruction, vocabulary)
    if obj.name is None and record.objects:
        obj.name, obj.phrase = record.objects[0], record.objects[0]
    return serialize_object_token(obj)


class ReconstructionImages(Dataset):
    """Every source and target image of ``records`` as a (3, H, W) tensor in [-1, 1] (VAE pre-training)."""

    def __init__(self, records: list[Reason50KRecord], *, resolution: int) -> None:
        if not records:
            raise ValueError("the dataset is empty: check the split file")
        self.paths = [p for rec in records for p in (rec.src_image, rec.tgt_image)]
        self.resolution = resolution

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> torch.Tensor:
        return prepare_image(load_image(self.paths[index]), self.resolution)[0]


class Reason50KDataset(Dataset):
    """Yields model-ready samples: source/target tensors in [-1, 1], instruction, object token, region masks."""

    def __init__(
        self,
        records: list[Reason50KRecord],
        *,
        resolution: int,
        grid_size: int,
        max_regions: int,
        region_proposer=None,
        vocabulary=None,
        instruction_transform: Callable[[Reason50KRecord, random.Random], str] | None = None,
    ) -> None:
        """``instruction_transform(record, rng)``: an augmentation returning the instruction to train on."""
        if not records:
            raise ValueError("the dataset is empty: check the split file")
        self.records = records
        self.resolution = resolution
        self.grid_size = grid_size
        self.max_regions = max_regions
        self.region_proposer = region_proposer
        self.vocabulary = vocabulary
        self.instruction_transform = instruction_transform

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index: int) -> dict[str, Any]:
        rec = self.records[index]
        src = load_image(rec.src_image)
        source, _ = prepare_image(src, self.resolution)
        target, _ = prepare_image(load_image(rec.tgt_image), self.resolution)
        if self.instruction_transform is not None:  # torch seeds each loader worker differently
            rng = random.Random(int(torch.randint(0, 2**62, (1,))))
            rec = dataclasses.replace(rec, instruction=self.instruction_transform(rec, rng))
        item = {
            "source": source,
            "target": target,
            "instruction": rec.instruction,
            "object_token": object_token_for(rec, self.vocabulary),
            "grid_masks": None,
        }
        if self.region_proposer is not None:
            regions = self.region_proposer(src.resize((self.resolution, self.resolution)))
            item["grid_masks"] = masks_to_feature_grid(regions, (self.grid_size, self.grid_size))
        return item

    def collate(self, items: list[dict[str, Any]]) -> Batch:
        masks = valid = None
        if items[0]["grid_masks"] is not None:
            masks, valid = pad_regions([it["grid_masks"] for it in items], self.max_regions)
        return Batch(
            source=torch.stack([it["source"] for it in items]),
            target=torch.stack([it["target"] for it in items]),
            instructions=[it["instruction"] for it in items],
            object_tokens=[it["object_token"] for it in items],
            region_masks=masks,
            region_valid=valid,
        )
