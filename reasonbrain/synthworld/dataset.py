"""Sample generation, splits and the Reason50K-style jsonl writer / loader.

Layout written by :func:`write_dataset`::

    out_dir/train.jsonl  val.jsonl  test.jsonl   one record per line (single samples, then chain steps)
    out_dir/chains.jsonl                         one multi-hop chain per line, its steps inline
    out_dir/meta.json                            generation settings, hold-outs, counts
    out_dir/images/<shard>/<id>_<tag>.png        src, tgt, alt_wrong_object, alt_wrong_state

Record fields: Reason50K's ``id, category, src_image, tgt_image, instruction, objects`` plus ``target``
(kind, name, colour, position, box = the target in the source image, edit_box = box of every pixel the
edit may change), ``transformation``, ``from_state``, ``to_state``, ``template_id``, ``background``,
``alternatives`` (wrong_object, wrong_state, no_change; no_change points at the source image),
``scene`` (background + all objects with boxes, source image), ``resolution``, ``seed``,
``input_description``, ``output_description``, ``split``, ``holdout`` (``"template"`` / ``"combo"``),
``chain_id`` and ``step`` (None outside chains). Image paths are relative to ``out_dir``.

Splits (fractions train/val/test default 0.85/0.05/0.10, drawn per sample from the seed): train and val
never use a held-out template (``instructions.HELDOUT_TEMPLATES``) nor place an object in a held-out
kind x background combination (``world.HELDOUT_COMBOS``); each test sample forces a held-out template
with probability 1/2 and, independently, a held-out combination for its target with probability 1/2
(where its kind has one). Sample ``i`` is a pure function of ``(seed, i, resolution)``, so the output is
byte-identical for a seed whatever the number of workers.
"""

from __future__ import annotations

import json
import logging
import multiprocessing as mp
import os
import random
import time
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path

from PIL import Image
from tqdm.auto import tqdm

from reasonbrain.synthworld.instructions import (
    HELDOUT_TEMPLATES,
    make_instruction,
    referring_expression,
    templates_for,
)
from reasonbrain.synthworld.render import Renderer
from reasonbrain.synthworld.world import (
    BACKGROUND_VARIANTS,
    CATEGORIES,
    CATEGORY_WEIGHTS,
    HELDOUT_COMBOS,
    KINDS,
    SLOT_POSITIONS,
    TIMES,
    TRANSFORMATIONS,
    TRANSFORMATIONS_BY_ID,
    Background,
    Scene,
    SceneObject,
    Transformation,
    object_kinds,
    transformations_from,
)

logger = logging.getLogger(__name__)

SPLITS: tuple[str, ...] = ("train", "val", "test")
ALTERNATIVE_KINDS: tuple[str, ...] = ("wrong_object", "wrong_state", "no_change")
DEFAULT_SPLIT_FRACTIONS = (0.85, 0.05, 0.10)
SIZES = (0.9, 0.95, 1.0)  # object size jitter


# -------------------------------------------------------------------------------------- records
@dataclass
class TargetInfo:
    kind: str
    name: str
    colour: str | None
    position: str | None
    box: list[int]
    edit_box: list[int]


@dataclass
class Alternative:
    kind: str  # "wrong_object" | "wrong_state" | "no_change"
    image: str


@dataclass
class SynthRecord:
    id: str
    category: str
    src_image: str
    tgt_image: str
    instruction: str
    objects: list[str]
    target: TargetInfo
    transformation: str
    from_state: str
    to_state: str
    template_id: str
    background: str
    alternatives: list[Alternative]
    scene: Scene
    resolution: int
    seed: int
    input_description: str
    output_description: str
    split: str
    holdout: list[str] = field(default_factory=list)
    chain_id: str | None = None
    step: int | None = None
    root: Path | None = field(default=None, repr=False, compare=False)  # where relative paths resolve; not serialised

    def to_json(self) -> dict:
        d = {k: v for k, v in asdict(self).items() if k not in ("root", "scene")}
        d["scene"] = self.scene.to_dict()
        return d

    @classmethod
    def from_json(cls, d: Mapping, root: str | os.PathLike | None = None) -> SynthRecord:
        d = dict(d)
        d["target"] = TargetInfo(**d["target"])
        d["alternatives"] = [Alternative(**a) for a in d["alternatives"]]
        d["scene"] = Scene.from_dict(d["scene"])
        return cls(**d, root=Path(root) if root is not None else None)

    def path(self, rel: str) -> Path:
        return (self.root / rel) if self.root is not None else Path(rel)

    def load_image(self, which: str) -> Image.Image:
        """``"src"``, ``"tgt"`` or an alternative kind, as an RGB image."""
        rel = {"src": self.src_image, "tgt": self.tgt_image, **{a.kind: a.image for a in self.alternatives}}.get(which)
        if rel is None:
            raise ValueError(f"unknown image {which!r}; use 'src', 'tgt' or one of {ALTERNATIVE_KINDS}")
        with Image.open(self.path(rel)) as im:
            return im.convert("RGB")


