"""Put a reading-phase checkpoint (distill_reader + train_recogniser) into an exported synth checkpoint folder, or
attach an inferred-outcome adapter (train_outcome) to it.

    python tools/add_reading_phase.py --reader-run runs/synth_reader_unet \
        --reader-checkpoint runs/synth_reader_unet/candidate --freeform runs/synth_reader_unet/freeform.json \
        --out checkpoints/synth [--data-dir data/synth]
    python tools/add_reading_phase.py --attach-outcome runs/synth_reader_unet/candidate-outcome \
        --outcome-eval runs/synth_reader_unet/outcome_eval.json --out checkpoints/synth
    python tools/add_reading_phase.py --refinement runs/synth_decoder --trained vae/decoder. vae/post_quant_conv. \
        --freeform runs/synth_decoder/freeform.json --out checkpoints/synth
    python tools/add_reading_phase.py --rewrite-card --out checkpoints/synth  # the card's text from metrics.json

``tools/export_synth_checkpoint.py --reader-run ...`` does the first from the earlier phases' run folders; this tool
is for a machine that holds only the exported checkpoint (its card and metrics.json describe the earlier phases).
Reading: the weights are replaced by the reader checkpoint's, the held-out test split (with its own wording and
rephrased in the held-out families), the chains and the CI subset are evaluated again, and metrics.json and the
card's status, test table, chains line, reading phase, people's-wording section and size are rewritten.
Attaching: the outcome checkpoint must hold the same weights as OUT apart from its generation-only adapter (checked
file by file: edits, and so every edit figure, stay the same); it replaces OUT, and its training summary and the
``benchmarks/outcome_eval.py --json-out`` figures go into metrics.json and the card.
Refining (a run folder holding ``checkpoint/`` and ``summary.json``, e.g. ``reasonbrain.training.refine_decoder``):
only the tensors named by ``--trained`` (prefixes ``FOLDER/TENSOR``) may differ from OUT's, so the reader, the MLLM
and the outcome adapter stay valid; the held-out figures are evaluated again as for reading, and the refinement is
listed in metrics.json's ``refinements`` and as a training item on the card.
"""

from __future__ import annotations

import argparse
import filecmp
import json
import os
import re
import shutil
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from export_synth_checkpoint import (  # noqa: E402
    _freeform_text,
    _read_reader_run,
    _reading_text,
    chains_text,
    markdown_table,
    status_text,
)

KEEP = ("README.md", "metrics.json", "loss_curve.png")
ADAPTER = "mllm_outcome_adapter"
OUTCOME_HEADING = "### What the model says it inferred"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--reader-run")
    ap.add_argument("--reader-checkpoint")
    ap.add_argument("--freeform")
    ap.add_argument("--attach-outcome", metavar="CKPT", help="a train_outcome output folder built on OUT's weights")
    ap.add_argument("--outcome-eval", metavar="JSON", help="benchmarks/outcome_eval.py --json-out of that folder")
    ap.add_argument("--refinement", metavar="RUN", help="a refinement run folder (checkpoint/ and summary.json)")
    ap.add_argument("--trained", nargs="+", metavar="PREFIX",
                    help="with --refinement: the tensors it may change, as FOLDER/NAME prefixes (vae/decoder.)")
    ap.add_argument("--rewrite-card", action="store_true",
                    help="rewrite OUT's card from its own metrics.json (no evaluation; after a change to the card's text)")
    ap.add_argument("--out", default="checkpoints/synth")
    ap.add_argument("--data-dir", default="data/synth")
    ap.add_argument("--chains", type=int, default=100)
    ap.add_argument("--rephrase-stride", type=int, default=2)
    args = ap.parse_args(argv)
    if args.rewrite_card:
        card = rewrite_card(args.out)
    elif args.refinement:
        if not (args.trained and args.freeform):
            ap.error("--refinement needs --trained and --freeform (benchmarks/freeform_eval.py on its checkpoint)")
        card = add_refinement(args)
    elif args.attach_outcome:
        if not args.outcome_eval:
            ap.error("--attach-outcome needs --outcome-eval")
        card = attach_outcome(args.attach_outcome, args.outcome_eval, args.out)
    else:
        if not (args.reader_run and args.reader_checkpoint and args.freeform):
            ap.error("--reader-run, --reader-checkpoint and --freeform are required (or use --attach-outcome)")
        card = add_reading(args)
    print(card)
    return 0


