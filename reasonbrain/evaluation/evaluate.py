"""``python -m reasonbrain evaluate``: the paper's automatic metrics over a Reason50K-format split.

Edits come from a method run here (``--method``, one of ``reasonbrain.pipelines.modes.COMPARISON_METHODS``, default
the checkpoint's declared mode, on ``--checkpoint`` or ``--preset``; the edits are saved under ``OUT/edits`` and
``OUT/method.json`` names the method and model, for the Rate tab's import) or from a folder of outputs
(``--outputs``, one image per record named ``<record id>.png`` / ``.jpg`` / ``.webp``; its ``method.json``, if any,
names the method in the report).
Records are sharded over processes with accelerate (``accelerate launch --num_processes N -m reasonbrain evaluate
...`` on N GPUs; on CPU set ``ACCELERATE_USE_CPU=1`` under ``torchrun``); the main process gathers the per-record values and writes ``OUT/metrics.md``, ``OUT/metrics.json`` and ``OUT/metrics.png``
(bar charts per category + overall, a panel per metric), and with ``--chains`` the multi-hop table by number of
steps (paper Table A5) to ``OUT/chains.md`` / ``OUT/chains.json`` / ``OUT/chains.png``.

Multi-hop: step k of a chain edits the model's own result of step k - 1 (with ``--outputs``: the files named
by each step's id); every step is scored against that step's ground truth (its target, its source = the
ground-truth previous state, its captions).
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from PIL import Image

from reasonbrain.configuration import REASONBRAIN_MODE, ReasonBrainConfig
from reasonbrain.evaluation import metrics as M
from reasonbrain.evaluation.embedders import (
    DEFAULT_CLIP_MODEL,
    DEFAULT_DINO_MODEL,
    ClipEmbedder,
    DinoEmbedder,
)
from reasonbrain.evaluation.judge import DEFAULT_JUDGE_MODEL, PROMPTS, TransformersJudge
from reasonbrain.evaluation.method_record import (
    EDITS_FOLDER,
    METHOD_FILE,
    MethodRecord,
    find_method_record,
    model_label,
)
from reasonbrain.pipelines.modes import (
    COMPARISON_METHODS,
    PLAIN_EDITOR,
    checkpoint_config,
    load_method,
    resolve_method,
)

logger = logging.getLogger(__name__)

# name -> (title, higher is better, what it needs)
METRICS: dict[str, tuple[str, bool, tuple[str, ...]]] = {
    "clip": ("CLIP score", True, ("clip", "output_text")),
    "clip_i": ("CLIP-I", True, ("clip",)),
    "clip_dir": ("CLIP-dir", True, ("clip", "input_text", "output_text")),
    "clip_out": ("CLIP-out", True, ("clip", "output_text")),
    "l1": ("L1", False, ()),
    "dino": ("DINO", True, ("dino",)),
    "identity": ("Identity preservation", True, ()),
    "mllm": ("MLLM score", True, ("judge",)),
    "accuracy": ("Reasoning accuracy", True, ("alternatives",)),
}
DEFAULT_METRICS = ("clip", "clip_i", "clip_dir", "clip_out", "l1", "dino", "identity", "accuracy")  # no judge
OUTPUT_TEXT_KEYS = ("output_description", "output_caption", "output")
INPUT_TEXT_KEYS = ("input_description", "input_caption", "input")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp")


@dataclass
class EvalRecord:
    """What the metrics need of one record (paths absolute)."""

    id: str
    category: str
    source: str
    target: str
    instruction: str
    input_text: str | None = None
    output_text: str | None = None
    alternatives: list[str] = field(default_factory=list)
    chain_id: str | None = None
    step: int | None = None


def _first(d: dict, keys: Sequence[str]) -> str | None:
    for k in keys:
        if isinstance(d.get(k), str) and d[k].strip():
            return d[k]
    return None


def load_records(data_dir: str | os.PathLike, split: str = "test", *, limit: int | None = None) -> list[EvalRecord]:
    """Single-step records of ``data_dir/<split>.jsonl`` (Reason50K format; chain steps are left to ``load_chain_records``)."""
    from reasonbrain.training.data import read_split

    path = os.path.join(str(data_dir), f"{split}.jsonl")
    if not os.path.isfile(path):
        raise ValueError(f"{path} not found: --data must be a folder holding <split>.jsonl (Reason50K format)")
    root = os.path.dirname(os.path.abspath(path))
    out = []
    for r in read_split(path):
        if r.extra.get("chain_id") is not None:
            continue
        alts = [os.path.join(root, a["image"]) for a in r.extra.get("alternatives") or [] if a.get("image")]
        out.append(EvalRecord(r.id, r.category, r.src_image, r.tgt_image, r.instruction,
                              _first(r.extra, INPUT_TEXT_KEYS), _first(r.extra, OUTPUT_TEXT_KEYS), alts))
    return out[:limit] if limit else out


def load_chain_records(data_dir: str | os.PathLike, split: str | None = "test", *,
                       limit: int | None = None) -> list[list[EvalRecord]]:
    """Multi-hop chains of ``data_dir/chains.jsonl`` (synth world), each a list of step records.
    ``split=None`` keeps every chain."""
    from reasonbrain.synthworld.dataset import load_chains

    chains = [c for c in load_chains(data_dir) if split is None or c.split == split]
    out = []
    for c in chains[:limit] if limit else chains:
        out.append([EvalRecord(s.id, s.category, str(s.path(s.src_image)), str(s.path(s.tgt_image)), s.instruction,
                               s.input_description, s.output_description, [str(s.path(a.image)) for a in s.alternatives],
                               c.id, s.step) for s in c.steps])
    return out


# ------------------------------------------------------------------------------------------ selection
def _supports(name: str, records: Sequence[EvalRecord]) -> str | None:
    """None when every record has what ``name`` needs, else what is missing."""
    needs = METRICS[name][2]
    if "output_text" in needs and any(r.output_text is None for r in records):
        return f"an output caption (one of the fields {OUTPUT_TEXT_KEYS})"
    if "input_text" in needs and any(r.input_text is None for r in records):
        return f"an input caption (one of the fields {INPUT_TEXT_KEYS})"
    if "alternatives" in needs and any(not r.alternatives for r in records):
        return "alternative outcomes (the synth world's 'alternatives' field)"
    return None


def resolve_metrics(spec: str | Sequence[str] | None, records: Sequence[EvalRecord]) -> list[str]:
    """``None`` / ``"default"``: every default metric the records support (no MLLM judge); else the named ones,
    each of which must be supported."""
    if spec is None or spec == "default":
        chosen = []
        for name in DEFAULT_METRICS:
            missing = _supports(name, records)
            if missing:
                logger.info("metric %s skipped: the records lack %s", name, missing)
            else:
                chosen.append(name)
        return chosen
    names = [n.strip() for n in (spec.split(",") if isinstance(spec, str) else spec) if n.strip()]
    unknown = [n for n in names if n not in METRICS]
    if unknown or not names:
        raise ValueError(f"unknown metric(s) {unknown or names}; choose from {', '.join(METRICS)}")
    for name in names:
        missing = _supports(name, records)
        if missing:
            raise ValueError(f"metric {name} needs {missing} on every record; drop it from --metrics")
    return list(dict.fromkeys(names))


# -------------------------------------------------------------------------------------------- metrics
class MetricSuite:
    """The selected metrics with their models; ``compute(records, edits)`` -> one dict per record."""

    def __init__(self, metrics: Sequence[str], *, clip=None, dino=None, judge=None,
                 identity_threshold: float = M.IDENTITY_THRESHOLD, identity_margin: float = M.IDENTITY_MARGIN) -> None:
        self.metrics = list(metrics)
        needs = {n for m in self.metrics for n in METRICS[m][2]}
        for what, obj in (("clip", clip), ("dino", dino), ("judge", judge)):
            if what in needs and obj is None:
                raise ValueError(f"metrics {[m for m in self.metrics if what in METRICS[m][2]]} need a {what} model")
        self.clip, self.dino, self.judge = clip, dino, judge
        self.identity_threshold, self.identity_margin = identity_threshold, identity_margin

    @classmethod
    def load(cls, metrics: Sequence[str], *, clip_model: str = DEFAULT_CLIP_MODEL, dino_model: str = DEFAULT_DINO_MODEL,
             judge_model: str = DEFAULT_JUDGE_MODEL, judge_prompt: str = "paper", device: Any = None) -> MetricSuite:
        """Load the models the selected metrics need (raises ``MetricModelUnavailable`` naming the id)."""
        needs = {n for m in metrics for n in METRICS[m][2]}
        uses = {w: [m for m in metrics if w in METRICS[m][2]] for w in ("clip", "dino", "judge")}
        clip = ClipEmbedder.from_pretrained(clip_model, device=device, metrics=uses["clip"]) if "clip" in needs else None
        dino = DinoEmbedder.from_pretrained(dino_model, device=device, metrics=uses["dino"]) if "dino" in needs else None
        judge = None
        if "judge" in needs:
            if judge_prompt not in PROMPTS:
                raise ValueError(f"--judge-prompt must be one of {list(PROMPTS)}, got {judge_prompt!r}")
            judge = TransformersJudge(judge_model, prompt=PROMPTS[judge_prompt], device=device).load()
        return cls(metrics, clip=clip, dino=dino, judge=judge)

    def compute(self, records: Sequence[EvalRecord], edits: Sequence[Image.Image]) -> list[dict[str, Any]]:
        if len(records) != len(edits):
            raise ValueError(f"got {len(edits)} edits for {len(records)} records")
        if not records:
            return []
        edits = [e.convert("RGB") for e in edits]
        src = [M.load_rgb(r.source) for r in records]
        tgt = [M.load_rgb(r.target) for r in records]
        cols: dict[str, Sequence[Any]] = {}
        for name in self.metrics:
            if name in ("clip", "clip_out"):
                cols[name] = cols.get("clip") if "clip" in cols else M.clip_score(self.clip, edits, [r.output_text for r in records])
            elif name == "clip_i":
                cols[name] = M.clip_image_similarity(self.clip, edits, tgt)
            elif name == "clip_dir":
                cols[name] = M.clip_direction_similarity(self.clip, src, edits, [r.input_text for r in records],
                                                         [r.output_text for r in records])
            elif name == "dino":
                cols[name] = M.dino_similarity(self.dino, edits, tgt)
            elif name == "l1":
                cols[name] = [M.l1_distance(e, t) for e, t in zip(edits, tgt)]
            elif name == "identity":
                cols[name] = [M.identity_preservation(s, e, t, threshold=self.identity_threshold,
                                                      margin=self.identity_margin) for s, e, t in zip(src, edits, tgt)]
            elif name == "accuracy":
                cols[name] = [float(M.reasoning_correct(e, r.target, r.alternatives)) for e, r in zip(edits, records)]
            elif name == "mllm":
                judgements = [self.judge(s, e, r.instruction, input_description=r.input_text,
                                         output_description=r.output_text) for s, e, r in zip(src, edits, records)]
                cols[name] = [j.normalized for j in judgements]
                cols["mllm_answer"] = [j.text for j in judgements]
                cols["mllm_parsed"] = [j.score is not None for j in judgements]
        rows = []
        for i, r in enumerate(records):
            row: dict[str, Any] = {"id": r.id, "category": r.category}
            if r.chain_id is not None:
                row.update(chain_id=r.chain_id, step=r.step)
            for k, v in cols.items():
                x = v[i]
                row[k] = float(x) if isinstance(x, (float, np.floating, int, np.integer)) and not isinstance(x, bool) else x
            rows.append(row)
        return rows


# -------------------------------------------------------------------------------------------- editing
def find_output(outputs_dir: str | os.PathLike, record_id: str) -> str:
    for suffix in IMAGE_SUFFIXES:
        path = os.path.join(str(outputs_dir), record_id + suffix)
        if os.path.isfile(path):
            return path
    raise ValueError(f"no output for record {record_id!r} in {outputs_dir} (expected {record_id}.png, "
                     f"or {'/'.join(IMAGE_SUFFIXES[1:])}); name each output by its record id")


def _load(path: str) -> Image.Image:
    with Image.open(path) as im:
        return im.convert("RGB")


class PipelineEditor:
    """Edits with a comparison method's pipeline; seeds depend on the record's global index only (shard-independent)."""

    def __init__(self, pipe, *, seed: int = 0, num_inference_steps: int | None = None, save_dir: str | None = None) -> None:
        self.pipe, self.seed, self.steps, self.save_dir = pipe, seed, num_inference_steps, save_dir
        if save_dir:
            os.makedirs(save_dir, exist_ok=True)

    def _save(self, rec: EvalRecord, image: Image.Image) -> None:
        if self.save_dir:
            image.save(os.path.join(self.save_dir, rec.id + ".png"))

    def single(self, index: int, rec: EvalRecord) -> Image.Image:
        from reasonbrain.referring import ObjectNotInImageError

        try:
            image = self.pipe(rec.source, rec.instruction, seed=self.seed + index, num_inference_steps=self.steps).images[0]
        except ObjectNotInImageError as err:  # a refusal is scored as no edit
            logger.info("refused %s: %s", rec.id, err)
            image = rec.source if isinstance(rec.source, Image.Image) else Image.open(rec.source).convert("RGB")
        self._save(rec, image)
        return image

    def chain(self, index: int, steps: Sequence[EvalRecord]) -> list[Image.Image]:
        from reasonbrain.referring import ObjectNotInImageError

        images, current = [], steps[0].source
        for k, step in enumerate(steps):  # as pipe.chain, step by step, so that a refusal keeps the image
            try:
                current = self.pipe(current, step.instruction, seed=self.seed + 100 * index + k,
                                    num_inference_steps=self.steps).images[0]
            except ObjectNotInImageError as err:
                logger.info("refused %s: %s", step.id, err)
                current = current if isinstance(current, Image.Image) else Image.open(current).convert("RGB")
            images.append(current)
        for rec, im in zip(steps, images):
            self._save(rec, im)
        return images


class FolderEditor:
    """Edits read from a folder of outputs named by record id."""

    def __init__(self, outputs_dir: str | os.PathLike) -> None:
        if not os.path.isdir(outputs_dir):
            raise ValueError(f"--outputs {outputs_dir} is not a folder")
        self.outputs_dir = str(outputs_dir)

    def single(self, index: int, rec: EvalRecord) -> Image.Image:
        return _load(find_output(self.outputs_dir, rec.id))

    def chain(self, index: int, steps: Sequence[EvalRecord]) -> list[Image.Image]:
        return [_load(find_output(self.outputs_dir, s.id)) for s in steps]


# ------------------------------------------------------------------------------------------- sharding
def run_sharded(units: Sequence[Any], work: Callable[[int, Any], list[dict]], *, accelerator=None,
                desc: str = "evaluate", progress: bool = True, weight: Callable[[Any], int] = lambda u: 1) -> list[dict]:
    """``work(global_index, unit)`` over ``units`` split between accelerate processes; returns every process's
    rows (in unit order) on every process. Progress (in ``weight`` units, e.g. records) on the main process."""
    from accelerate import Accelerator
    from accelerate.utils import gather_object
    from tqdm.auto import tqdm

    accelerator = accelerator or Accelerator()
    rows: list[dict] = []
    with accelerator.split_between_processes(list(enumerate(units))) as shard:
        bar = tqdm(total=sum(weight(u) for _, u in shard), desc=desc, unit="edit",
                   disable=not (progress and accelerator.is_local_main_process))
        for index, unit in shard:
            rows.extend(work(index, unit))
            bar.update(weight(unit))
        bar.close()
    if accelerator.num_processes > 1:
        rows = gather_object(rows)
    return rows


def evaluate_records(records: Sequence[EvalRecord], editor, suite: MetricSuite, *, batch_size: int = 8,
                     accelerator=None, progress: bool = True) -> list[dict]:
    """Per-record metric rows for single-step records (edits made / read in chunks of ``batch_size``)."""
    chunks = [list(range(i, min(i + batch_size, len(records)))) for i in range(0, len(records), batch_size)]

    def work(_: int, idx: list[int]) -> list[dict]:
        t0 = time.perf_counter()
        edits = [editor.single(i, records[i]) for i in idx]
        seconds = (time.perf_counter() - t0) / len(idx)
        rows = suite.compute([records[i] for i in idx], edits)
        if isinstance(editor, PipelineEditor):
            for row in rows:
                row["seconds_per_edit"] = seconds
        return rows

    return run_sharded(chunks, work, accelerator=accelerator, desc="evaluate", progress=progress, weight=len)


def evaluate_chains(chains: Sequence[Sequence[EvalRecord]], editor, suite: MetricSuite, *, accelerator=None,
                    progress: bool = True) -> list[dict]:
    """Per-step metric rows of multi-hop chains (each chain is one unit of work)."""
    return run_sharded(chains, lambda i, steps: suite.compute(steps, editor.chain(i, steps)), accelerator=accelerator,
                       desc="evaluate chains", progress=progress, weight=len)


# ------------------------------------------------------------------------------------------- tables
def depth_label(steps: int) -> str:
    return "1-step" if steps == 1 else f"{steps}-steps"


def aggregate(rows: Sequence[dict], metrics: Sequence[str], key: Callable[[dict], str]) -> dict[str, dict[str, float]]:
    """``{group: {metric: mean, "<metric>_n": count, "n": rows}}`` per group and ``"overall"``; NaN values
    (e.g. identity on a whole-image edit) are left out of a mean and its count."""
    groups: dict[str, list[dict]] = {}
    for row in rows:
        groups.setdefault(key(row), []).append(row)
    out: dict[str, dict[str, float]] = {}
    for name, members in [*sorted(groups.items()), ("overall", list(rows))]:
        entry: dict[str, float] = {"n": len(members)}
        for m in metrics:
            vals = np.array([r[m] for r in members if r.get(m) is not None], dtype=float)
            vals = vals[~np.isnan(vals)]
            entry[m] = float(vals.mean()) if vals.size else math.nan
            entry[f"{m}_n"] = int(vals.size)
        out[name] = entry
    return out


def _fmt(metric: str, value: float) -> str:
    if math.isnan(value):
        return "–"
    return f"{value:.1%}" if metric == "accuracy" else f"{value:.3f}"


def markdown_table(table: dict[str, dict[str, float]], metrics: Sequence[str], *, first: str = "category") -> str:
    head = [first, "n"] + [f"{METRICS[m][0]} {'↑' if METRICS[m][1] else '↓'}" for m in metrics]
    lines = ["| " + " | ".join(head) + " |", "|---|" + "---:|" * (len(head) - 1)]
    for group, entry in table.items():
        name = f"**{group}**" if group == "overall" else group
        lines.append("| " + " | ".join([name, str(entry["n"])] + [_fmt(m, entry[m]) for m in metrics]) + " |")
    return "\n".join(lines)


def write_chart(table: dict[str, dict[str, float]], metrics: Sequence[str], path: str, *, title: str) -> str:
    """One PNG: a bar panel per metric over the table's groups (``overall`` highlighted)."""
    from reasonbrain.evaluation.plots import bar_grid

    os.makedirs(os.path.dirname(path), exist_ok=True)
    panels = [(f"{METRICS[m][0]} {'↑' if METRICS[m][1] else '↓'}", [e[m] for e in table.values()], m == "accuracy")
              for m in metrics]
    return bar_grid(path, list(table), panels, title=title)


