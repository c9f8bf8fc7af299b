"""How well ``reasonbrain.synthworld.domain`` tells the synthetic world's scenes from photographs.

Prints markdown tables: for synth test-split sources (as rendered, rescaled, saved as JPEG, rendered larger)
the share flagged (it must be 0) and each statistic's range; for photographs shipped by installed packages
(gradio's ``media_assets/images``, scikit-image's ``data`` when installed, its 200 LFW faces) the share flagged
(it must be >= 95%) and per-image verdicts; and, for information, other pictures (logos, icons, a screenshot).

    .venv/bin/python benchmarks/synth_domain.py --scenes 2000
"""

from __future__ import annotations

import argparse
import importlib.util
import io
import os
import time
from collections.abc import Callable, Iterator

import numpy as np
from PIL import Image

from reasonbrain.synthworld import Renderer, generate_sample
from reasonbrain.synthworld.domain import check_image

TEST_SPLIT = (0.0, 0.0, 1.0)
GRADIO_PHOTOS = ("cheetah.jpg", "cheetah1.jpg", "groot.jpeg", "lion.jpg", "tower.jpg")
GRADIO_OTHER = ("avatar.png", "bus.png", "hf-logo_transpng.png", "logo.png", "screenshot.gif")
SKIMAGE_PHOTOS = (
    "astronaut.png", "brick.png", "camera.png", "cell.png", "chelsea.png", "clock_motion.png", "coffee.png",
    "coins.png", "grass.png", "gravel.png", "hubble_deep_field.jpg", "ihc.png", "microaneurysms.png", "moon.png",
    "motorcycle_left.png", "motorcycle_right.png", "retina.jpg", "rocket.jpg", "text.png",
)
SKIMAGE_OTHER = ("chessboard_RGB.png", "color.png", "horse.png", "logo.png", "page.png", "phantom.png")
STATS = ("flat", "texture", "palette", "colour")


def jpeg(image: Image.Image, quality: int) -> Image.Image:
    buf = io.BytesIO()
    image.convert("RGB").save(buf, "JPEG", quality=quality)
    return Image.open(io.BytesIO(buf.getvalue()))


VARIANTS: dict[str, Callable[[Image.Image], Image.Image]] = {
    "as rendered (64 px PNG)": lambda im: im,
    "nearest x8 (512 px)": lambda im: im.resize((512, 512), Image.Resampling.NEAREST),
    "bilinear x4 (256 px)": lambda im: im.resize((256, 256), Image.Resampling.BILINEAR),
    "bicubic 200 px": lambda im: im.resize((200, 200), Image.Resampling.BICUBIC),
    "nearest x8, JPEG q90": lambda im: jpeg(im.resize((512, 512), Image.Resampling.NEAREST), 90),
    "bilinear 300 px, JPEG q75": lambda im: jpeg(im.resize((300, 300), Image.Resampling.BILINEAR), 75),
    "downscaled to 48 px": lambda im: im.resize((48, 48), Image.Resampling.LANCZOS),
    "JPEG q90 at 64 px": lambda im: jpeg(im, 90),
    "JPEG q75 at 64 px": lambda im: jpeg(im, 75),
}
REQUIRED = tuple(list(VARIANTS)[:7])  # variants that must never be flagged; JPEG at 64 px is reported only


def package_folder(package: str, *parts: str) -> str | None:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return None
    folder = os.path.join(list(spec.submodule_search_locations)[0], *parts)
    return folder if os.path.isdir(folder) else None


def shipped_images(names: tuple[str, ...], package: str, *parts: str) -> Iterator[tuple[str, Image.Image]]:
    folder = package_folder(package, *parts)
    if folder is None:
        return
    for name in names:
        path = os.path.join(folder, name)
        if os.path.isfile(path):
            with Image.open(path) as im:
                yield f"{package}/{name}", im.convert("RGBA") if "A" in im.getbands() or im.mode == "P" else im.copy()


def lfw_faces() -> list[Image.Image]:
    folder = package_folder("skimage", "data")
    if folder is None or not os.path.isfile(os.path.join(folder, "lfw_subset.npy")):
        return []
    faces = np.load(os.path.join(folder, "lfw_subset.npy"))  # (200, 25, 25) float in [0, 1]
    return [Image.fromarray((f * 255).round().astype(np.uint8)).convert("RGB") for f in faces]


