"""Pipeline time per edit next to diffusers' own InstructPix2Pix loop with the same UNet, VAE, scheduler, steps.

    python benchmarks/pipeline_overhead.py [--preset tiny] [--steps 20] [--repeats 5] [--device cpu]

Both run in one process, interleaved, and the medians are compared (the machines are noisy). The ratio is the
ReasonBrain overhead: regions, referring, FRCE + MLLM + QFormer + CME (once per edit) and the additive UNet
input. Target on the tiny preset: at most 1.2x.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import PIL.Image
import torch
from diffusers import StableDiffusionInstructPix2PixPipeline

from reasonbrain.configuration import ReasonBrainConfig
from reasonbrain.pipelines.pipeline_reasonbrain import ReasonBrainEditPipeline

INSTRUCTION = "What would happen if the ice cube were left in the sun?"


def bare_ip2p(pipe: ReasonBrainEditPipeline) -> StableDiffusionInstructPix2PixPipeline:
    model = pipe.model
    tokenizer = model.text_tokenizer
    tokenizer.model_max_length = model.config.text_encoder.max_length
    ip2p = StableDiffusionInstructPix2PixPipeline(
        vae=model.vae, text_encoder=model.text_encoder, tokenizer=tokenizer, unet=model.unet,
        scheduler=type(pipe.scheduler).from_config(pipe.scheduler.config), safety_checker=None,
        feature_extractor=None, requires_safety_checker=False,
    )
    ip2p.set_progress_bar_config(disable=True)
    return ip2p


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", default="tiny")
    ap.add_argument("--checkpoint", default=None, help="a checkpoint folder instead of a random-weight preset")
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = ap.parse_args(argv)

    torch.manual_seed(0)
    if args.checkpoint:
        pipe = ReasonBrainEditPipeline.from_pretrained(args.checkpoint)
    else:
        pipe = ReasonBrainEditPipeline.from_config(ReasonBrainConfig.from_preset(args.preset), )
    pipe.to(args.device)
    ip2p = bare_ip2p(pipe).to(args.device)
    res = pipe.config.resolution
    image = PIL.Image.fromarray(np.random.default_rng(0).integers(0, 255, (res, res, 3), dtype=np.uint8))
    kw = dict(num_inference_steps=args.steps, guidance_scale=7.5, image_guidance_scale=1.5)

    def run_pipe():
        return pipe(image, INSTRUCTION, seed=0, **kw)

    def run_bare():
        return ip2p(INSTRUCTION, image=image, generator=torch.Generator().manual_seed(0), **kw)

    run_pipe(), run_bare()  # warm-up
    ours, bare, stages = [], [], []
    for _ in range(args.repeats):
        start = time.perf_counter()
        out = run_pipe()
        ours.append(time.perf_counter() - start)
        stages.append(out.timings)
        start = time.perf_counter()
        run_bare()
        bare.append(time.perf_counter() - start)
    t_ours, t_bare = statistics.median(ours), statistics.median(bare)
    name = args.checkpoint or args.preset
    print(f"\n## pipeline overhead: {name}, {res} px, {args.steps} steps, {args.device}, {args.repeats} runs (median)\n")
    print("| run | s / edit |\n|---|---:|")
    print(f"| ReasonBrainEditPipeline | {t_ours:.3f} |")
    print(f"| diffusers InstructPix2Pix loop (same UNet, VAE, scheduler) | {t_bare:.3f} |")
    print(f"| **ratio** | **{t_ours / t_bare:.2f}x** (target <= 1.20x on tiny) |")
    print("\n| stage | s (median) |\n|---|---:|")
    for key in stages[0]:
        print(f"| {key} | {statistics.median(s[key] for s in stages):.4f} |")
    print(f"| denoise per step | {statistics.median(s['denoise'] for s in stages) / args.steps:.4f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
