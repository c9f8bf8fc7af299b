"""The Presenter in a real browser (Playwright + Chromium) at 1280x720 (a projector) and 1920x1080: the step counter,
the instruction and both images are on screen without scrolling, the images at least 256 px wide, side by side,
the synth world's pixel art upscaled crisply; "Full screen" (button or F) gives them the screen.

Screenshots go to ``test-artifacts/screenshots/presenter-<w>x<h>[-fullscreen].png`` (gitignored)."""

from __future__ import annotations

import os

import pytest

from app.identity import DEMO_USER
from tests.test_app_browser import CHROMIUM, CHROMIUM_ARGS, SHOTS, TIMEOUT, wait_settled
from tests.test_app_client import launch_app

pytestmark = [
    pytest.mark.skipif(not os.path.exists(CHROMIUM), reason=f"Chromium not installed at {CHROMIUM}"),
    pytest.mark.timeout(300),
]
sync_api = pytest.importorskip("playwright.sync_api", reason="the playwright package is not installed")

LONG = ("What would happen if the snowman, the chocolate ice cream and the strawberry ice cream were all left out "
        "on the warm grass in the bright afternoon sun of a summer day for several hours?")

# On-screen rectangles [x, y, width, height]; for an image, the picture itself inside its box (object-fit).
GEOMETRY_JS = """() => {
  const rect = (el) => { if (!el || el.offsetParent === null && !document.fullscreenElement) return null;
    const b = el.getBoundingClientRect(); return b.width ? [b.x, b.y, b.width, b.height] : null; };
  const picture = (sel) => { const i = document.querySelector(sel); if (!i || !i.naturalWidth) return null;
    const b = i.getBoundingClientRect(), fit = getComputedStyle(i).objectFit;
    let k = Math.min(b.width / i.naturalWidth, b.height / i.naturalHeight);
    if (fit === 'scale-down' || fit === 'none') k = Math.min(k, 1);
    const w = k * i.naturalWidth, h = k * i.naturalHeight;
    return [b.x + (b.width - w) / 2, b.y + (b.height - h) / 2, w, h]; };
  const q = (s) => document.querySelector(s);
  return {
    count: rect(q('#presenter-header .rb-stepcount')), instruction: rect(q('#presenter-header .rb-present-instr')),
    before: picture('#presenter-before img'), after: picture('#presenter-after img'),
    prev: rect(q('#presenter-prev')), next: rect(q('#presenter-next')), controls: rect(q('#presenter-controls')),
    exit: rect(q('#presenter-exit-fullscreen')),
    rendering: [...document.querySelectorAll('#presenter-root img')].map(i => getComputedStyle(i).imageRendering),
    scrollY: window.scrollY, fullscreen: document.fullscreenElement ? document.fullscreenElement.id : null,
  };
}"""


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    """The app with the 2-step demo chain (64 px pixel art) and a 1-step demo chain with a long instruction."""
    with launch_app(str(tmp_path_factory.mktemp("presenter")), demo_seeds=(1,)) as running:
        store = running.store
        scene = running.engine.example_images()[0][0].resize((64, 64))
        chain = store.create_chain(DEMO_USER, scene, title="Demo 2 · a long instruction", is_demo=True)
        store.add_step(DEMO_USER, chain.id, None, instruction=LONG, input_image=chain.source_image,
                       output_image=scene.rotate(90), seed=1, settings={}, preset="tiny", checkpoint_hash="0" * 12,
                       timings={}, details={})
        yield running


def wait_step(page, text: str, old_src: str | None = None) -> None:
    """Until the header shows ``text`` and both images (new ones, when ``old_src`` is given) are loaded."""
    page.wait_for_function(
        """([t, old]) => { const h = document.querySelector('#presenter-header');
          const imgs = [...document.querySelectorAll('#presenter-before img, #presenter-after img')];
          return !!h && h.innerText.includes(t) && imgs.length === 2 && imgs.every(i => i.complete && i.naturalWidth)
            && imgs[0].src !== old; }""",
        arg=[text, old_src], timeout=TIMEOUT)
    wait_settled(page)
    page.evaluate("() => new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)))")