def add_reading(args) -> str:
    reader = _read_reader_run(args.reader_run, args.reader_checkpoint)  # fails early when a stage is undocumented
    tmp = _stage(args.reader_checkpoint, args.out)
    figures = _evaluate(tmp, args)
    metrics = _read_json(os.path.join(tmp, "metrics.json"))
    metrics.pop("outcome", None)  # a new reader: an earlier outcome adapter no longer applies
    metrics.pop("refinements", None)  # the reader checkpoint's weights replace what they trained
    # the model it reads for (its figures before the first reading phase), to show what reading costs
    metrics.setdefault("teacher", {"test": metrics["test"], "chains": metrics["chains"]})
    metrics.update(figures, reader=reader)
    _write_json(os.path.join(tmp, "metrics.json"), metrics)

    card = reading_card(_read_text(os.path.join(tmp, "README.md")), metrics)
    _finish(tmp, args.out, card)
    return card


def add_refinement(args) -> str:
    """A refinement run's checkpoint into OUT: only ``--trained`` tensors may differ; every held-out figure again."""
    candidate = os.path.join(args.refinement, "checkpoint")
    _check_changed_only(candidate, args.out, args.trained)
    summary = _read_json(os.path.join(args.refinement, "summary.json"))
    tmp = _stage(candidate, args.out)
    figures = _evaluate(tmp, args)
    metrics = _read_json(os.path.join(tmp, "metrics.json"))
    entry = {"run": args.refinement, "trained": args.trained,
             **{k: summary[k] for k in REFINEMENT_FIELDS if k in summary}}
    metrics["refinements"] = [r for r in metrics.get("refinements", []) if r["run"] != args.refinement] + [entry]
    metrics.update(figures)
    _write_json(os.path.join(tmp, "metrics.json"), metrics)
    card = _read_text(os.path.join(tmp, "README.md"))
    if "outcome" in metrics:  # the adapter is untouched (checked above), so its figures stand
        card = _with_outcome(reading_card(card, metrics), _read_json(os.path.join(tmp, "outcome_summary.json")),
                             metrics["outcome"], args.out)
    else:
        card = reading_card(card, metrics)
    _finish(tmp, args.out, card)
    return card


REFINEMENT_FIELDS = ("module", "config", "chosen_step", "wall_time_s", "train_records", "validation_before", "validation_after")


def _evaluate(checkpoint: str, args) -> dict:
    """The held-out figures the card states: test split (own wording and rephrased), chains, CI subset, free-form."""
    from reasonbrain.evaluation.synth_eval import evaluate_chains, evaluate_ci_subset, evaluate_split
    from reasonbrain.pipelines.pipeline_reasonbrain import ReasonBrainEditPipeline

    pipe = ReasonBrainEditPipeline.from_pretrained(checkpoint)
    test = evaluate_split(pipe, args.data_dir, "test")
    rephrased = evaluate_split(pipe, args.data_dir, "test", rephrase=True, stride=args.rephrase_stride)
    chains = evaluate_chains(pipe, args.data_dir, limit=args.chains)
    with tempfile.TemporaryDirectory() as work:
        ci_subset = evaluate_ci_subset(pipe, work)
    with open(args.freeform, encoding="utf-8") as f:
        freeform = json.load(f)["summary"]
    return dict(test=test, test_rephrased=rephrased, ci_subset=ci_subset, chains=chains, freeform=freeform)


def _check_changed_only(candidate: str, out: str, trained: list[str]) -> list[str]:
    """The ``FOLDER/TENSOR`` names whose values differ between the two checkpoints; raises when one lies outside
    ``trained``, or when the two hold different weight files or tensor names."""
    from safetensors.torch import load_file

    def files(root: str) -> set[str]:
        return {os.path.relpath(os.path.join(d, f), root) for d, _, fs in os.walk(root) for f in fs
                if f.endswith((".safetensors", ".bin", ".pt"))}

    mine, theirs = files(candidate), files(out)
    if mine != theirs:
        raise ValueError(f"{candidate} and {out} hold different weight files: {sorted(mine ^ theirs)}")
    changed = []
    for rel in sorted(mine):
        a, b = os.path.join(candidate, rel), os.path.join(out, rel)
        if filecmp.cmp(a, b, shallow=False):
            continue
        if not rel.endswith(".safetensors"):
            raise ValueError(f"{rel} differs and is not a safetensors file: it cannot be checked tensor by tensor")
        ta, tb = load_file(a), load_file(b)
        if ta.keys() != tb.keys():
            raise ValueError(f"{rel} holds other tensors in {candidate} than in {out}")
        folder = os.path.dirname(rel)
        changed += [f"{folder}/{k}" for k in sorted(ta) if not (ta[k].shape == tb[k].shape and ta[k].equal(tb[k]))]
    outside = [name for name in changed if not name.startswith(tuple(trained))]
    if outside:
        raise ValueError(f"{candidate} changes tensors outside {trained}: {', '.join(outside[:5])}"
                         f"{' ...' if len(outside) > 5 else ''}")
    return changed


