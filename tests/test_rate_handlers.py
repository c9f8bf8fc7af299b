"""The Rate mode without a browser: imports, blind per-annotator queues, gold and overlap, timing, skip / flag /
undo, sign-in, isolation between annotators, results and exports (a real Store in a temp folder; no model)."""

from __future__ import annotations

import io
import json
import os
import stat
from collections import Counter
from datetime import datetime, timedelta, timezone
from pathlib import Path

import gradio as gr
import numpy as np
import PIL.Image
import PIL.PngImagePlugin
import pytest
from sqlalchemy import update

from app import annotators, rating_results
from app.annotators import AnnotatorDirectory, hash_password, verify_password
from app.ratings_store import RatingAssignmentRow, RatingSettings, RatingStore, prompt_key
from app.store import NotFound, Store
from app.tabs import rate

PASSWORD = "correct horse battery"
METHODS = ("alpha-edit", "beta-edit", "gamma-edit")


# ----------------------------------------------------------------------------------------------------------------
# Fixtures and helpers (also used by the gradio_client and browser tests)
# ----------------------------------------------------------------------------------------------------------------
def picture(seed: int, size: tuple[int, int] = (64, 48)) -> PIL.Image.Image:
    rng = np.random.default_rng(seed)
    return PIL.Image.fromarray(rng.integers(0, 255, size=(size[1], size[0], 3), dtype=np.uint8))


def write_reason50k(folder: Path, n: int, *, seed: int = 0, name: str = "val.jsonl") -> Path:
    """A Reason50K-format jsonl with ``n`` records (sources and targets as PNGs next to it)."""
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / name, "w", encoding="utf-8") as f:
        for i in range(n):
            picture(1000 + i).save(folder / f"src{i}.png")
            picture(seed * 100 + i).save(folder / f"tgt{i}.png")
            f.write(json.dumps({"id": f"r{i}", "category": ["physical", "temporal"][i % 2],
                                "src_image": f"src{i}.png", "tgt_image": f"tgt{i}.png",
                                "instruction": f"What would happen if object {i} were left in the sun?"}) + "\n")
    return folder / name


def seed_study(ratings: RatingStore, n_prompts: int = 6, methods: tuple[str, ...] = METHODS,
               reference: bool = False, size: tuple[int, int] = (64, 48)) -> None:
    """``methods`` x ``n_prompts`` outputs (and optionally ground truth + identity gold), tasks synced."""
    for i in range(n_prompts):
        source = picture(1000 + i, size)
        text = f"What would happen if object {i} were left in the sun?"
        for k, m in enumerate(methods):
            ratings.add_output(method=m, source=source, output=picture(10 * i + k, size), instruction=text,
                               record_id=f"r{i}")
        if reference:
            ratings.add_output(method="reference (ground truth)", kind="reference", source=source,
                               output=picture(777 + i), instruction=text, record_id=f"r{i}")
            ratings.add_output(method="identity (unchanged source)", kind="identity", source=source, output=source,
                               instruction=text, record_id=f"r{i}")
    ratings.sync_tasks()


def make_ratings(tmp_path: Path, **settings) -> RatingStore:
    store = Store(str(tmp_path / "db.sqlite"), str(tmp_path / "data"))
    defaults = {"annotators_file": str(tmp_path / "annotators.json"), "min_seconds": 1.0,
                "overlap_fraction": 0.0, "gold_fraction": 0.0}
    return RatingStore(store, RatingSettings(**{**defaults, **settings}))


def shown_ago(ratings: RatingStore, assignment_id: str, seconds: float) -> None:
    """Pretend the item was put on screen ``seconds`` ago (instead of sleeping)."""
    with ratings.store.transaction(write=True) as s:
        row = s.get(RatingAssignmentRow, assignment_id)
        s.execute(update(RatingAssignmentRow).where(RatingAssignmentRow.id == assignment_id)
                  .values(shown_at=row.shown_at - timedelta(seconds=seconds)))


@pytest.fixture
def study(tmp_path):
    ratings = make_ratings(tmp_path)
    seed_study(ratings)
    yield ratings
    ratings.store.close()


@pytest.fixture
def ctx(tmp_path):
    ratings = make_ratings(tmp_path, batch_size=6)  # small batches: everyone gets items
    seed_study(ratings)
    directory = AnnotatorDirectory(ratings.settings.annotators_file)
    directory.add("alice", PASSWORD, admin=True)
    directory.add("bob", PASSWORD)
    yield rate.RateContext(ratings, directory)
    ratings.store.close()