def summary_row(name: str, checks: list, *, must: str) -> str:
    flagged = sum(not c.in_domain for c in checks)
    ranges = " | ".join(
        f"{min(c.stats[s] for c in checks):.3f} / {np.median([c.stats[s] for c in checks]):.3f} / "
        f"{max(c.stats[s] for c in checks):.3f}" for s in STATS
    )
    scores = [c.score for c in checks]
    return (f"| {name} | {len(checks)} | {flagged} ({flagged / len(checks):.1%}) | {must} | "
            f"{min(scores):.2f} / {max(scores):.2f} | {ranges} |")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scenes", type=int, default=2000, help="test-split sources as rendered")
    parser.add_argument("--variants", type=int, default=300, help="sources each variant is measured on")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    start = time.perf_counter()
    renderer = Renderer(64)
    sources = [generate_sample(args.seed, i, renderer=renderer, split_fractions=TEST_SPLIT).src
               for i in range(args.scenes)]
    render_s = time.perf_counter() - start
    header = ("| images | n | flagged | must be | score min / max | " + " | ".join(f"{s} min / median / max"
              for s in STATS) + " |")
    print("### Synthetic world, test split\n")
    print(header)
    print("|" + "---|" * (5 + len(STATS)))
    start = time.perf_counter()
    checks = [check_image(im) for im in sources]
    per_image_ms = (time.perf_counter() - start) / len(sources) * 1000
    ok = True
    for name, fn in VARIANTS.items():
        subset = checks if name.startswith("as rendered") else [check_image(fn(im)) for im in sources[: args.variants]]
        required = name in REQUIRED
        print(summary_row(name, subset, must="0" if required else "(reported)"))
        ok &= not required or all(c.in_domain for c in subset)
    bigger = [check_image(generate_sample(args.seed, i, resolution=256, split_fractions=TEST_SPLIT).src)
              for i in range(min(args.variants, 100))]
    print(summary_row("rendered at 256 px", bigger, must="0"))
    ok &= all(c.in_domain for c in bigger)

    photos = list(shipped_images(GRADIO_PHOTOS, "gradio", "media_assets", "images"))
    photos += list(shipped_images(SKIMAGE_PHOTOS, "skimage", "data"))
    others = list(shipped_images(GRADIO_OTHER, "gradio", "media_assets", "images"))
    others += list(shipped_images(SKIMAGE_OTHER, "skimage", "data"))
    print("\n### Photographs shipped by installed packages\n")
    print("| image | size | flagged | score | " + " | ".join(STATS) + " | reason |")
    print("|" + "---|" * (5 + len(STATS)))
    photo_checks = []
    for name, im in photos:
        c = check_image(im)
        photo_checks.append(c)
        print(f"| {name} | {im.width}x{im.height} | {'yes' if not c.in_domain else '**no**'} | {c.score:.2f} | "
              + " | ".join(f"{c.stats[s]:.3f}" for s in STATS) + f" | {c.reason} |")
    faces = [check_image(im) for im in lfw_faces()]
    flagged = sum(not c.in_domain for c in photo_checks)
    print(f"\nPhotographs flagged: {flagged} of {len(photo_checks)} ({flagged / max(len(photo_checks), 1):.1%})"
          + (f"; LFW faces (25x25 px, grey): {sum(not c.in_domain for c in faces)} of {len(faces)}" if faces else ""))
    ok &= flagged >= 0.95 * len(photo_checks)

    print("\n### Other pictures (not photographs; for information)\n")
    print("| image | size | flagged | score | " + " | ".join(STATS) + " |")
    print("|" + "---|" * (4 + len(STATS)))
    for name, im in others:
        c = check_image(im)
        print(f"| {name} | {im.width}x{im.height} | {'yes' if not c.in_domain else 'no'} | {c.score:.2f} | "
              + " | ".join(f"{c.stats[s]:.3f}" for s in STATS) + " |")
    print(f"\n{per_image_ms:.2f} ms per 64 px scene checked; {args.scenes} scenes rendered in {render_s:.1f} s. "
          f"{'PASS' if ok else 'FAIL'}: 0 synth scenes flagged and >= 95% of photographs flagged.")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