def reading_card(card: str, metrics: dict) -> str:
    """``card`` with the reading phase's sections written from ``metrics`` (a metrics.json after add_reading)."""
    test, rephrased, chains = metrics["test"], metrics["test_rephrased"], metrics["chains"]
    reader, freeform = metrics["reader"], metrics["freeform"]
    n_phases = len(metrics.get("phases", [])) + 2
    card = re.sub(r"## Status\n.*?\n\n", lambda m: f"## Status\n{status_text(test)} {_reading_status(rephrased, freeform)}"
                  "\n\n", card, count=1, flags=re.S)
    card = re.sub(r"\n\d+\. Reading people's wording [^\n]*", "", card)  # an earlier reading phase
    card = re.sub(r"\n\d+\. Refinement[ :][^\n]*", "", card)  # earlier refinement items
    items = [_reading_text(reader, None, n_phases)] + [
        _refinement_text(r, n_phases + i) for i, r in enumerate(metrics.get("refinements", []), 1)]
    card = card.replace("\n\nExport and evaluation", "\n" + "\n".join(items) + "\n\nExport and evaluation", 1)
    card = re.sub(r"\| category \| n \| reasoning accuracy \|\n.*?s per edit\.", lambda m: markdown_table(test), card,
                  count=1, flags=re.S)
    card = re.sub(r"Multi-hop chains \(each step edits the model's own previous output; \d+ [^)]*chains\): [^\n]*\.",
                  lambda m: f"Multi-hop chains (each step edits the model's own previous output; {chains['chains']} "
                  f"test-split chains): {chains_text(chains)}.", card, count=1)
    card = _set_section(card, "## People's wording", _people_text(rephrased, freeform, test, chains,
                                                                  metrics["teacher"]))
    recipes = " then ".join(f"`{s['config_file']}`" for s in reader["stages"] if s.get("config_file"))
    modules = ["reasonbrain.training.train_recogniser"] + [r["module"] for r in metrics.get("refinements", [])
                                                           if "module" in r]
    tail = " and ".join(f"`python -m {m}`" for m in modules)
    card = re.sub(r"(then `configs/train_synth_stage9\.json`)[^;]*;", lambda m: f"{m.group(1)} then {recipes} and "
                  f"{tail};", card, count=1)
    return card


def rewrite_card(out: str) -> str:
    """The card of ``out`` rewritten from its own metrics.json (reading sections, then the outcome section when
    the checkpoint has one): for a change to the card's text, without evaluating again."""
    metrics = _read_json(os.path.join(out, "metrics.json"))
    card = reading_card(_read_text(os.path.join(out, "README.md")), metrics)
    if "outcome" in metrics:
        summary = _read_json(os.path.join(out, "outcome_summary.json"))
        card = _with_outcome(card, summary, metrics["outcome"], out)
    with open(os.path.join(out, "README.md"), "w", encoding="utf-8") as f:
        f.write(card)
    return card


def attach_outcome(outcome_checkpoint: str, outcome_eval: str, out: str) -> str:
    _check_same_weights(outcome_checkpoint, out)
    summary = _read_json(os.path.join(outcome_checkpoint, "outcome_summary.json"))
    evaluation = _read_json(outcome_eval)
    tmp = _stage(outcome_checkpoint, out)
    metrics = _read_json(os.path.join(tmp, "metrics.json"))
    metrics["outcome"] = {"training": {k: v for k, v in summary.items() if k != "config"},
                          "split": evaluation["split"], "records": evaluation["records"],
                          "summary": evaluation["summary"]}
    _write_json(os.path.join(tmp, "metrics.json"), metrics)
    card = _with_outcome(_read_text(os.path.join(tmp, "README.md")), summary, evaluation, out)
    _finish(tmp, out, card)
    return card