def write_results(out_dir: str, name: str, rows: list[dict], metrics: Sequence[str], table: dict, *,
                  settings: dict, first: str, title: str) -> dict:
    """``OUT/<name>.md`` (table), ``OUT/<name>.json`` (settings, table, per-record values), ``OUT/<name>.png``."""
    os.makedirs(out_dir, exist_ok=True)
    md = markdown_table(table, metrics, first=first)
    with open(os.path.join(out_dir, f"{name}.md"), "w", encoding="utf-8") as f:
        f.write(f"# {title}\n\n{md}\n\n![{title}]({name}.png)\n")
    chart = write_chart(table, metrics, os.path.join(out_dir, f"{name}.png"), title=title)
    result = {"settings": settings, "metrics": list(metrics), "table": table, "records": rows,
              "chart": os.path.relpath(chart, out_dir)}
    with open(os.path.join(out_dir, f"{name}.json"), "w", encoding="utf-8") as f:
        json.dump(_json_safe(result), f, indent=2, allow_nan=False)
    return result


def _json_safe(obj: Any) -> Any:
    """NaN / inf -> null so the file is strict JSON."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_json_safe(v) for v in obj]
    return obj


# ------------------------------------------------------------------------------------------------ CLI
def add_arguments(p) -> None:
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--checkpoint", help="checkpoint folder (or Hub id) to run --method with")
    src.add_argument("--preset", help="a preset's pretrained backbones to run --method with (plain_editor or "
                                      "reason_then_edit: a preset holds no trained ReasonBrain weights)")
    src.add_argument("--outputs", help="folder of edited images named <record id>.png to score instead")
    p.add_argument("--method", default=None,
                   help=f"one of {', '.join(COMPARISON_METHODS)} (default: the checkpoint's declared mode)")
    p.add_argument("--data", required=True, help="Reason50K-format folder holding <split>.jsonl (and chains.jsonl)")
    p.add_argument("--split", default="test")
    p.add_argument("--limit", type=int, default=None, help="first N records (and first N chains)")
    p.add_argument("--metrics", default="default",
                   help=f"comma-separated subset of {','.join(METRICS)}; default: {','.join(DEFAULT_METRICS)} "
                        "where the data has what they need (mllm runs only when named)")
    p.add_argument("--clip-model", default=DEFAULT_CLIP_MODEL, help="Hub id or local folder of a CLIP model + processor")
    p.add_argument("--dino-model", default=DEFAULT_DINO_MODEL, help="Hub id or local folder of a DINO ViT + processor")
    p.add_argument("--judge-model", default=DEFAULT_JUDGE_MODEL, help="Hub id or local folder of an image-text chat model")
    p.add_argument("--judge-prompt", default="paper", choices=sorted(PROMPTS), help="paper: 0/1 as in the paper; rating: 0-10")
    p.add_argument("--chains", action="store_true", help="also evaluate multi-hop chains (chains.jsonl) by step count")
    p.add_argument("--chain-split", default=None, help="split of the chains to use (default: --split; 'all' for every chain)")
    p.add_argument("--out", required=True, help="folder for metrics.md/.json/.png, chains.md/.json/.png, edits/")
    p.add_argument("--steps", type=int, default=None, help="denoising steps (default: the config's)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--no-progress", action="store_true")


def method_record(args) -> tuple[str | None, MethodRecord | None]:
    """The method to run (checked before any model loads) and what made the edits: the record to write beside
    ``edits/``, or the ``--outputs`` folder's own (None when it has none)."""
    if args.outputs is not None:
        if args.method is not None:
            raise ValueError("--method runs a method on --checkpoint or --preset; with --outputs the folder's "
                             f"{METHOD_FILE} (if any) names the method")
        found = find_method_record(args.outputs)
        return None, found[0] if found else None
    config = checkpoint_config(args.checkpoint) if args.checkpoint else ReasonBrainConfig.from_preset(args.preset)
    method = resolve_method(args.method, config)
    backbones = ({"checkpoint": str(args.checkpoint)} if method == REASONBRAIN_MODE else
                 {"editor": config.reason_then_edit.editor} if method == PLAIN_EDITOR else
                 {"mllm": config.mllm.pretrained_model_name_or_path,
                  "regions": config.regions.pretrained_model_name_or_path, "editor": config.reason_then_edit.editor})
    return method, MethodRecord(
        method=method, model=model_label(config.name, args.checkpoint), description=COMPARISON_METHODS[method],
        backbones=backbones, records=os.path.abspath(os.path.join(args.data, f"{args.split}.jsonl")),
        settings={"seed": args.seed, "steps": args.steps, "split": args.split})


