"""Photos and the bundled synth model (issue 19, item 5): the out-of-domain detector, the engine's verdict, the
Edit tab's warning, the "out of domain" label on results and in History, and the same in a real browser."""

from __future__ import annotations

import contextlib
import io
import json
import os
import sqlite3
import time
import types
import uuid
from collections.abc import Iterator
from pathlib import Path

import gradio as gr
import numpy as np
import PIL.Image
import pytest

from app.engine import Engine
from app.settings import Settings
from app.store import Store
from app.tabs import edit, history
from reasonbrain.configuration import ReasonBrainConfig
from reasonbrain.synthworld import Renderer, generate_sample, sample_chain, sample_scene
from reasonbrain.synthworld.domain import check_image, synth_only, world_summary

GRADIO_IMAGES = Path(gr.__file__).resolve().parent / "media_assets" / "images"
GRADIO_PHOTOS = ("cheetah.jpg", "cheetah1.jpg", "groot.jpeg", "lion.jpg", "tower.jpg")
SKIMAGE_PHOTOS = (
    "astronaut.png", "brick.png", "camera.png", "cell.png", "chelsea.png", "clock_motion.png", "coffee.png",
    "coins.png", "grass.png", "gravel.png", "hubble_deep_field.jpg", "ihc.png", "microaneurysms.png", "moon.png",
    "motorcycle_left.png", "motorcycle_right.png", "retina.jpg", "rocket.jpg", "text.png",
)
CHEETAH = str(GRADIO_IMAGES / "cheetah.jpg")
SNOW = "What would happen if the cheetah were left out in the snow all night?"
MELT = "What would happen if the ice cube were left in the sun?"
ALICE = str(uuid.UUID(int=1))
TEST_SPLIT = (0.0, 0.0, 1.0)


def jpeg(image: PIL.Image.Image, quality: int) -> PIL.Image.Image:
    buf = io.BytesIO()
    image.save(buf, "JPEG", quality=quality)
    return PIL.Image.open(io.BytesIO(buf.getvalue()))


# ------------------------------------------------------------------------------------------------ the detector
@pytest.mark.parametrize("name", GRADIO_PHOTOS)
def test_every_photo_gradio_ships_is_flagged(name):
    check = check_image(PIL.Image.open(GRADIO_IMAGES / name))
    assert not check.in_domain and check.score > 1.0
    assert check.reason.startswith("it looks like a photograph")
    assert json.loads(json.dumps(check.to_dict()))["in_domain"] is False


def test_photos_scikit_image_ships_are_flagged():
    skimage = pytest.importorskip("skimage", reason="scikit-image (requirements-dev.txt) ships the photos")
    folder = Path(skimage.__file__).resolve().parent / "data"
    checks = {name: check_image(PIL.Image.open(folder / name)) for name in SKIMAGE_PHOTOS}
    missed = [name for name, c in checks.items() if c.in_domain]
    assert len(missed) <= 0.05 * len(checks), f"photos taken for synth scenes: {missed}"
    faces = np.load(folder / "lfw_subset.npy")  # 200 tiny grey face photos, 25x25
    flagged = sum(not check_image(PIL.Image.fromarray((f * 255).astype(np.uint8)).convert("RGB")).in_domain
                  for f in faces)
    assert flagged >= 0.95 * len(faces)


def test_no_test_split_scene_is_flagged_as_rendered_or_rescaled():
    renderer = Renderer(64)
    sources = [generate_sample(0, i, renderer=renderer, split_fractions=TEST_SPLIT).src for i in range(300)]
    checks = [check_image(im) for im in sources]
    assert [i for i, c in enumerate(checks) if not c.in_domain] == []
    assert max(c.score for c in checks) <= 1.0
    assert "like the synthetic world's scenes" in checks[0].reason
    # the same scenes as people pass them around: crisp or smooth upscales, a JPEG of an upscale, a smaller copy
    variants = {
        "nearest x8": lambda im: im.resize((512, 512), PIL.Image.Resampling.NEAREST),
        "bilinear x4": lambda im: im.resize((256, 256), PIL.Image.Resampling.BILINEAR),
        "nearest x8 + JPEG q90": lambda im: jpeg(im.resize((512, 512), PIL.Image.Resampling.NEAREST), 90),
        "bilinear 300 + JPEG q75": lambda im: jpeg(im.resize((300, 300), PIL.Image.Resampling.BILINEAR), 75),
        "48 px": lambda im: im.resize((48, 48), PIL.Image.Resampling.LANCZOS),
    }
    for name, fn in variants.items():
        flagged = [i for i, im in enumerate(sources[:60]) if not check_image(fn(im)).in_domain]
        assert flagged == [], f"{name}: scenes {flagged} flagged"


