"""Sub-commands of ``python -m reasonbrain``: edit, params, presets, evaluate."""

from __future__ import annotations

import argparse
import json
import os
import sys

from reasonbrain.bundled import default_checkpoint


def add_edit_parser(sub) -> None:
    p = sub.add_parser("edit", help="edit an image with a hypothetical instruction")
    p.add_argument("--image", required=True, help="input image (any PIL-readable format)")
    p.add_argument("--instruction", required=True, help='e.g. "What would happen if the ice cube melted?"')
    p.add_argument("--out", required=True, help="output image path (a JSON sidecar is written next to it)")
    src = p.add_mutually_exclusive_group()
    src.add_argument("--checkpoint", help="checkpoint folder or Hub repo id (default: the bundled synth one)")
    src.add_argument("--preset", help="build a preset from config (random weights unless --load-backbones)")
    p.add_argument("--load-backbones", action="store_true", help="with --preset: load Hub backbones")
    p.add_argument("--steps", type=int, default=None)
    p.add_argument("--guidance-scale", type=float, default=None)
    p.add_argument("--image-guidance-scale", type=float, default=None)
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--scheduler", default=None, help="scheduler class name, e.g. DPMSolverMultistepScheduler")
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:1 ... (default: cuda when available)")
    p.set_defaults(func=run_edit)




def load_pipeline(checkpoint: str | None = None, preset: str | None = None, load_backbones: bool = False,
                  device: str | None = None):
    import torch

    from reasonbrain.configuration import ReasonBrainConfig
    from reasonbrain.pipelines.pipeline_reasonbrain import ReasonBrainEditPipeline

    if preset:
        pipe = ReasonBrainEditPipeline.from_config(ReasonBrainConfig.from_preset(preset), load_backbones=load_backbones)
    else:
        path = checkpoint or default_checkpoint()
        if not os.path.exists(path) and "/" not in str(checkpoint or ""):
            raise ValueError(f"checkpoint {path} not found; run `make synth-checkpoint` or pass --preset tiny")
        pipe = ReasonBrainEditPipeline.from_pretrained(path)
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    return pipe.to(device)


def run_edit(args: argparse.Namespace) -> int:
    """Check the image and the arguments first (a mistake is one ``error:`` line, before any model load or
    progress bar), then edit with a denoising progress bar."""
    from tqdm.auto import tqdm

    from reasonbrain.image_io import load_image

    try:
        image = load_image(args.image)
    except FileNotFoundError as err:  # a typo in a path is the user's mistake, not a crash
        raise ValueError(f"{err}; check --image") from err
    pipe = load_pipeline(args.checkpoint, args.preset, args.load_backbones, args.device)
    if args.scheduler:
        pipe.swap_scheduler(args.scheduler)
    defaults = pipe.config.defaults
    steps = defaults.num_inference_steps if args.steps is None else args.steps
    pipe.check_inputs(
        args.instruction, steps,
        defaults.guidance_scale if args.guidance_scale is None else args.guidance_scale,
        defaults.image_guidance_scale if args.image_guidance_scale is None else args.image_guidance_scale, 1,
    )
    bar = tqdm(total=steps, desc="denoising", unit="step")

    def progress(done: int, total: int) -> None:
        bar.total = total
        bar.update(done - bar.n)

    try:
        out = pipe(
            image, args.instruction, num_inference_steps=args.steps, guidance_scale=args.guidance_scale,
            image_guidance_scale=args.image_guidance_scale, seed=args.seed, progress_callback=progress,
        )
    finally:
        bar.close()
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    out.images[0].save(args.out)
    sidecar = os.path.splitext(args.out)[0] + ".json"
    with open(sidecar, "w", encoding="utf-8") as f:
        f.write(out.to_json())
    ref = out.referenced_object
    understood = f"bound to {ref.name!r}" + (f" (from {ref.phrase!r}, by {ref.source})" if ref.phrase else "")
    if out.scene_objects is not None:
        from reasonbrain.binding import SceneEntry

        understood += "; objects seen: " + (", ".join(SceneEntry(**o).describe() for o in out.scene_objects)
                                            or "none recognised")
    print(f"wrote {args.out} and {sidecar} (seed {out.seed}, {understood})")
    if out.reasoning is not None:
        from reasonbrain.pipelines.output import INFERRED_OUTCOME

        label = "the model's inferred outcome" if out.reasoning_kind == INFERRED_OUTCOME else "the model's reasoning"
        print(f"{label}: {out.reasoning or '(empty)'}")
    return 0


def add_params_parser(sub) -> None:
    p = sub.add_parser("params", help="parameter counts per component, from config (no downloads)")
    p.add_argument("--presets", nargs="*", default=None, help="default: every bundled preset")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=run_params)


def run_params(args: argparse.Namespace) -> int:
    from reasonbrain.configuration import list_presets
    from reasonbrain.model_summary import parameter_table

    table = {name: parameter_table(name) for name in (args.presets or list_presets())}
    if args.json:
        print(json.dumps(table, indent=2))
        return 0
    for name, rows in table.items():
        print(f"\n## {name}\n")
        print("| component | parameters | trainable |\n|---|---:|---:|")
        for comp, (total, trainable) in rows.items():
            print(f"| {comp} | {total:,} | {trainable:,} |")
    sys.stdout.flush()
    return 0


def add_presets_parser(sub) -> None:
    p = sub.add_parser("presets", help="list bundled presets")
    p.set_defaults(func=lambda args: print("\n".join(__import__("reasonbrain").list_presets())) or 0)


def add_evaluate_parser(sub) -> None:
    p = sub.add_parser("evaluate", help="the paper's metrics (CLIP, CLIP-I/dir/out, L1, DINO, MLLM, identity, "
                                        "reasoning accuracy) per category, from a checkpoint or a folder of outputs")
    from reasonbrain.evaluation.evaluate import add_arguments

    add_arguments(p)
    p.set_defaults(func=run_evaluate)


def run_evaluate(args: argparse.Namespace) -> int:
    from reasonbrain.evaluation.evaluate import run

    return run(args)