# ----------------------------------------------------------------------------------------------------------------
# Importing outputs and building tasks
# ----------------------------------------------------------------------------------------------------------------
def test_import_formats_gold_and_blinding_of_images(tmp_path):
    ratings = make_ratings(tmp_path)
    records = write_reason50k(tmp_path / "bench", 3)
    # method 1: its own Reason50K jsonl (tgt_image = its output), with a PNG text chunk naming it, at 2x size
    m1 = tmp_path / "m1"
    write_reason50k(m1, 3, seed=5)
    info = PIL.PngImagePlugin.PngInfo()
    info.add_text("parameters", "made by alpha-edit")
    picture(500, (128, 96)).save(m1 / "tgt0.png", pnginfo=info)
    report = ratings.import_method_folder("alpha-edit", str(m1))
    assert (report.added, report.existing, report.skipped) == (3, 0, [])
    # method 2: outputs named by record id, answering the benchmark's records (one missing)
    m2 = tmp_path / "m2"
    m2.mkdir()
    for i in (0, 2):
        picture(600 + i).save(m2 / f"r{i}.png")
    report = ratings.import_method_folder("beta-edit", str(m2), records=str(records))
    assert report.added == 2 and len(report.skipped) == 1 and "r1" in report.skipped[0]
    assert ratings.import_method_folder("beta-edit", str(m2), records=str(records)).existing == 2  # idempotent
    # the benchmark's targets as ground truth: reference + identity outputs, gold tasks
    assert ratings.import_method_folder("ignored", str(tmp_path / "bench"), reference=True).added == 6
    with pytest.raises(ValueError, match="holds 0 .jsonl files"):
        ratings.import_method_folder("x", str(m2))

    counts = ratings.counts()
    assert counts["outputs"] == 3 + 2 + 6
    # absolute: every output; pairwise: alpha vs beta on the 2 prompts both answered + reference vs identity x 3
    with ratings.store.transaction() as s:
        from sqlalchemy import select

        from app.ratings_store import RatingOutputRow, RatingTaskRow

        tasks = s.execute(select(RatingTaskRow)).scalars().all()
        outputs = s.execute(select(RatingOutputRow)).scalars().all()
    by_mode = Counter((t.mode, t.is_gold) for t in tasks)
    assert by_mode == {("absolute", False): 5, ("absolute", True): 6, ("pairwise", False): 2, ("pairwise", True): 3}
    # the same prompt meets across formats: the key is the pixels + the instruction
    keys = {o.prompt_key for o in outputs}
    assert len(keys) == 3
    src = PIL.Image.open(tmp_path / "bench" / "src0.png")
    assert prompt_key(src, "What would happen if object 0 were  LEFT in the sun?") in keys
    # images are re-encoded without metadata, at the source's size, named by content only
    for o in outputs:
        path = ratings.image_path(o.output_image)
        with PIL.Image.open(path) as im:
            assert im.size == (64, 48) and "parameters" not in im.info
        assert os.path.basename(path)[:-4] == Path(path).parent.name + os.path.basename(path)[2:-4]
        assert "alpha" not in path and "beta" not in path


def test_import_of_an_evaluate_folder_names_the_method_and_stays_blind(tmp_path, capsys):
    from reasonbrain.evaluation.method_record import MethodRecord

    records = write_reason50k(tmp_path / "bench", 3)
    run = tmp_path / "eval-rte"  # what `python -m reasonbrain evaluate --method reason_then_edit` writes
    (run / "edits").mkdir(parents=True)
    for i in range(3):
        picture(700 + i).save(run / "edits" / f"r{i}.png")
    MethodRecord(method="reason_then_edit", model="reasonbrain-3b", records=str(records)).save(run)
    ratings = make_ratings(tmp_path)
    assert ratings.import_method_folder(None, str(run)).added == 3
    name = "reason_then_edit (reasonbrain-3b)"
    item = ratings.next_item("local:alice", "absolute")
    assert {ratings.task_methods(t)[0] for t, _ in ratings.queue("local:alice", "absolute")} == {name}
    assert "reason_then_edit" not in repr(item) and "reasonbrain-3b" not in repr(item)  # blind
    # a typed name overrides the record's; records named here override its records
    assert ratings.import_method_folder("my-rte", str(run / "edits"), records=str(records)).added == 3
    assert ratings.counts()["outputs"] == 6
    MethodRecord(method="plain_editor", model="reasonbrain-3b", records=str(tmp_path / "gone.jsonl")).save(run)
    with pytest.raises(ValueError, match="gone.jsonl.*--records"):
        ratings.import_method_folder(None, str(run))
    bare = tmp_path / "bare"
    bare.mkdir()
    picture(1).save(bare / "r0.png")
    with pytest.raises(ValueError, match=r"name the method \(--name\)"):
        ratings.import_method_folder(None, str(bare), records=str(records))
    ratings.store.close()
    # the admin's command line: no --name for such a folder
    MethodRecord(method="plain_editor", model="reasonbrain-3b", records=str(records)).save(run)
    base = ["--data-dir", str(tmp_path / "cli")]
    assert annotators.main([*base, "import-method", "--folder", str(run)]) == 0
    assert "imported 3 output(s)" in capsys.readouterr().out
    assert annotators.main([*base, "import-method", "--folder", str(bare), "--records", str(records)]) == 2
    assert "--name" in capsys.readouterr().err


def test_import_steps_from_the_history_store(tmp_path):
    ratings = make_ratings(tmp_path)
    store = ratings.store
    chain = store.create_chain("user-1", picture(1))
    step = store.add_step("user-1", chain.id, None, instruction="What if it rained?", input_image=chain.source_image,
                          output_image=picture(2), seed=1, settings={}, preset="tiny", checkpoint_hash="abcdef0123",
                          timings={}, details={})
    store.add_step("user-1", chain.id, step.id, instruction="And then froze?", input_image=step.output_image,
                   output_image=picture(3), seed=1, settings={}, preset="tiny", checkpoint_hash="abcdef0123",
                   timings={}, details={})
    other = store.create_chain("user-2", picture(4))
    store.add_step("user-2", other.id, None, instruction="What if?", input_image=other.source_image,
                   output_image=picture(5), seed=1, settings={}, preset="tiny", checkpoint_hash="abcdef0123",
                   timings={}, details={})
    report = ratings.import_steps(user_ids=["user-1"])
    assert report.added == 2 and ratings.counts()["tasks"] == 2
    records_methods = {m for t, _ in ratings.queue("local:x", "absolute") for m in ratings.task_methods(t)}
    assert records_methods == set()  # nothing assigned before anyone asks
    item = ratings.next_item("local:x", "absolute")
    assert ratings.task_methods(ratings.queue("local:x", "absolute")[0][0])[0] == "ReasonBrain tiny @abcdef01"
    # the rating copy survives the user deleting the chain (the history GC does not see rating images)
    store.delete_chain("user-1", chain.id)
    assert os.path.isfile(item.images[0]) and os.path.isfile(item.source_image)
    assert ratings.import_steps().added == 1  # user-2's edit; user-1's chain is gone


