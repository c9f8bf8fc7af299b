"""Train the SceneRecogniser of a synth checkpoint (which objects the picture holds) on freshly rendered scenes.

    python -m reasonbrain.training.train_recogniser --checkpoint runs/synth_reader/checkpoint \
        --out runs/synth_reader/checkpoint [--samples 20000] [--epochs 6] [--seed 11] [--reuse CHECKPOINT]

Scenes come from the synth world's generator with a seed of their own (train split only), each used twice: as
rendered and after its transformation (so state nouns such as "puddle" are seen); ``--vae-share`` passes a share
of them through the checkpoint's VAE, so that the model's own (decoded) outputs are recognised too. The validation split of
``--data-dir`` measures presence recall and false presence; the checkpoint is rewritten with the recogniser.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import shutil
import time

import torch
import torch.nn.functional as F

logger = logging.getLogger(__name__)


def object_names() -> list[str]:
    from reasonbrain.synthworld import VOCABULARY

    return sorted(set(VOCABULARY.canonical.values()) - {VOCABULARY.scene_level})


def rendered_scenes(n: int, seed: int, resolution: int, background_swap: float = 0.0):
    """(images (2n, 3, R, R) in [-1, 1], names per image): sources and targets of ``n`` generated samples.

    ``background_swap``: the share of samples redrawn on another background kind (the same one for source and
    target), so that an object is recognised by its own look rather than by where it usually stands. A kind never
    goes onto a background it is held out from (``world.HELDOUT_COMBOS``: those pairings stay unseen until test).
    """
    import random

    from reasonbrain.image_io import prepare_image
    from reasonbrain.synthworld.dataset import generate_sample
    from reasonbrain.synthworld.render import Renderer
    from reasonbrain.synthworld.world import BACKGROUNDS, HELDOUT_COMBOS

    renderer = Renderer(resolution)
    rng = random.Random(seed)
    images, names = [], []
    for i in range(n):
        s = generate_sample(seed, i, resolution=resolution, renderer=renderer, split_fractions=(1.0, 0.0, 0.0))
        pairs = ((s.src, s.record.scene), (s.tgt, s.tgt_scene))
        if rng.random() < background_swap:
            kinds = {o.kind for o in s.record.scene.objects} | {o.kind for o in s.tgt_scene.objects}
            allowed = [b for b in BACKGROUNDS if b != s.record.scene.background.kind
                       and not any((k, b) in HELDOUT_COMBOS for k in kinds)]
            if allowed:
                kind = rng.choice(allowed)
                pairs = tuple((renderer.render(swapped), swapped) for swapped in (
                    dataclasses.replace(scene, background=dataclasses.replace(scene.background, kind=kind))
                    for _, scene in pairs))
        for image, scene in pairs:
            images.append(prepare_image(image, resolution)[0])
            names.append({o.name for o in scene.objects})
    return torch.stack(images), names


def through_vae(model, images: torch.Tensor, share: float, seed: int, batch: int = 256) -> torch.Tensor:
    """``images`` with a random ``share`` of them encoded and decoded by the model's VAE (posterior mode)."""
    pick = torch.rand(len(images), generator=torch.Generator().manual_seed(seed)) < share
    out = images.clone()
    idx = torch.nonzero(pick).flatten()
    with torch.no_grad():
        for i in range(0, len(idx), batch):
            chunk = idx[i : i + batch]
            out[chunk] = model.decode_latents(model.encode_image_latents(images[chunk])).clamp(-1, 1).float()
    return out


def targets(names: list[set[str]], vocab: list[str]) -> torch.Tensor:
    y = torch.zeros(len(names), len(vocab))
    for i, here in enumerate(names):
        for name in here:
            y[i, vocab.index(name)] = 1.0
    return y


def presence_metrics(recogniser, images: torch.Tensor, y: torch.Tensor, threshold: float) -> dict[str, float]:
    with torch.no_grad():
        p = torch.cat([recogniser(images[i : i + 256]).probabilities for i in range(0, len(images), 256)])
    present = y.bool()
    return {"recall": float((p[present] >= threshold).float().mean()),
            "false_presence": float((p[~present] >= threshold).float().mean()),
            "images_all_found": float(((p >= threshold) | ~present).all(-1).float().mean())}


