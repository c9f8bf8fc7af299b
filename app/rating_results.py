"""Results of a rating study: the aggregation of :mod:`reasonbrain.evaluation.ratings` over the stored ratings,
plots, exports (CSV / JSONL / markdown report) and the upload of an export to a Hugging Face dataset.

Aggregates leave out gold items (they measure annotators, not methods), and by default too-fast answers.
Pairwise "both bad" counts as a tie in win rates and Bradley-Terry (as GenAI-Arena does); it is counted apart.
When no pairwise judgments exist yet, win rates and Bradley-Terry come from the absolute Ins-Align scores
(the higher score of one annotator on one prompt wins).
"""

from __future__ import annotations

import csv
import hashlib
import json
import math
import os
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from app.ratings_store import GOLD_TOLERANCE, gold_expected_score
from reasonbrain.evaluation import ratings as agg
from reasonbrain.evaluation.plots import bar_chart, heatmap, scatter

CRITERIA = ("ins_align", "consistency", "plausibility")
_SCALE_TEXT = "{}–{}".format(*agg.SCORE_SCALE)
PRIOR = 0.5  # Bradley-Terry virtual ties per pair
EXPORT_FIELDS = (
    "rating_id", "annotator", "task_id", "mode", "prompt_key", "record_id", "category", "instruction", "method",
    "method_b", "kind", "ins_align", "consistency", "plausibility", "choice", "winner", "swapped", "seconds",
    "too_fast", "overlap", "gold", "gold_expected", "gold_correct", "created_at",
)


@dataclass
class Results:
    n_ratings: int
    n_annotators: int
    methods: list[list[Any]]  # method, Ins-Align [0, 1], CI low, CI high, consistency, plausibility, ratings, items
    wins: tuple[list[str], list[list[Any]]]  # (headers, rows): win rate of the row over the column
    comparisons_from: str  # "pairwise" | "absolute" | "none"
    bradley_terry: list[list[Any]]  # rank, method, strength, log-strength
    agreement: list[list[Any]]  # criterion, alpha, level, overlap units, annotators
    annotators: list[list[Any]]  # annotator, ratings, median s, too fast, gold, gold accuracy, flagged
    both_bad: int = 0
    plots: dict[str, str] = field(default_factory=dict)

    @property
    def summary(self) -> str:
        if not self.n_ratings:
            return "No ratings yet."
        return (f"{self.n_ratings} ratings by {self.n_annotators} annotator(s). Ins-Align is the mean "
                f"{_SCALE_TEXT} score rescaled to [0, 1] (the paper's scale), 95% bootstrap CI over prompts; gold "
                "items excluded."
                + (f" {self.both_bad} pairwise 'both bad' answers (counted as ties)." if self.both_bad else ""))


def to_ratings(records: Sequence[dict[str, Any]], criterion: str = "ins_align") -> list[agg.Rating]:
    """Absolute records as :class:`~reasonbrain.evaluation.ratings.Rating` (item = the prompt)."""
    return [agg.Rating(item=r["prompt_key"], method=r["method"], annotator=r["annotator"], score=float(r[criterion]),
                       seconds=r["seconds"],
                       gold=gold_expected_score(r.get("gold_expected")) if r["gold"] else None)
            for r in records if r["mode"] == "absolute" and r[criterion] is not None]


def to_comparisons(records: Sequence[dict[str, Any]]) -> list[agg.Comparison]:
    """Non-gold pairwise records as comparisons (a = 1, b = 0, tie and both-bad = 0.5)."""
    outcome = {"a": 1.0, "b": 0.0, "tie": 0.5, "both_bad": 0.5}
    return [agg.Comparison(item=r["prompt_key"], annotator=r["annotator"], method_a=r["method"],
                           method_b=r["method_b"], outcome=outcome[r["choice"]], seconds=r["seconds"])
            for r in records if r["mode"] == "pairwise" and not r["gold"] and r["choice"] in outcome]