def test_import_reference_from_a_synthworld_folder_takes_the_test_split(tmp_path, capsys):
    """The folder ``python -m reasonbrain synthworld`` writes (train / val / test / chains .jsonl) imports its test
    split by default; --split picks another; a split that is not there says which ones are."""
    from reasonbrain.synthworld import cli as synth_cli

    synth = tmp_path / "synth"
    assert synth_cli.main(["--n", "20", "--chains", "1", "--out", str(synth), "--workers", "1", "--no-progress",
                           "--split-fractions", "0.5", "0.2", "0.3"]) == 0
    n_test = sum(1 for line in (synth / "test.jsonl").read_text().splitlines() if line.strip())
    n_val = sum(1 for line in (synth / "val.jsonl").read_text().splitlines() if line.strip())
    assert n_test and n_val and n_test != n_val
    base = ["--data-dir", str(tmp_path / "data")]
    assert annotators.main([*base, "import-reference", "--folder", str(synth)]) == 0
    assert f"imported {2 * n_test} output(s)" in capsys.readouterr().out  # ground truth + unchanged source each
    assert annotators.main([*base, "import-reference", "--folder", str(synth), "--split", "val"]) == 0
    assert f"imported {2 * n_val} output(s)" in capsys.readouterr().out
    assert annotators.main([*base, "import-reference", "--folder", str(synth), "--split", "dev"]) == 2
    err = capsys.readouterr().err
    assert "no dev.jsonl" in err and "test.jsonl" in err and "Traceback" not in err


def test_import_steps_accepts_the_badge_short_id(tmp_path, capsys):
    """The app's badge shows the first 8 characters of the browser's id: --user takes them (or the full id), and
    an id that matches nobody says how to list the users."""
    data = tmp_path / "data"
    store = Store(str(data / "studio.db"), str(data))
    user = "7d5ebd50-1f2e-4c3b-9a8d-0123456789ab"
    chain = store.create_chain(user, picture(1))
    store.add_step(user, chain.id, None, instruction="What if it rained?", input_image=chain.source_image,
                   output_image=picture(2), seed=1, settings={}, preset="tiny", checkpoint_hash="abcdef0123",
                   timings={}, details={})
    other = store.create_chain("7d5e0000-0000-4000-8000-000000000000", picture(3))
    store.close()
    base = ["--data-dir", str(data)]
    assert annotators.main([*base, "users"]) == 0
    assert f"{user}  1 chain(s), 1 step(s)" in capsys.readouterr().out
    assert annotators.main([*base, "import-steps", "--user", user[:8]]) == 0
    out = capsys.readouterr().out
    assert f"imported 1 step(s) of {user}" in out
    assert annotators.main([*base, "import-steps", "--user", "deadbeef"]) == 2
    assert "python -m app.annotators users" in capsys.readouterr().err
    assert annotators.main([*base, "import-steps", "--user", "7d5e"]) == 2  # two ids start so
    assert "give more characters" in capsys.readouterr().err
    assert annotators.main([*base, "import-steps", "--user", other.user_id]) == 0  # a chain without steps
    assert "no saved edits there" in capsys.readouterr().out


# ----------------------------------------------------------------------------------------------------------------
# Queues: blind, randomised per annotator, stable
# ----------------------------------------------------------------------------------------------------------------
def test_queues_are_shuffled_per_annotator_and_stable(tmp_path):
    ratings = make_ratings(tmp_path, overlap_fraction=1.0, overlap_annotators=0)  # everyone sees everything
    seed_study(ratings, n_prompts=8)
    for mode in ("absolute", "pairwise"):
        a_item = ratings.next_item("local:alice", mode)
        b_item = ratings.next_item("local:bob", mode)
        qa, qb = ratings.queue("local:alice", mode), ratings.queue("local:bob", mode)
        assert sorted(qa) != qa or sorted(qb) != qb
        assert {t for t, _ in qa} == {t for t, _ in qb} and len(qa) == 24  # 8 prompts x 3 methods / 3 pairs
        assert [t for t, _ in qa] != [t for t, _ in qb]  # different order
        if mode == "pairwise":
            sides_a = dict(qa)
            sides_b = dict(qb)
            assert any(sides_a[t] != sides_b[t] for t in sides_a)  # different left/right per annotator
            assert 0.2 < np.mean(list(sides_a.values())) < 0.8
        # stable: asking again (a reload), or a new RatingStore on the same database, gives the same
        again = RatingStore(ratings.store, ratings.settings)
        assert again.next_item("local:alice", mode).assignment_id == a_item.assignment_id
        assert again.queue("local:alice", mode) == qa and again.queue("local:bob", mode) == qb
        assert b_item.assignment_id != a_item.assignment_id
    # blind: nothing the annotator receives names a method
    item = ratings.next_item("local:alice", "pairwise")
    assert not any(m in repr(item) for m in METHODS)
    # the screen sides follow the stored swap
    task_id, swapped = ratings.queue("local:alice", "pairwise")[0]
    a, b = ratings.task_methods(task_id)
    ratings.rate_pairwise("local:alice", item.assignment_id, "left")
    (record,) = [r for r in ratings.records() if r["mode"] == "pairwise"]
    assert record["winner"] == (b if swapped else a) and record["choice"] == ("b" if swapped else "a")


