"""Put a reading-phase checkpoint (distill_reader + train_recogniser) into an exported synth checkpoint folder.

    python tools/add_reading_phase.py --reader-run runs/synth_reader --reader-checkpoint runs/synth_reader/reader-003000 \
        --freeform runs/synth_reader/freeform.json --out checkpoints/synth [--data-dir data/synth]

``tools/export_synth_checkpoint.py --reader-run ...`` does the same from the earlier phases' run folders; this
tool is for a machine that holds only the exported checkpoint (its card and metrics.json describe the earlier
phases). The weights are replaced by the reader checkpoint's, the held-out test split (with its own wording and
rephrased in the held-out families), the chains and the CI subset are evaluated again, and metrics.json and the
card's status, test table, chains line, reading phase and size are rewritten.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from export_synth_checkpoint import _read_reader_run, _reading_text, markdown_table, status_text  # noqa: E402

from reasonbrain.evaluation.synth_eval import evaluate_chains, evaluate_ci_subset, evaluate_split  # noqa: E402
from reasonbrain.pipelines.pipeline_reasonbrain import ReasonBrainEditPipeline  # noqa: E402

KEEP = ("README.md", "metrics.json", "loss_curve.png")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--reader-run", required=True)
    ap.add_argument("--reader-checkpoint", required=True)
    ap.add_argument("--freeform", required=True)
    ap.add_argument("--out", default="checkpoints/synth")
    ap.add_argument("--data-dir", default="data/synth")
    ap.add_argument("--chains", type=int, default=100)
    ap.add_argument("--rephrase-stride", type=int, default=2)
    args = ap.parse_args(argv)

    tmp = args.out + ".tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(args.reader_checkpoint, tmp)
    for name in KEEP:
        shutil.copy(os.path.join(args.out, name), os.path.join(tmp, name))
    pipe = ReasonBrainEditPipeline.from_pretrained(tmp)
    test = evaluate_split(pipe, args.data_dir, "test")
    rephrased = evaluate_split(pipe, args.data_dir, "test", rephrase=True, stride=args.rephrase_stride)
    chains = evaluate_chains(pipe, args.data_dir, limit=args.chains)
    with tempfile.TemporaryDirectory() as work:
        ci_subset = evaluate_ci_subset(pipe, work)
    reader = _read_reader_run(args.reader_run, args.reader_checkpoint)
    with open(args.freeform, encoding="utf-8") as f:
        freeform = json.load(f)["summary"]
    with open(os.path.join(tmp, "metrics.json"), encoding="utf-8") as f:
        metrics = json.load(f)
    metrics.update(test=test, test_rephrased=rephrased, ci_subset=ci_subset, chains=chains, reader=reader,
                   freeform=freeform)
    with open(os.path.join(tmp, "metrics.json"), "w", encoding="utf-8") as f:
        json.dump(metrics, f, indent=2)

    with open(os.path.join(tmp, "README.md"), encoding="utf-8") as f:
        card = f.read()
    n_phases = len(metrics.get("phases", [])) + 2
    size_mb = sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(tmp) for f in fs) / 2**20
    card = re.sub(r"## Status\n.*?\n\n", f"## Status\n{status_text(test)} {_reading_status(rephrased, freeform)}\n\n",
                  card, count=1, flags=re.S)
    card = re.sub(r"(\n\nExport and evaluation)", "\n" + _reading_text(reader, freeform, n_phases).replace("\\", r"\\")
                  + r"\1", card, count=1)
    card = re.sub(r"\| category \| n \| reasoning accuracy \|\n.*?s per edit\.", markdown_table(test).replace("\\", r"\\"),
                  card, count=1, flags=re.S)
    chains_text = " / ".join(f"{k}: {v:.1%}" for k, v in chains.items() if k.endswith("-step"))
    card = re.sub(r"Multi-hop chains \(each step edits the model's own previous output; \d+ chains\): [^\n]*\.",
                  f"Multi-hop chains (each step edits the model's own previous output; {chains['chains']} chains): "
                  f"{chains_text}.", card, count=1)
    card = re.sub(r"Checkpoint size [\d.]+ MB\.", f"Checkpoint size {size_mb:.1f} MB (the reader's pretrained table is "
                  "referenced, not copied).", card, count=1)
    card = card.replace("then `configs/train_synth_stage9.json`;",
                        "then `configs/train_synth_stage9.json` then `configs/distill_synth_reader.json` and "
                        "`python -m reasonbrain.training.train_recogniser`;", 1)
    with open(os.path.join(tmp, "README.md"), "w", encoding="utf-8") as f:
        f.write(card)
    shutil.rmtree(args.out)
    os.replace(tmp, args.out)
    print(card)
    return 0


def _reading_status(rephrased: dict, freeform: dict) -> str:
    return (f"People's wording: {freeform['overall']:.1f} % on the hand-written free-form set "
            f"({freeform['n_edits']} instructions; the same scenes with the generator's phrasing "
            f"{freeform['generator_overall']:.1f} %), {rephrased['accuracy']:.1%} on the test split rephrased in "
            f"held-out wording families (n={rephrased['n']}); absent objects refused "
            f"{freeform['absent_refused']:.0f} % of the time, false refusals {freeform['false_refusals']:.1f} %.")


if __name__ == "__main__":
    raise SystemExit(main())
