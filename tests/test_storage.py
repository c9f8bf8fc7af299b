"""The parts both stores share: one image-path validator, one gold rule, one score scale."""

from __future__ import annotations

import os

import numpy as np
import PIL.Image
import pytest

from app import rating_results
from app import ratings_store as rs
from app.storage.rating_models import KIND_IDENTITY, KIND_REFERENCE
from app.store import Store
from reasonbrain.evaluation import ratings as agg

LOW, HIGH = agg.SCORE_SCALE
ANNOTATOR = "local:ann"


def picture(seed: int) -> PIL.Image.Image:
    return PIL.Image.fromarray(np.random.default_rng(seed).integers(0, 255, (24, 32, 3), dtype=np.uint8))


@pytest.fixture
def stores(tmp_path):
    store = Store(str(tmp_path / "studio.db"), str(tmp_path / "data"))
    settings = rs.RatingSettings(annotators_file=str(tmp_path / "annotators.json"), min_seconds=0.0,
                                 overlap_fraction=0.0, gold_fraction=0.0)
    yield store, rs.RatingStore(store, settings)
    store.close()


def validator(stores, which: str):
    """(folder name, folder path, the store's image_path) of the history or the ratings store."""
    store, ratings = stores
    if which == "history":
        return "images", store.images_dir, store.image_path
    return rs.IMAGES_DIR, ratings.images_dir, ratings.image_path


# --- one path validator, for both stores ---------------------------------------------------------------------------
@pytest.mark.parametrize("which", ["history", "ratings"])
@pytest.mark.parametrize("rel", [
    "{d}/../studio.db", "{d}/ab/../../studio.db", "../x", "{d}/./ab/x.png", "{d}//x.png", "{d}", "",
    "other/ab/x.png", "{d}\\..\\studio.db", "/etc/passwd", "{abs}/ab/x.png",
])
def test_both_stores_refuse_paths_out_of_their_folder(stores, which, rel):
    name, folder, image_path = validator(stores, which)
    with pytest.raises(ValueError):
        image_path(rel.format(d=name, abs=folder))


@pytest.mark.parametrize("which", ["history", "ratings"])
def test_both_stores_refuse_a_symlink_out_of_their_folder(stores, which, tmp_path):
    name, folder, image_path = validator(stores, which)
    outside = tmp_path / "outside"
    outside.mkdir(exist_ok=True)
    (outside / "secret.png").write_bytes(b"x")
    os.symlink(outside, os.path.join(folder, "zz"))  # a shard folder that leads out
    os.makedirs(os.path.join(folder, "ab"))
    os.symlink(outside / "secret.png", os.path.join(folder, "ab", "link.png"))  # a file that leads out
    for rel in (f"{name}/zz/secret.png", f"{name}/ab/link.png"):
        with pytest.raises(ValueError, match="symlink"):
            image_path(rel)
    ok = f"{name}/ab/{'0' * 64}.png"
    assert image_path(ok) == os.path.join(os.path.dirname(folder), name, "ab", f"{'0' * 64}.png")


def test_rating_images_are_stored_in_their_validated_folder(stores):
    _, ratings = stores
    ratings.add_output(method="m", source=picture(1), output=picture(2), instruction="What if?")
    ratings.sync_tasks()
    item = ratings.next_item(ANNOTATOR, "absolute")
    assert os.path.isfile(item.source_image) and item.images[0].startswith(ratings.images_dir + os.sep)


# --- one gold rule, one score scale ----------------------------------------------------------------------------------
def rate_all(ratings: rs.RatingStore, score_of) -> None:
    """Rate every absolute item of ANNOTATOR with ``score_of(method)`` (Ins-Align; other criteria mid-scale)."""
    while (item := ratings.next_item(ANNOTATOR, "absolute")) is not None:
        with ratings.store.transaction() as s:
            task = s.get(rs.RatingAssignmentRow, item.assignment_id).task_id
        method = ratings.task_methods(task)[0]
        ratings.rate_absolute(ANNOTATOR, item.assignment_id, ins_align=score_of(method), consistency=3,
                              plausibility=3)


def test_gold_answers_are_scored_by_one_rule(stores):
    """Every score on the scale, on reference and identity gold items: the ratings store's ``gold_correct`` and the
    library's rule behind the results' annotator stats agree, and give the gold items' documented answers."""
    _, ratings = stores
    scores = {KIND_REFERENCE: iter(range(LOW, HIGH + 1)), KIND_IDENTITY: iter(range(LOW, HIGH + 1))}
    n = HIGH - LOW + 1
    for i in range(n):  # gold only: reference and identity outputs of n prompts
        source, text = picture(100 + i), f"What would happen if object {i} melted?"
        ratings.add_output(method=rs.REFERENCE_METHOD, kind=KIND_REFERENCE, source=source, output=picture(i),
                           instruction=text)
        ratings.add_output(method=rs.IDENTITY_METHOD, kind=KIND_IDENTITY, source=source, output=source,
                           instruction=text)
    ratings.sync_tasks()
    kind_of = {rs.REFERENCE_METHOD: KIND_REFERENCE, rs.IDENTITY_METHOD: KIND_IDENTITY}
    rate_all(ratings, lambda method: next(scores[kind_of[method]]))

    records = [r for r in ratings.records() if r["mode"] == "absolute"]
    assert len(records) == 2 * n and all(r["gold"] for r in records)
    for r in records:
        expected_right = r["ins_align"] >= HIGH - 1 if r["kind"] == KIND_REFERENCE else r["ins_align"] <= LOW + 1
        assert r["gold_correct"] is expected_right, r
        rating = rating_results.to_ratings([r])[0]
        assert rating.gold == (HIGH if r["kind"] == KIND_REFERENCE else LOW)
        assert agg.gold_correct(rating.score, rating.gold, rs.GOLD_TOLERANCE) is expected_right
        stats = agg.annotator_stats([rating], gold_tolerance=rs.GOLD_TOLERANCE)[ANNOTATOR]
        assert stats.gold_accuracy == float(expected_right)
    assert rs.gold_answer(KIND_REFERENCE) == {"ins_align": [HIGH - 1, HIGH]}  # what the tasks store
    assert rs.gold_answer(KIND_IDENTITY) == {"ins_align": [LOW, LOW + 1]} and rs.gold_answer("method") is None


def test_one_score_scale_for_rating_and_results(stores):
    _, ratings = stores
    assert rs.SCORE_SCALE is agg.SCORE_SCALE and not hasattr(rating_results, "SCALE")
    for i in range(3):
        ratings.add_output(method="alpha-edit", source=picture(200 + i), output=picture(300 + i),
                           instruction=f"What if {i}?")
    ratings.sync_tasks()
    item = ratings.next_item(ANNOTATOR, "absolute")
    for bad in (LOW - 1, HIGH + 1):
        with pytest.raises(ValueError, match=f"from {LOW} to {HIGH}"):
            ratings.rate_absolute(ANNOTATOR, item.assignment_id, ins_align=bad, consistency=3, plausibility=3)
    rate_all(ratings, lambda method: HIGH)  # the top of the scale everywhere -> Ins-Align 1.0 in the results
    res = rating_results.compute(ratings.records(), min_seconds=0.0, n_boot=50)
    assert [row[:2] for row in res.methods] == [["alpha-edit", 1.0]]
    assert f"mean {LOW}–{HIGH} score" in res.summary