def test_seeded_order_is_the_same_for_the_same_annotator_on_another_database(tmp_path):
    """Order derives from (study seed, annotator, task content): the same data imported twice orders alike."""
    orders = []
    for sub in ("one", "two"):
        ratings = make_ratings(tmp_path / sub, overlap_fraction=1.0, overlap_annotators=0)
        seed_study(ratings, n_prompts=5)
        ratings.next_item("local:alice", "absolute")
        orders.append([ratings.task_methods(t) for t, _ in ratings.queue("local:alice", "absolute")])
        ratings.store.close()
    assert len(orders[0]) == 15 and orders[0] == orders[1] and orders[0] != sorted(orders[0])


def test_overlap_share_and_gold_items(tmp_path):
    ratings = make_ratings(tmp_path, overlap_fraction=0.3, overlap_annotators=2, gold_fraction=0.2, batch_size=10)
    seed_study(ratings, n_prompts=20, methods=("alpha-edit",), reference=True)
    people = ["local:a1", "local:a2", "local:a3"]
    for _ in range(4):  # in turns, each works through one batch (skipping keeps the items theirs)
        for p in people:
            item = ratings.next_item(p, "absolute")  # claims a batch when the last one is used up
            for j in range(ratings.progress(p, "absolute").pending):
                item = item if j == 0 else ratings.next_item(p, "absolute")
                ratings.skip(p, item.assignment_id)
    with ratings.store.transaction() as s:
        from sqlalchemy import select

        from app.ratings_store import RatingTaskRow

        rows = s.execute(select(RatingAssignmentRow.annotator, RatingAssignmentRow.task_id,
                                RatingTaskRow.is_gold, RatingAssignmentRow.overlap).join(RatingTaskRow)
                         .where(RatingTaskRow.mode == "absolute")).all()
    per_task = Counter(t for _, t, gold, _ in rows if not gold)
    overlap = {t for _, t, gold, is_overlap in rows if is_overlap and not gold}
    assert 2 <= len(overlap) <= 12  # ~30% of 20 (a stable hash, not an exact count)
    assert all(per_task[t] == 1 for t in per_task if t not in overlap)  # regular items: one annotator each
    assert all(1 <= per_task[t] <= 2 for t in overlap) and any(per_task[t] == 2 for t in overlap)
    assert len(per_task) == 20  # every regular item handed out
    gold_per_person = Counter(a for a, _, gold, _ in rows if gold)
    assert set(gold_per_person) == set(people)  # everyone gets attention checks
    assert ratings.next_item("local:a4", "absolute") is None  # nothing left to claim: no queue of gold alone
    # gold answers are scored: the unchanged source must get Ins-Align <= 2, the ground truth >= 4
    p = people[0]
    while (item := ratings.next_item(p, "absolute")) is not None:  # the skipped items come back
        method = ratings.task_methods(task_of(ratings, item.assignment_id))[0]
        score = 5 if method.startswith("reference") else 1 if method.startswith("identity") else 3
        ratings.rate_absolute(p, item.assignment_id, ins_align=score, consistency=3, plausibility=3)
    gold = [r for r in ratings.records() if r["annotator"] == p and r["gold"]]
    assert len(gold) == gold_per_person[p] and all(r["gold_correct"] for r in gold)
    # a wrong answer on a gold item counts against the annotator
    wrong = next(r for r in gold if r["method"].startswith("identity"))
    with ratings.store.transaction(write=True) as s:  # make that item the last answered, then undo it
        s.execute(update(RatingAssignmentRow).where(RatingAssignmentRow.task_id == wrong["task_id"],
                                                    RatingAssignmentRow.annotator == p)
                  .values(acted_at=datetime.now(timezone.utc) + timedelta(hours=1)))
    ratings.undo(p, "absolute")
    item = ratings.next_item(p, "absolute")
    assert task_of(ratings, item.assignment_id) == wrong["task_id"]
    ratings.rate_absolute(p, item.assignment_id, ins_align=5, consistency=3, plausibility=3)
    assert [r["gold_correct"] for r in ratings.records() if r["task_id"] == wrong["task_id"]] == [False]


def test_a_gold_only_mode_serves_its_gold_items(tmp_path):
    """Pairwise after import-reference alone (no two methods on one prompt): its gold items are the work, not an
    empty queue; a mode whose regular items others hold still never hands out gold alone."""
    ratings = make_ratings(tmp_path, gold_fraction=0.1, batch_size=50)
    seed_study(ratings, n_prompts=30, methods=("alpha-edit",), reference=True)  # 30 pairwise gold tasks
    assert ratings.task_count("pairwise") == 30
    item = ratings.next_item("local:ann", "pairwise")
    assert item is not None and len(item.images) == 2 and item.progress.total == 30
    with ratings.store.transaction() as s:
        from app.ratings_store import RatingTaskRow

        assert s.get(RatingTaskRow, task_of(ratings, item.assignment_id)).is_gold
    ratings.rate_pairwise("local:ann", item.assignment_id, "left")
    assert ratings.next_item("local:ann", "pairwise").progress.answered == 1
    ratings.store.close()


