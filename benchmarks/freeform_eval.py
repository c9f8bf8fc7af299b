"""The bundled model on people's own wording: hand-written instructions on scenes rendered by the generator.

    python benchmarks/freeform_eval.py [--checkpoint checkpoints/synth] [--threads 2] [--json-out out.json]
        [--limit N] [--show-failures]

Each line of ``benchmarks/freeform/instructions.txt`` names a transformation, a style and constraints on the scene
(the target's colour / position, kinds that must be absent). The scene is rendered by the synth world's generator
(``sample_matching``); the hand-written text replaces the generator's instruction. The same scene is also edited
with the generator's own phrasing, so the two columns differ only in wording. An edit is right when it is closer
to the true outcome than to every alternative (``reasonbrain.synthworld.accuracy``). Lines with ``a=...`` name an
object that is not in the picture: the right answer is the pipeline's "not in this picture" refusal; a refusal on
any other line is a false refusal (and counts as wrong).

Never train on this set and never choose a checkpoint by it: validation data chooses checkpoints.
"""

from __future__ import annotations

import argparse
import json
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import torch

INSTRUCTIONS = Path(__file__).resolve().parent / "freeform" / "instructions.txt"


@dataclass
class Item:
    id: str
    transformation: str
    style: str
    text: str
    colour: str | None = None
    position: str | None = None
    exclude: list[str] = field(default_factory=list)
    absent: str | None = None  # the object named in the text that the scene lacks


def load_items(path: str | Path = INSTRUCTIONS) -> list[Item]:
    items = []
    for n, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        parts = [p.strip() for p in line.split("|", 3)]
        if len(parts) != 4:
            raise ValueError(f"{path}:{n}: expected 'transformation | style | constraints | text'")
        tr, style, cons, text = parts
        item = Item(id=f"ff{n:03d}", transformation=tr, style=style, text=text)
        for c in ([] if cons == "-" else cons.split(",")):
            key, _, value = c.strip().partition("=")
            if key == "c":
                item.colour = value
            elif key == "p":
                item.position = value
            elif key == "x":
                item.exclude.append(value)
            elif key == "a":
                item.absent = value
            else:
                raise ValueError(f"{path}:{n}: unknown constraint {c!r}")
        items.append(item)
    return items


def _edit(pipe, image, text: str, seed: int) -> tuple[str, object | None]:
    """('edit', image) or ('refused', message)."""
    from reasonbrain.referring import ObjectNotInImageError

    try:
        return "edit", pipe(image, text, seed=seed).images[0]
    except ObjectNotInImageError as err:
        return "refused", str(err)


def evaluate(pipe, items: list[Item], *, show_failures: bool = False) -> dict:
    from reasonbrain.synthworld.accuracy import is_correct
    from reasonbrain.synthworld.dataset import sample_matching
    from reasonbrain.synthworld.render import Renderer

    renderer = Renderer(pipe.config.resolution)
    rows = []
    start = time.perf_counter()
    for i, item in enumerate(items):
        sample = sample_matching(item.transformation, f"freeform:{item.id}", colour=item.colour,
                                 position=item.position, exclude=item.exclude, renderer=renderer)
        alts = [sample.alternatives[a.kind] for a in sample.record.alternatives]
        row = {"id": item.id, "style": item.style, "category": sample.record.category, "text": item.text,
               "transformation": item.transformation, "absent": item.absent,
               "generator_text": sample.record.instruction}
        kind, out = _edit(pipe, sample.src, item.text, seed=i)
        row["refused"] = kind == "refused"
        row["correct"] = row["refused"] if item.absent else (kind == "edit" and is_correct(out, sample.tgt, alts))
        if kind == "refused":
            row["message"] = out
        if not item.absent:  # the same scene with the generator's phrasing
            g_kind, g_out = _edit(pipe, sample.src, sample.record.instruction, seed=i)
            row["generator_correct"] = g_kind == "edit" and is_correct(g_out, sample.tgt, alts)
        rows.append(row)
        if show_failures and not row["correct"]:
            print(f"  x {item.id} [{item.style}/{row['category']}] {item.text!r}"
                  + (f" -> refused: {row.get('message')}" if row["refused"] else ""))
    return {"rows": rows, "seconds": time.perf_counter() - start}


def summarise(rows: list[dict]) -> dict:
    edits = [r for r in rows if not r["absent"]]
    absent = [r for r in rows if r["absent"]]

    def acc(rs, key="correct"):
        return 100.0 * sum(bool(r[key]) for r in rs) / max(len(rs), 1)

    out = {"n": len(rows), "overall": acc(edits), "generator_overall": acc(edits, "generator_correct"),
           "absent_refused": acc(absent, "refused"), "false_refusals": acc(edits, "refused"),
           "n_edits": len(edits), "n_absent": len(absent), "by_category": {}, "by_style": {}}
    for key, table in (("category", "by_category"), ("style", "by_style")):
        groups = defaultdict(list)
        for r in edits:
            groups[r[key]].append(r)
        for name in sorted(groups):
            out[table][name] = {"n": len(groups[name]), "freeform": acc(groups[name]),
                                "generator": acc(groups[name], "generator_correct")}
    return out


def print_tables(s: dict, title: str) -> None:
    print(f"\n## free-form instructions: {title}\n")
    for table, label in (("by_category", "category"), ("by_style", "style")):
        print(f"| {label} | n | hand-written | generator's phrasing (same scenes) |\n|---|---:|---:|---:|")
        for name, v in s[table].items():
            print(f"| {name} | {v['n']} | {v['freeform']:.1f} % | {v['generator']:.1f} % |")
        print()
    print(f"| **overall** | {s['n_edits']} | **{s['overall']:.1f} %** | {s['generator_overall']:.1f} % |\n")
    print(f"absent objects refused: **{s['absent_refused']:.1f} %** of {s['n_absent']}; "
          f"false refusals: **{s['false_refusals']:.1f} %** of {s['n_edits']}")


def main(argv: list[str] | None = None) -> int:
    from reasonbrain.pipelines.pipeline_reasonbrain import ReasonBrainEditPipeline

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--checkpoint", default="checkpoints/synth")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--limit", type=int, default=None)
    ap.add_argument("--json-out", default=None)
    ap.add_argument("--show-failures", action="store_true")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    pipe = ReasonBrainEditPipeline.from_pretrained(args.checkpoint)
    items = load_items()[: args.limit]
    result = evaluate(pipe, items, show_failures=args.show_failures)
    summary = summarise(result["rows"])
    print_tables(summary, f"{args.checkpoint} ({len(items)} instructions, {result['seconds']:.0f} s)")
    if args.json_out:
        Path(args.json_out).write_text(json.dumps({"summary": summary, **result}, indent=2), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
