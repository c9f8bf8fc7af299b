"""The Edit tab in Chromium, as a picky user sees it: the before/after slider's geometry, the controls and the
message after every refusal, the prompt's limit while typing, uploads checked at once, and what the server logs.

Screenshots go to ``test-artifacts/screenshots/`` (gitignored)."""

from __future__ import annotations

import logging
import os

import pytest

from tests.test_app_browser import CHROMIUM, SHOTS, TIMEOUT
from tests.test_app_client import launch_app

MELT = "What would happen if the ice cube were left in the sun?"
VIEWPORTS = [(1280, 720), (1920, 1080)]

pytestmark = [
    pytest.mark.skipif(not os.path.exists(CHROMIUM), reason=f"Chromium not installed at {CHROMIUM} "
                       "(apt-get install -y chromium); the browser test needs it"),
    pytest.mark.timeout(300),
]
sync_api = pytest.importorskip("playwright.sync_api", reason="the playwright package is not installed")


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    with launch_app(str(tmp_path_factory.mktemp("edit-browser"))) as running:
        yield running


@pytest.fixture(scope="module")
def files(app, tmp_path_factory) -> dict[str, str]:
    folder = tmp_path_factory.mktemp("edit-files")
    scene = folder / "scene.png"
    app.engine.example_images()[5][0].resize((256, 256)).save(scene)
    pixel_art = folder / "pixel-art.png"  # the synth world's own 64 px
    app.engine.example_images()[5][0].save(pixel_art)
    notes = folder / "notes.png"  # a text file renamed .png
    notes.write_text("Shopping list: milk, eggs, ice cubes.\n" * 20)
    return {"scene": str(scene), "pixel_art": str(pixel_art), "notes": str(notes)}



def open_page(browser, app, width: int, height: int):
    page = browser.new_page(viewport={"width": width, "height": height})
    page.set_default_timeout(TIMEOUT)
    page.goto(app.url)
    page.wait_for_selector("#user-badge code")  # the session is identified
    return page


def upload(page, path: str) -> None:
    page.locator("#input-image input[type=file]").set_input_files(path)


def prompt(page):
    return page.locator("#prompt").get_by_role("textbox")


def status_text(page) -> str:
    return page.locator("#edit-status").inner_text()


def wait_status(page, text: str) -> None:
    page.wait_for_function("t => document.querySelector('#edit-status').innerText.includes(t)", arg=text)


def assert_controls_usable(page) -> None:
    for button in ("#edit-btn", "#new-btn"):
        sync_api.expect(page.locator(button)).to_be_enabled(timeout=3_000)
    assert prompt(page).is_editable()


def edit(page, text: str = MELT) -> None:
    prompt(page).fill(text)
    page.locator("#edit-btn").click()
    wait_status(page, "step 1")


def boxes(page, selector: str) -> list[dict[str, float]]:
    loc = page.locator(selector)
    return [loc.nth(i).bounding_box() for i in range(loc.count())]


def inside(inner: dict[str, float], outer: dict[str, float], tol: float = 1.0) -> bool:
    return (inner["x"] >= outer["x"] - tol and inner["y"] >= outer["y"] - tol
            and inner["x"] + inner["width"] <= outer["x"] + outer["width"] + tol
            and inner["y"] + inner["height"] <= outer["y"] + outer["height"] + tol)


# the part of an <img> the picture covers (object-fit decides), in page coordinates
DRAWN_RECT_JS = """img => {
  const b = img.getBoundingClientRect(), fit = getComputedStyle(img).objectFit;
  const r = img.naturalWidth / img.naturalHeight;
  let w = b.width, h = b.height;
  if (fit === 'contain') { if (b.width / b.height > r) w = b.height * r; else h = b.width / r; }
  else if (fit === 'cover') { if (b.width / b.height > r) h = b.width / r; else w = b.height * r; }
  return {x: b.x + (b.width - w) / 2, y: b.y + (b.height - h) / 2, width: w, height: h};
}"""