@dataclass
class SynthSample:
    """A record with its images in memory (paths in the record are empty until written).

    ``alternatives`` maps wrong_object / wrong_state / no_change to images; ``tgt_scene`` is the scene
    after the edit (the next chain step's source)."""

    record: SynthRecord
    src: Image.Image
    tgt: Image.Image
    alternatives: dict[str, Image.Image]
    tgt_scene: Scene | None = None


@dataclass
class SynthChain:
    id: str
    split: str
    steps: list[SynthRecord]

    def to_json(self) -> dict:
        return {"id": self.id, "split": self.split, "length": len(self.steps),
                "categories": [s.category for s in self.steps], "steps": [s.to_json() for s in self.steps]}


# ----------------------------------------------------------------------------------- generation
@dataclass(frozen=True)
class _Plan:
    split: str
    heldout_template: bool
    heldout_combo: bool


def _draw_plan(rng: random.Random, fractions: tuple[float, float, float]) -> _Plan:
    split = rng.choices(SPLITS, weights=fractions)[0]
    if split == "test":
        return _Plan(split, rng.random() < 0.5, rng.random() < 0.5)
    return _Plan(split, False, False)


def _build_scene(rng: random.Random, tr: Transformation, plan: _Plan) -> tuple[Scene, int]:
    """A scene whose target (index returned; -1 = the sky) is in ``tr.src``, with 1-3 distractors."""
    spec = KINDS[tr.kind]
    bgs = list(spec.backgrounds)
    if not spec.scene_level:
        held = [b for b in bgs if (tr.kind, b) in HELDOUT_COMBOS]
        bgs = held if plan.heldout_combo and held else [b for b in bgs if (tr.kind, b) not in HELDOUT_COMBOS]
    bg_kind, variant = rng.choice(bgs), rng.randrange(BACKGROUND_VARIANTS)
    bg = Background(bg_kind, variant, tr.src if spec.scene_level else rng.choices(TIMES, weights=(0.76, 0.08, 0.08, 0.08))[0])
    n_distractors = rng.choices((1, 2, 3), weights=(0.4, 0.4, 0.2))[0]
    n_objects = n_distractors + (0 if spec.scene_level else 1)
    n_slots = 3 if n_objects <= 3 else 4
    slots = sorted(rng.sample(range(n_slots), n_objects))
    target_slot = -1 if spec.scene_level else rng.choice(slots)
    # distractor kinds: allowed in this background and never creating a held-out combination
    allowed = [k for k in object_kinds() if bg.kind in KINDS[k].backgrounds and (k, bg.kind) not in HELDOUT_COMBOS]
    positions = SLOT_POSITIONS[n_slots]
    objects, target_index = [], -1
    for slot in slots:
        if slot == target_slot:
            target_index = len(objects)
            objects.append(SceneObject(tr.kind, rng.choice(spec.palette), tr.src, slot, positions[slot], rng.choice(SIZES)))
            continue
        same = not spec.scene_level and rng.random() < 0.4
        kind = tr.kind if same else rng.choice(allowed)
        palette = KINDS[kind].palette
        colour = rng.choice(palette)
        objects.append(SceneObject(kind, colour, rng.choice(KINDS[kind].initial), slot, positions[slot], rng.choice(SIZES)))
    if target_index >= 0 and len(KINDS[tr.kind].palette) > 1:  # same-kind distractors mostly differ in colour
        t = objects[target_index]
        for o in objects:
            if o is not t and o.kind == t.kind and o.colour == t.colour and rng.random() < 0.7:
                o.colour = rng.choice([c for c in KINDS[o.kind].palette if c != t.colour])
    return Scene(bg, objects, n_slots), target_index


