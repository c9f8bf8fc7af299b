"""The model and its mode on screen, in Chromium at 1280x720 and 1920x1080: a photo (gradio's cheetah) edited by the
tiny preset in reason-then-edit mode (its MLLM's answer scripted) shows no photo warning, names the model and mode on
the result, in the footer and on its History card, and fills the Reasoning panel with the MLLM's outcome, the
instruction the editor was given and the mask; the bundled synth app still names its model.

Screenshots go to ``test-artifacts/screenshots/`` (gitignored)."""

from __future__ import annotations

import os

import PIL.Image
import pytest

from app.tabs.edit.views import MASK_LABEL
from reasonbrain.bundled import default_checkpoint
from reasonbrain.configuration import REASON_THEN_EDIT_MODE
from tests.test_app_browser import CHROMIUM, SHOTS, TIMEOUT, show_lazy_images
from tests.test_app_client import launch_app
from tests.test_app_modes import scripted_pipeline
from tests.test_reason_then_edit import GRADIO_IMAGES, INSTRUCTION

pytestmark = [
    pytest.mark.skipif(not os.path.exists(CHROMIUM), reason=f"Chromium not installed at {CHROMIUM}"),
    pytest.mark.skipif(GRADIO_IMAGES is None, reason="gradio's media_assets/images not found"),
    pytest.mark.timeout(300),
]
sync_api = pytest.importorskip("playwright.sync_api", reason="the playwright package is not installed")

VIEWPORTS = [(1280, 720), (1920, 1080)]
RTE_LABEL = "tiny · reason-then-edit (random weights)"
SYNTH_LABEL = "synth · ReasonBrain (trained)"



@pytest.fixture(scope="module")
def rte_app(tmp_path_factory):
    with launch_app(str(tmp_path_factory.mktemp("rte-app")), mode=REASON_THEN_EDIT_MODE,
                    pipeline_factory=scripted_pipeline) as running:
        yield running


def open_page(browser, app, width: int, height: int):
    context = browser.new_context(viewport={"width": width, "height": height})
    page = context.new_page()
    page.set_default_timeout(TIMEOUT)
    page.goto(app.url)
    page.wait_for_selector("#user-badge code")
    return context, page


def edit_photo(page, path: str, text: str) -> None:
    page.locator("#input-image input[type=file]").set_input_files(path)
    page.wait_for_selector("#input-image img")
    prompt = page.locator("#prompt").get_by_role("textbox")
    prompt.fill(text)
    prompt.press("Enter")
    page.wait_for_function("document.querySelector('#edit-status').innerText.includes('Showing step 1:')",
                           timeout=TIMEOUT)


@pytest.mark.parametrize("viewport", VIEWPORTS, ids=[f"{w}x{h}" for w, h in VIEWPORTS])
def test_reason_then_edit_result_reasoning_and_history_show_model_and_mode(rte_app, browser, viewport):
    SHOTS.mkdir(parents=True, exist_ok=True)
    width, height = viewport
    size = f"{width}x{height}"
    context, page = open_page(browser, rte_app, width, height)
    try:
        sync_api.expect(page.locator("#footer-note")).to_contain_text(f"Model: {RTE_LABEL}")
        edit_photo(page, str(GRADIO_IMAGES / "cheetah.jpg"), INSTRUCTION)
        sync_api.expect(page.locator("#domain-warning")).to_be_hidden()  # a photo is what this mode is for
        status = page.locator("#edit-status")
        sync_api.expect(status).to_contain_text(f"Model: {RTE_LABEL}")
        assert "out of domain" not in status.inner_text()
        model = status.locator(".rb-model")
        assert model.is_visible() and model.evaluate("e => getComputedStyle(e).fontWeight") == "600"

        panel = page.locator("#object-info")
        sync_api.expect(panel).to_contain_text(
            "Outcome (the MLLM's reasoning): The cheetah's fur is soaked and dripping with rain.")
        sync_api.expect(panel).to_contain_text(
            "Edit instruction given to the editor: “make the cheetah's fur soaking wet with rain drops” "
            "(the MLLM's explicit edit)")
        sync_api.expect(panel).to_contain_text("Referenced object: cheetah")
        sync_api.expect(panel).to_contain_text("Mask: the region from SAM 2 that matches the MLLM's box")
        sync_api.expect(panel).to_contain_text("Fallbacks: none")
        assert "Object token" not in panel.inner_text()
        sync_api.expect(page.locator("#attention-heatmap")).to_contain_text(MASK_LABEL)  # one line, over the image
        mask = page.locator("#attention-heatmap img")
        mask.scroll_into_view_if_needed()
        page.wait_for_function("() => { const i = document.querySelector('#attention-heatmap img');"
                               " return i && i.complete && i.naturalWidth === 384; }", timeout=TIMEOUT)
        label = page.locator("#attention-heatmap [data-testid=block-label]").bounding_box()
        assert label["height"] < 40 and label["width"] < page.locator("#attention-heatmap").bounding_box()["width"]
        sync_api.expect(page.locator("#region-info")).to_contain_text("not applicable in reason-then-edit mode")
        show_lazy_images(page, "#reasoning-panel", "#timeline")
        page.screenshot(path=str(SHOTS / f"modes-rte-{size}-result.png"), full_page=True)

        page.get_by_role("tab", name="History").click()
        card = page.locator("#history-list [data-select]").first
        card.wait_for()
        sync_api.expect(card.locator(".rb-card-model")).to_have_text(RTE_LABEL)
        assert card.locator(".rb-card-model").is_visible()
        show_lazy_images(page, "#history-list")
        page.screenshot(path=str(SHOTS / f"modes-rte-{size}-history.png"))
    finally:
        context.close()