def _with_outcome(card: str, summary: dict, evaluation: dict, out: str) -> str:
    people = _section(card, "## People's wording")
    if people is None:
        raise ValueError(f"{out}/README.md has no \"## People's wording\" section: add the reading phase first")
    people = people.split("\n" + OUTCOME_HEADING)[0].rstrip("\n")
    return _set_section(card, "## People's wording", people + "\n\n" + _outcome_text(summary, evaluation))


def _check_same_weights(candidate: str, out: str) -> None:
    """Every weight file of ``candidate`` outside the adapter is byte-identical to ``out``'s, and none is missing."""
    def weights(root: str) -> set[str]:
        return {os.path.relpath(os.path.join(d, f), root) for d, _, fs in os.walk(root) for f in fs
                if f.endswith((".safetensors", ".bin", ".pt")) and not os.path.relpath(d, root).startswith(ADAPTER)}

    mine, theirs = weights(candidate), weights(out)
    if mine != theirs:
        raise ValueError(f"{candidate} and {out} hold different weight files: {sorted(mine ^ theirs)}")
    changed = [p for p in sorted(mine) if not filecmp.cmp(os.path.join(candidate, p), os.path.join(out, p),
                                                          shallow=False)]
    if changed:
        raise ValueError(f"{candidate} was not built on {out}'s weights ({', '.join(changed)} differ): train the "
                         "outcome adapter on the checkpoint it is attached to")
    if not os.path.isdir(os.path.join(candidate, ADAPTER)):
        raise ValueError(f"{candidate} has no {ADAPTER}/: run python -m reasonbrain.training.train_outcome first")


def _stage(source: str, out: str) -> str:
    """A copy of ``source`` beside ``out`` with ``out``'s card, metrics and loss curve."""
    tmp = out.rstrip("/") + ".tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(source, tmp)
    for name in KEEP:
        shutil.copy(os.path.join(out, name), os.path.join(tmp, name))
    return tmp


def _finish(tmp: str, out: str, card: str) -> None:
    size_mb = sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(tmp) for f in fs) / 2**20
    card = re.sub(r"Checkpoint size [\d.]+ MB[^\n]*", f"Checkpoint size {size_mb:.1f} MB (the reader's pretrained "
                  "table is referenced, not copied).", card, count=1)
    with open(os.path.join(tmp, "README.md"), "w", encoding="utf-8") as f:
        f.write(card)
    shutil.rmtree(out)
    os.replace(tmp, out)


def _section(card: str, heading: str) -> str | None:
    m = re.search(rf"^{re.escape(heading)}\n(.*?)(?=^## |\Z)", card, flags=re.S | re.M)
    return m.group(1).strip("\n") if m else None


def _set_section(card: str, heading: str, body: str) -> str:
    """Replace the body of the ``## `` section ``heading`` (or add the section before the ablation table)."""
    block = f"{heading}\n{body.strip()}\n\n"
    if _section(card, heading) is not None:
        return re.sub(rf"^{re.escape(heading)}\n.*?(?=^## |\Z)", lambda m: block, card, count=1, flags=re.S | re.M)
    anchor = card.find("\n## Miniature table 4")
    return card + "\n" + block if anchor < 0 else card[: anchor + 1] + block + card[anchor + 1 :]


def _reading_status(rephrased: dict, freeform: dict) -> str:
    return (f"People's wording: {freeform['overall']:.1f} % on the hand-written free-form set "
            f"({freeform['n_edits']} instructions; the same scenes with the generator's phrasing "
            f"{freeform['generator_overall']:.1f} %), {rephrased['accuracy']:.1%} on the test split rephrased in "
            f"held-out wording families (n={rephrased['n']}); absent objects refused "
            f"{freeform['absent_refused']:.0f} % of the time, false refusals {freeform['false_refusals']:.1f} %.")


