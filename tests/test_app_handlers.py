"""The app's tab handlers called directly (no browser, no server): a real Store in a temp folder and a real
Engine on the tiny preset (random weights, CPU)."""

from __future__ import annotations

import copy
import dataclasses
import json
import logging
import os
import uuid
from datetime import datetime, timedelta, timezone

import gradio as gr
import PIL.Image
import pytest
from gradio.utils import deep_hash

from app import identity, render
from app.engine import EditRequest, Engine
from app.settings import Settings
from app.store import ChainInfo, ChainTree, StepInfo, Store
from app.tabs import edit, history, presenter

ALICE = str(uuid.UUID(int=1))
BOB = str(uuid.UUID(int=2))
MELT = "What would happen if the ice cube were left in the sun?"
FAST = {"steps": 1, "guidance_scale": 7.5, "image_guidance_scale": 1.5, "seed": 7, "randomize_seed": False}


@pytest.fixture(scope="module")
def engine(tmp_path_factory) -> Engine:
    d = tmp_path_factory.mktemp("engine")
    eng = Engine(Settings(preset="tiny", data_dir=str(d), db_path=str(d / "db.sqlite"), examples=False))
    eng.load()
    return eng


@pytest.fixture(scope="module")
def scene(engine, tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp("scene") / "scene.png"
    engine.example_images()[0][0].resize((96, 80)).save(path)
    return str(path)


@pytest.fixture(scope="module")
def sample_result(engine, scene):
    """One real edit, reused to fill stores quickly for tests that are about the store side."""
    return engine.edit(EditRequest(image=scene, instruction=MELT, steps=1, seed=3))


@pytest.fixture
def store(tmp_path) -> Store:
    s = Store(str(tmp_path / "db.sqlite"), str(tmp_path / "data"))
    yield s
    s.close()


def run(engine, store, user, session, image, text, **kw):
    args = {**FAST, **kw}
    return edit.run_edit(engine, store, user, session, image, text, args["steps"], args["guidance_scale"],
                         args["image_guidance_scale"], args["seed"], args["randomize_seed"], None)


def add_steps(store: Store, user: str, result, instructions, *, parent=None, chain_id=None, title=None):
    """A chain (or a branch of one) written straight into the store with a real edit's payload."""
    if chain_id is None:
        chain = store.create_chain(user, result.input_image, title=title)
        chain_id, input_ref = chain.id, chain.source_image
    else:
        input_ref = store.get_step(user, parent).output_image if parent else store.get_chain(user, chain_id).chain.source_image
    steps = []
    for text in instructions:
        step = store.add_step(
            user, chain_id, parent, instruction=text, input_image=input_ref, output_image=result.image,
            seed=result.seed, settings=result.settings, preset=result.preset,
            checkpoint_hash=result.checkpoint_hash, timings=result.timings, details=result.details,
        )
        steps.append(step)
        parent, input_ref = step.id, step.output_image
    return chain_id, steps


def rows(store: Store, user: str) -> tuple[int, int]:
    return len(store.list_chains(user)), store.count_steps(user)


# ------------------------------------------------------------------------------------------------------ edit
def test_edit_creates_chain_and_step_and_shows_the_reasoning(engine, store, scene):
    view = run(engine, store, ALICE, None, scene, MELT)

    chains = store.list_chains(ALICE)
    assert len(chains) == 1 and chains[0].num_steps == 1
    tree = store.get_chain(ALICE, chains[0].id)
    step = tree.steps[0]
    assert step.parent_id is None and step.instruction == MELT and step.seed == FAST["seed"]
    assert step.input_image == tree.chain.source_image
    assert view.session["chain_id"] == tree.chain.id and view.session["step_id"] == step.id
    assert view.session["base_id"] is None  # another instruction now edits the same input (alternative)

    before, after = view.slider
    assert os.path.isfile(before) and os.path.isfile(after)
    assert PIL.Image.open(after).size == (96, 80)  # restored to the upload's size
    assert "ice cube" in view.object_md and "&lt;obj&gt;" not in view.object_md and "<obj> ice cube" in view.object_md
    assert "Token ids" in view.object_md and "Seed:** `7`" in view.object_md
    assert "**Reasoning:** —" in view.object_md  # the tiny preset generates no reasoning text
    heatmap, regions_image = edit.reasoning_images(store, ALICE, view.session)
    assert heatmap["label"] == "ID Controller attention"  # a reason-then-edit step shows its mask there instead
    heatmap = heatmap["value"]
    assert isinstance(heatmap, PIL.Image.Image) and heatmap.size == (384, 320)  # 96x80 upscaled 4x, crisp
    assert edit.reasoning_images(store, ALICE, edit.empty_session()) == (None, None)
    with pytest.raises(gr.Error, match="belongs to someone else"):  # another user's step id: no images
        edit.reasoning_images(store, BOB, view.session)
    attention = [float(r[3].rstrip("%")) for r in view.regions_table]
    assert attention == sorted(attention, reverse=True) and len(attention) == len(step.details["region_labels"])
    base, masks = regions_image["value"]
    assert len(masks) == len(step.details["region_labels"]) - 1  # object regions; the background left out
    assert all(m.shape == (base.height, base.width) for m, _ in masks)
    stages = [r[0] for r in view.timings]
    assert stages[0] == "preprocess" and "denoise" in stages and "total (pipeline)" in stages
    assert "Region 1" in edit.region_info(view.session, 0)
    assert "attention" in edit.region_info(view.session, 0)
    with open(view.download_json, encoding="utf-8") as f:
        payload = json.load(f)
    assert payload["step_id"] == step.id and payload["object_token"].startswith("<obj>")
    assert PIL.Image.open(view.download_png).size == (96, 80)
    assert f'data-select="{step.id}"' in view.timeline and "rb-current" in view.timeline
    updates = view.to_updates()
    assert len(updates) == 13 and updates[9] == view.download_png
    result_updates = view.result_updates()  # what the edit event sends: no input image or prompt
    assert len(result_updates) == 11 and result_updates[7] == view.download_png
    with pytest.raises(ValueError):
        edit.continue_from_result(store, ALICE, view.session).result_updates()


def test_the_session_is_a_typed_state_that_gradio_can_keep(engine, store, scene):
    """The Edit tab's gr.State holds an EditSession: its fields round-trip (as a mapping and through JSON), gradio
    deep-copies it for every browser tab and hashes it by value; a dict-shaped state (the shape it replaced) is read
    field by field, anything else is refused with a TypeError that names it."""
    session = run(engine, store, ALICE, None, scene, MELT).session
    assert isinstance(session, edit.EditSession) and session.regions["region_names"]
    assert session == edit.EditSession(**dict(session)) and dict(session) == {**session}
    assert set(session) == {"chain_id", "step_id", "base_id", "input_rel", "regions"}
    assert edit.EditSession.from_state(json.loads(json.dumps(dict(session)))) == session
    assert copy.deepcopy(session) == session and copy.deepcopy(session) is not session
    assert gr.State(session).value == session and gr.State(edit.empty_session()).value == edit.EditSession()
    assert deep_hash(copy.deepcopy(session)) == deep_hash(session) != deep_hash(edit.empty_session())
    with pytest.raises(dataclasses.FrozenInstanceError):
        session.step_id = None  # handlers return a new session; none changes the one gradio holds

    assert edit.EditSession.from_state(session) is session
    assert edit.EditSession.from_state(None) == edit.EditSession()
    old = {"chain_id": session.chain_id, "step_id": session.step_id, "base_id": None,
           "input_rel": session.input_rel, "regions": {}}
    assert edit.EditSession.from_state(old) == dataclasses.replace(session, regions={})
    assert edit.EditSession.from_state({"chain_id": session.chain_id}) == edit.EditSession(chain_id=session.chain_id)
    assert edit.select_step(store, ALICE, old, session.step_id).session.step_id == session.step_id
    with pytest.raises(TypeError, match=r"unknown keys \['chain'\]"):
        edit.EditSession.from_state({"chain": session.chain_id})
    with pytest.raises(TypeError, match="not an edit session: str"):
        edit.select_step(store, ALICE, "a session", session.step_id)


def test_continue_makes_a_child_and_branching_from_an_earlier_step_makes_a_sibling(engine, store, scene):
    first = run(engine, store, ALICE, None, scene, MELT)
    step1 = first.step
    cont = edit.continue_from_result(store, ALICE, first.session)
    assert cont.session["base_id"] == step1.id and cont.input_image == store.image_path(step1.output_image)
    assert cont.prompt == ""

    second = run(engine, store, ALICE, cont.session, None, "Imagine the puddle dried up.")
    step2 = second.step
    assert step2.parent_id == step1.id and step2.position == 2
    assert step2.input_image == step1.output_image  # the next hop edits the previous result

    # pick step 1 in the timeline, continue from it, edit: a second child of step 1 (a branch)
    picked = edit.select_step(store, ALICE, second.session, step1.id)
    assert picked.session["step_id"] == step1.id and picked.prompt == MELT
    branch = run(engine, store, ALICE, edit.continue_from_result(store, ALICE, picked.session).session, None,
                 "What if it froze again overnight?")
    tree = store.get_chain(ALICE, step1.chain_id)
    assert [s.id for s in tree.children(step1.id)] == [step2.id, branch.step.id]
    assert branch.step.input_image == step1.output_image
    assert "2 branches" in branch.timeline and "↳ Step 2" in branch.timeline
    order = [s.id for s, _, _ in render.tree_order(tree)]
    assert order == [step1.id, step2.id, branch.step.id]  # an alternative right after the step it replaces
    assert len(store.list_chains(ALICE)) == 1 and store.count_steps(ALICE) == 3

    # selecting the source and editing makes another first step (a sibling of step 1)
    src = edit.select_step(store, ALICE, branch.session, render.SOURCE_NODE)
    assert src.session["step_id"] is None and src.session["input_rel"] == tree.chain.source_image
    assert src.slider is None


def test_undo_moves_to_the_parent_and_only_undoes_leaves(store, sample_result):
    chain_id, (s1, s2) = add_steps(store, ALICE, sample_result, ["one", "two"])
    view = edit.open_chain(store, ALICE, chain_id)
    assert view.session["step_id"] == s2.id

    with pytest.raises(gr.Error, match="undo those first"):
        edit.undo(store, ALICE, edit.select_step(store, ALICE, view.session, s1.id).session)
    undone = edit.undo(store, ALICE, view.session)
    assert undone.session["step_id"] == s1.id and undone.session["base_id"] == s1.id
    assert [s.id for s in store.get_chain(ALICE, chain_id).steps] == [s1.id]
    root = edit.undo(store, ALICE, undone.session)
    assert root.session["step_id"] is None and root.session["chain_id"] == chain_id
    assert store.get_chain(ALICE, chain_id).steps == []
    with pytest.raises(gr.Error, match="Nothing to undo"):
        edit.undo(store, ALICE, root.session)


def test_rename_and_delete_chain(store, sample_result):
    chain_id, _ = add_steps(store, ALICE, sample_result, ["one"])
    view = edit.open_chain(store, ALICE, chain_id)
    renamed = edit.rename_chain(store, ALICE, view.session, "  Melting ice  ")
    assert renamed.chain_title == "Melting ice" and store.list_chains(ALICE)[0].title == "Melting ice"
    with pytest.raises(gr.Error, match="title"):
        edit.rename_chain(store, ALICE, view.session, "   ")

    gone = edit.delete_chain(store, ALICE, view.session)
    assert gone.session == edit.empty_session() and gone.input_image is None
    assert rows(store, ALICE) == (0, 0) and store.image_files() == []
    with pytest.raises(gr.Error, match="does not exist"):
        edit.open_chain(store, ALICE, chain_id)


def test_history_lists_newest_first_filters_and_escapes(store, sample_result):
    old, _ = add_steps(store, ALICE, sample_result, ["What if the red apple were left for weeks?"], title="Apple")
    new, _ = add_steps(store, ALICE, sample_result, [MELT], title="<script>alert(1)</script>")
    view = history.list_chains(store, ALICE, "")
    assert [c.id for c in view.chains] == [new, old]
    assert "<script>" not in view.html and "&lt;script&gt;" in view.html
    assert view.html.index(new) < view.html.index(old) and "1 step" in view.html
    assert "2 chains" in view.summary

    apple = history.list_chains(store, ALICE, "apple")
    assert [c.id for c in apple.chains] == [old]  # matches the title (and instructions)
    weeks = history.list_chains(store, ALICE, "WEEKS")
    assert [c.id for c in weeks.chains] == [old]
    none = history.list_chains(store, ALICE, "snowman")
    assert none.chains == [] and "No chain matches" in none.html


def test_reopen_restores_state_after_a_restart(engine, store, sample_result, tmp_path):
    chain_id, (s1, s2) = add_steps(store, ALICE, sample_result, ["one", "two"])
    store.close()
    reopened_store = Store(str(tmp_path / "db.sqlite"), str(tmp_path / "data"))  # "server restart"
    try:
        assert [c.id for c in history.list_chains(reopened_store, ALICE).chains] == [chain_id]
        view = history.open_in_editor(reopened_store, ALICE, chain_id)
        assert view.session["chain_id"] == chain_id and view.session["step_id"] == s2.id
        assert view.session["base_id"] == s2.id and view.input_image == reopened_store.image_path(s2.output_image)
        assert 'class="rb-node rb-current"' in view.timeline and s1.id in view.timeline
        assert "two" in view.status or "step 2" in view.status
        nxt = run(engine, reopened_store, ALICE, view.session, None, "Imagine the puddle dried up.")
        assert nxt.step.parent_id == s2.id and nxt.step.position == 3
    finally:
        reopened_store.close()


def test_presenter_steps_through_within_bounds(store, sample_result):
    chain_id, steps = add_steps(store, ALICE, sample_result, ["one", "two", "three"], title="Three hops")
    view = presenter.open_presentation(store, ALICE, chain_id)
    assert (view.index, view.n, view.can_prev, view.can_next) == (0, 3, False, True)
    assert "Step 1 of 3" in view.header and "one" in view.header
    assert view.before == store.image_path(steps[0].input_image) and os.path.isfile(view.after)
    assert presenter.go(view.state, -1).index == 0
    state = view.state
    for _ in range(5):
        state = presenter.go(state, +1).state
    last = presenter.go(state, 0)
    assert (last.index, last.can_next, last.can_prev) == (2, False, True) and "Step 3 of 3" in last.header
    assert presenter.go(last.state, -1).index == 1

    # a branch: the newest branch is presented by default; the other can be picked
    _, (b2,) = add_steps(store, ALICE, sample_result, ["two, differently"], parent=steps[0].id, chain_id=chain_id)
    view = presenter.open_presentation(store, ALICE, chain_id)
    assert len(view.branches) == 2 and view.state["leaf_id"] == b2.id and view.n == 2
    other = presenter.open_presentation(store, ALICE, chain_id, steps[2].id)
    assert other.n == 3

    empty = presenter.go(None, +1)
    assert empty.n == 0 and not empty.can_next and "Pick a chain" in empty.header


def test_demo_chains_preload_once_and_are_public_but_read_only(engine, store):
    from app.demo_chains import preload_demo_chains

    created = preload_demo_chains(engine, store, seeds=(1,))
    assert len(created) == 1 and created[0].is_demo and created[0].user_id == identity.DEMO_USER
    assert created[0].num_steps >= 2 and created[0].title.startswith("Demo 1")
    assert preload_demo_chains(engine, store, seeds=(1,)) == []  # only on first start
    tree = store.get_chain(identity.DEMO_USER, created[0].id)
    assert tree.steps[1].input_image == tree.steps[0].output_image  # a real multi-hop chain

    choices = presenter.chain_choices(store, BOB)
    assert (created[0].id in [v for _, v in choices]) and any(label.startswith("Demo") for label, _ in choices)
    view = presenter.open_presentation(store, BOB, created[0].id)
    assert view.n == tree.chain.num_steps and "demo" in view.header
    with pytest.raises(gr.Error):  # not editable: the Edit tab never opens it
        edit.open_chain(store, BOB, created[0].id)
    assert history.list_chains(store, BOB).chains == []
    with pytest.raises(gr.Error):  # nobody can act as the demo user
        identity.require_user(identity.DEMO_USER)


# ------------------------------------------------------------------------------------------------ isolation
def test_users_cannot_see_or_touch_each_others_chains(engine, store, sample_result):
    chain_id, (s1,) = add_steps(store, ALICE, sample_result, ["Alice's secret edit"])
    alice_session = edit.open_chain(store, ALICE, chain_id).session

    with pytest.raises(gr.Error) as err:
        edit.open_chain(store, BOB, chain_id)
    assert str(err.value.message) == edit.NOT_FOUND_MESSAGE and "secret" not in str(err.value.message)
    for call in (
        lambda: edit.select_step(store, BOB, alice_session, s1.id),
        lambda: edit.continue_from_result(store, BOB, alice_session),
        lambda: edit.undo(store, BOB, alice_session),
        lambda: edit.rename_chain(store, BOB, alice_session, "mine now"),
        lambda: edit.delete_chain(store, BOB, alice_session),
        lambda: presenter.open_presentation(store, BOB, chain_id),
        lambda: run(engine, store, BOB, alice_session, None, MELT),
    ):
        with pytest.raises(gr.Error, match="does not exist"):
            call()
    assert history.list_chains(store, BOB).chains == []
    assert chain_id not in [v for _, v in presenter.chain_choices(store, BOB)]
    assert rows(store, BOB) == (0, 0)
    assert rows(store, ALICE) == (1, 1) and store.list_chains(ALICE)[0].title == "Alice's secret edit"


def test_bad_input_is_an_error_and_writes_nothing(engine, store, scene, tmp_path):
    corrupt = tmp_path / "corrupt.png"
    corrupt.write_bytes(b"\x89PNG\r\n\x1a\n" + b"this is not an image" * 10)
    cases = [
        (dict(image=scene, text=""), "instruction"),
        (dict(image=scene, text="   \n"), "instruction"),
        (dict(image=None, text=MELT), "Upload an image"),
        (dict(image=str(corrupt), text=MELT), "image"),
        (dict(image=scene, text=MELT, steps=0), "num_inference_steps"),
        (dict(image=scene, text=MELT, guidance_scale=float("nan")), "guidance_scale"),
        (dict(image=scene, text=MELT, seed=1.5), "seed"),
    ]
    for case, message in cases:
        kw = {k: v for k, v in case.items() if k not in ("image", "text")}
        with pytest.raises(gr.Error, match=message):
            run(engine, store, ALICE, None, case["image"], case["text"], **kw)
    with pytest.raises(gr.Error, match="session is not ready"):
        run(engine, store, None, None, scene, MELT)
    assert rows(store, ALICE) == (0, 0) and store.image_files() == []


def test_a_failed_save_leaves_no_half_written_chain(engine, store, scene, monkeypatch):
    ok = run(engine, store, ALICE, None, scene, MELT)
    files = sorted(store.image_files())
    real_insert = store._insert_step

    def broken_insert(s, *args, **kwargs):
        real_insert(s, *args, **kwargs)  # rows added and the output file written, then the disk fills up
        raise ValueError("disk full")

    monkeypatch.setattr(store, "_insert_step", broken_insert)
    for session in (None, ok.session):  # a fresh chain (chain + first step), then a step of the saved chain
        with pytest.raises(gr.Error, match="disk full"):
            run(engine, store, ALICE, session, scene, "Suppose the apple were left for a month.", seed=3,
                randomize_seed=False)
        assert rows(store, ALICE) == (1, 1)
        assert sorted(store.image_files()) == files  # nothing written half-way, no orphan image file


def test_a_missing_image_file_is_a_clear_error(store, sample_result):
    chain_id, (s1, s2) = add_steps(store, ALICE, sample_result, ["one", "two"])
    session = edit.open_chain(store, ALICE, chain_id).session
    os.unlink(store.image_path(s1.input_image))  # the chain's source image vanished from disk
    with pytest.raises(gr.Error, match="stored image could not be read"):
        edit.select_step(store, ALICE, session, s1.id)
    with pytest.raises(gr.Error, match="stored image could not be read"):
        edit.reasoning_images(store, ALICE, dict(session, step_id=s1.id))


# ------------------------------------------------------------------------------------------------- identity
def test_identity_browser_ids_and_hf_accounts(tmp_path):
    bid, user = identity.resolve(None)
    assert uuid.UUID(bid) and user == bid
    assert identity.resolve(bid) == (bid, bid)  # a returning browser keeps its id
    for forged in ("hf:alice", "demo", "", 42, "x" * 500):
        new_bid, new_user = identity.resolve(forged)
        assert new_user == new_bid and new_bid != forged and uuid.UUID(new_bid)
    assert identity.resolve(bid, gr.OAuthProfile({"preferred_username": "alice", "name": "A", "profile": "",
                                                  "picture": ""}))[1] == "hf:alice"
    with pytest.raises(gr.Error):
        identity.require_user(None)
    secret = identity.browser_secret(str(tmp_path))
    assert identity.browser_secret(str(tmp_path)) == secret and len(secret) >= 16
    assert oct(os.stat(tmp_path / identity.SECRET_FILE).st_mode & 0o777) == "0o600"


# --------------------------------------------------------------------------------------------------- render
def _fake_tree(n: int, branches: dict[int, int] | None = None) -> ChainTree:
    now = datetime(2026, 1, 1, tzinfo=timezone.utc)
    chain = ChainInfo(id="c", user_id=ALICE, title="t", source_image="images/aa/src.png", created_at=now,
                      updated_at=now, is_demo=False, num_steps=n, last_output=None, last_instruction=None)
    steps, parent = [], None
    for i in range(n):
        steps.append(StepInfo(id=f"s{i}", chain_id="c", parent_id=parent, position=i + 1, instruction=f"step {i}",
                              input_image="images/aa/x.png", output_image="images/aa/y.png", seed=0, settings={},
                              preset="tiny", checkpoint_hash="h", timings={}, details={},
                              created_at=now + timedelta(seconds=i)))
        parent = f"s{i}"
    for k, (at, count) in enumerate((branches or {}).items()):
        for j in range(count):
            steps.append(StepInfo(id=f"b{k}-{j}", chain_id="c", parent_id=f"s{at}", position=at + 2,
                                  instruction="branch", input_image="images/aa/x.png", output_image="images/aa/y.png",
                                  seed=0, settings={}, preset="tiny", checkpoint_hash="h", timings={}, details={},
                                  created_at=now + timedelta(hours=1, seconds=j)))
    steps.sort(key=lambda s: (s.position, s.created_at))
    return ChainTree(chain=chain, steps=steps)


def test_long_chains_stay_flat_and_branches_are_indented():
    tree = _fake_tree(1000, branches={10: 2})
    order = render.tree_order(tree)
    assert len(order) == 1002
    assert {indent for s, indent, _ in order if s.id.startswith("s")} == {0}  # 1,000 hops, no recursion, flat
    branch_rows = [(s.id, indent, is_branch) for s, indent, is_branch in order if s.id.startswith("b")]
    assert branch_rows == [("b0-0", 1, True), ("b0-1", 1, True)]
    assert [s.id for s, _, _ in order].index("b0-0") == 12  # right after s11, the step it is an alternative to
    html = render.timeline_html(tree, "s500", lambda rel: "/x/" + rel)
    assert html.count("data-select=") == 1003 and html.count("rb-current") == 1


# ----------------------------------------------------------------------------- what the Edit tab shows (#19)
def _two_squares() -> tuple:
    """A white 60x30 image with a red square on the left and a blue one on the right, and their regions."""
    import numpy as np
    import torch

    from reasonbrain.regions import Regions

    pixels = np.full((30, 60, 3), 245, dtype=np.uint8)
    pixels[5:25, 2:18] = (214, 40, 40)
    pixels[5:25, 42:58] = (45, 95, 215)
    masks = np.zeros((3, 30, 60), dtype=bool)
    masks[0, 5:25, 2:18] = True
    masks[1, 5:25, 42:58] = True
    masks[2] = ~(masks[0] | masks[1])
    boxes = torch.tensor([[2, 5, 18, 25], [42, 5, 58, 25], [0, 0, 60, 30]], dtype=torch.float32)
    regions = Regions(torch.from_numpy(masks), ["object 1", "object 2", "background"], torch.tensor([0.9, 0.8, 1.0]),
                      boxes)
    return PIL.Image.fromarray(pixels), regions


def test_regions_are_named_by_colour_position_and_the_bound_object():
    from reasonbrain.region_names import bound_object_name, proposer_name, region_names

    image, regions = _two_squares()
    obj = bound_object_name({"name": "ball", "attributes": {"colour": "blue", "position": "right"}})
    names = region_names(image, regions, bound=1, bound_object=obj)
    assert names == ["red, left", "“blue ball” · blue, right", "background"]
    assert proposer_name("color_segments") == "colour segmenter" and proposer_name("sam2") == "SAM 2"
    assert proposer_name(None, ["region 1", "background"]) == "SAM 2"  # steps stored before region_backend
    assert proposer_name(None, ["object 1", "background"]) == "colour segmenter"

    details = {"region_labels": list(regions.labels), "region_names": names, "region_scores": [0.9, 0.8, 1.0],
               "region_attention": [0.1, 0.7, 0.2], "bound_region": 1, "region_backend": "color_segments"}
    rows = render.region_rows(details)
    assert [r[1] for r in rows] == ["“blue ball” · blue, right ★", "background", "red, left"]  # by attention
    assert render.region_colour(1) in rows[0][0] and "rb-swatch" in rows[0][0]  # the overlay's colour
    summary = render.regions_summary(details)
    assert "from the colour segmenter." in summary and "2 · “blue ball” · blue, right ★" in summary
    assert "object 1" not in summary
    info = render.region_info(details, 0)
    assert "Region 1 · red, left" in info and "colour segmenter" in info
    assert "Bound region (most attended):** 2 · “blue ball”" in render.object_markdown(details)
    assert render.regions_label(details) == "Regions: colour segmenter"
    assert render.regions_label({**details, "region_backend": "sam2"}) == "Regions: SAM 2"


def test_synth_scenes_regions_get_colour_names_not_numbers():
    from reasonbrain.configuration import ReasonBrainConfig
    from reasonbrain.region_names import is_numbered, region_names
    from reasonbrain.regions import build_region_proposer
    from reasonbrain.synthworld import sample_scene
    from reasonbrain.synthworld.world import COLOURS

    proposer = build_region_proposer(ReasonBrainConfig.from_preset("synth").regions, load_pretrained=False)
    for seed in range(3):
        scene = sample_scene(seed=seed, resolution=64).src
        names = region_names(scene, proposer(scene))
        assert names[-1] == "background" and not any(is_numbered(n) for n in names)
        assert any(n.split(",")[0] in COLOURS for n in names[:-1])  # the world's own colour words


def test_reasoning_images_legend_matches_the_table_and_the_overlay(engine, store, scene):
    view = run(engine, store, ALICE, None, scene, MELT)
    names = view.session["regions"]["region_names"]
    assert names and not any(n.startswith("region ") for n in names[:-1])
    heatmap, update = edit.reasoning_images(store, ALICE, view.session)
    base, masks = update["value"]
    legend = [label for _, label in masks]
    assert legend == [render.region_name(view.session["regions"], i) for i in range(len(masks))]
    assert update["color_map"] == {label: render.region_colour(i) for i, label in enumerate(legend)}
    assert update["label"] == "Regions: SAM 2"  # the tiny preset's proposer
    table_names = {r[1] for r in view.regions_table}
    assert {label.split(" · ", 1)[1] for label in legend} <= table_names
    assert "SAM 2" in view.region_info and "★" in view.region_info
    assert view.step.details["region_backend"] == "transformers_sam2"


def test_small_images_are_upscaled_crisply_for_display():
    import numpy as np

    rng = np.random.default_rng(0)
    pixel_art = PIL.Image.fromarray(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8))
    shown = edit.display_image(pixel_art)
    assert shown.size == (384, 384)
    big = np.asarray(shown).reshape(64, 6, 64, 6, 3)
    assert (big == np.asarray(pixel_art)[:, None, :, None, :]).all()  # every pixel a 6x6 block: nearest neighbour
    assert edit.display_image(PIL.Image.new("RGB", (1000, 500))).size == (384, 192)
    assert edit.display_image(PIL.Image.new("RGB", (300, 200))).size == (300, 200)  # less than 2x: left as is


