"""Human-rating aggregation: hand-computed cases, a textbook Krippendorff example, simulated raters, the report."""

from __future__ import annotations

import math

import numpy as np
import pytest

from reasonbrain.evaluation.ratings import (
    LEVELS,
    SCORE_SCALE,
    Comparison,
    Rating,
    annotator_stats,
    bootstrap_ci,
    bradley_terry,
    comparisons_from_ratings,
    flagged_annotators,
    gold_correct,
    ins_align_summary,
    krippendorff_alpha,
    reliability_matrix,
    simulate_ratings,
    win_rates,
    write_ratings_report,
)

TRUE_QUALITY = {"reasonbrain": 0.8, "ultraedit": 0.6, "magicbrush": 0.45, "ip2p": 0.3}


# ------------------------------------------------------------------------------------------ bootstrap
def test_bootstrap_ci_contains_the_mean_and_shrinks_with_n():
    rng = np.random.default_rng(0)
    widths = []
    for n in (20, 200, 2000):
        x = rng.normal(0.6, 0.2, size=n)
        lo, hi = bootstrap_ci(x, n_boot=1000, seed=1)
        assert lo < x.mean() < hi
        widths.append(hi - lo)
    assert widths[0] > widths[1] > widths[2]
    # roughly +-1.96 sd / sqrt(n) at n = 2000
    assert widths[2] == pytest.approx(2 * 1.96 * 0.2 / math.sqrt(2000), rel=0.2)


def test_bootstrap_ci_is_seeded_and_handles_edge_cases():
    x = list(np.random.default_rng(0).normal(size=30))
    assert bootstrap_ci(x, n_boot=200, seed=3) == bootstrap_ci(x, n_boot=200, seed=3)
    assert bootstrap_ci(x, n_boot=200, seed=3) != bootstrap_ci(x, n_boot=200, seed=4)
    assert bootstrap_ci([0.7]) == (0.7, 0.7)
    assert all(math.isnan(v) for v in bootstrap_ci([]))
    lo, hi = bootstrap_ci([1.0, 2.0, 3.0, 10.0], statistic=lambda s: np.median(s, axis=1))
    assert 1.0 <= lo <= hi <= 10.0
    with pytest.raises(ValueError, match="level"):
        bootstrap_ci(x, level=1.5)


def test_ins_align_summary_hand_computed():
    ratings = [
        Rating("i1", "A", "r1", 5), Rating("i1", "A", "r2", 3),  # item mean 4 -> (4 - 1) / 4 = 0.75
        Rating("i2", "A", "r1", 1),  # 0.0
        Rating("i1", "B", "r1", 5), Rating("i2", "B", "r2", 5),  # 1.0
        Rating("g1", "A", "r1", 1, gold=5.0),  # gold: left out
    ]
    s = ins_align_summary(ratings, scale=(1, 5), n_boot=500)
    assert list(s) == ["B", "A"]
    assert s["A"].mean == pytest.approx(0.375) and s["A"].n_items == 2 and s["A"].n_ratings == 3
    assert s["A"].low <= 0.375 <= s["A"].high and 0.0 <= s["A"].low and s["A"].high <= 0.75
    assert s["B"].mean == 1.0 and (s["B"].low, s["B"].high) == (1.0, 1.0)
    assert ins_align_summary(ratings)["B"].mean == 5.0  # no scale: raw scores
    with pytest.raises(ValueError, match="scale"):
        ins_align_summary(ratings, scale=(5, 1))


# ---------------------------------------------------------------------------------------- comparisons
def C(a, b, outcome, item="i", annotator="r"):
    return Comparison(item, annotator, a, b, outcome)


def test_win_rates_count_ties_half():
    comps = [C("A", "B", 1), C("A", "B", 1), C("B", "A", 1), C("A", "B", 0.5), C("B", "C", 0)]
    names, rate, games = win_rates(comps)
    assert names == ["A", "B", "C"]
    assert rate[0, 1] == pytest.approx(2.5 / 4) and rate[1, 0] == pytest.approx(1.5 / 4)
    assert rate[2, 1] == 1.0 and rate[1, 2] == 0.0
    assert math.isnan(rate[0, 2]) and math.isnan(rate[0, 0])
    assert games[0, 1] == 4 and games[0, 2] == 0
    with pytest.raises(ValueError, match="outcome"):
        win_rates([C("A", "B", 2)])
    with pytest.raises(ValueError, match="not in methods"):
        win_rates(comps, methods=["A", "B"])


def test_comparisons_from_ratings():
    ratings = [Rating("i", "A", "r", 4), Rating("i", "B", "r", 2), Rating("i", "C", "r", 4), Rating("j", "A", "r", 1)]
    comps = {(c.method_a, c.method_b): c.outcome for c in comparisons_from_ratings(ratings)}
    assert comps == {("A", "B"): 1.0, ("A", "C"): 0.5, ("B", "C"): 0.0}


