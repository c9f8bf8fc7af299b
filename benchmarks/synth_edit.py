"""Time of one edit with the bundled synth checkpoint on this machine (target: under 1 s on CPU at 64 px).

    python benchmarks/synth_edit.py [--checkpoint checkpoints/synth] [--repeats 10] [--threads 2]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from reasonbrain.pipelines.pipeline_reasonbrain import ReasonBrainEditPipeline
from reasonbrain.synthworld import sample_scene


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--checkpoint", default="checkpoints/synth")
    ap.add_argument("--repeats", type=int, default=10)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    pipe = ReasonBrainEditPipeline.from_pretrained(args.checkpoint)
    samples = [sample_scene(seed=i) for i in range(args.repeats + 1)]
    pipe(samples[0].src, samples[0].record.instruction, seed=0)  # warm-up
    totals, stages = [], []
    for s in samples[1:]:
        start = time.perf_counter()
        out = pipe(s.src, s.record.instruction, seed=0)
        totals.append(time.perf_counter() - start)
        stages.append(out.timings)
    print(f"\n## synth edit: {args.checkpoint}, {pipe.config.resolution} px, "
          f"{pipe.config.defaults.num_inference_steps} steps ({type(pipe.scheduler).__name__}), "
          f"{args.threads} CPU threads, {args.repeats} edits\n")
    print("| stage | median s |\n|---|---:|")
    for key in stages[0]:
        print(f"| {key} | {statistics.median(t[key] for t in stages):.4f} |")
    print(f"| **wall, one edit** | **{statistics.median(totals):.3f}** (max {max(totals):.3f}; target < 1 s) |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