def test_status_line_shows_the_instruction_of_the_step_on_screen(store, sample_result):
    chain_id, (first, second) = add_steps(store, ALICE, sample_result, [MELT, "Imagine the puddle dried up."])
    session = {**edit.empty_session(), "chain_id": chain_id, "step_id": second.id, "base_id": second.id}
    shown = edit.select_step(store, ALICE, session, second.id)
    assert "Showing step 2:** “Imagine the puddle dried up.”" in shown.status
    shown = edit.select_step(store, ALICE, shown.session, first.id)
    assert f"Showing step 1:** “{MELT}”" in shown.status and "puddle" not in shown.status
    _, (alternative,) = add_steps(store, ALICE, sample_result, ["What if it were night time?"], chain_id=chain_id)
    shown = edit.select_step(store, ALICE, shown.session, alternative.id)
    assert "Showing step 1 (an alternative):** “What if it were night time?”" in shown.status


def test_timeline_lists_step_1_before_its_alternatives(store, sample_result):
    chain_id, (first, second) = add_steps(store, ALICE, sample_result, [MELT, "Imagine the puddle dried up."])
    _, (alternative,) = add_steps(store, ALICE, sample_result, ["What if it were night time?"], chain_id=chain_id)
    tree = store.get_chain(ALICE, chain_id, details=False)
    order = [(s.id, indent, is_branch) for s, indent, is_branch in render.tree_order(tree)]
    assert order == [(first.id, 0, False), (alternative.id, 1, True), (second.id, 0, False)]
    html = render.timeline_html(tree, first.id, lambda rel: "/x/" + rel)
    assert html.index(">Step 1<") < html.index(">↳ Step 1<") < html.index(">Step 2<")


