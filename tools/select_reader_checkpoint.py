"""Choose among a distillation run's checkpoints on the validation split (never on test or free-form data).

    python tools/select_reader_checkpoint.py runs/synth_reader/checkpoint-00* [--data-dir data/synth] [--stride 2]

Per checkpoint: reasoning accuracy on validation records with their own wording and with a rephrasing in the
training families (``reasonbrain.training.distill_reader.validate``), and how often the scene recogniser sees
every object of the scene (a missed object would become a wrong "not in this picture"). Prints a table.
"""

from __future__ import annotations

import argparse
import dataclasses

import torch

from reasonbrain.pipelines.pipeline_reasonbrain import ReasonBrainEditPipeline
from reasonbrain.synthworld import VOCABULARY
from reasonbrain.synthworld.dataset import load_split
from reasonbrain.training.distill_reader import DistillConfig, validate


def recogniser_recall(pipe: ReasonBrainEditPipeline, records: list) -> float:
    """Share of scene objects (by name) that the scene recogniser lists, over the records' source images."""
    from reasonbrain.image_io import load_image, prepare_image, tensor_to_pil

    seen = total = 0
    for r in records:
        pixels, _ = prepare_image(load_image(str(r.path(r.src_image))), pipe.model.config.resolution)
        names = {e.name for e in pipe.recognise_objects(pixels[None], tensor_to_pil(pixels)) or []}
        for o in r.scene.objects:
            total += 1
            seen += o.name in names
    return 100.0 * seen / max(total, 1)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("checkpoints", nargs="+")
    ap.add_argument("--data-dir", default="data/synth")
    ap.add_argument("--stride", type=int, default=2)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    records = [r for r in load_split(args.data_dir, "val") if r.chain_id is None][:: args.stride]
    cfg = dataclasses.replace(DistillConfig(), data_dir=args.data_dir)
    print(f"\n## validation split, every {args.stride}th record (n={len(records)})\n")
    print("| checkpoint | own wording | rephrased (train families) | recogniser recall |\n|---|---:|---:|---:|")
    for path in args.checkpoints:
        pipe = ReasonBrainEditPipeline.from_pretrained(path)
        acc = validate(pipe.model, records, cfg, pipe.region_proposer, VOCABULARY)
        recall = recogniser_recall(pipe, records) if pipe.model.recogniser is not None else float("nan")
        print(f"| {path} | {acc['accuracy_own']:.1f} % | {acc['accuracy_rephrased']:.1f} % | {recall:.1f} % |",
              flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