def _union(a: list[int], b: list[int]) -> list[int]:
    return [min(a[0], b[0]), min(a[1], b[1]), max(a[2], b[2]), max(a[3], b[3])]


def _make_sample(rng: random.Random, scene: Scene, target_index: int, tr: Transformation, plan: _Plan,
                 renderer: Renderer, *, sample_id: str, seed: int) -> SynthSample:
    objs = scene.objects
    ref = referring_expression(objs, target_index, rng)
    template_id = rng.choice(templates_for(tr, heldout=plan.heldout_template))
    instruction = make_instruction(tr, template_id, ref, rng)

    src_scene, tgt_scene = scene.copy(), scene.with_state(target_index, tr.dst)
    renderer.annotate(src_scene)
    renderer.annotate(tgt_scene)
    # alternatives: a distractor transformed instead; the target in another state of its kind
    d = rng.choice([i for i in range(len(objs)) if i != target_index])
    d_trs = transformations_from(objs[d].kind, objs[d].state)
    d_state = rng.choice(d_trs).dst if d_trs else rng.choice([s for s in KINDS[objs[d].kind].states if s != objs[d].state])
    spec = KINDS[tr.kind]
    others = list(dict.fromkeys(t.dst for t in transformations_from(tr.kind, tr.src) if t.dst != tr.dst))
    others = others or [s for s in spec.states if s not in (tr.src, tr.dst)]
    alt_scenes = {"wrong_object": scene.with_state(d, d_state), "wrong_state": scene.with_state(target_index, rng.choice(others))}

    res = renderer.resolution
    if spec.scene_level:
        target = TargetInfo("sky", "sky", None, None, renderer.sky_box(scene.background), [0, 0, res, res])
    else:
        t_src, t_tgt = src_scene.objects[target_index], tgt_scene.objects[target_index]
        target = TargetInfo(t_src.kind, t_src.name, t_src.shown_colour, t_src.position, list(t_src.box),
                            _union(t_src.box, t_tgt.box))
    holdout = (["template"] if template_id in HELDOUT_TEMPLATES else []) + (
        ["combo"] if any((o.kind, scene.background.kind) in HELDOUT_COMBOS for o in objs) else [])
    record = SynthRecord(
        id=sample_id, category=tr.category, src_image="", tgt_image="", instruction=instruction,
        objects=[target.name], target=target, transformation=tr.id, from_state=tr.src, to_state=tr.dst,
        template_id=template_id, background=scene.background.kind,
        alternatives=[Alternative(k, "") for k in ALTERNATIVE_KINDS], scene=src_scene, resolution=res, seed=seed,
        input_description=src_scene.description(), output_description=tgt_scene.description(), split=plan.split,
        holdout=holdout,
    )
    src = renderer.render(src_scene)
    base = (src_scene, src)  # object-level changes re-resample only the changed region
    alts = {k: renderer.render(s, base) for k, s in alt_scenes.items()}
    alts["no_change"] = src
    return SynthSample(record, src, renderer.render(tgt_scene, base), alts, tgt_scene)


def _transformation(rng: random.Random, category: str | None) -> Transformation:
    if category is None:
        category = rng.choices(CATEGORIES, weights=[CATEGORY_WEIGHTS[c] for c in CATEGORIES])[0]
    return rng.choice([t for t in TRANSFORMATIONS if t.category == category])


def _chain_transformations(rng: random.Random) -> list[Transformation]:
    """A random walk of 2 (70%) or 3 (30%) steps through one kind's states, never revisiting a state."""
    def nexts(t: Transformation, seen: set[str]) -> list[Transformation]:
        return [n for n in transformations_from(t.kind, t.dst) if n.dst not in seen]

    def reach(t: Transformation, seen: set[str], steps: int) -> bool:  # can a walk go `steps` further?
        return steps == 0 or any(reach(n, seen | {n.dst}, steps - 1) for n in nexts(t, seen))

    length = rng.choices((2, 3), weights=(0.7, 0.3))[0]
    chain = [rng.choice([t for t in TRANSFORMATIONS if reach(t, {t.src, t.dst}, length - 1)])]
    seen = {chain[0].src, chain[0].dst}
    while len(chain) < length:
        chain.append(rng.choice([n for n in nexts(chain[-1], seen) if reach(n, seen | {n.dst}, length - len(chain) - 1)]))
        seen.add(chain[-1].dst)
    return chain