def test_empty_queues_say_why_and_show_no_empty_image_boxes(tmp_path):
    """Signed in with nothing to rate: no image boxes, and a sentence that says why (never "All done" over an
    empty queue)."""
    ratings = make_ratings(tmp_path, batch_size=50)
    ctx = rate.RateContext(ratings, AnnotatorDirectory(ratings.settings.annotators_file))
    for name in ("alice", "bob", "carl"):
        ctx.directory.add(name, PASSWORD)
    for mode, why in (("absolute", "No edits have been imported"), ("pairwise", "two methods' edits")):
        updates = rate.sign_in(ctx, "bob", PASSWORD, mode).to_updates()
        assert why in updates[5] and "All done" not in updates[5] and "queue in this mode is empty" in updates[4]
        assert not any(u.visible for u in updates[6:9])  # no empty image boxes
    seed_study(ratings, n_prompts=2)  # 6 absolute items: alice claims them all (batch of 50)
    alice = rate.sign_in(ctx, "alice", PASSWORD, "absolute")
    assert alice.progress.total == 6 and all(u.visible for u in alice.to_updates()[6:8])
    carl = rate.sign_in(ctx, "carl", PASSWORD, "absolute").to_updates()
    assert "its 6 item(s) are with other annotators" in carl[5] and not carl[6].visible
    while alice.item is not None:  # alice answers all: "All done", not an empty box
        ratings.flag("local:alice", alice.item.assignment_id)
        alice = rate.show(ctx, alice.token, "absolute")
    done = alice.to_updates()
    assert "All done" in done[5] and "6 / 6" in done[4] and not done[6].visible
    ratings.store.close()


def test_a_wrong_password_is_said_in_the_form_and_gone_after_signing_in(ctx):
    """Not a toast that outlives the retry: the form says what went wrong and keeps working; signing in clears it."""
    refused = rate.sign_in(ctx, "bob", "not his password", "absolute").to_updates()
    assert "wrong password" in refused[18] and refused[1].visible and not refused[2].visible
    ok = rate.sign_in(ctx, "bob", PASSWORD, "absolute").to_updates()
    assert ok[18] == "" and not ok[1].visible and ok[2].visible
    for _ in range(annotators.MAX_FAILURES):
        rate.sign_in(ctx, "alice", "nope nope nope", "absolute")
    assert "Too many failed attempts" in rate.sign_in(ctx, "alice", PASSWORD, "absolute").signin_message


def task_of(ratings: RatingStore, assignment_id: str) -> str:
    with ratings.store.transaction() as s:
        return s.get(RatingAssignmentRow, assignment_id).task_id


# ----------------------------------------------------------------------------------------------------------------
# Actions: timing, skip, flag, undo
# ----------------------------------------------------------------------------------------------------------------
def test_too_fast_answers_are_flagged(study):
    item = study.next_item("local:alice", "absolute")
    fast = study.rate_absolute("local:alice", item.assignment_id, ins_align=4, consistency=5, plausibility=5)
    assert fast.too_fast and fast.seconds is not None and fast.seconds < 1.0
    item = study.next_item("local:alice", "absolute")
    shown_ago(study, item.assignment_id, 3.5)
    slow = study.rate_absolute("local:alice", item.assignment_id, ins_align="2", consistency=3, plausibility=4)
    assert not slow.too_fast and 3.5 <= slow.seconds < 10
    assert [r["too_fast"] for r in study.my_ratings("local:alice")] == [True, False]
    for bad in (0, 6, "x", None, 2.5, True):
        item = study.next_item("local:alice", "absolute")
        with pytest.raises(ValueError, match="1 to 5"):
            study.rate_absolute("local:alice", item.assignment_id, ins_align=bad, consistency=3, plausibility=3)


def test_skip_flag_undo_and_progress(study):
    me = "local:alice"
    first = study.next_item(me, "absolute")
    total = first.progress.total
    assert total == 18 and first.position == 1 and first.progress.answered == 0
    study.skip(me, first.assignment_id)
    second = study.next_item(me, "absolute")
    assert second.assignment_id != first.assignment_id
    study.flag(me, second.assignment_id, "  the output is blank  ")
    third = study.next_item(me, "absolute")
    study.rate_absolute(me, third.assignment_id, ins_align=3, consistency=3, plausibility=3)
    with pytest.raises(ValueError, match="already answered"):  # a double submit
        study.rate_absolute(me, third.assignment_id, ins_align=1, consistency=1, plausibility=1)
    p = study.progress(me, "absolute")
    assert (p.total, p.done, p.flagged, p.skipped, p.pending) == (total, 1, 1, 1, total - 3)
    assert study.flags()[0]["note"] == "the output is blank"

    # undo, newest first: the rating (its item comes back next), then the flag, then the skip
    assert study.undo(me, "absolute").status == "done"
    assert study.next_item(me, "absolute").assignment_id == third.assignment_id
    assert study.my_ratings(me) == [] and study.records(include_undone=True)[0]["undone"]
    assert study.undo(me, "absolute").status == "flagged" and study.flags() == []
    assert study.next_item(me, "absolute").assignment_id == second.assignment_id
    assert study.undo(me, "absolute").status == "skipped"
    assert study.next_item(me, "absolute").assignment_id == first.assignment_id
    assert study.undo(me, "absolute") is None
    assert study.undo(me, "pairwise") is None

    # skipped items come back after the pending ones
    study.skip(me, first.assignment_id)
    seen = []
    while (item := study.next_item(me, "absolute")).status == "pending":
        seen.append(item.assignment_id)
        study.rate_absolute(me, item.assignment_id, ins_align=3, consistency=3, plausibility=3)
    assert item.assignment_id == first.assignment_id and len(seen) == total - 1
    study.rate_absolute(me, first.assignment_id, ins_align=3, consistency=3, plausibility=3)
    assert study.next_item(me, "absolute") is None  # nothing unclaimed is left (overlap 0: one annotator each)
    assert study.progress(me, "absolute").answered == total