def test_bradley_terry_two_players_closed_form():
    bt = bradley_terry([C("A", "B", 1)] * 3 + [C("A", "B", 0)])
    assert bt.converged
    assert bt.strengths[0] / bt.strengths[1] == pytest.approx(3.0, rel=1e-8)
    assert bt.prob("A", "B") == pytest.approx(0.75)
    assert math.prod(bt.strengths) == pytest.approx(1.0)


def test_bradley_terry_three_players_known_solution():
    # counts equal to their expectation under strengths (4, 2, 1): the MLE is exactly (4, 2, 1) up to scale
    comps = ([C("A", "B", 1)] * 2 + [C("A", "B", 0)] + [C("A", "C", 1)] * 4 + [C("A", "C", 0)]
             + [C("B", "C", 1)] * 2 + [C("B", "C", 0)])
    bt = bradley_terry(comps)
    np.testing.assert_allclose(bt.strengths / bt.strengths[2], [4.0, 2.0, 1.0], rtol=1e-7)
    assert bt.ranking == ["A", "B", "C"]


def test_bradley_terry_ties_and_prior():
    # a tie is half a win each: A 1 win + 2 ties vs B -> W_A = 2, W_B = 1 -> p_A / p_B = 2
    bt = bradley_terry([C("A", "B", 1), C("A", "B", 0.5), C("B", "A", 0.5)])
    assert bt.strengths[0] / bt.strengths[1] == pytest.approx(2.0, rel=1e-8)
    never = [C("A", "B", 1), C("B", "A", 1), C("A", "Z", 1), C("B", "Z", 1)]
    with pytest.raises(ValueError, match="Z"):
        bradley_terry(never)
    reg = bradley_terry(never, prior=0.5)
    assert reg.ranking[-1] == "Z" and np.all(np.isfinite(reg.strengths))
    with pytest.raises(ValueError, match="two methods"):
        bradley_terry([], methods=["A"])


# ------------------------------------------------------------------------------------------ agreement
NAN = math.nan
# Krippendorff (2011), "Computing Krippendorff's alpha-reliability", the 4 observers x 12 units example
KRIPPENDORFF_EXAMPLE = [
    [1, 2, 3, 3, 2, 1, 4, 1, 2, NAN, NAN, NAN],
    [1, 2, 3, 3, 2, 2, 4, 1, 2, 5, NAN, 3],
    [NAN, 3, 3, 3, 2, 3, 4, 2, 2, 5, 1, NAN],
    [1, 2, 3, 3, 2, 4, 4, 1, 2, 5, 1, NAN],
]


@pytest.mark.parametrize(("level", "expected"), [("nominal", 0.743), ("ordinal", 0.815), ("interval", 0.849),
                                                 ("ratio", 0.797)])
def test_krippendorff_alpha_textbook_example(level, expected):
    assert krippendorff_alpha(KRIPPENDORFF_EXAMPLE, level) == pytest.approx(expected, abs=5e-4)


def test_krippendorff_alpha_hand_cases():
    # two coders in complete disagreement on two units: o_12 = o_21 = 2, n_c = (2, 2), n = 4
    # D_o = 4, D_e = (2*2 + 2*2) / 3 -> alpha = 1 - 4 / (8/3) = -0.5
    assert krippendorff_alpha([[1, 2], [2, 1]], "nominal") == pytest.approx(-0.5)
    assert krippendorff_alpha([[1, 2], [2, 1]], "interval") == pytest.approx(-0.5)
    for level in LEVELS:
        assert krippendorff_alpha([[1, 2, 3], [1, 2, 3]], level) == pytest.approx(1.0)
    assert math.isnan(krippendorff_alpha([[2, 2], [2, 2]]))  # no variation: undefined
    # a unit rated by a single coder is not pairable and changes nothing
    base = krippendorff_alpha(KRIPPENDORFF_EXAMPLE, "interval")
    extra = [row + [v] for row, v in zip(KRIPPENDORFF_EXAMPLE, [1, NAN, NAN, NAN])]
    assert krippendorff_alpha(extra, "interval") == pytest.approx(base)
    with pytest.raises(ValueError, match="level"):
        krippendorff_alpha([[1, 2]], "cosine")


def test_reliability_matrix():
    ratings = [Rating("i", "A", "r1", 3), Rating("i", "A", "r2", 4), Rating("j", "A", "r2", 1),
               Rating("g", "A", "r1", 5, gold=5)]
    mat, names, units = reliability_matrix(ratings)
    assert names == ["r1", "r2"] and units == [("i", "A"), ("j", "A")]
    np.testing.assert_array_equal(np.nan_to_num(mat, nan=-1), [[3, -1], [4, 1]])