def _check_category(category: str | None) -> None:
    if category is not None and category not in CATEGORIES:
        raise ValueError(f"category must be one of {CATEGORIES} or None, got {category!r}")


def _start(seed: int, index: int, split_fractions: tuple[float, float, float], category: str | None):
    rng = random.Random(f"{seed}:single:{index}")
    plan = _draw_plan(rng, split_fractions)
    return rng, plan, _transformation(rng, category)


def plan_sample(seed: int, index: int, split_fractions: tuple[float, float, float] = DEFAULT_SPLIT_FRACTIONS
                ) -> tuple[str, Transformation]:
    """(split, transformation) of sample ``index`` without rendering it (cheap; for statistics)."""
    _, plan, tr = _start(seed, index, split_fractions, None)
    return plan.split, tr


def generate_sample(seed: int, index: int, *, resolution: int = 64, renderer: Renderer | None = None,
                    split_fractions: tuple[float, float, float] = DEFAULT_SPLIT_FRACTIONS,
                    category: str | None = None) -> SynthSample:
    """Sample ``index`` of the dataset with ``seed`` (split drawn from ``split_fractions``), images in memory."""
    _check_category(category)
    renderer = renderer or Renderer(resolution)
    rng, plan, tr = _start(seed, index, split_fractions, category)
    scene, target_index = _build_scene(rng, tr, plan)
    return _make_sample(rng, scene, target_index, tr, plan, renderer, sample_id=f"synth-{index:06d}", seed=seed)


def generate_chain(seed: int, index: int, *, resolution: int = 64, renderer: Renderer | None = None,
                   split_fractions: tuple[float, float, float] = DEFAULT_SPLIT_FRACTIONS) -> list[SynthSample]:
    """Multi-hop chain ``index``: 2-3 samples, each step's source scene is the previous step's target."""
    renderer = renderer or Renderer(resolution)
    rng = random.Random(f"{seed}:chain:{index}")
    plan = _draw_plan(rng, split_fractions)
    trs = _chain_transformations(rng)
    scene, target_index = _build_scene(rng, trs[0], plan)
    chain_id = f"chain-{index:05d}"
    steps: list[SynthSample] = []
    for k, tr in enumerate(trs):
        s = _make_sample(rng, scene, target_index, tr, plan, renderer, sample_id=f"{chain_id}-{k}", seed=seed)
        s.record.chain_id, s.record.step = chain_id, k
        if steps:  # the previous target image *is* this source
            s.src = s.alternatives["no_change"] = steps[-1].tgt
        steps.append(s)
        scene = s.tgt_scene
    return steps


def sample_matching(transformation: str, key: str, *, colour: str | None = None, position: str | None = None,
                    exclude: Iterable[str] = (), renderer: Renderer | None = None,
                    resolution: int = 64, max_tries: int = 2000) -> SynthSample:
    """A test-like sample of ``transformation`` whose scene meets the constraints: the target shows ``colour`` and
    stands at ``position``; no object of the kinds in ``exclude`` is in the scene; when neither colour nor position
    is given, the target is the only object with its name. The record holds the generator's own instruction
    (a benchmark may swap in a hand-written one). Deterministic in ``key``."""
    tr = TRANSFORMATIONS_BY_ID.get(transformation)
    if tr is None:
        raise ValueError(f"unknown transformation {transformation!r}")
    unknown = set(exclude) - set(KINDS)
    if unknown:
        raise ValueError(f"unknown kinds in exclude: {sorted(unknown)}; use kind ids such as {object_kinds()[:3]}")
    renderer = renderer or Renderer(resolution)
    for attempt in range(max_tries):
        rng = random.Random(f"{key}:{attempt}")
        plan = _Plan("test", rng.random() < 0.5, False)
        scene, ti = _build_scene(rng, tr, plan)
        objs = scene.objects
        if any(o.kind in exclude for o in objs):
            continue
        if ti >= 0:
            t = objs[ti]
            if (colour and t.shown_colour != colour) or (position and t.position != position):
                continue
            same = [o for o in objs if o.name == t.name]
            if colour and sum(o.shown_colour == colour for o in same) > 1:
                continue
            if not (colour or position) and len(same) > 1:
                continue
        return _make_sample(rng, scene, ti, tr, plan, renderer, sample_id=f"{key}", seed=attempt)
    raise ValueError(f"no scene for {transformation} meets colour={colour} position={position} exclude={sorted(exclude)}"
                     f" in {max_tries} tries")