# ----------------------------------------------------------------------------------------------------------------
# Sign-in and isolation
# ----------------------------------------------------------------------------------------------------------------
def test_passwords_and_the_annotators_file(tmp_path):
    encoded = hash_password(PASSWORD)
    assert encoded.startswith("scrypt$16384$8$1$") and PASSWORD not in encoded
    assert verify_password(PASSWORD, encoded) and not verify_password(PASSWORD + "!", encoded)
    assert hash_password(PASSWORD) != encoded  # salted
    with pytest.raises(ValueError, match="at least"):
        hash_password("short")
    directory = AnnotatorDirectory(str(tmp_path / "a.json"))
    directory.add("carol", PASSWORD)
    assert stat.S_IMODE(os.stat(directory.path).st_mode) == 0o600
    assert directory.authenticate("carol", PASSWORD).id == "local:carol"
    assert directory.authenticate("nobody", PASSWORD) is None
    for _ in range(annotators.MAX_FAILURES):
        assert directory.authenticate("carol", "wrong password") is None
    assert directory.paused("carol") and directory.authenticate("carol", PASSWORD) is None  # paused, even if right
    with pytest.raises(ValueError):
        directory.add("../evil", PASSWORD)
    # Hugging Face accounts: allowed ones only; "*" opens it
    directory.add_hf("dave", admin=True)
    assert directory.from_profile({"preferred_username": "dave"}).admin
    assert directory.from_profile({"preferred_username": "eve"}) is None
    directory.add_hf("*")
    assert directory.from_profile({"preferred_username": "eve"}).id == "hf:eve"
    assert directory.get("local:dave") is None  # namespaces do not mix
    from_env = AnnotatorDirectory(str(tmp_path / "none.json"), env={"REASONBRAIN_RATE_HF_USERS": "fay, gus",
                                                                    "REASONBRAIN_RATE_HF_ADMINS": "gus"})
    assert from_env.get("hf:fay") and from_env.get("hf:gus").admin and not from_env.get("hf:eve")
    from_env.add("hal", PASSWORD)
    assert json.loads(Path(from_env.path).read_text())["hf_users"] == []  # the file holds only its own entries


def test_sign_in_session_token_and_revocation(ctx):
    view = rate.sign_in(ctx, "bob", PASSWORD, "absolute")
    token = view.token
    assert isinstance(token, str) and len(token) > 30 and view.who.id == "local:bob" and view.item is not None
    updates = view.to_updates()
    assert updates[0] == token and updates[9] == view.item.assignment_id
    assert not any(m in repr(updates) for m in METHODS)
    assert rate.restore(ctx, token, "absolute").item.assignment_id == view.item.assignment_id  # a reload
    assert rate.restore(ctx, "forged-token-forged-token", "absolute").who is None
    refused = rate.sign_in(ctx, "bob", "not his password", "absolute")
    assert refused.who is None and refused.token is None and "wrong password" in refused.signin_message
    with pytest.raises(gr.Error, match="admins"):
        rate.results(ctx, token, True)
    ctx.directory.remove("bob")  # locked out at the next action
    with pytest.raises(gr.Error, match="sign in"):
        rate.show(ctx, token, "absolute")
    assert rate.sign_out(ctx, token, "absolute").who is None


def test_hugging_face_login_on_a_space(ctx):
    """With OAuth the profile gradio injects identifies the annotator (no token); only allowed accounts rate."""
    ctx.directory.add_hf("dave")

    def profile(user: str) -> gr.OAuthProfile:
        return gr.OAuthProfile({"name": user.title(), "preferred_username": user, "profile": "", "picture": ""})

    view = rate.restore(ctx, None, "absolute", profile("dave"))
    assert view.who.id == "hf:dave" and view.token is None and view.item is not None
    shown_ago(ctx.ratings, view.item.assignment_id, 3)
    rate.submit_absolute(ctx, None, view.item.assignment_id, 4, 4, 4, "absolute", profile("dave"))
    assert len(ctx.ratings.my_ratings("hf:dave")) == 1
    with pytest.raises(gr.Error, match="not in your queue"):  # another HF user on dave's item
        ctx.directory.add_hf("erin")
        rate.skip(ctx, None, view.item.assignment_id, "absolute", profile("erin"))
    with pytest.warns(UserWarning, match="not on this study"):
        assert rate.restore(ctx, None, "absolute", profile("mallory")).who is None
    with pytest.raises(gr.Error, match="admins"):
        rate.results(ctx, None, True, profile("dave"))


def test_two_annotators_cannot_see_or_change_each_others_ratings(ctx):
    alice = rate.sign_in(ctx, "alice", PASSWORD, "absolute")
    bob = rate.sign_in(ctx, "bob", PASSWORD, "absolute")
    assert alice.item.assignment_id != bob.item.assignment_id
    shown_ago(ctx.ratings, alice.item.assignment_id, 5)
    after = rate.submit_absolute(ctx, alice.token, alice.item.assignment_id, 5, 4, 3, "absolute")
    assert "Saved" in after.message and after.progress.done == 1
    mine = ctx.ratings.my_ratings("local:alice")
    # bob acting on alice's items: not found, whatever the action; his undo touches only his own answers
    for act in (lambda: rate.submit_absolute(ctx, bob.token, after.item.assignment_id, 1, 1, 1, "absolute"),
                lambda: rate.skip(ctx, bob.token, after.item.assignment_id, "absolute"),
                lambda: rate.flag(ctx, bob.token, after.item.assignment_id, "x", "absolute")):
        with pytest.raises(gr.Error, match="not in your queue"):
            act()
    with pytest.raises(NotFound):
        ctx.ratings.rate_absolute("local:bob", alice.item.assignment_id, ins_align=1, consistency=1, plausibility=1)
    assert "Nothing to undo" in rate.undo(ctx, bob.token, "absolute").message
    with pytest.raises(NotFound):
        ctx.ratings.flag("local:bob", alice.item.assignment_id)
    assert ctx.ratings.my_ratings("local:bob") == [] and ctx.ratings.my_ratings("local:alice") == mine
    # without a valid token nothing happens at all
    with pytest.raises(gr.Error, match="sign in"):
        rate.submit_absolute(ctx, None, after.item.assignment_id, 1, 1, 1, "absolute")
    assert ctx.ratings.my_ratings("local:alice") == mine and ctx.ratings.counts()["ratings"] == 1