def test_app_examples_chains_and_larger_renders_are_in_domain():
    images = [sample_scene(seed=i).src for i in range(6)]  # the Edit tab's example scenes
    images += [s.src for s in sample_chain(1)] + [sample_chain(1)[-1].tgt]  # a demo chain
    images += [generate_sample(0, i, resolution=256, split_fractions=TEST_SPLIT).src for i in range(10)]
    assert all(check_image(im).in_domain for im in images)


def test_odd_inputs_are_judged_or_refused_clearly():
    scene = sample_scene(seed=2).src
    assert check_image(scene.convert("RGBA")).in_domain  # alpha flattened, as uploads are
    assert check_image(scene.convert("P", palette=PIL.Image.Palette.ADAPTIVE)).in_domain  # a GIF of it
    assert not check_image(scene.convert("L")).in_domain  # the world is colourful: grey is outside it
    assert "grey" in check_image(scene.convert("L")).reason
    with pytest.raises(ValueError, match="too small"):
        check_image(PIL.Image.new("RGB", (1, 1)))


def test_what_the_model_knows_is_the_worlds_own_list():
    text = world_summary()
    for word in ("ice cube", "snowman", "kitchen", "beach", "physical", "temporal", "causal", "story"):
        assert word in text


def test_synth_only_is_read_from_the_checkpoint_config():
    assert synth_only(ReasonBrainConfig.from_preset("synth"))
    assert not synth_only(ReasonBrainConfig.from_preset("tiny"))  # the tests' preset: random weights, no world
    assert not synth_only(ReasonBrainConfig.from_preset("reasonbrain-3b"))
    bundled = Settings().checkpoint
    assert synth_only(ReasonBrainConfig.from_json_file(os.path.join(bundled, "reasonbrain_config.json")))


# ------------------------------------------------------------------------------------------------ engine, store
@pytest.fixture(scope="module")
def synth_engine(tmp_path_factory) -> Engine:
    """The bundled synth checkpoint (loads in ~0.3 s, a 2-step edit ~0.2 s on CPU)."""
    d = tmp_path_factory.mktemp("synth-engine")
    eng = Engine(Settings(data_dir=str(d), db_path=str(d / "db.sqlite"), examples=False))
    eng.load()
    return eng


@pytest.fixture(scope="module")
def tiny_engine(tmp_path_factory) -> Engine:
    d = tmp_path_factory.mktemp("tiny-engine")
    return Engine(Settings(preset="tiny", data_dir=str(d), db_path=str(d / "db.sqlite"), examples=False))


@pytest.fixture
def store(tmp_path) -> Iterator[Store]:
    s = Store(str(tmp_path / "db.sqlite"), str(tmp_path / "data"))
    yield s
    s.close()