def test_before_and_after_are_aligned_and_wholly_visible(browser, app, files):
    """Both slider images in the same box to the pixel, the whole picture inside the slider, at least 256 px
    wide, at 1280x720, 1400x1000 and 1920x1080; the handle and the cut between the images move together."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    page = open_page(browser, app, 1280, 720)
    try:
        upload(page, files["scene"])
        page.wait_for_selector("#input-image img")
        edit(page)
        page.wait_for_function("document.querySelectorAll('#result-slider img').length === 2 && "
                               "[...document.querySelectorAll('#result-slider img')].every(i => i.complete)")
        for width, height in [(1280, 720), (1400, 1000), (1920, 1080)]:
            page.set_viewport_size({"width": width, "height": height})
            page.wait_for_timeout(300)  # the slider re-measures on resize
            frame = page.locator("#result-slider .slider-wrap").bounding_box()
            before, after = boxes(page, "#result-slider img")
            for key in ("x", "y", "width", "height"):
                assert abs(before[key] - after[key]) <= 1, f"{width}x{height}: {key} {before} vs {after}"
            imgs = page.locator("#result-slider img")
            for i in range(2):
                drawn = imgs.nth(i).evaluate(DRAWN_RECT_JS)
                assert inside(drawn, frame), f"{width}x{height}: image {i} {drawn} overflows the slider {frame}"
                assert drawn["width"] >= 256 and drawn["height"] >= 256, f"{width}x{height}: {drawn}"
            assert inside(frame, page.locator("#result-slider").bounding_box())
            page.screenshot(path=str(SHOTS / f"edit-slider-{width}x{height}.png"))
        # a 256 px image is not pixel art: both images scaled smoothly
        assert slider_rendering(page) == [("auto", False)] * 2

        # drag the handle to 30% of the picture: the "after" image is cut where the handle is
        page.set_viewport_size({"width": 1280, "height": 720})
        page.wait_for_timeout(300)
        drawn = imgs.nth(0).evaluate(DRAWN_RECT_JS)
        handle = page.locator("#result-slider .outer").bounding_box()
        page.mouse.move(handle["x"] + handle["width"] / 2, handle["y"] + handle["height"] / 2)
        page.mouse.down()
        target = drawn["x"] + 0.3 * drawn["width"]
        page.mouse.move(target, handle["y"] + handle["height"] / 2, steps=8)
        page.mouse.up()
        page.wait_for_timeout(200)
        handle = page.locator("#result-slider .outer").bounding_box()
        cut = page.locator("#result-slider img.fixed").evaluate(
            "img => { const m = /inset\\(0(?:px)? 0(?:px)? 0(?:px)? ([\\d.]+)%\\)/.exec(img.style.clipPath || "
            "getComputedStyle(img).clipPath); const b = img.getBoundingClientRect();"
            " return m ? b.x + b.width * parseFloat(m[1]) / 100 : null; }")
        assert cut is not None
        assert abs(cut - (handle["x"] + handle["width"] / 2)) <= 3, (cut, handle)

        # the synth world's 64 px pixel art: both images upscaled crisply, still aligned to the pixel
        page.locator("#new-btn").click()
        # upload once the box is empty, as a person can: clearing it swaps gradio's hidden file input, and files
        # set on the old one while New chain's response is in flight are dropped (no upload event)
        page.wait_for_function("document.querySelector('#input-image img') === null")
        upload(page, files["pixel_art"])
        wait_status(page, "New image")
        page.wait_for_function("document.querySelector('#input-image img')?.naturalWidth === 64")
        edit(page)
        page.wait_for_function("[...document.querySelectorAll('#result-slider img')].every(i => i.complete && "
                               "i.naturalWidth === 64 && i.hasAttribute('data-rb-pixel-art'))")
        assert slider_rendering(page) == [("pixelated", True)] * 2
        for width, height in VIEWPORTS:
            page.set_viewport_size({"width": width, "height": height})
            page.wait_for_timeout(300)
            before, after = boxes(page, "#result-slider img")
            assert all(abs(before[k] - after[k]) <= 1 for k in before), (before, after)
            drawn = page.locator("#result-slider img").first.evaluate(DRAWN_RECT_JS)
            assert inside(drawn, page.locator("#result-slider .slider-wrap").bounding_box())
            assert drawn["width"] >= 256, drawn
            page.screenshot(path=str(SHOTS / f"edit-slider-pixel-art-{width}x{height}.png"))
    finally:
        page.close()


def slider_rendering(page) -> list[tuple[str, bool]]:
    """``(image-rendering, marked as pixel art)`` of the slider's two images."""
    return [tuple(r) for r in page.locator("#result-slider img").evaluate_all(
        "imgs => imgs.map(i => [getComputedStyle(i).imageRendering, i.hasAttribute('data-rb-pixel-art')])")]


@pytest.mark.parametrize("width,height", VIEWPORTS)
def test_primary_controls_above_the_fold_after_an_edit(browser, app, files, width, height):
    """After an edit of a 64 px scene: the prompt, Edit, Continue and New chain inside the viewport without
    scrolling, each button on one line, all enabled; the input and the before/after images at least 256 px."""
    size = f"{width}x{height}"
    page = open_page(browser, app, width, height)
    try:
        upload(page, files["pixel_art"])
        page.wait_for_selector("#input-image img")
        edit(page)
        sync_api.expect(page.locator("#continue-btn")).to_be_enabled()
        assert page.evaluate("window.scrollY") == 0
        viewport = {"x": 0, "y": 0, "width": width, "height": height}
        for selector in ("#prompt", "#edit-btn", "#continue-btn", "#new-btn"):
            box = page.locator(selector).bounding_box()
            assert inside(box, viewport, tol=0) and box["y"] + box["height"] <= height - 16, f"{size}: {selector} {box}"
        buttons = {b: page.locator(b).bounding_box() for b in ("#edit-btn", "#continue-btn", "#new-btn")}
        assert len({round(b["y"]) for b in buttons.values()}) == 1, buttons  # one row
        assert len({round(b["height"]) for b in buttons.values()}) == 1, buttons  # no label wraps
        for button in buttons:
            sync_api.expect(page.locator(button)).to_be_enabled()
        preview = page.locator("#input-image img").evaluate(DRAWN_RECT_JS)
        assert preview["width"] >= 256 and preview["height"] >= 256, f"{size}: input {preview}"
        page.wait_for_function("[...document.querySelectorAll('#result-slider img')].every(i => i.complete)")
        result = page.locator("#result-slider img").first.evaluate(DRAWN_RECT_JS)
        assert result["width"] >= 256 and result["height"] >= 256, f"{size}: before/after {result}"
        assert result["height"] >= 0.45 * height, f"{size}: the result is small for the screen: {result}"
        status = page.locator("#edit-status").bounding_box()
        assert status["y"] + 24 <= height, f"{size}: the status line under the result is below the fold {status}"
        page.screenshot(path=str(SHOTS / f"edit-fold-{size}.png"))
        # the chain panel's title row: Rename spans the title's box (no hole under the button)
        title, rename = page.locator("#chain-title").bounding_box(), page.locator("#rename-btn").bounding_box()
        assert abs(title["y"] - rename["y"]) <= 1 and abs(title["height"] - rename["height"]) <= 1, (title, rename)
    finally:
        page.close()


