"""What the Edit tab shows, measured in Chromium at 1280x720 and 1920x1080 (issue 19, items 3, 6 and 7).

- the 64 px input and the attention heatmap fill their boxes (at least 256 px on screen), crisply: the input
  with ``image-rendering: pixelated``, the heatmap served nearest-upscaled;
- the region legend names regions as the table does and in the overlay's colours;
- the status line shows the step on screen and the model and mode that made it (so does its History card); step 1
  comes before its alternatives in the timeline;
  instructions are shown whole where there is room (examples, timeline, History).

Screenshots go to ``test-artifacts/screenshots/`` (gitignored).
"""

from __future__ import annotations

import os

import pytest

from app import render
from tests.test_app_browser import CHROMIUM, SHOTS, TIMEOUT, show_lazy_images, wait_nodes
from tests.test_app_client import launch_app

pytestmark = [
    pytest.mark.skipif(not os.path.exists(CHROMIUM), reason=f"Chromium not installed at {CHROMIUM}"),
    pytest.mark.timeout(300),
]
sync_api = pytest.importorskip("playwright.sync_api", reason="the playwright package is not installed")

VIEWPORTS = [(1280, 720), (1920, 1080)]
MIN_JUDGED_PX = 256
ALTERNATIVE = "What would happen if it were night time?"
MODEL_LABEL = "tiny · ReasonBrain (random weights)"

# The size an <img> is drawn at inside its box (object-fit applied), its natural size and its rendering.
SHOWN_JS = """img => {
  const r = img.getBoundingClientRect(), s = getComputedStyle(img);
  const nw = img.naturalWidth, nh = img.naturalHeight;
  let k = Math.min(r.width / nw, r.height / nh);
  if (s.objectFit === 'scale-down') k = Math.min(1, k);
  if (s.objectFit === 'none') k = 1;
  const fill = s.objectFit === 'fill';
  return {width: fill ? r.width : nw * k, height: fill ? r.height : nh * k, natural: [nw, nh],
          rendering: s.imageRendering, pixelArt: img.hasAttribute('data-rb-pixel-art')};
}"""

# Share of block x block tiles of the image (at natural size) that are one flat colour (nearest-upscaled: 1),
# leaving out tiles the bound region's outline (cyan, drawn at display size) runs through.
FLAT_BLOCKS_JS = """(img, block) => {
  const c = document.createElement('canvas');
  c.width = img.naturalWidth; c.height = img.naturalHeight;
  const g = c.getContext('2d'); g.drawImage(img, 0, 0);
  const d = g.getImageData(0, 0, c.width, c.height).data;
  let flat = 0, total = 0;
  for (let y = 0; y + block <= c.height; y += block) for (let x = 0; x + block <= c.width; x += block) {
    const i0 = (y * c.width + x) * 4; let same = true, outline = false;
    for (let dy = 0; dy < block; dy++) for (let dx = 0; dx < block; dx++) {
      const i = ((y + dy) * c.width + x + dx) * 4;
      if (d[i] === 0 && d[i + 1] === 255 && d[i + 2] === 255) outline = true;
      if (d[i] !== d[i0] || d[i + 1] !== d[i0 + 1] || d[i + 2] !== d[i0 + 2]) same = false;
    }
    if (outline) continue;
    total++; if (same) flat++;
  }
  return flat / total;
}"""

# The colour of an overlay mask: its first opaque pixel, as [r, g, b].
MASK_COLOUR_JS = """img => {
  const c = document.createElement('canvas');
  c.width = img.naturalWidth; c.height = img.naturalHeight;
  const g = c.getContext('2d'); g.drawImage(img, 0, 0);
  const d = g.getImageData(0, 0, c.width, c.height).data;
  for (let i = 0; i < d.length; i += 4) if (d[i + 3] > 200) return [d[i], d[i + 1], d[i + 2]];
  return null;
}"""


def rgb(hex_colour: str) -> list[int]:
    return [int(hex_colour[i:i + 2], 16) for i in (1, 3, 5)]


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    with launch_app(str(tmp_path_factory.mktemp("display-app")), examples=True) as running:
        yield running



def shown(page, selector: str) -> dict:
    img = page.locator(selector).first
    img.scroll_into_view_if_needed()
    page.wait_for_function("s => { const i = document.querySelector(s); return i && i.complete && i.naturalWidth; }",
                           arg=selector, timeout=TIMEOUT)
    return img.evaluate(SHOWN_JS)


def wait_status(page, text: str) -> None:
    page.wait_for_function("t => document.querySelector('#edit-status').innerText.includes(t)", arg=text,
                           timeout=TIMEOUT)