@pytest.mark.skipif(not os.path.isdir(default_checkpoint()), reason="the bundled synth checkpoint is not there")
def test_bundled_synth_app_names_its_model(browser, tmp_path):
    with launch_app(str(tmp_path / "data"), checkpoint=default_checkpoint(), examples=True) as app:
        context, page = open_page(browser, app, 1280, 720)
        try:
            sync_api.expect(page.locator("#footer-note")).to_contain_text(f"Model: {SYNTH_LABEL}")
            page.locator("#example-scenes img").first.click()
            page.locator("#edit-btn").click()
            page.wait_for_function("document.querySelector('#edit-status').innerText.includes('Showing step 1:')",
                                   timeout=TIMEOUT)
            sync_api.expect(page.locator("#edit-status")).to_contain_text(f"Model: {SYNTH_LABEL}")
            sync_api.expect(page.locator("#attention-heatmap")).to_contain_text("ID Controller attention")
            sync_api.expect(page.locator("#object-info")).to_contain_text("Object token O")
            page.get_by_role("tab", name="History").click()
            sync_api.expect(page.locator("#history-list .rb-card-model").first).to_have_text(SYNTH_LABEL)
        finally:
            context.close()


# --- what a photo app offers: photo examples, the intro, no demo chains ------------------------------------------------
@pytest.fixture(scope="module")
def photo_app(tmp_path_factory):
    """As ``python -m app --preset tiny --mode reason_then_edit`` serves it, examples on; the demo chains it is asked
    to preload are not (reason-then-edit mode)."""
    with launch_app(str(tmp_path_factory.mktemp("photo-app")), examples=True, demo_seeds=(1,),
                    mode=REASON_THEN_EDIT_MODE, pipeline_factory=scripted_pipeline) as running:
        yield running


THUMBS_JS = """() => [...document.querySelectorAll('#example-scenes img')].map(i => {
  const r = i.getBoundingClientRect();
  return {natural: [i.naturalWidth, i.naturalHeight], box: [r.left, r.top, r.width, r.height]}; })"""


@pytest.mark.parametrize("viewport", VIEWPORTS, ids=[f"{w}x{h}" for w, h in VIEWPORTS])
def test_photo_app_offers_photo_examples_says_what_happens_and_presents_no_demo(photo_app, browser, viewport):
    from app.photo_examples import PHOTOS, PROMPT_HINT

    SHOTS.mkdir(parents=True, exist_ok=True)
    width, height = viewport
    context, page = open_page(browser, photo_app, width, height)
    try:
        intro = page.locator("#app-intro")
        sync_api.expect(intro).to_contain_text("Reason-then-edit mode: an MLLM reasons about")
        sync_api.expect(intro).to_contain_text("InstructPix2Pix edits only inside that mask")
        prompt = page.locator("#prompt").get_by_role("textbox")
        assert prompt.get_attribute("placeholder") == PROMPT_HINT
        sync_api.expect(page.locator("#example-scenes")).to_contain_text("Example photos")
        page.locator("#example-scenes").scroll_into_view_if_needed()
        page.wait_for_function("() => { const im = [...document.querySelectorAll('#example-scenes img')];"
                               f" return im.length === {len(PHOTOS)} && im.every(i => i.complete && i.naturalWidth); }}")
        thumbs = page.evaluate(THUMBS_JS)
        assert all(t["natural"] != [64, 64] and min(t["natural"]) >= 256 for t in thumbs), thumbs  # photos
        assert all(t["box"][2] == t["box"][3] == 96 for t in thumbs), thumbs  # one square size, any shape
        boxes = sorted(t["box"] for t in thumbs)
        assert all(a[0] + a[2] <= b[0] or a[1] + a[3] <= b[1] for a, b in zip(boxes, boxes[1:])), boxes  # apart
        assert all(b[0] + b[2] <= width for b in boxes)
        page.screenshot(path=str(SHOTS / f"modes-photo-{width}x{height}-edit.png"))

        page.locator("#example-scenes img").first.click()  # a photo fills the image and the instruction
        sync_api.expect(prompt).to_have_value(PHOTOS[0][1])
        page.wait_for_function("() => document.querySelector('#input-image img')?.naturalWidth > 0")
        natural = page.locator("#input-image img").evaluate("i => [i.naturalWidth, i.naturalHeight]")
        assert natural == list(PIL.Image.open(GRADIO_IMAGES / PHOTOS[0][0]).size)
        assert page.locator("#input-image img").get_attribute("data-rb-pixel-art") is None  # smooth, not pixelated
        page.screenshot(path=str(SHOTS / f"modes-photo-{width}x{height}-picked.png"), full_page=True)

        page.get_by_role("tab", name="Presenter").click()
        sync_api.expect(page.locator("#presenter-header")).to_contain_text("No chains to present yet")
        assert "Demo" not in page.locator("#presenter-chain").inner_text()
        page.screenshot(path=str(SHOTS / f"modes-photo-{width}x{height}-presenter.png"))
    finally:
        context.close()