@pytest.fixture(scope="module")
def scene_png(tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp("scene") / "scene.png"
    sample_scene(seed=0).src.save(path)
    return str(path)


def test_engine_checks_only_for_a_synth_only_model(synth_engine, tiny_engine, scene_png, tmp_path):
    assert synth_engine.synth_only and not tiny_engine.synth_only
    assert tiny_engine.domain_check(CHEETAH) is None and not tiny_engine.loaded  # config only, no weights
    photo = synth_engine.domain_check(CHEETAH)
    assert photo is not None and not photo.in_domain
    assert synth_engine.domain_check(scene_png).in_domain
    text = tmp_path / "notes.png"
    text.write_text("not an image")
    with pytest.raises(ValueError):
        synth_engine.domain_check(str(text))


def test_store_keeps_the_domain_note(store):
    scene = sample_scene(seed=0).src
    step = store.start_chain(ALICE, scene, instruction=MELT, output_image=scene, seed=1, settings={},
                             preset="synth", checkpoint_hash="h", timings={}, details={},
                             domain_note="  it looks like a photograph  ")
    plain = store.create_chain(ALICE, scene)
    tree = store.get_chain(ALICE, step.chain_id)
    assert tree.chain.domain_note == "it looks like a photograph" and tree.chain.out_of_domain
    assert not plain.out_of_domain and plain.domain_note is None
    listed = {c.id: c.out_of_domain for c in store.list_chains(ALICE)}
    assert listed == {step.chain_id: True, plain.id: False}
    with pytest.raises(ValueError, match="domain_note"):
        store.create_chain(ALICE, scene, domain_note="   ")


def test_migration_adds_the_column_to_an_existing_database(tmp_path):
    from alembic import command
    from alembic.config import Config

    from app.store import MIGRATIONS_DIR

    db = tmp_path / "old.db"
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option("sqlalchemy.url", f"sqlite:///{db}")
    command.upgrade(cfg, "0002")  # a database from before this change, with a chain in it
    with sqlite3.connect(db) as con:
        con.execute("insert into chains (id, user_id, title, source_image, created_at, updated_at, is_demo) "
                    "values ('c1', ?, 'old', 'images/aa/x.png', '2026-01-01 00:00:00', '2026-01-01 00:00:00', 0)",
                    (ALICE,))
    with Store(str(db), str(tmp_path / "data")) as s:
        old = s.list_chains(ALICE)[0]
        assert old.title == "old" and not old.out_of_domain
    command.downgrade(cfg, "0002")
    with sqlite3.connect(db) as con:
        assert "domain_note" not in [r[1] for r in con.execute("pragma table_info(chains)")]


# ------------------------------------------------------------------------------------------------ the Edit tab
def test_the_warning_appears_for_a_photo_and_not_for_a_scene(synth_engine, tiny_engine, store, scene_png, tmp_path):
    fresh = edit.empty_session()
    shown = edit.domain_notice(synth_engine, store, ALICE, fresh, CHEETAH)
    assert shown["visible"] is True
    html = shown["value"]
    for words in ("This image is outside what the model knows", "Pick an example scene",
                  "physical, temporal, causal or story", "ice cube", "out of domain", "Edit"):
        assert words in html
    assert "flat colour" in html  # the reason, in words
    # an example scene after the photo: the warning goes; nothing to change -> no update at all
    assert edit.domain_notice(synth_engine, store, ALICE, fresh, scene_png, html) == {
        "__type__": "update", "value": "", "visible": False}
    assert isinstance(edit.domain_notice(synth_engine, store, ALICE, fresh, scene_png, ""), type(gr.skip()))
    assert isinstance(edit.domain_notice(synth_engine, store, ALICE, fresh, None, None), type(gr.skip()))
    # not a synth-only model: never a warning; an unreadable upload: no warning (its own refusal says why)
    assert isinstance(edit.domain_notice(tiny_engine, store, ALICE, fresh, CHEETAH, ""), type(gr.skip()))
    broken = tmp_path / "broken.png"
    broken.write_text("not an image")
    assert isinstance(edit.domain_notice(synth_engine, store, ALICE, fresh, str(broken), ""), type(gr.skip()))


def run(engine, store, session, image, text):
    return edit.run_edit(engine, store, ALICE, session, image, text, 2, None, None, 5, False, None)


def test_an_out_of_domain_edit_runs_and_is_labelled_in_result_and_history(synth_engine, store, scene_png):
    view = run(synth_engine, store, edit.empty_session(), CHEETAH, SNOW)
    assert view.has_step  # the edit ran
    assert "out of domain" in view.status
    chain = store.get_chain(ALICE, view.session["chain_id"]).chain
    assert chain.out_of_domain and "photograph" in chain.domain_note
    first = store.get_step(ALICE, view.session["step_id"])
    assert first.details["domain"]["in_domain"] is False and first.details["domain"]["score"] > 1
    # the warning stays for the chain (its stored verdict), with the chain's wording
    notice = edit.domain_notice(synth_engine, store, ALICE, view.session, None, "")
    assert notice["visible"] and "This chain's source image" in notice["value"]

    # continuing the chain keeps the label (the input is now the model's own output)
    cont = edit.continue_from_result(store, ALICE, view.session)
    second = run(synth_engine, store, cont.session, None, "Imagine it were night time.")
    assert "out of domain" in second.status and second.step.position == 2
    assert edit.open_chain(store, ALICE, chain.id).status.count("out of domain") == 1

    # a scene of the world: no label, no note, no warning
    good = run(synth_engine, store, edit.empty_session(), scene_png, sample_scene(seed=0).record.instruction)
    assert "out of domain" not in good.status
    assert store.get_chain(ALICE, good.session["chain_id"]).chain.domain_note is None
    assert isinstance(edit.domain_notice(synth_engine, store, ALICE, good.session, None, ""), type(gr.skip()))

    cards = history.list_chains(store, ALICE).html
    assert cards.count("out of domain") == 1  # the photo's chain only
    photo_card = cards[cards.index(chain.id):]
    assert "out of domain" in photo_card[: photo_card.index("</button>")]


def test_a_model_that_is_not_synth_only_never_labels(tiny_engine):
    result = types.SimpleNamespace(input_image=PIL.Image.open(CHEETAH).convert("RGB"), details={})
    assert edit.source_domain_note(tiny_engine, result) is None and result.details == {}


# ------------------------------------------------------------------------------------------------ in a browser
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--disable-dev-shm-usage",
    "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run",
]
SHOTS = Path(__file__).resolve().parent.parent / "test-artifacts" / "screenshots"
TIMEOUT = 30_000