def sample_scene(seed: int = 0, category: str | None = None, resolution: int = 64) -> SynthSample:
    """One in-distribution (train-like) sample with its PIL images, e.g. as an example for the app."""
    _check_category(category)
    renderer = Renderer(resolution)
    rng = random.Random(f"{seed}:example")
    plan = _Plan("train", False, False)
    tr = _transformation(rng, category)
    scene, target_index = _build_scene(rng, tr, plan)
    return _make_sample(rng, scene, target_index, tr, plan, renderer, sample_id=f"example-{seed}", seed=seed)


def sample_chain(seed: int = 0, resolution: int = 64) -> list[SynthSample]:
    """A multi-hop chain (train-like) with its PIL images, e.g. for the app's multi-hop demo."""
    return generate_chain(seed, 0, resolution=resolution, split_fractions=(1.0, 0.0, 0.0))


# --------------------------------------------------------------------------------------- writing
def _save(img: Image.Image, out_dir: Path, rel: str) -> str:
    path = out_dir / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path, format="PNG", compress_level=3)
    return rel


def _write_sample(s: SynthSample, out_dir: Path, stem: str, src_rel: str | None = None) -> dict:
    r = s.record
    r.src_image = src_rel or _save(s.src, out_dir, f"{stem}_src.png")
    r.tgt_image = _save(s.tgt, out_dir, f"{stem}_tgt.png")
    for a in r.alternatives:
        a.image = r.src_image if a.kind == "no_change" else _save(s.alternatives[a.kind], out_dir, f"{stem}_alt_{a.kind}.png")
    return r.to_json()


@dataclass(frozen=True)
class _Job:
    out_dir: str
    seed: int
    resolution: int
    split_fractions: tuple[float, float, float]


class _Worker:
    def __init__(self, job: _Job) -> None:
        self.job, self.out = job, Path(job.out_dir)
        self.renderer = Renderer(job.resolution)

    def __call__(self, task: tuple[str, int]) -> dict:
        kind, i = task
        j = self.job
        if kind == "single":
            s = generate_sample(j.seed, i, resolution=j.resolution, renderer=self.renderer, split_fractions=j.split_fractions)
            return _write_sample(s, self.out, f"images/{i // 1000:03d}/{s.record.id}")
        steps = generate_chain(j.seed, i, resolution=j.resolution, renderer=self.renderer, split_fractions=j.split_fractions)
        records, src = [], None
        for s in steps:
            records.append(_write_sample(s, self.out, f"images/chains/{i // 1000:03d}/{s.record.id}", src))
            src = records[-1]["tgt_image"]
        return {"id": steps[0].record.chain_id, "split": steps[0].record.split, "length": len(records),
                "categories": [r["category"] for r in records], "steps": records}


_WORKER: _Worker | None = None  # one per worker process, set by the pool initializer


def _init_worker(job: _Job) -> None:
    global _WORKER
    _WORKER = _Worker(job)


def _run_task(task: tuple[str, int]) -> dict:
    assert _WORKER is not None, "worker not initialised"
    return _WORKER(task)