@pytest.mark.parametrize("viewport", VIEWPORTS, ids=[f"{w}x{h}" for w, h in VIEWPORTS])
def test_edit_tab_images_regions_status_and_texts(app, browser, viewport, tmp_path):
    SHOTS.mkdir(parents=True, exist_ok=True)
    width, height = viewport
    size = f"{width}x{height}"
    example_image, example_text = app.engine.example_images()[1]
    assert example_image.size == (64, 64)  # the synth world's resolution
    scene = tmp_path / "scene.png"
    example_image.save(scene)
    context = browser.new_context(viewport={"width": width, "height": height})
    page = context.new_page()
    page.set_default_timeout(TIMEOUT)
    try:
        page.goto(app.url)
        page.wait_for_selector("#user-badge code")

        # --- example instructions: whole, not cut at 60 characters ---------------------------------------
        physical = app.engine.example_instructions()["physical"]
        cells = page.locator("#instructions-physical td")
        cells.first.wait_for()
        texts = [" ".join(t.split()) for t in cells.all_inner_texts()]
        assert texts == physical[: len(texts)] and all("..." not in t and "…" not in t for t in texts)
        cells.first.click()
        prompt = page.locator("#prompt").get_by_role("textbox")
        sync_api.expect(prompt).to_have_value(physical[0])

        # --- the 64 px input fills its box, pixelated (an upload at one size, an example scene at the other) ---
        if width == 1280:
            page.locator("#input-image input[type=file]").set_input_files(str(scene))
            prompt.fill(example_text)
        else:
            page.locator("#example-scenes img").nth(1).click()
            sync_api.expect(prompt).to_have_value(example_text)
        page.wait_for_function("document.querySelector('#input-image img')?.hasAttribute('data-rb-pixel-art')")
        preview = shown(page, "#input-image img")
        assert preview["natural"] == [64, 64] and preview["rendering"] == "pixelated"
        assert preview["width"] >= MIN_JUDGED_PX and preview["height"] >= MIN_JUDGED_PX, preview
        page.screenshot(path=str(SHOTS / f"edit-display-{size}-before.png"))

        # --- edit; the status line, the heatmap and the regions --------------------------------------------
        prompt.press("Enter")
        wait_nodes(page, 2)
        wait_status(page, "Showing step 1:")
        assert example_text in page.locator("#edit-status").inner_text()
        assert f"Model: {MODEL_LABEL}" in page.locator("#edit-status").inner_text()  # the model and its mode
        page.wait_for_selector("#attention-heatmap img")
        page.wait_for_selector("#regions-image img.mask")
        heat = shown(page, "#attention-heatmap img")
        assert heat["natural"] == [384, 384] and heat["width"] >= MIN_JUDGED_PX, heat  # 64 px x 6
        flat = page.locator("#attention-heatmap img").evaluate(FLAT_BLOCKS_JS, 6)
        assert flat > 0.99, f"heatmap not nearest-upscaled: {flat:.2%} flat 6x6 blocks"
        regions_base = shown(page, "#regions-image img.base-image")
        assert regions_base["width"] >= MIN_JUDGED_PX, regions_base

        # legend = table names, in the overlay's colours
        sync_api.expect(page.locator("#regions-image")).to_contain_text("Regions: SAM 2")
        legend = page.locator("#regions-image .legend-item")
        labels = legend.all_inner_texts()
        assert labels and all(" · " in label for label in labels)
        table = page.locator("#regions-table").inner_text()
        for label in labels:
            assert label.split(" · ", 1)[1].strip() in table
        masks = page.locator("#regions-image img.mask")
        assert masks.count() == len(labels)
        for i in range(len(labels)):
            colour = rgb(render.region_colour(int(labels[i].split(" · ")[0]) - 1))
            background = legend.nth(i).evaluate("b => getComputedStyle(b).backgroundColor")
            assert background.startswith(f"rgba({colour[0]}, {colour[1]}, {colour[2]},"), (labels[i], background)
            assert masks.nth(i).evaluate(MASK_COLOUR_JS) == colour
        swatches = page.locator("#regions-table .rb-swatch:not(.rb-swatch-none)").evaluate_all(
            "ss => ss.filter(s => s.offsetParent !== null).map(s => getComputedStyle(s).backgroundColor)")
        assert set(swatches) == {f"rgb({c[0]}, {c[1]}, {c[2]})" for c in (
            rgb(render.region_colour(i)) for i in range(len(labels)))}  # a swatch per region, the overlay's colours
        assert "★" in page.locator("#region-info").inner_text()

        # the timeline shows the instruction whole (it fits in three lines at both sizes)
        step_text = page.locator("#timeline .rb-current .rb-text")
        assert " ".join(step_text.inner_text().split()) == example_text
        assert step_text.evaluate("e => e.scrollHeight <= e.clientHeight + 1")
        show_lazy_images(page, "#reasoning-panel", "#timeline")
        page.screenshot(path=str(SHOTS / f"edit-display-{size}-after.png"), full_page=True)

        # --- an alternative first step: listed after step 1; the status follows the step on screen ----------
        prompt.fill(ALTERNATIVE)
        page.locator("#edit-btn").click()
        wait_nodes(page, 3)
        wait_status(page, "Showing step 1 (an alternative):")
        assert ALTERNATIVE in page.locator("#edit-status").inner_text()
        hops = page.locator("#timeline .rb-hop").all_inner_texts()
        assert hops == ["Source", "Step 1", "↳ Step 1"]
        boxes = [page.locator("#timeline [data-select]").nth(i).bounding_box() for i in range(3)]
        assert boxes[0]["y"] < boxes[1]["y"] < boxes[2]["y"]
        assert boxes[2]["x"] > boxes[1]["x"]  # the alternative is indented
        page.locator("#timeline [data-select]").nth(1).click()
        wait_status(page, "Showing step 1:")
        status = page.locator("#edit-status").inner_text()
        assert example_text in status and ALTERNATIVE not in status

        # --- History: the card shows the last instruction whole, the tooltip the title and it ----------------
        page.get_by_role("tab", name="History").click()
        card = page.locator("#history-list [data-select]").first
        card.wait_for()
        assert ALTERNATIVE in " ".join(card.locator(".rb-card-last").inner_text().split())
        assert ALTERNATIVE in card.get_attribute("title")
        sync_api.expect(card.locator(".rb-card-model")).to_have_text(MODEL_LABEL)
        show_lazy_images(page, "#history-list")
        page.screenshot(path=str(SHOTS / f"history-{size}.png"))
    finally:
        context.close()