@contextlib.contextmanager
def launch_synth_app(data_dir: str) -> Iterator[tuple[str, Store]]:
    """``python -m app`` as it ships (the bundled synth checkpoint, example scenes) on a free port."""
    from app.ui import create_app, launch_options, queue_options
    from tests.test_app_client import free_port

    settings = Settings(data_dir=data_dir, port=free_port(), examples=True)
    store = Store(settings.db_path, settings.data_dir)
    engine = Engine(settings)
    engine.load()
    demo = create_app(engine, store)
    demo.queue(**queue_options(settings)).launch(**launch_options(settings, store, prevent_thread_lock=True,
                                                                   quiet=True))
    try:
        yield f"http://{settings.host}:{settings.port}/", store
    finally:
        demo.close()
        store.close()


@pytest.mark.timeout(300)
@pytest.mark.skipif(not os.path.exists(CHROMIUM), reason=f"Chromium not installed at {CHROMIUM}")
def test_browser_photo_upload_warns_at_once_and_edit_stays_usable(tmp_path):
    sync_api = pytest.importorskip("playwright.sync_api", reason="the playwright package is not installed")
    SHOTS.mkdir(parents=True, exist_ok=True)
    with launch_synth_app(str(tmp_path / "data")) as (url, store), sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            for width, height in ((1280, 720), (1920, 1080)):
                page = browser.new_context(viewport={"width": width, "height": height}).new_page()
                page.set_default_timeout(TIMEOUT)
                page.goto(url)
                page.wait_for_selector("#user-badge code")
                warning = page.locator("#domain-warning")
                assert not warning.is_visible()

                # a photograph: the warning is on screen at once, beside the input, and Edit stays enabled
                start = time.perf_counter()
                page.locator("#input-image input[type=file]").set_input_files(CHEETAH)
                page.get_by_text("This image is outside what the model knows").wait_for()
                seconds = time.perf_counter() - start
                assert seconds < 5, f"the warning took {seconds:.1f} s"
                page.screenshot(path=str(SHOTS / f"domain-warning-{width}x{height}.png"))
                box, image_box = warning.bounding_box(), page.locator("#input-image").bounding_box()
                assert image_box["y"] + image_box["height"] - 1 <= box["y"] <= image_box["y"] + image_box["height"] + 40
                assert image_box["x"] - 1 <= box["x"] and box["x"] + box["width"] <= image_box["x"] + image_box["width"] + 1
                assert box["y"] + box["height"] <= height, "the warning is below the fold"  # whole, no scrolling
                assert 50 <= box["height"] <= 160 and "Pick an example scene" in warning.inner_text()
                sync_api.expect(page.locator("#edit-btn")).to_be_enabled()

                if width == 1280:  # the edit and History once (their layout is other tests' business)
                    edit_anyway_and_find_it_in_history(page, sync_api, warning, width, height)

                # an example scene of the world: the warning goes at once
                page.locator("#new-btn").click()
                # once New chain has emptied the box: its response would otherwise clear the example it filled
                page.wait_for_function("document.querySelector('#input-image img') === null")
                page.locator("#example-scenes img").first.click()
                page.wait_for_function("!document.querySelector('#domain-warning')?.checkVisibility()")
                sync_api.expect(page.locator("#edit-btn")).to_be_enabled()
                page.screenshot(path=str(SHOTS / f"domain-example-{width}x{height}.png"))
                page.context.close()
            assert sum(c.out_of_domain for u in store.user_ids() for c in store.list_chains(u)) == 1
        finally:
            browser.close()