def test_long_texts_are_cut_at_whole_words_or_not_at_all():
    text = "What would the ball look like if it bounced off a springy trampoline three times?"
    short = render.shorten(text, 40)
    assert short.endswith("…") and text.startswith(short[:-1]) and text[len(short) - 1] == " "
    assert render.shorten(text, 200) == text
    now = datetime(2026, 1, 1, tzinfo=timezone.utc)
    last = "Hypothetically, if the green snow man on the right stood in the warm spring sunshine all day, what " \
           "would it look like?"
    card = ChainInfo(id="c", user_id=ALICE, title="A title", source_image="images/aa/src.png", created_at=now,
                     updated_at=now, is_demo=False, num_steps=2, last_output=None, last_instruction=last)
    html = render.chain_cards_html([card], lambda rel: "/x/" + rel)
    assert f"“{last}”" in html.replace("&#x27;", "'")  # whole in the card (CSS wraps it) and in the tooltip
    assert edit.pick_instruction([render.esc("Let's say the <b> & co.")]) == "Let's say the <b> & co."


# ------------------------------------------------------------------------------- refusals, uploads, prompt limit
def test_refusals_are_one_log_line_and_bugs_keep_their_traceback(engine, store, scene, caplog, monkeypatch):
    caplog.set_level(logging.INFO, logger="app")
    refused = [
        lambda: run(engine, store, ALICE, None, scene, ""),
        lambda: run(engine, store, ALICE, None, scene, "x" * 5000),
        lambda: run(engine, store, ALICE, None, None, MELT),
        lambda: run(engine, store, None, None, scene, MELT),
        lambda: edit.undo(store, ALICE, None),
        lambda: edit.open_chain(store, ALICE, "no-such-chain"),
    ]
    for call in refused:
        with pytest.raises(gr.Error) as err:
            call()
        assert err.value.print_exception is False  # gradio prints no traceback for it
    lines = [r for r in caplog.records if r.getMessage().startswith("refused")]
    assert len(lines) == len(refused) and not any(r.exc_info for r in lines)
    assert "5000 characters" in lines[1].getMessage()

    def broken_edit(*args, **kwargs):
        raise RuntimeError("a bug")

    monkeypatch.setattr(engine, "edit", broken_edit)
    with pytest.raises(RuntimeError, match="a bug"):  # not turned into a message: gradio logs its traceback
        run(engine, store, ALICE, None, scene, MELT)