def run(args) -> int:
    from accelerate import Accelerator

    if args.limit is not None and args.limit < 1:
        raise ValueError(f"--limit must be >= 1, got {args.limit}")
    if args.batch_size < 1:
        raise ValueError(f"--batch-size must be >= 1, got {args.batch_size}")
    records = load_records(args.data, args.split, limit=args.limit)
    method, made_by = method_record(args)
    chains: list[list[EvalRecord]] = []
    if args.chains:
        chain_split = args.chain_split or args.split
        chains = load_chain_records(args.data, None if chain_split == "all" else chain_split, limit=args.limit)
        if not chains:
            raise ValueError(f"no {chain_split} chains in {args.data}/chains.jsonl; try --chain-split all")
    if not records and not chains:
        raise ValueError(f"{args.data}/{args.split}.jsonl has no single-step records")
    metrics = resolve_metrics(args.metrics, records + [s for c in chains for s in c])
    if not metrics:
        raise ValueError("no metric selected")
    accelerator = Accelerator()
    if accelerator.is_main_process:
        logger.info("evaluating %d records%s with %s on %s (%d process%s)", len(records),
                    f" and {len(chains)} chains" if chains else "", ",".join(metrics), accelerator.device,
                    accelerator.num_processes, "es" if accelerator.num_processes > 1 else "")
    if args.outputs is None:
        pipe = load_method(method, checkpoint=args.checkpoint, preset=args.preset).to(accelerator.device)
        editor = PipelineEditor(pipe, seed=args.seed, num_inference_steps=args.steps,
                                save_dir=os.path.join(args.out, EDITS_FOLDER))
        if accelerator.is_main_process:
            made_by.save(args.out)
    else:
        editor = FolderEditor(args.outputs)
    suite = MetricSuite.load(metrics, clip_model=args.clip_model, dino_model=args.dino_model,
                             judge_model=args.judge_model, judge_prompt=args.judge_prompt, device=accelerator.device)
    settings = {k: v for k, v in vars(args).items() if k != "func"} | {
        "metrics": metrics, "processes": accelerator.num_processes,
        "method": made_by.method if made_by else None, "model": made_by.model if made_by else None}
    progress = not args.no_progress
    by = f"; {made_by.rating_name}" if made_by else ""
    rows = evaluate_records(records, editor, suite, batch_size=args.batch_size, accelerator=accelerator,
                            progress=progress) if records else []
    chain_rows = evaluate_chains(chains, editor, suite, accelerator=accelerator, progress=progress) if chains else []
    if not accelerator.is_main_process:
        return 0
    if rows:
        table = aggregate(rows, metrics, key=lambda r: r["category"])
        write_results(args.out, "metrics", rows, metrics, table, settings=settings, first="category",
                      title=f"Evaluation per category ({args.split}, {len(rows)} edits{by})")
        print(markdown_table(table, metrics))
    if chain_rows:
        table = aggregate(chain_rows, metrics, key=lambda r: depth_label(r["step"] + 1))
        write_results(args.out, "chains", chain_rows, metrics, table, settings=settings, first="steps",
                      title=f"Multi-hop evaluation by editing steps ({len(chains)} chains{by})")
        print(markdown_table(table, metrics, first="steps"))
    print(f"wrote {args.out}")
    return 0


__all__ = ["EvalRecord", "FolderEditor", "METRICS", "MetricSuite", "PipelineEditor", "aggregate", "evaluate_chains",
           "evaluate_records", "load_chain_records", "load_records", "markdown_table", "resolve_metrics", "run"]