def compute(records: Sequence[dict[str, Any]], *, min_seconds: float, exclude_too_fast: bool = True,
            plots_dir: str | None = None, n_boot: int = 1000, seed: int = 0) -> Results:
    """Every aggregate of the results view (``plots_dir``: where to draw the PNG plots; None: no plots)."""
    all_records = list(records)
    used = [r for r in all_records if not (exclude_too_fast and r["too_fast"])]
    annotators = sorted({r["annotator"] for r in all_records})

    # per-method absolute scores (gold left out by ins_align_summary)
    summaries = {c: agg.ins_align_summary(to_ratings(used, c), scale=agg.SCORE_SCALE, n_boot=n_boot,
                                          seed=seed) for c in CRITERIA}
    methods_rows = []
    for method, s in summaries["ins_align"].items():
        other = [summaries[c].get(method) for c in ("consistency", "plausibility")]
        methods_rows.append([method, _r(s.mean), _r(s.low), _r(s.high),
                             *[_r(o.mean) if o else None for o in other], s.n_ratings, s.n_items])

    # pairwise: judged comparisons, else derived from absolute scores
    comps = to_comparisons(used)
    source = "pairwise"
    if not comps:
        comps = agg.comparisons_from_ratings(to_ratings(used))
        source = "absolute" if comps else "none"
    names: list[str] = []
    win_rows: list[list[Any]] = []
    bt_rows: list[list[Any]] = []
    rates = np.zeros((0, 0))
    bt = None
    if comps:
        names, rates, games = agg.win_rates(comps)
        win_rows = [[a, *[_pct(rates[i, j], games[i, j]) for j in range(len(names))]] for i, a in enumerate(names)]
        if len(names) >= 2:
            bt = agg.bradley_terry(comps, names, prior=PRIOR)
            bt_rows = [[k, m, _r(float(bt.strengths[names.index(m)])), _r(float(bt.log_strengths[names.index(m)]))]
                       for k, m in enumerate(bt.ranking, 1)]

    # agreement on the items several annotators saw
    agreement = []
    for c in CRITERIA:
        mat, raters, _ = agg.reliability_matrix(to_ratings(used, c))
        units = int((np.sum(~np.isnan(mat), axis=0) >= 2).sum()) if mat.size else 0
        alpha = agg.krippendorff_alpha(mat, "interval") if units else math.nan
        agreement.append([c, _r(alpha), "interval", units, len(raters)])
    agreement.append(_pairwise_alpha(used))

    # annotators: speed, gold accuracy (absolute from the library, pairwise gold added), flagged ones
    stats = agg.annotator_stats(to_ratings(all_records), too_fast_seconds=min_seconds, gold_tolerance=GOLD_TOLERANCE)
    flagged = set(agg.flagged_annotators(stats))
    ann_rows = []
    for a in annotators:
        mine = [r for r in all_records if r["annotator"] == a]
        secs = [r["seconds"] for r in mine if r["seconds"] is not None]
        gold = [bool(r["gold_correct"]) for r in mine if r["gold"]]
        ann_rows.append([a, len(mine), _r(float(np.median(secs))) if secs else None,
                         sum(bool(r["too_fast"]) for r in mine), len(gold),
                         _r(float(np.mean(gold))) if gold else None, "yes" if a in flagged else ""])

    results = Results(
        n_ratings=len(all_records), n_annotators=len(annotators), methods=methods_rows,
        wins=(["method", *names], win_rows), comparisons_from=source, bradley_terry=bt_rows, agreement=agreement,
        annotators=ann_rows, both_bad=sum(r["choice"] == "both_bad" for r in used if not r["gold"]),
    )
    if plots_dir is not None and all_records:
        os.makedirs(plots_dir, exist_ok=True)
        s = summaries["ins_align"]
        if s:
            results.plots["ins_align"] = bar_chart(
                os.path.join(plots_dir, "ins_align.png"), list(s), [v.mean for v in s.values()],
                errors=[(v.low, v.high) for v in s.values()], title="Ins-Align (95% CI)", ylabel="Ins-Align [0, 1]",
                highlight=())
        if names:
            results.plots["win_rates"] = heatmap(os.path.join(plots_dir, "win_rates.png"), rates, names,
                                                 title="win rate of row over column")
        if bt is not None:
            results.plots["bradley_terry"] = bar_chart(
                os.path.join(plots_dir, "bradley_terry.png"), bt.ranking,
                [float(bt.log_strengths[names.index(m)]) for m in bt.ranking], title="Bradley-Terry log-strength",
                ylabel="log p", highlight=())
        results.plots["annotators"] = scatter(
            os.path.join(plots_dir, "annotators.png"), [row[2] if row[2] is not None else math.nan for row in ann_rows],
            [row[5] if row[5] is not None else math.nan for row in ann_rows], [row[0] for row in ann_rows],
            title="annotators", xlabel="median seconds per rating", ylabel="gold accuracy")
    return results


def _pairwise_alpha(records: Sequence[dict[str, Any]]) -> list[Any]:
    """Nominal alpha of the pairwise choices (a / b / tie / both bad) on tasks several annotators judged."""
    rows = [r for r in records if r["mode"] == "pairwise" and not r["gold"] and r["choice"]]
    raters = sorted({r["annotator"] for r in rows})
    tasks = sorted({r["task_id"] for r in rows})
    code = {"a": 0.0, "b": 1.0, "tie": 2.0, "both_bad": 3.0}
    mat = np.full((len(raters), len(tasks)), np.nan)
    for r in rows:
        mat[raters.index(r["annotator"]), tasks.index(r["task_id"])] = code[r["choice"]]
    units = int((np.sum(~np.isnan(mat), axis=0) >= 2).sum()) if mat.size else 0
    alpha = agg.krippendorff_alpha(mat, "nominal") if units else math.nan
    return ["pairwise choice", _r(alpha), "nominal", units, len(raters)]


def _r(x: float | None) -> float | None:
    return None if x is None or (isinstance(x, float) and math.isnan(x)) else round(float(x), 3)


