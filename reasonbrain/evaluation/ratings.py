"""Human ratings: Ins-Align aggregation, pairwise preferences, agreement and annotator quality (pure numpy).

Inputs are plain records, independent of the app's storage:

- :class:`Rating` -- one annotator's absolute score of one method's edit of one item (Ins-Align, on any numeric
  scale, e.g. 1-5; ``gold`` holds the expected score on attention-check items);
- :class:`Comparison` -- one annotator's preference between two methods' edits of one item
  (``outcome`` 1 = a better, 0 = b better, 0.5 = tie).

Functions:

- :func:`ins_align_summary` -- per-method mean (rescaled to [0, 1] with ``scale``) with a seeded percentile
  bootstrap confidence interval over items (:func:`bootstrap_ci`);
- :func:`win_rates` -- pairwise win rates, ties counted half; :func:`comparisons_from_ratings` derives
  comparisons from absolute ratings of the same item by the same annotator;
- :func:`bradley_terry` -- Bradley-Terry strengths by Hunter's (2004) MM iteration, ties as half a win each;
- :func:`krippendorff_alpha` -- nominal / ordinal / interval / ratio alpha with missing data;
- :data:`SCORE_SCALE` -- the 1-5 scale people score on; :func:`gold_correct` -- the rule that scores an answer
  to a gold (attention-check) item;
- :func:`annotator_stats` -- count, median seconds per item, gold accuracy, too-fast count
  (:func:`flagged_annotators` picks the unreliable ones);
- :func:`simulate_ratings` -- seeded raters with known method qualities (some of them bad);
- :func:`write_ratings_report` -- a markdown report with PNG plots.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

SCORE_SCALE: tuple[int, int] = (1, 5)  # (low, high) of a human score (Ins-Align, consistency, plausibility)


@dataclass(frozen=True)
class Rating:
    item: str
    method: str
    annotator: str
    score: float
    seconds: float | None = None
    gold: float | None = None  # the expected score when this is a gold (attention-check) item


@dataclass(frozen=True)
class Comparison:
    item: str
    annotator: str
    method_a: str
    method_b: str
    outcome: float  # 1 = a better, 0 = b better, 0.5 = tie
    seconds: float | None = None


# -------------------------------------------------------------------------------------------- bootstrap
def bootstrap_ci(values: Sequence[float], *, n_boot: int = 2000, level: float = 0.95, seed: int = 0,
                 statistic: Callable[[np.ndarray], np.ndarray] | None = None) -> tuple[float, float]:
    """Percentile bootstrap interval of ``statistic`` (default: the mean) of ``values``.

    Draw ``n_boot`` resamples of size n with replacement (``numpy.random.default_rng(seed)``), compute the
    statistic on each and return its ``(1 - level) / 2`` and ``(1 + level) / 2`` quantiles. ``statistic`` takes a
    (n_boot, n) array and returns (n_boot,). One value gives a zero-width interval; none gives (nan, nan).
    """
    x = np.asarray(values, dtype=float)
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level}")
    if x.size == 0:
        return math.nan, math.nan
    rng = np.random.default_rng(seed)
    samples = x[rng.integers(0, x.size, size=(n_boot, x.size))]  # (n_boot, n)
    stats = samples.mean(axis=1) if statistic is None else np.asarray(statistic(samples), dtype=float)
    alpha = (1.0 - level) / 2.0
    return float(np.quantile(stats, alpha)), float(np.quantile(stats, 1.0 - alpha))


@dataclass(frozen=True)
class MethodSummary:
    method: str
    mean: float  # on [0, 1] when a scale was given
    low: float
    high: float
    n_ratings: int
    n_items: int


def _rescale(x: float, scale: tuple[float, float] | None) -> float:
    if scale is None:
        return x
    lo, hi = scale
    if hi <= lo:
        raise ValueError(f"scale must be (low, high) with low < high, got {scale}")
    return (x - lo) / (hi - lo)


def ins_align_summary(ratings: Iterable[Rating], *, scale: tuple[float, float] | None = None, n_boot: int = 2000,
                      level: float = 0.95, seed: int = 0, include_gold: bool = False) -> dict[str, MethodSummary]:
    """Per method: the Ins-Align mean and its bootstrap CI.

    Scores are rescaled ``(s - low) / (high - low)`` when ``scale = (low, high)`` is given (so 1-5 ratings land on
    [0, 1] like the paper's Ins-Align). The mean is over items of the per-item mean over annotators; the CI
    resamples items (a cluster bootstrap: ratings of one item by several annotators are not independent).
    Gold (attention-check) ratings are left out unless ``include_gold``. Methods sorted by mean, best first.
    """
    per: dict[str, dict[str, list[float]]] = {}
    for r in ratings:
        if r.gold is not None and not include_gold:
            continue
        per.setdefault(r.method, {}).setdefault(r.item, []).append(_rescale(float(r.score), scale))
    out = []
    for method, items in per.items():
        item_means = np.array([np.mean(v) for v in items.values()])
        low, high = bootstrap_ci(item_means, n_boot=n_boot, level=level, seed=seed)
        out.append(MethodSummary(method, float(item_means.mean()), low, high, sum(len(v) for v in items.values()),
                                 len(items)))
    return {s.method: s for s in sorted(out, key=lambda s: -s.mean)}


# ----------------------------------------------------------------------------------------- comparisons
def comparisons_from_ratings(ratings: Iterable[Rating]) -> list[Comparison]:
    """Every pair of methods one annotator rated on one item becomes a comparison: the higher score wins,
    equal scores tie. Gold ratings are skipped."""
    groups: dict[tuple[str, str], dict[str, float]] = {}
    for r in ratings:
        if r.gold is None:
            groups.setdefault((r.item, r.annotator), {})[r.method] = float(r.score)
    out = []
    for (item, annotator), scores in groups.items():
        methods = sorted(scores)
        for i, a in enumerate(methods):
            for b in methods[i + 1 :]:
                sa, sb = scores[a], scores[b]
                out.append(Comparison(item, annotator, a, b, 1.0 if sa > sb else 0.0 if sa < sb else 0.5))
    return out


def _methods(comparisons: Sequence[Comparison], methods: Sequence[str] | None) -> list[str]:
    found = sorted({m for c in comparisons for m in (c.method_a, c.method_b)})
    if methods is None:
        return found
    unknown = sorted(set(found) - set(methods))
    if unknown:
        raise ValueError(f"comparisons mention methods {unknown} not in methods={list(methods)}")
    return list(methods)


def _tallies(comparisons: Sequence[Comparison], methods: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """wins[i, j] = wins of i over j (ties count 0.5 to each side), games[i, j] = comparisons of i and j."""
    index = {m: k for k, m in enumerate(methods)}
    n = len(methods)
    wins, games = np.zeros((n, n)), np.zeros((n, n))
    for c in comparisons:
        if c.outcome not in (0, 0.5, 1):
            raise ValueError(f"comparison outcome must be 1 (a better), 0 (b better) or 0.5 (tie), got {c.outcome}")
        if c.method_a == c.method_b:
            raise ValueError(f"comparison of {c.method_a!r} with itself on item {c.item!r}")
        i, j = index[c.method_a], index[c.method_b]
        wins[i, j] += c.outcome
        wins[j, i] += 1.0 - c.outcome
        games[i, j] += 1
        games[j, i] += 1
    return wins, games


def win_rates(comparisons: Sequence[Comparison], methods: Sequence[str] | None = None
              ) -> tuple[list[str], np.ndarray, np.ndarray]:
    """``(methods, rate, games)``: ``rate[i, j] = (wins of i over j + ties / 2) / games[i, j]`` (NaN where the
    two were never compared, and on the diagonal); ``rate[i, j] + rate[j, i] = 1``."""
    names = _methods(comparisons, methods)
    wins, games = _tallies(comparisons, names)
    with np.errstate(invalid="ignore", divide="ignore"):
        rate = np.where(games > 0, wins / np.maximum(games, 1), np.nan)
    return names, rate, games


@dataclass(frozen=True)
class BradleyTerry:
    methods: list[str]
    strengths: np.ndarray  # p_i > 0, geometric mean 1
    iterations: int
    converged: bool

    @property
    def log_strengths(self) -> np.ndarray:
        return np.log(self.strengths)

    @property
    def ranking(self) -> list[str]:
        return [self.methods[i] for i in np.argsort(-self.strengths, kind="stable")]

    def prob(self, a: str, b: str) -> float:
        """Modelled P(a preferred to b) = p_a / (p_a + p_b)."""
        pa, pb = self.strengths[self.methods.index(a)], self.strengths[self.methods.index(b)]
        return float(pa / (pa + pb))


def bradley_terry(comparisons: Sequence[Comparison], methods: Sequence[str] | None = None, *, prior: float = 0.0,
                  max_iter: int = 10000, tol: float = 1e-10) -> BradleyTerry:
    """Bradley-Terry strengths ``P(i beats j) = p_i / (p_i + p_j)`` by maximum likelihood, with Hunter's MM update

        p_i <- W_i / sum_{j != i} n_ij / (p_i + p_j),

    ``W_i`` = wins of i (a tie counts half a win to each side), ``n_ij`` = comparisons of i and j; after each
    sweep the strengths are rescaled to geometric mean 1; stop when the largest change of ``log p`` is below
    ``tol``. ``prior > 0`` adds ``prior`` virtual ties between every pair (regularises methods that never won
    or never lost). Without a prior, the MLE exists only if every method both wins and loses within the
    comparison graph; a method with no wins (or no comparisons) raises ValueError.
    """
    names = _methods(comparisons, methods)
    n = len(names)
    if n < 2:
        raise ValueError("Bradley-Terry needs at least two methods")
    wins, games = _tallies(comparisons, names)
    if prior > 0:
        off = 1.0 - np.eye(n)
        wins = wins + 0.5 * prior * off  # each virtual tie: half a win to each side
        games = games + prior * off
    total = wins.sum(axis=1)
    if prior <= 0:
        bad = [names[i] for i in range(n) if total[i] <= 0 or (games[i].sum() - total[i]) <= 0]
        if bad:
            raise ValueError(f"methods {bad} never won or never lost, so their Bradley-Terry strength is not finite; "
                             "pass prior > 0 (e.g. 0.5) to regularise")
    p = np.ones(n)
    converged, iterations = False, 0
    while iterations < max_iter and not converged:
        iterations += 1
        denom = (games / (p[:, None] + p[None, :])).sum(axis=1)  # sum_j n_ij / (p_i + p_j)
        new = total / denom
        new = new / np.exp(np.log(new).mean())  # geometric mean 1
        converged = float(np.abs(np.log(new) - np.log(p)).max()) < tol
        p = new
    return BradleyTerry(names, p, iterations, converged)


# ------------------------------------------------------------------------------------------ agreement
LEVELS = ("nominal", "ordinal", "interval", "ratio")


def krippendorff_alpha(data: np.ndarray | Sequence[Sequence[float]], level: str = "interval") -> float:
    """Krippendorff's alpha of a reliability matrix ``data`` (coders x units; NaN = missing).

    Units with fewer than two values are not pairable and dropped. With the coincidence matrix
    ``o_ck = sum_u (number of (c, k) value pairs from different coders in unit u) / (m_u - 1)``,
    ``n_c = sum_k o_ck``, ``n = sum_c n_c``:

        alpha = 1 - D_o / D_e,  D_o = sum_{c,k} o_ck d2(c, k),  D_e = sum_{c,k} n_c n_k d2(c, k) / (n - 1)

    with ``d2`` = nominal: [c != k]; ordinal: ``(sum_{g=c..k} n_g - (n_c + n_k) / 2)^2`` (values ranked);
    interval: ``(c - k)^2``; ratio: ``((c - k) / (c + k))^2``. 1 = perfect agreement, 0 = chance.
    NaN when there is no variation at all (D_e = 0).
    """
    if level not in LEVELS:
        raise ValueError(f"level must be one of {LEVELS}, got {level!r}")
    x = np.asarray(data, dtype=float)
    if x.ndim != 2:
        raise ValueError(f"data must be a (coders, units) matrix, got shape {x.shape}")
    values = np.unique(x[~np.isnan(x)])
    v = len(values)
    if v == 0:
        return math.nan
    index = {val: k for k, val in enumerate(values)}
    o = np.zeros((v, v))
    for u in range(x.shape[1]):
        col = x[:, u]
        col = col[~np.isnan(col)]
        m = col.size
        if m < 2:
            continue
        counts = np.zeros(v)
        for val in col:
            counts[index[val]] += 1
        pairs = np.outer(counts, counts) - np.diag(counts)  # ordered pairs from different coders
        o += pairs / (m - 1)
    n_c = o.sum(axis=1)
    n = n_c.sum()
    if n <= 1:
        return math.nan
    if level == "nominal":
        d2 = 1.0 - np.eye(v)
    elif level == "interval":
        d2 = (values[:, None] - values[None, :]) ** 2
    elif level == "ratio":
        s = values[:, None] + values[None, :]
        with np.errstate(invalid="ignore", divide="ignore"):
            d2 = np.where(s != 0, ((values[:, None] - values[None, :]) / np.where(s != 0, s, 1)) ** 2, 0.0)
    else:  # ordinal
        cum = np.cumsum(n_c)
        d2 = np.zeros((v, v))
        for c in range(v):
            for k in range(v):
                lo, hi = min(c, k), max(c, k)
                between = cum[hi] - (cum[lo - 1] if lo > 0 else 0.0)  # sum_{g=lo..hi} n_g
                d2[c, k] = (between - (n_c[c] + n_c[k]) / 2.0) ** 2
    d_o = (o * d2).sum()
    d_e = (np.outer(n_c, n_c) * d2).sum() / (n - 1)
    if d_e == 0:
        return math.nan
    return float(1.0 - d_o / d_e)


def reliability_matrix(ratings: Iterable[Rating], *, annotators: Sequence[str] | None = None,
                       include_gold: bool = False) -> tuple[np.ndarray, list[str], list[tuple[str, str]]]:
    """(annotators x units) matrix of scores, NaN where an annotator did not rate a unit; a unit is an
    (item, method) edit. Returns (matrix, annotator names, unit keys)."""
    rs = [r for r in ratings if include_gold or r.gold is None]
    names = list(annotators) if annotators is not None else sorted({r.annotator for r in rs})
    units = sorted({(r.item, r.method) for r in rs if r.annotator in names})
    ai = {a: k for k, a in enumerate(names)}
    ui = {u: k for k, u in enumerate(units)}
    mat = np.full((len(names), len(units)), np.nan)
    for r in rs:
        if r.annotator in ai:
            mat[ai[r.annotator], ui[(r.item, r.method)]] = float(r.score)
    return mat, names, units


# ------------------------------------------------------------------------------------------ annotators
@dataclass(frozen=True)
class AnnotatorStats:
    annotator: str
    count: int
    median_seconds: float  # NaN when no timings
    gold_count: int
    gold_accuracy: float  # NaN when no gold items
    too_fast: int


def gold_correct(score: float, expected: float, tolerance: float = 0.0) -> bool:
    """The gold rule: a score on a gold item is right when ``|score - expected| <= tolerance``."""
    return abs(float(score) - float(expected)) <= tolerance + 1e-9


def annotator_stats(ratings: Iterable[Rating], *, too_fast_seconds: float = 2.0,
                    gold_tolerance: float = 0.0) -> dict[str, AnnotatorStats]:
    """Per annotator: ratings given, median seconds per rating, gold accuracy (share of gold items rated within
    ``gold_tolerance`` of the expected score: ``|score - gold| <= tol``), and the number of ratings faster than
    ``too_fast_seconds``."""
    per: dict[str, list[Rating]] = {}
    for r in ratings:
        per.setdefault(r.annotator, []).append(r)
    out = {}
    for a in sorted(per):
        rs = per[a]
        secs = [r.seconds for r in rs if r.seconds is not None]
        gold = [gold_correct(r.score, r.gold, gold_tolerance) for r in rs if r.gold is not None]
        out[a] = AnnotatorStats(a, len(rs), float(np.median(secs)) if secs else math.nan, len(gold),
                                float(np.mean(gold)) if gold else math.nan,
                                sum(s < too_fast_seconds for s in secs))
    return out


def flagged_annotators(stats: Mapping[str, AnnotatorStats], *, min_gold_accuracy: float = 0.75,
                       max_too_fast_share: float = 0.5) -> list[str]:
    """Annotators whose gold accuracy is below ``min_gold_accuracy`` (when they saw gold items) or who rated more
    than ``max_too_fast_share`` of their items too fast."""
    return [a for a, s in stats.items()
            if (s.gold_count and s.gold_accuracy < min_gold_accuracy) or (s.count and s.too_fast / s.count > max_too_fast_share)]


# ------------------------------------------------------------------------------------------- simulator
@dataclass
class SimulatedRatings:
    ratings: list[Rating]
    comparisons: list[Comparison]
    true_quality: dict[str, float]
    good_raters: list[str]
    bad_raters: list[str]
    scale: tuple[int, int]
    settings: dict = field(default_factory=dict)

    @property
    def true_ranking(self) -> list[str]:
        return sorted(self.true_quality, key=lambda m: -self.true_quality[m])


def simulate_ratings(true_quality: Mapping[str, float], *, n_items: int = 40, n_raters: int = 8, n_bad: int = 2,
                     noise: float = 0.12, scale: tuple[int, int] = SCORE_SCALE, gold_fraction: float = 0.1,
                     item_sd: float = 0.1, tie_margin: float = 0.03, seed: int = 0) -> SimulatedRatings:
    """Seeded raters judging methods of known quality ``q_m`` in [0, 1].

    Every item i has a difficulty ``d_i ~ N(0, item_sd)``; method m's edit of it has latent quality
    ``y_mi = clip(q_m + d_i + N(0, 0.05), 0, 1)``. A good rater perceives ``y_mi + N(0, noise)``, gives the
    absolute score ``round(low + perceived * (high - low))`` (clipped to the scale) after a log-normal time
    around 6 s, and, for one random pair of methods per item, prefers the one perceived better (a tie when the
    perceived gap is below ``tie_margin``). A bad rater (``n_bad`` of the ``n_raters``) answers uniformly at
    random in about 1 s. A ``gold_fraction`` of extra items are attention checks whose edit is clearly perfect
    (gold = high) or clearly failed (gold = low).
    """
    if not true_quality or len(true_quality) < 2:
        raise ValueError("true_quality needs at least two methods")
    if not 0 <= n_bad <= n_raters:
        raise ValueError(f"n_bad must be between 0 and n_raters={n_raters}, got {n_bad}")
    rng = np.random.default_rng(seed)
    methods = list(true_quality)
    q = np.array([float(true_quality[m]) for m in methods])
    lo, hi = scale
    raters = [f"rater{k:02d}" for k in range(n_raters)]
    bad = set(raters[n_raters - n_bad:]) if n_bad else set()
    difficulty = rng.normal(0.0, item_sd, size=n_items)
    latent = np.clip(q[:, None] + difficulty[None, :] + rng.normal(0.0, 0.05, size=(len(methods), n_items)), 0, 1)

    def score(perceived: float) -> float:
        return float(np.clip(np.rint(lo + perceived * (hi - lo)), lo, hi))

    ratings: list[Rating] = []
    comparisons: list[Comparison] = []
    n_gold = int(round(gold_fraction * n_items))
    for rater in raters:
        is_bad = rater in bad
        for i in range(n_items):
            item = f"item{i:03d}"
            perceived = latent[:, i] + rng.normal(0.0, noise, size=len(methods))
            for k, m in enumerate(methods):
                secs = float(rng.uniform(0.5, 1.5)) if is_bad else float(rng.lognormal(math.log(6.0), 0.3))
                s = float(rng.integers(lo, hi + 1)) if is_bad else score(perceived[k])
                ratings.append(Rating(item, m, rater, s, secs))
            a, b = rng.choice(len(methods), size=2, replace=False)
            if is_bad:
                outcome = float(rng.choice([0.0, 0.5, 1.0]))
            else:
                gap = perceived[a] - perceived[b]
                outcome = 0.5 if abs(gap) < tie_margin else float(gap > 0)
            comparisons.append(Comparison(item, rater, methods[a], methods[b], outcome))
        for g in range(n_gold):
            expected = float(hi if g % 2 == 0 else lo)
            secs = float(rng.uniform(0.5, 1.5)) if is_bad else float(rng.lognormal(math.log(6.0), 0.3))
            perceived = (1.0 if expected == hi else 0.0) + rng.normal(0.0, noise)
            s = float(rng.integers(lo, hi + 1)) if is_bad else score(float(np.clip(perceived, 0, 1)))
            ratings.append(Rating(f"gold{g:03d}", methods[g % len(methods)], rater, s, secs, gold=expected))
    return SimulatedRatings(ratings, comparisons, dict(true_quality), [r for r in raters if r not in bad], sorted(bad),
                            (lo, hi), {"n_items": n_items, "n_raters": n_raters, "n_bad": n_bad, "noise": noise,
                                       "gold_fraction": gold_fraction, "item_sd": item_sd, "seed": seed})


# -------------------------------------------------------------------------------------------- report
def _f(x: float, pct: bool = False) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "–"
    return f"{x:.1%}" if pct else f"{x:.3f}"


def write_ratings_report(ratings: Sequence[Rating], out_dir: str | os.PathLike, *,
                         comparisons: Sequence[Comparison] | None = None, scale: tuple[float, float] | None = None,
                         level: str = "interval", too_fast_seconds: float = 2.0, gold_tolerance: float = 0.0,
                         true_quality: Mapping[str, float] | None = None, prior: float = 0.5, n_boot: int = 2000,
                         exclude_flagged: bool = True, min_gold_accuracy: float = 0.75, seed: int = 0) -> dict:
    """Write ``report.md`` and PNG plots (Ins-Align with CIs, win-rate heatmap, Bradley-Terry strengths, annotator
    speed vs gold accuracy) to ``out_dir``; returns the numbers. ``comparisons`` default: derived from the
    absolute ratings. With ``exclude_flagged`` the annotators :func:`flagged_annotators` flags are left out of
    every aggregate (they stay in the annotator table). ``true_quality`` (simulations) adds the true ranking."""
    from reasonbrain.evaluation.plots import bar_chart, heatmap, scatter

    out = os.fspath(out_dir)
    os.makedirs(out, exist_ok=True)
    all_ratings = list(ratings)
    stats = annotator_stats(all_ratings, too_fast_seconds=too_fast_seconds, gold_tolerance=gold_tolerance)
    flagged = flagged_annotators(stats, min_gold_accuracy=min_gold_accuracy) if exclude_flagged else []
    ratings = [r for r in all_ratings if r.annotator not in flagged]
    comps = list(comparisons) if comparisons is not None else comparisons_from_ratings(ratings)
    comps = [c for c in comps if c.annotator not in flagged]
    summary = ins_align_summary(ratings, scale=scale, n_boot=n_boot, seed=seed)
    names, rates, games = win_rates(comps)
    bt = bradley_terry(comps, names, prior=prior) if len(names) >= 2 else None
    mat, raters, _ = reliability_matrix(ratings)
    alpha = krippendorff_alpha(mat, level) if mat.size else math.nan
    mat_all, _, _ = reliability_matrix(all_ratings)
    alpha_all = krippendorff_alpha(mat_all, level) if mat_all.size else math.nan

    files = {
        "ins_align": bar_chart(os.path.join(out, "ins_align.png"), list(summary), [s.mean for s in summary.values()],
                               errors=[(s.low, s.high) for s in summary.values()], title="Ins-Align (95% CI)",
                               ylabel="Ins-Align"),
        "win_rates": heatmap(os.path.join(out, "win_rates.png"), rates, names, title="win rate of row over column"),
        "annotators": scatter(os.path.join(out, "annotators.png"), [s.median_seconds for s in stats.values()],
                              [s.gold_accuracy for s in stats.values()], list(stats), title="annotators",
                              xlabel="median seconds per rating", ylabel="gold accuracy"),
    }
    if bt is not None:
        files["bradley_terry"] = bar_chart(os.path.join(out, "bradley_terry.png"), bt.ranking,
                                           [float(bt.log_strengths[names.index(m)]) for m in bt.ranking],
                                           title="Bradley-Terry log-strength", ylabel="log p", highlight=())

    lines = ["# Human evaluation report", "",
             f"{len(all_ratings)} ratings by {len(stats)} annotators, {len(comps)} pairwise comparisons used.",
             f"Flagged and left out: {', '.join(flagged) or 'none'}." if exclude_flagged else "No annotator excluded.", "",
             "## Ins-Align per method", "", "| method | Ins-Align | 95% CI | ratings | items |", "|---|---:|---:|---:|---:|"]
    for s in summary.values():
        lines.append(f"| {s.method} | {_f(s.mean)} | [{_f(s.low)}, {_f(s.high)}] | {s.n_ratings} | {s.n_items} |")
    lines += ["", "![Ins-Align](ins_align.png)", "", "## Pairwise win rates (row over column, ties count half)", "",
              "| | " + " | ".join(names) + " |", "|---|" + "---:|" * len(names)]
    for i, a in enumerate(names):
        lines.append(f"| {a} | " + " | ".join(_f(rates[i, j], pct=True) for j in range(len(names))) + " |")
    lines += ["", "![win rates](win_rates.png)", ""]
    if bt is not None:
        lines += ["## Bradley-Terry ranking", "", f"MM iterations: {bt.iterations} (converged: {bt.converged}), "
                  f"prior {prior} virtual ties per pair.", "", "| rank | method | strength | log-strength |",
                  "|---:|---|---:|---:|"]
        for k, m in enumerate(bt.ranking, 1):
            j = names.index(m)
            lines.append(f"| {k} | {m} | {_f(float(bt.strengths[j]))} | {_f(float(bt.log_strengths[j]))} |")
        lines += ["", "![Bradley-Terry](bradley_terry.png)", ""]
    if true_quality is not None:
        truth = sorted(true_quality, key=lambda m: -true_quality[m])
        lines += [f"True ranking (simulation): {' > '.join(truth)}.", ""]
    lines += ["## Agreement", "", f"Krippendorff's alpha ({level}) over the {len(raters)} annotators kept: {_f(alpha)}; "
              f"over all {len(stats)}: {_f(alpha_all)}.", "",
              "## Annotators", "", "| annotator | ratings | median s | gold | gold accuracy | too fast |",
              "|---|---:|---:|---:|---:|---:|"]
    for s in stats.values():
        lines.append(f"| {s.annotator} | {s.count} | {_f(s.median_seconds)} | {s.gold_count} | "
                     f"{_f(s.gold_accuracy, pct=True)} | {s.too_fast} |")
    lines += ["", f"Too fast: under {too_fast_seconds} s per rating. Gold: |score - expected| <= {gold_tolerance}.", "",
              "![annotators](annotators.png)", ""]
    with open(os.path.join(out, "report.md"), "w", encoding="utf-8") as f:
        f.write("\n".join(lines))
    files["report"] = os.path.join(out, "report.md")
    return {"ins_align": summary, "win_rates": (names, rates, games), "bradley_terry": bt, "alpha": alpha,
            "alpha_all": alpha_all, "annotators": stats, "flagged": flagged, "files": files}