def edit_anyway_and_find_it_in_history(page, sync_api, warning, width: int, height: int) -> None:
    """Edit the photo anyway: it runs, the result and the History card say "out of domain", controls usable."""
    prompt = page.locator("#prompt").get_by_role("textbox")
    prompt.fill(SNOW)
    page.locator("#edit-btn").click()
    page.wait_for_function("document.querySelector('#edit-status').innerText.includes('out of domain')")
    page.wait_for_selector("#attention-heatmap img")
    sync_api.expect(page.locator("#edit-btn")).to_be_enabled()
    sync_api.expect(page.locator("#continue-btn")).to_be_enabled()
    label = page.locator("#edit-status .rb-ood")
    assert label.is_visible() and label.bounding_box()["width"] > 60
    assert warning.is_visible() and "This chain's source image" in warning.inner_text()
    page.screenshot(path=str(SHOTS / f"domain-result-{width}x{height}.png"), full_page=True)

    # History: the chain's card carries the label
    page.get_by_role("tab", name="History").click()
    badge = page.locator("#history-list .rb-card-ood").first
    badge.wait_for()
    assert badge.inner_text().strip().endswith("out of domain") and badge.bounding_box()["height"] > 10
    page.screenshot(path=str(SHOTS / f"domain-history-{width}x{height}.png"))

    page.get_by_role("tab", name="Edit").click()


def test_the_synth_model_lists_and_refuses_nothing_on_a_photo(scene_png):
    """Its recogniser may fire on a photo (a balloon in a cheetah): outside the world it is trusted with nothing, so
    "There is no cheetah in this picture; the objects here are: balloon" never happens; on a scene it still refuses."""
    from PIL import Image

    from reasonbrain.bundled import default_checkpoint
    from reasonbrain.image_io import load_image, prepare_image
    from reasonbrain.pipelines.pipeline_reasonbrain import ReasonBrainEditPipeline
    from reasonbrain.referring import ObjectNotInImageError

    pipe = ReasonBrainEditPipeline.from_pretrained(default_checkpoint())
    res = pipe.model.config.resolution
    photo = load_image(CHEETAH)
    pixels, _ = prepare_image(photo, res)
    entries = pipe.recognise_objects(pixels[None], photo.resize((res, res)))
    assert entries is not None and not any(e.confident for e in entries)
    out = pipe(CHEETAH, SNOW, seed=0, num_inference_steps=2)
    assert out.scene_objects == []
    scene = Image.open(scene_png)
    with pytest.raises(ObjectNotInImageError, match="no cheetah"):
        pipe(scene, SNOW, seed=0, num_inference_steps=2)