def _pct(rate: float, games: float) -> str:
    return "" if math.isnan(rate) else f"{rate:.0%} ({int(games)})"


# ----------------------------------------------------------------------------------------------------------------
# Export and upload
# ----------------------------------------------------------------------------------------------------------------
def pseudonym(annotator: str, salt: str) -> str:
    return "annotator-" + hashlib.sha256(f"{salt}\x1f{annotator}".encode()).hexdigest()[:10]


def export(ratings: Any, out_dir: str, *, pseudonymize: bool = True, exclude_too_fast: bool = True) -> list[str]:
    """Write ``ratings.jsonl``, ``ratings.csv``, ``flags.csv``, ``report.md`` + plots and a dataset ``README.md`` to
    ``out_dir``; returns the paths. ``ratings`` is an :class:`app.ratings_store.RatingStore`. Annotator names are
    replaced by stable pseudonyms unless ``pseudonymize=False``."""
    os.makedirs(out_dir, exist_ok=True)
    records = ratings.records()
    flags = ratings.flags()
    if pseudonymize:
        for r in [*records, *flags]:
            r["annotator"] = pseudonym(r["annotator"], ratings.settings.seed)
    paths = {name: os.path.join(out_dir, name) for name in ("ratings.jsonl", "ratings.csv", "flags.csv", "README.md")}
    with open(paths["ratings.jsonl"], "w", encoding="utf-8") as f:
        for r in records:
            f.write(json.dumps({k: r[k] for k in EXPORT_FIELDS}, ensure_ascii=False) + "\n")
    with open(paths["ratings.csv"], "w", encoding="utf-8", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(EXPORT_FIELDS))
        w.writeheader()
        for r in records:
            w.writerow({k: json.dumps(r[k]) if isinstance(r[k], dict) else r[k] for k in EXPORT_FIELDS})
    with open(paths["flags.csv"], "w", encoding="utf-8", newline="") as f:
        w = csv.DictWriter(f, fieldnames=["annotator", "task_id", "mode", "prompt_key", "note", "flagged_at"])
        w.writeheader()
        w.writerows(flags)
    files = list(paths.values())
    results = None
    if records:
        results = compute(records, min_seconds=ratings.settings.min_seconds, exclude_too_fast=exclude_too_fast,
                          plots_dir=out_dir)
        files += list(results.plots.values())
    with open(paths["README.md"], "w", encoding="utf-8") as f:
        f.write(_dataset_card(records, results, ratings.settings.min_seconds))
    return files


def _dataset_card(records: Sequence[dict[str, Any]], results: Results | None, min_seconds: float) -> str:
    modes = Counter(r["mode"] for r in records)
    lines = [
        "---", "configs:", "- config_name: default", "  data_files: ratings.csv", "---", "",
        "# ReasonBrain Studio human ratings (Ins-Align)", "",
        f"{len(records)} ratings ({modes.get('absolute', 0)} absolute, {modes.get('pairwise', 0)} pairwise) "
        "collected blind and randomised in ReasonBrain Studio's Rate tab.", "",
        f"- absolute: Ins-Align, appearance consistency and visual plausibility, {_SCALE_TEXT} each (Ins-Align is "
        "reported rescaled to [0, 1] like the paper);",
        "- pairwise: `choice` in task orientation (`a` = `method`, `b` = `method_b`, `tie`, `both_bad`); `swapped` "
        "says whether `b` was shown on the left;",
        f"- `seconds`: time on task measured on the server; `too_fast`: under {min_seconds:g} s;",
        "- `gold`: attention checks with a known answer (`gold_expected`, `gold_correct`); `overlap`: items shown "
        "to several annotators for agreement.", "",
    ]
    if results is not None and results.methods:
        lines += ["## Ins-Align per method", "", "| method | Ins-Align | 95% CI | ratings |", "|---|---:|---:|---:|"]
        lines += [f"| {m[0]} | {m[1]} | [{m[2]}, {m[3]}] | {m[6]} |" for m in results.methods]
        lines.append("")
    return "\n".join(lines) + "\n"


def push_to_hub(folder: str, repo_id: str, *, api: Any = None, token: str | None = None, private: bool = True,
                commit_message: str = "Upload ReasonBrain Studio ratings") -> str:
    """Upload ``folder`` to the dataset repo ``repo_id`` (created if missing). ``api``: an ``HfApi``-like object
    (tests pass a fake); default ``huggingface_hub.HfApi(token=token)`` (token: ``HF_TOKEN`` when None)."""
    if not isinstance(repo_id, str) or repo_id.count("/") != 1 or not all(repo_id.split("/")):
        raise ValueError(f"repo_id must look like 'owner/name', got {repo_id!r}")
    if api is None:
        from huggingface_hub import HfApi

        api = HfApi(token=token)
    api.create_repo(repo_id=repo_id, repo_type="dataset", private=private, exist_ok=True)
    api.upload_folder(folder_path=folder, repo_id=repo_id, repo_type="dataset", commit_message=commit_message)
    return f"https://huggingface.co/datasets/{repo_id}"