def test_pairwise_handlers_and_double_press(ctx):
    view = rate.sign_in(ctx, "bob", PASSWORD, "pairwise")
    assert view.item.mode == "pairwise" and len(view.item.images) == 2
    updates = view.to_updates()
    assert updates[14].visible and not updates[13].visible  # pairwise buttons shown, the 1-5 scales hidden
    assert not updates[19].visible and not updates[21].visible  # no Submit, no score anchors
    assert "both bad" in updates[20] and "1–5" not in updates[20]  # this mode's keys
    assert rate.PAIRWISE_CLASS in updates[6].elem_classes  # three images in a row (CSS)
    absolute = rate.show(ctx, view.token, "absolute").to_updates()
    assert absolute[13].visible and absolute[19].visible and absolute[21].visible and "1–5" in absolute[20]
    assert rate.PAIRWISE_CLASS not in absolute[6].elem_classes
    shown_ago(ctx.ratings, view.item.assignment_id, 4)
    nxt = rate.submit_pairwise(ctx, view.token, view.item.assignment_id, "tie", "pairwise")
    assert nxt.item.assignment_id != view.item.assignment_id and "Saved" in nxt.message
    with pytest.warns(UserWarning, match="already answered"):  # a double key press: a warning, no change
        again = rate.submit_pairwise(ctx, view.token, view.item.assignment_id, "left", "pairwise")
    assert again.item.assignment_id == nxt.item.assignment_id
    (r,) = ctx.ratings.my_ratings("local:bob")
    assert r["choice"] == "tie" and not r["too_fast"]
    with pytest.raises(gr.Error, match="Score"):
        rate.submit_absolute(ctx, view.token, nxt.item.assignment_id, 3, None, 3, "absolute")
    with pytest.raises(gr.Error, match="pairwise mode"):
        rate.submit_absolute(ctx, view.token, nxt.item.assignment_id, 3, 3, 3, "absolute")


def test_refusals_are_one_log_line_not_a_traceback(ctx, caplog):
    """An annotator's mistake (no scores, an ended session, someone else's item, a non-admin asking for results) is
    a message and one log line; gradio prints a traceback only for bugs."""
    bob = rate.sign_in(ctx, "bob", PASSWORD, "absolute")
    caplog.set_level("INFO", logger="app.tabs.rate")
    for act, text in ((lambda: rate.submit_absolute(ctx, bob.token, bob.item.assignment_id, 3, None, 3, "absolute"),
                       "Score consistency"),
                      (lambda: rate.show(ctx, "ended-session-token-0000", "absolute"), "sign in"),
                      (lambda: rate.skip(ctx, bob.token, "someone-elses-item", "absolute"), "not in your queue"),
                      (lambda: rate.results(ctx, bob.token, True), "admins")):
        caplog.clear()
        with pytest.raises(gr.Error, match=text) as refused:
            act()
        assert refused.value.print_exception is False
        assert [r.levelname for r in caplog.records] == ["INFO"] and text in caplog.records[0].getMessage()


# ----------------------------------------------------------------------------------------------------------------
# Results and export
# ----------------------------------------------------------------------------------------------------------------
def _simulate(ratings: RatingStore, people: list[str], quality: dict[str, int]) -> None:
    """Annotators who score each method near its quality and prefer the better one."""
    for k, p in enumerate(people):
        for mode in ("absolute", "pairwise"):
            while (item := ratings.next_item(p, mode)) is not None:
                task_id = task_of(ratings, item.assignment_id)
                a, b = ratings.task_methods(task_id)
                shown_ago(ratings, item.assignment_id, 3 + k)
                if mode == "absolute":
                    q = quality.get(a, 3)
                    noisy = max(1, min(5, q + (1 if int(task_id[:2], 16) % 7 == k else 0)))
                    ratings.rate_absolute(p, item.assignment_id, ins_align=noisy, consistency=4, plausibility=q)
                else:
                    swapped = dict(ratings.queue(p, mode))[task_id]
                    better_a = quality[a] >= quality[b]
                    ratings.rate_pairwise(p, item.assignment_id, "left" if better_a != swapped else "right")