def reuse_recogniser(model, donor, donor_path: str) -> None:
    """Give ``model`` the recogniser of ``donor``; it sees what the VAE decodes, so the VAEs must be the same."""
    if donor.recogniser is None:
        raise ValueError(f"{donor_path} has no scene recogniser")
    mine, theirs = model.vae.state_dict(), donor.vae.state_dict()
    if mine.keys() != theirs.keys() or not all(torch.equal(mine[k], theirs[k]) for k in mine):
        raise ValueError(f"{donor_path} has another VAE; train a recogniser for this checkpoint instead")
    model.config = model.config.replace(recogniser=dataclasses.asdict(donor.config.recogniser))
    model.recogniser = donor.recogniser


def main(argv: list[str] | None = None) -> int:
    from reasonbrain.image_io import load_image, prepare_image
    from reasonbrain.models.reasonbrain import ReasonBrainModel
    from reasonbrain.models.scene_recogniser import SceneRecogniser
    from reasonbrain.synthworld.dataset import load_split
    from reasonbrain.training.train import save_checkpoint

    ap = argparse.ArgumentParser(prog="python -m reasonbrain.training.train_recogniser", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--checkpoint", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--data-dir", default="data/synth")
    ap.add_argument("--samples", type=int, default=20000)
    ap.add_argument("--epochs", type=int, default=6)
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--seed", type=int, default=11)
    ap.add_argument("--background-swap", type=float, default=0.0,
                    help="share of scenes redrawn on another background kind (never a held-out pairing)")
    ap.add_argument("--vae-share", type=float, default=0.0,
                    help="share of training images passed through the checkpoint's VAE (like its own outputs)")
    ap.add_argument("--reuse", metavar="CHECKPOINT",
                    help="take the recogniser of CHECKPOINT (trained for the same VAE) instead of training one")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    torch.manual_seed(args.seed)
    model = ReasonBrainModel.from_pretrained(args.checkpoint)
    if args.reuse:
        reuse_recogniser(model, ReasonBrainModel.from_pretrained(args.reuse), args.reuse)
        save_checkpoint(model, args.out)
        if os.path.exists(summary := os.path.join(args.reuse, "recogniser_summary.json")):
            shutil.copy(summary, args.out)
        logger.info("%s now has the recogniser of %s", args.out, args.reuse)
        return 0
    res, names = model.config.resolution, object_names()
    start = time.perf_counter()
    images, scene_names = rendered_scenes(args.samples, args.seed, res, args.background_swap)
    if args.vae_share > 0:  # the model's own outputs are VAE decodes: blurrier than renders
        images = through_vae(model, images, args.vae_share, args.seed)
    y = targets(scene_names, names)
    logger.info("rendered %d images in %.0f s", len(images), time.perf_counter() - start)
    val = [r for r in load_split(args.data_dir, "val") if r.chain_id is None]
    val_images = torch.stack([prepare_image(load_image(str(r.path(r.src_image))), res)[0] for r in val])
    val_y = targets([{o.name for o in r.scene.objects} for r in val], names)

    config = model.config.replace(recogniser={"object_names": names})
    recogniser = SceneRecogniser(object_names=names, channels=list(config.recogniser.channels))
    opt = torch.optim.AdamW(recogniser.parameters(), lr=args.lr, weight_decay=1e-4)
    steps = args.epochs * (len(images) // args.batch_size)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=args.lr, total_steps=steps)
    recogniser.train()
    step = 0
    for epoch in range(args.epochs):
        order = torch.randperm(len(images))
        for i in range(0, len(images) - args.batch_size + 1, args.batch_size):
            idx = order[i : i + args.batch_size]
            logits = recogniser.logits(images[idx]).flatten(2).amax(-1)  # (B, n)
            loss = F.binary_cross_entropy_with_logits(logits, y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            step += 1
        recogniser.eval()
        metrics = presence_metrics(recogniser, val_images, val_y, config.recogniser.threshold)
        recogniser.train()
        logger.info("epoch %d: loss %.4f, validation %s", epoch + 1, float(loss.detach()), metrics)
    recogniser.eval().requires_grad_(False)
    model.config = config
    model.recogniser = recogniser
    save_checkpoint(model, args.out)
    summary = {"samples": args.samples, "images": len(images), "epochs": args.epochs, "seed": args.seed,
               "vae_share": args.vae_share, "background_swap": args.background_swap,
               "seconds": round(time.perf_counter() - start, 1), "validation": metrics, "n_validation": len(val)}
    with open(os.path.join(args.out, "recogniser_summary.json"), "w", encoding="utf-8") as f:
        json.dump(summary, f, indent=2)
    logger.info("%s", summary)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