def test_an_unusable_upload_is_refused_at_once(engine, scene, tmp_path):
    notes = tmp_path / "upload.png"
    notes.write_text("not an image\n" * 20)
    view = edit.check_upload(engine, {"path": str(notes), "orig_name": "<b>notes</b>.png"})
    assert view.input_image is None and not view.has_chain  # the box is cleared
    assert "Upload refused" in view.status and "not a readable image" in view.status
    assert "&lt;b&gt;notes&lt;/b&gt;.png" in view.status and "<b>" not in view.status
    assert "Upload a PNG, JPEG or WebP image" in view.status
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    assert "“empty.png” is empty (0 bytes)" in edit.check_upload(engine, {"path": str(empty)}).status
    fine = edit.check_upload(engine, {"path": scene, "orig_name": "scene.png"})
    assert fine.input_image is edit.KEEP and "refused" not in fine.status and not fine.has_chain
    assert "refused" not in edit.check_upload(engine, None).status  # nothing uploaded: nothing to refuse


def test_prompt_counter_shows_the_pipeline_limits(engine):
    pipe = engine._pipeline
    limit = pipe.model.mllm.max_instruction_tokens

    def accepted(text: str) -> bool:
        try:
            pipe.check_inputs(text, 1, 7.5, 1.5, 1)
        except ValueError:
            return False
        return True

    assert "up to 1,000 characters" in edit.prompt_counter(engine, "") and f"{limit} tokens" in edit.prompt_counter(
        engine, "")
    many_tokens = " ".join(["ice"] * (limit + 10))  # under the character limit, over the token limit
    cases = {MELT: False, "  ice   cube  ": False, "x" * 5000: True, many_tokens: True, "x" * 1000: None}
    for text, over in cases.items():
        n = engine.instruction_length(text)
        counter = edit.prompt_counter(engine, text)
        assert f"{n.chars:,} / 1,000 characters" in counter
        assert n.too_long is (not accepted(text))  # the counter and the edit agree
        if over is not None:
            assert ('class="over"' in counter) is over
    assert engine.instruction_length("  ice   cube  ").chars == 8  # whitespace collapsed, as the pipeline does
    assert "too long by 4,000 characters" in edit.prompt_counter(engine, "x" * 5000)
    assert f"reads at most {limit} tokens" in edit.prompt_counter(engine, many_tokens)