def write_dataset(out_dir: str | os.PathLike, n: int = 20000, seed: int = 0, resolution: int = 64, *,
                  n_chains: int | None = None, workers: int | None = None,
                  split_fractions: tuple[float, float, float] = DEFAULT_SPLIT_FRACTIONS,
                  progress: bool = True) -> dict:
    """Generate ``n`` single samples plus ``n_chains`` multi-hop chains (default ``n // 20``) into ``out_dir``.

    Returns a summary (counts per split, number of images, seconds). ``workers`` defaults to the CPU
    count (1 for small ``n``); the output does not depend on it.
    """
    if not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be a positive int, got {n!r}")
    n_chains = n // 20 if n_chains is None else n_chains
    if n_chains < 0:
        raise ValueError(f"n_chains must be >= 0, got {n_chains}")
    if len(split_fractions) != 3 or min(split_fractions) < 0 or sum(split_fractions) <= 0:
        raise ValueError(f"split_fractions must be 3 non-negative numbers (train, val, test), got {split_fractions}")
    Renderer(resolution)  # validates the resolution before any work
    workers = (os.cpu_count() or 1) if workers is None and n >= 500 else (workers or 1)
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    job = _Job(str(out), int(seed), resolution, tuple(float(f) for f in split_fractions))  # type: ignore[arg-type]
    tasks = [("single", i) for i in range(n)] + [("chain", c) for c in range(n_chains)]
    t0 = time.perf_counter()
    by_split: dict[str, list[dict]] = {s: [] for s in SPLITS}
    chains: list[dict] = []
    bar = tqdm(total=len(tasks), desc="synthworld", unit="task", disable=not progress)
    if workers == 1:
        worker = _Worker(job)
        results: Iterable[dict] = map(worker, tasks)
        pool = None
    else:
        pool = mp.get_context("spawn").Pool(workers, initializer=_init_worker, initargs=(job,))
        results = pool.imap(_run_task, tasks, chunksize=max(1, min(64, len(tasks) // (workers * 8) or 1)))
    try:
        for (kind, _), res in zip(tasks, results):
            if kind == "single":
                by_split[res["split"]].append(res)
            else:
                chains.append(res)
                by_split[res["split"]].extend(res["steps"])
            bar.update(1)
    finally:
        bar.close()
        if pool is not None:
            pool.close()
            pool.join()
    for split, records in by_split.items():
        _write_jsonl(out / f"{split}.jsonl", records)
    _write_jsonl(out / "chains.jsonl", chains)
    seconds = time.perf_counter() - t0
    counts = {s: len(r) for s, r in by_split.items()}
    n_images = len({p for recs in by_split.values() for r in recs
                    for p in (r["src_image"], r["tgt_image"], *(a["image"] for a in r["alternatives"]))})
    meta = {"n": n, "n_chains": n_chains, "seed": seed, "resolution": resolution, "split_fractions": list(split_fractions),
            "category_weights": dict(CATEGORY_WEIGHTS), "heldout_templates": sorted(HELDOUT_TEMPLATES),
            "heldout_combos": sorted(map(list, HELDOUT_COMBOS)), "counts": counts}
    (out / "meta.json").write_text(json.dumps(meta, indent=2) + "\n")
    summary = {"out_dir": str(out), "counts": counts, "chains": len(chains), "images": n_images,
               "seconds": round(seconds, 2), "samples_per_second": round((n + len(chains)) / max(seconds, 1e-9), 1)}
    logger.info("synthworld: wrote %s", summary)
    return summary


def _write_jsonl(path: Path, rows: list[dict]) -> None:
    with open(path, "w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")


def load_split(root: str | os.PathLike, split: str) -> list[SynthRecord]:
    """Records of ``root/<split>.jsonl`` as dataclasses (image paths resolve against ``root``)."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    path = Path(root) / f"{split}.jsonl"
    if not path.is_file():
        raise ValueError(f"{path} not found; generate it with `python -m reasonbrain synthworld --out {root}`")
    with open(path, encoding="utf-8") as f:
        return [SynthRecord.from_json(json.loads(line), root) for line in f if line.strip()]


def load_chains(root: str | os.PathLike) -> list[SynthChain]:
    path = Path(root) / "chains.jsonl"
    if not path.is_file():
        raise ValueError(f"{path} not found; generate it with `python -m reasonbrain synthworld --out {root}`")
    with open(path, encoding="utf-8") as f:
        rows = [json.loads(line) for line in f if line.strip()]
    return [SynthChain(r["id"], r["split"], [SynthRecord.from_json(s, root) for s in r["steps"]]) for r in rows]