def test_annotator_stats_hand_computed():
    ratings = [
        Rating("i1", "A", "fast", 3, seconds=1.0), Rating("i2", "A", "fast", 3, seconds=3.0),
        Rating("g1", "A", "fast", 1, seconds=10.0, gold=5.0), Rating("g2", "A", "fast", 5, seconds=0.5, gold=5.0),
        Rating("i1", "A", "slow", 4, seconds=8.0),
        Rating("i2", "A", "untimed", 2),
    ]
    s = annotator_stats(ratings, too_fast_seconds=2.0)
    assert s["fast"].count == 4 and s["fast"].median_seconds == pytest.approx(2.0)  # median of 0.5, 1, 3, 10
    assert s["fast"].gold_count == 2 and s["fast"].gold_accuracy == 0.5 and s["fast"].too_fast == 2
    assert s["slow"].too_fast == 0 and math.isnan(s["slow"].gold_accuracy)
    assert math.isnan(s["untimed"].median_seconds)
    assert annotator_stats(ratings, gold_tolerance=4.0)["fast"].gold_accuracy == 1.0
    assert flagged_annotators(s) == ["fast"]


def test_gold_rule_is_the_distance_to_the_expected_score():
    assert gold_correct(4, 5.0, 1.0) and gold_correct(5, 5.0) and not gold_correct(3, 5.0, 1.0)
    assert gold_correct(2.0, 1.0, 1.0) and not gold_correct(2, 1.0)
    ratings = [Rating("g1", "A", "r", 4, gold=5.0), Rating("g2", "A", "r", 3, gold=1.0)]
    stats = annotator_stats(ratings, gold_tolerance=1.0)["r"]
    assert stats.gold_accuracy == np.mean([gold_correct(r.score, r.gold, 1.0) for r in ratings]) == 0.5


# ------------------------------------------------------------------------------------------ simulator
@pytest.fixture(scope="module")
def sim():
    return simulate_ratings(TRUE_QUALITY, n_items=40, n_raters=8, n_bad=2, seed=1)


def test_simulator_is_seeded(sim):
    again = simulate_ratings(TRUE_QUALITY, n_items=40, n_raters=8, n_bad=2, seed=1)
    assert again.ratings == sim.ratings and again.comparisons == sim.comparisons
    assert simulate_ratings(TRUE_QUALITY, n_items=40, seed=2).ratings != sim.ratings
    assert len(sim.bad_raters) == 2 and len(sim.good_raters) == 6
    assert all(1 <= r.score <= 5 for r in sim.ratings) and sim.scale == SCORE_SCALE == (1, 5)


def test_simulated_raters_recover_the_true_ranking(sim):
    truth = sim.true_ranking
    assert list(ins_align_summary(sim.ratings, scale=sim.scale, n_boot=300)) == truth
    assert bradley_terry(sim.comparisons).ranking == truth
    assert bradley_terry(comparisons_from_ratings(sim.ratings)).ranking == truth
    names, rate, _ = win_rates(sim.comparisons)
    best, worst = names.index(truth[0]), names.index(truth[-1])
    assert rate[best, worst] > 0.7


def test_alpha_is_higher_for_good_raters_than_for_noisy_ones(sim):
    good, _, _ = reliability_matrix(sim.ratings, annotators=sim.good_raters)
    bad, _, _ = reliability_matrix(sim.ratings, annotators=sim.bad_raters)
    a_good, a_bad = krippendorff_alpha(good, "interval"), krippendorff_alpha(bad, "interval")
    assert a_good > 0.5 and abs(a_bad) < 0.2 and a_good > a_bad
    calm = simulate_ratings(TRUE_QUALITY, n_items=30, n_raters=4, n_bad=0, noise=0.05, seed=3)
    noisy = simulate_ratings(TRUE_QUALITY, n_items=30, n_raters=4, n_bad=0, noise=0.4, seed=3)
    alphas = [krippendorff_alpha(reliability_matrix(s.ratings)[0], "ordinal") for s in (calm, noisy)]
    assert alphas[0] > alphas[1]


def test_bad_raters_are_flagged_by_speed_and_gold(sim):
    stats = annotator_stats(sim.ratings, gold_tolerance=1.0)
    assert sorted(flagged_annotators(stats)) == sim.bad_raters
    for r in sim.good_raters:
        assert stats[r].median_seconds > 3 and stats[r].gold_accuracy >= 0.75 and stats[r].too_fast == 0


def test_ratings_report_writes_markdown_and_plots(tmp_path, sim):
    result = write_ratings_report(sim.ratings, tmp_path / "report", comparisons=sim.comparisons, scale=sim.scale,
                                  true_quality=sim.true_quality, gold_tolerance=1.0, n_boot=200)
    assert sorted(result["flagged"]) == sim.bad_raters
    assert result["alpha"] > result["alpha_all"]
    assert result["bradley_terry"].ranking == sim.true_ranking
    md = (tmp_path / "report" / "report.md").read_text()
    for needle in ("Ins-Align", "Bradley-Terry", "Krippendorff", "reasonbrain > ultraedit > magicbrush > ip2p",
                   "rater07", "ins_align.png"):
        assert needle in md
    for name in ("ins_align.png", "win_rates.png", "bradley_terry.png", "annotators.png"):
        assert (tmp_path / "report" / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