def test_results_export_and_push(tmp_path):
    ratings = make_ratings(tmp_path, overlap_fraction=0.5, overlap_annotators=0, gold_fraction=0.2)
    seed_study(ratings, n_prompts=6, reference=True)
    quality = {"alpha-edit": 1, "beta-edit": 5, "gamma-edit": 3}  # not alphabetical: choices vary
    _simulate(ratings, ["local:ann1", "local:ann2", "local:ann3"],
              {**quality, "reference (ground truth)": 5, "identity (unchanged source)": 1})
    records = ratings.records()
    res = rating_results.compute(records, min_seconds=ratings.settings.min_seconds, plots_dir=str(tmp_path / "p"))
    assert [row[0] for row in res.methods] == ["beta-edit", "gamma-edit", "alpha-edit"]  # gold left out
    best = res.methods[0]
    assert best[1] > 0.8 and best[2] <= best[1] <= best[3]  # Ins-Align on [0, 1] with its CI
    assert res.comparisons_from == "pairwise"
    assert [row[1] for row in res.bradley_terry] == ["beta-edit", "gamma-edit", "alpha-edit"]
    headers, rows = res.wins
    assert headers[1:] == ["alpha-edit", "beta-edit", "gamma-edit"] and rows[1][1].startswith("100%")
    alpha = {row[0]: row for row in res.agreement}
    assert alpha["ins_align"][3] > 0 and alpha["ins_align"][1] > 0.5  # overlap units exist, raters agree
    assert alpha["pairwise choice"][1] == 1.0
    assert {row[0] for row in res.annotators} == {"local:ann1", "local:ann2", "local:ann3"}
    assert all(row[4] > 0 and row[5] == 1.0 for row in res.annotators)  # everyone saw gold, got it right
    assert set(res.plots) == {"ins_align", "win_rates", "bradley_terry", "annotators"}
    assert all(os.path.getsize(p) > 1000 for p in res.plots.values())

    out = tmp_path / "export"
    files = rating_results.export(ratings, str(out))
    names = {os.path.basename(f) for f in files}
    assert {"ratings.csv", "ratings.jsonl", "flags.csv", "README.md", "ins_align.png"} <= names
    lines = (out / "ratings.jsonl").read_text().splitlines()
    assert len(lines) == len(records)
    first = json.loads(lines[0])
    assert first["annotator"].startswith("annotator-") and "local:" not in (out / "ratings.csv").read_text()
    assert set(first) == set(rating_results.EXPORT_FIELDS)
    import csv

    with open(out / "ratings.csv", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == len(records) and rows[0]["method"] in quality | {"reference (ground truth)": 0,
                                                                         "identity (unchanged source)": 0}
    assert "| beta-edit |" in (out / "README.md").read_text()

    class FakeHub:  # an HfApi stand-in that "uploads" into a local folder
        def __init__(self, root: Path) -> None:
            self.root, self.calls = root, []

        def create_repo(self, **kw):
            self.calls.append(("create_repo", kw))

        def upload_folder(self, *, folder_path, repo_id, repo_type, commit_message):
            self.calls.append(("upload_folder", repo_id, repo_type))
            import shutil

            shutil.copytree(folder_path, self.root / repo_id, dirs_exist_ok=True)

    hub = FakeHub(tmp_path / "hub")
    url = rating_results.push_to_hub(str(out), "lab/ins-align-ratings", api=hub)
    assert url.endswith("datasets/lab/ins-align-ratings")
    assert hub.calls[0] == ("create_repo", {"repo_id": "lab/ins-align-ratings", "repo_type": "dataset",
                                            "private": True, "exist_ok": True})
    assert (tmp_path / "hub" / "lab" / "ins-align-ratings" / "ratings.csv").read_text() == (
        out / "ratings.csv").read_text()
    with pytest.raises(ValueError, match="owner/name"):
        rating_results.push_to_hub(str(out), "no-owner", api=hub)

    # the same through the tab's admin handlers
    directory = AnnotatorDirectory(ratings.settings.annotators_file)
    directory.add("boss", PASSWORD, admin=True)
    ctx = rate.RateContext(ratings, directory, hub_api=hub)
    token = rate.sign_in(ctx, "boss", PASSWORD, "absolute").token
    summary, methods_df, *_frames, gallery = rate.results(ctx, token, True)
    assert "ratings by 3 annotator" in summary and list(methods_df["method"])[0] == "beta-edit"
    assert len(gallery) == 4
    assert any(f.endswith("ratings.csv") for f in rate.export_files(ctx, token))
    assert "Pushed" in rate.push(ctx, token, "lab/from-ui") and (tmp_path / "hub" / "lab" / "from-ui").is_dir()
    ratings.store.close()


def test_cli_add_import_export(tmp_path, monkeypatch, capsys):
    data = tmp_path / "data"
    base = ["--data-dir", str(data)]
    monkeypatch.setattr("sys.stdin", io.StringIO(PASSWORD + "\n"))
    assert annotators.main([*base, "add", "carol", "--admin", "--password-stdin"]) == 0
    assert "local:carol (admin)" in capsys.readouterr().out
    assert AnnotatorDirectory(str(data / "annotators.json")).authenticate("carol", PASSWORD).admin
    records = write_reason50k(tmp_path / "bench", 2)
    method = tmp_path / "outs"
    method.mkdir()
    for i in range(2):
        picture(40 + i).save(method / f"r{i}.png")
    assert annotators.main([*base, "import-method", "--name", "M1", "--folder", str(method),
                            "--records", str(records)]) == 0
    assert annotators.main([*base, "import-method", "--name", "M2", "--folder", str(tmp_path / "bench")]) == 0
    assert annotators.main([*base, "import-reference", "--folder", str(tmp_path / "bench")]) == 0
    out = capsys.readouterr().out
    assert "imported 2 output(s)" in out and '"tasks": 12' in out  # 8 absolute, M1-M2 x 2, gold pairs x 2
    assert annotators.main([*base, "list"]) == 0 and "local:carol" in capsys.readouterr().out
    assert annotators.main([*base, "export", "--out", str(tmp_path / "exp")]) == 0
    assert (tmp_path / "exp" / "ratings.csv").is_file()
    assert annotators.main([*base, "add", "x/y", "--password-stdin"]) == 2