@pytest.mark.parametrize("width,height", VIEWPORTS)
def test_every_refusal_leaves_the_controls_usable_and_says_what_to_change(browser, app, files, width, height,
                                                                         caplog, capfd):
    """Empty prompt, a too-long prompt, a text file named .png, no image: after each the Edit and New chain
    buttons work at once, the status says what to change, the server logs one line (no traceback), and an edit
    right after succeeds."""
    caplog.set_level(logging.INFO, logger="app")
    size = f"{width}x{height}"
    page = open_page(browser, app, width, height)
    try:
        upload(page, files["scene"])
        page.wait_for_selector("#input-image img")

        # 1. empty prompt
        page.locator("#edit-btn").click()
        wait_status(page, "Not edited")
        assert_controls_usable(page)
        assert "Type a hypothetical instruction" in status_text(page)
        sync_api.expect(page.locator("#edit-status .refused")).to_be_visible()
        assert page.locator("#edit-status .refused").bounding_box()["y"] < height  # in view, no scrolling
        page.screenshot(path=str(SHOTS / f"edit-refusal-empty-{size}.png"))

        # 2. a 5,000-character prompt: kept whole, the counter says it is too long while typing, Edit refuses
        long_text = ("Imagine the ice cube melting slowly in the afternoon sun on the beach. " * 80)[:5000]
        prompt(page).fill(long_text)
        page.wait_for_function("document.querySelector('#prompt-counter .over') !== null")
        counter = page.locator("#prompt-counter").inner_text()
        assert "5,000 / 1,000 characters" in counter and "too long" in counter
        assert len(prompt(page).input_value()) == 5000  # never cut silently
        sync_api.expect(page.locator("#prompt-counter .over")).to_be_visible()
        prompt(page).press("Enter")
        wait_status(page, "5000 characters")
        assert_controls_usable(page)
        assert "Not edited" in status_text(page) and "1000" in status_text(page)
        page.screenshot(path=str(SHOTS / f"edit-refusal-long-{size}.png"))

        # 3. a text file named .png: refused on upload, the box cleared, the message names the file
        prompt(page).fill(MELT)
        page.wait_for_function("!document.querySelector('#prompt-counter').innerText.includes('too long')")
        assert "Press Enter to edit" in page.locator("#prompt-counter").inner_text()
        upload(page, files["notes"])
        wait_status(page, "Upload refused")
        assert "notes.png" in status_text(page) and "not a readable image" in status_text(page)
        page.wait_for_function("document.querySelector('#input-image img') === null")  # no broken image shown
        assert_controls_usable(page)
        page.screenshot(path=str(SHOTS / f"edit-refusal-upload-{size}.png"))

        # 4. Edit with no image
        page.locator("#edit-btn").click()
        wait_status(page, "Upload an image")
        assert_controls_usable(page)

        # the controls really work: an edit right after the refusals
        upload(page, files["scene"])
        page.wait_for_selector("#input-image img")
        edit(page)
        sync_api.expect(page.locator("#continue-btn")).to_be_enabled()
        assert page.locator("#edit-status .refused").count() == 0
    finally:
        page.close()
    refusals = [r for r in caplog.records if r.getMessage().startswith(("refused:", "refused upload:"))]
    assert len(refusals) >= 4 and not any(r.exc_info for r in refusals)
    assert "Traceback" not in capfd.readouterr().err


def test_a_bug_leaves_the_controls_usable_and_logs_a_traceback(browser, app, files, monkeypatch, capfd):
    def broken_edit(*args, **kwargs):
        raise RuntimeError("simulated bug in the engine")

    page = open_page(browser, app, 1280, 720)
    try:
        upload(page, files["scene"])
        page.wait_for_selector("#input-image img")
        monkeypatch.setattr(app.engine, "edit", broken_edit)
        prompt(page).fill(MELT)
        page.locator("#edit-btn").click()
        wait_status(page, "did not run")
        assert_controls_usable(page)
    finally:
        page.close()
    err = capfd.readouterr().err
    assert "Traceback" in err and "simulated bug in the engine" in err