def _people_text(rephrased: dict, freeform: dict, test: dict, chains: dict, teacher: dict) -> str:
    per = ", ".join(f"{c} {a:.1%}" for c, a in rephrased["per_category"].items())
    before = ", ".join(f"{c} {teacher['test']['per_category'][c]:.1%} -> {a:.1%}"
                       for c, a in test["per_category"].items())
    hops = " / ".join(f"{teacher['chains'][k]:.1%} -> {v:.1%}" for k, v in chains.items() if k.endswith("-step"))
    return (f"What reading costs on the generator's own wording (the model it reads for -> this one, same test split): "
            f"{teacher['test']['accuracy']:.1%} -> {test['accuracy']:.1%} ({before}); chains (1 / 2 / 3 steps) "
            f"{hops}.\n\n"
            f"The test split rephrased in held-out wording families (`synthworld.language.rephrase_record`, every "
            f"second record, n={rephrased['n']}): {rephrased['accuracy']:.1%} ({per}).\n\n" + _freeform_text(freeform))


def _refinement_text(entry: dict, number: int) -> str:
    """One refinement run as a training item: what it trained, on what, and its validation before and after."""
    cfg, before, after = entry.get("config", {}), entry.get("validation_before", {}), entry.get("validation_after", {})
    settings = ", ".join(f"{k.replace('_', ' ')} {cfg[k]}" for k in REFINEMENT_SETTINGS if k in cfg)
    oracle = ""
    if "oracle_accuracy" in before and "oracle_accuracy" in after:
        worst = sorted(before.get("oracle_per_transformation", {}).items(), key=lambda kv: kv[1])[:3]
        per = ", ".join(f"{k} {v:.1%} -> {after.get('oracle_per_transformation', {}).get(k, float('nan')):.1%}"
                        for k, v in worst)
        oracle = (f" Validation oracle (true targets through the VAE, the ceiling on any edit) "
                  f"{before['oracle_accuracy']:.1%} -> {after['oracle_accuracy']:.1%} (the three lowest before: "
                  f"{per}); reconstruction L1 {before['recon_l1']:.5f} -> {after['recon_l1']:.5f}.")
    module = f" (`python -m {entry['module']}`)" if "module" in entry else ""
    trained = ", ".join(f"`{t}`" for t in entry["trained"])
    return (f"{number}. Refinement{module}: `{entry['run']}` trained only {trained} (every other weight is the "
            f"previous phase's, so the reader, MLLM and outcome adapter stay valid): {settings}; "
            f"{entry.get('train_records', '?'):,} training records, {entry.get('wall_time_s', 0) / 60:.0f} min on CPU, step "
            f"{entry.get('chosen_step', '?')} chosen on the validation split.{oracle}")


REFINEMENT_SETTINGS = ("steps", "batch_size", "learning_rate", "edit_weight", "latent_noise")


def _outcome_text(summary: dict, evaluation: dict) -> str:
    rows = []
    for name, v in evaluation["summary"].items():
        cells = [f"{v[w][k]:.1f} %" for w in ("own", "rephrased") for k in ("object", "both")]
        rows.append(f"| {name} | {v['n']} | " + " | ".join(cells) + " |")
    val = summary.get("validation", {})
    return (f"{OUTCOME_HEADING}\n\nThe Reasoning field and the CLI sidecar's `reasoning` (`reasoning_kind: "
            f"inferred_outcome`) hold a sentence the MLLM writes after the edit's own sequence, through a "
            f"generation-only LoRA (`{ADAPTER}/`, {summary['adapter_parameters']:,} parameters; edits never run "
            f"through it). `python -m reasonbrain.training.train_outcome`: {summary['steps']} steps on "
            f"{summary['train_records']:,} training records, {summary['train_seconds'] / 60:.0f} min on CPU, step "
            f"{summary['chosen_step']} chosen on {summary['val_records']} validation records (both right "
            f"{val.get('own_both', float('nan')):.1f} % own wording, {val.get('rephrased_both', float('nan')):.1f} % "
            f"rephrased). Held-out {evaluation['split']} records (`benchmarks/outcome_eval.py`, first "
            f"{evaluation['records']}): is the named object the edited one, and are object and end state both "
            f"right?\n\n| category | n | own: object | own: both | rephrased: object | rephrased: both |\n"
            f"|---|---:|---:|---:|---:|---:|\n" + "\n".join(rows))


def _read_json(path: str) -> dict:
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def _write_json(path: str, data: dict) -> None:
    with open(path, "w", encoding="utf-8") as f:
        json.dump(data, f, indent=2)


def _read_text(path: str) -> str:
    with open(path, encoding="utf-8") as f:
        return f.read()


if __name__ == "__main__":
    raise SystemExit(main())