def before_src(page) -> str:
    return page.locator("#presenter-before img").get_attribute("src")


def assert_on_screen(g: dict, width: int, height: int, *, names=("count", "instruction", "before", "after")) -> None:
    assert g["scrollY"] == 0
    for name in names:
        x, y, w, h = g[name]
        assert x >= 0 and y >= 0 and x + w <= width + 0.5 and y + h <= height + 0.5, (name, g[name], width, height)
    (bx, by, bw, bh), (ax, ay, aw, ah) = g["before"], g["after"]
    assert bw >= 256 and aw >= 256, (bw, aw)
    assert abs(bw - aw) < 1 and abs(bh - ah) < 1 and abs(by - ay) < 1 and ax > bx + bw  # side by side, aligned
    assert g["rendering"] == ["pixelated", "pixelated"]  # 64 px pixel art: nearest neighbour, not a smear


@pytest.mark.parametrize("width,height", [(1280, 720), (1920, 1080)])
def test_presenter_fits_the_screen_and_full_screen_uses_it(app, width, height):
    SHOTS.mkdir(parents=True, exist_ok=True)
    size = f"{width}x{height}"
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_context(viewport={"width": width, "height": height}).new_page()
            page.set_default_timeout(TIMEOUT)
            page.goto(app.url)
            page.wait_for_selector("#user-badge code")
            page.get_by_role("tab", name="Presenter").click()

            # the newest chain opens first: a three-line instruction still leaves the images on screen
            wait_step(page, "Step 1 of 1")
            g = page.evaluate(GEOMETRY_JS)
            assert_on_screen(g, width, height)
            assert "summer day for several hours" in page.locator("#presenter-header").inner_text()  # not cut

            # the 2-step demo chain: counter, instruction, images and both buttons on screen, at each step
            old = before_src(page)
            page.locator("#presenter-chain input").click()
            page.get_by_role("option", name="Demo 1", exact=False).click()
            wait_step(page, "Step 1 of 2", old)
            assert_on_screen(page.evaluate(GEOMETRY_JS), width, height, names=(
                "count", "instruction", "before", "after", "prev", "next"))
            page.screenshot(path=str(SHOTS / f"presenter-{size}.png"))
            old = before_src(page)
            page.locator("#presenter-next").click()
            wait_step(page, "Step 2 of 2", old)
            normal = page.evaluate(GEOMETRY_JS)
            assert_on_screen(normal, width, height, names=("count", "instruction", "before", "after", "prev", "next"))
            sync_api.expect(page.locator("#presenter-next")).to_be_disabled()
            sync_api.expect(page.locator("#presenter-prev")).to_be_enabled()

            # full screen: the button at 1280x720, the F key at 1920x1080
            if width == 1280:
                page.locator("#presenter-fullscreen").click()
            else:
                page.locator("#presenter-header").click()  # focus out of the dropdown
                page.keyboard.press("f")
            page.wait_for_function("document.fullscreenElement && document.fullscreenElement.id === 'presenter-root'")
            page.evaluate("() => new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)))")
            full = page.evaluate(GEOMETRY_JS)
            assert_on_screen(full, width, height, names=("count", "instruction", "before", "after", "prev", "exit"))
            assert full["controls"] is None  # the chain picker makes room
            assert full["before"][3] >= 0.6 * height and full["before"][2] > normal["before"][2] * 1.15
            page.screenshot(path=str(SHOTS / f"presenter-{size}-fullscreen.png"))
            page.keyboard.press("ArrowLeft")  # the arrow keys still work in full screen
            page.wait_for_function("document.querySelector('#presenter-header').innerText.includes('Step 1 of 2')")
            page.locator("#presenter-exit-fullscreen").click()
            page.wait_for_function("document.fullscreenElement === null")
            sync_api.expect(page.locator("#presenter-controls")).to_be_visible()
        finally:
            browser.close()
    for suffix in ("", "-fullscreen"):
        assert (SHOTS / f"presenter-{size}{suffix}.png").stat().st_size > 10_000
