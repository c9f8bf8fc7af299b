"""The Rate tab in a real browser (Playwright + Chromium), keyboard only once signed in: absolute scores with
1-5 + Enter, undo, skip, switching to pairwise with M, A/B/T/X choices, progress; the results view for an admin.
At 1280x720, 1400x1000 and 1920x1080: a wrong password is said in the form and gone after signing in; the images
to judge fill their square boxes (at least 256 px, aligned, pixel art crisp, no empty bands); beside them the three
criteria with their 1-5 choices and Submit / Skip (absolute), or the A / B / Tie / Both bad buttons and Skip
(pairwise), all inside the viewport without scrolling, usable with the mouse; a study of gold items alone (the
ground truth of a synthworld folder's test split) shows them in both modes.

Screenshots go to ``test-artifacts/screenshots/rate-*.png`` (gitignored)."""

from __future__ import annotations

import os
import re

import pytest

from app.annotators import AnnotatorDirectory
from app.ratings_store import RatingStore
from tests.test_app_browser import CHROMIUM, CHROMIUM_ARGS, SHOTS, TIMEOUT, show_lazy_images, wait_settled
from tests.test_app_client import launch_app
from tests.test_rate_handlers import PASSWORD, seed_study, task_of

pytestmark = [
    pytest.mark.skipif(not os.path.exists(CHROMIUM), reason=f"Chromium not installed at {CHROMIUM}"),
    pytest.mark.timeout(300),
]
sync_api = pytest.importorskip("playwright.sync_api", reason="the playwright package is not installed")


def wait_text(page, selector: str, text: str) -> None:
    page.wait_for_function(
        "([s, t]) => { const el = document.querySelector(s); return !!el && el.innerText.includes(t); }",
        arg=[selector, text], timeout=TIMEOUT)


def test_sign_in_and_rate_with_the_keyboard(tmp_path, monkeypatch):
    SHOTS.mkdir(parents=True, exist_ok=True)
    monkeypatch.setenv("REASONBRAIN_RATE_MIN_SECONDS", "0")
    monkeypatch.setenv("REASONBRAIN_RATE_OVERLAP", "0")
    monkeypatch.setenv("REASONBRAIN_RATE_GOLD", "0")
    with launch_app(str(tmp_path / "data")) as app, sync_api.sync_playwright() as pw:
        ratings = RatingStore(app.store)
        seed_study(ratings, n_prompts=3, size=(320, 240))  # 9 absolute and 9 pairwise items
        AnnotatorDirectory(ratings.settings.annotators_file).add("carol", PASSWORD, admin=True)
        me = "local:carol"
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_context(viewport={"width": 1400, "height": 1100}).new_page()
            page.set_default_timeout(TIMEOUT)
            page.goto(app.url)
            page.get_by_role("tab", name="Rate").click()
            page.locator("#rate-name input, #rate-name textarea").first.wait_for()
            page.locator("#rate-name input, #rate-name textarea").first.click()
            page.keyboard.type("carol")
            page.keyboard.press("Tab")
            page.keyboard.type(PASSWORD)
            page.keyboard.press("Enter")
            wait_text(page, "#rate-progress", "0 / 9")
            assert "U undo" in page.locator("#rate-keys").inner_text()  # the key map is on screen

            # --- absolute: three items, 1-5 for each criterion in turn, Enter submits ----------------------
            answers = [("4", "5", "3"), ("2", "1", "5"), ("5", "5", "4")]
            for n, keys in enumerate(answers, 1):
                for k in keys:
                    page.keyboard.press(k)
                if n == 1:
                    page.wait_for_function("document.querySelector('#rate-plaus.rb-active') !== null")
                    show_lazy_images(page, "#rate-image-a")
                    page.screenshot(path=str(SHOTS / "rate-absolute.png"), full_page=True)
                page.keyboard.press("Enter")
                wait_text(page, "#rate-progress", f"{n} / 9")
            got = [(r["ins_align"], r["consistency"], r["plausibility"]) for r in ratings.my_ratings(me)]
            assert got == [tuple(int(k) for k in keys) for keys in answers]
            page.keyboard.press("u")  # undo the last one: it comes back, progress goes down
            wait_text(page, "#rate-progress", "2 / 9")
            wait_text(page, "#rate-message", "Undid")
            assert len(ratings.my_ratings(me)) == 2
            page.keyboard.press("s")
            wait_text(page, "#rate-progress", "1 skipped")

            # --- pairwise: M switches mode; A / 2 / T / X answer, U undoes -------------------------------------
            page.keyboard.press("m")
            page.locator("#rate-pairwise").wait_for(state="visible")
            wait_text(page, "#rate-progress", "0 / 9")
            for n, key in enumerate(["a", "2", "t", "x"], 1):
                page.keyboard.press(key)
                wait_text(page, "#rate-progress", f"{n} / 9")
            show_lazy_images(page, "#rate-image-b")
            assert not page.locator("#rate-item-id").is_visible()  # the item id travels, never shows
            page.screenshot(path=str(SHOTS / "rate-pairwise.png"), full_page=True)
            page.keyboard.press("u")
            wait_text(page, "#rate-progress", "3 / 9")
            pairs = ratings.my_ratings(me, "pairwise")
            assert [r["choice"] in ("a", "b") for r in pairs] == [True, True, False]
            assert pairs[2]["choice"] == "tie"
            for r, side in zip(pairs[:2], ("left", "right")):  # screen sides map back through the stored swap
                swapped = dict(ratings.queue(me, "pairwise"))[task_of(ratings, r["assignment_id"])]
                assert r["choice"] == {("left", False): "a", ("left", True): "b", ("right", False): "b",
                                       ("right", True): "a"}[(side, swapped)]

            # --- a reload keeps the sign-in (the token lives in this browser) --------------------------------
            page.reload()
            page.get_by_role("tab", name="Rate").click()
            wait_text(page, "#rate-progress", "2 / 9")  # back in absolute mode: 2 rated, 1 skipped
            wait_text(page, "#rate-who", "carol")

            # --- results (admin) ----------------------------------------------------------------------------
            page.locator("#rate-results").get_by_text("Results (admins)").click()
            page.locator("#rate-refresh").click()
            page.wait_for_function("document.querySelector('#rate-results').innerText.includes('ratings by 1')")
            page.screenshot(path=str(SHOTS / "rate-results.png"), full_page=True)
        finally:
            browser.close()
    assert all((SHOTS / f"rate-{name}.png").stat().st_size > 10_000 for name in ("absolute", "pairwise", "results"))


# The picture inside each visible image box (object-fit), its box, the frame it is drawn in, and how it is scaled.
IMAGES_JS = """(ids) => ids.map((id) => {
  const box = document.getElementById(id), img = box && box.querySelector('img');
  if (!img || box.offsetParent === null || !img.naturalWidth) return null;
  const b = img.getBoundingClientRect(), frame = box.getBoundingClientRect(), fit = getComputedStyle(img).objectFit;
  const inner = box.querySelector('.image-container').getBoundingClientRect();
  let k = Math.min(b.width / img.naturalWidth, b.height / img.naturalHeight);
  if (fit === 'scale-down' || fit === 'none') k = Math.min(k, 1);
  const w = k * img.naturalWidth, h = k * img.naturalHeight;
  return {x: b.x + (b.width - w) / 2, y: b.y + (b.height - h) / 2, w, h, natural: img.naturalWidth,
          box: [frame.x, frame.y, frame.width, frame.height], frame: [inner.x, inner.y, inner.width, inner.height],
          rendering: getComputedStyle(img).imageRendering};
})"""

# Each element's rectangle and whether it can be used (null: not shown).
RECTS_JS = """(sels) => sels.flatMap((s) => {
  const all = [...document.querySelectorAll(s)];
  if (!all.length) return [{sel: s, missing: true}];
  return all.map((e) => { const r = e.getBoundingClientRect();
    return {sel: s, shown: e.offsetParent !== null && r.width > 0, x: r.x, y: r.y, w: r.width, h: r.height,
            disabled: !!e.disabled || !!e.querySelector('input:disabled, button:disabled')}; });
})"""
SCORES = [f"#{c} label:has(input[value='{k}'])" for c in ("rate-ins", "rate-cons", "rate-plaus") for k in range(1, 6)]



def judged_images(page, ids: list[str]) -> list[dict]:
    page.wait_for_function(
        "(ids) => ids.every(id => { const i = document.querySelector('#' + id + ' img');"
        " return !!i && i.complete && i.naturalWidth > 0; })", arg=ids, timeout=TIMEOUT)
    page.evaluate("() => new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)))")
    return page.evaluate(IMAGES_JS, ids)


def assert_judgeable(shown: list[dict]) -> None:
    """Each picture at least 256 px wide, inside its box, all the same size on one line, 64 px art crisp."""
    for im in shown:
        assert im is not None
        bx, by, bw, bh = im["box"]
        assert im["w"] >= 256 and im["x"] >= bx - 0.5 and im["x"] + im["w"] <= bx + bw + 0.5, im
        assert im["y"] >= by - 0.5 and im["y"] + im["h"] <= by + bh + 0.5, im
        assert im["natural"] == 64 and im["rendering"] == "pixelated", im
    assert max(im["w"] for im in shown) - min(im["w"] for im in shown) < 1
    assert max(im["y"] for im in shown) - min(im["y"] for im in shown) < 1


def assert_fills_frame(shown: list[dict]) -> None:
    """A square picture fills its frame: no empty band above, under or beside it."""
    for im in shown:
        fx, fy, fw, fh = im["frame"]
        assert abs(im["w"] - fw) < 1 and abs(im["h"] - fh) < 1 and abs(im["y"] - fy) < 1, im


def assert_on_one_screen(page, selectors: list[str]) -> None:
    """Every element shown whole inside the viewport, the page not scrolled, and usable."""
    width, height = page.viewport_size["width"], page.viewport_size["height"]
    assert page.evaluate("window.scrollY") == 0
    for r in page.evaluate(RECTS_JS, selectors):
        assert r.get("shown"), r
        assert r["x"] >= 0 and r["y"] >= 0 and r["x"] + r["w"] <= width + 0.5 and r["y"] + r["h"] <= height + 0.5, r
        assert not r["disabled"], r


@pytest.fixture(scope="module")
def gold_study(tmp_path_factory):
    """A study of ground truth alone, as ``import-reference --folder`` makes it from the folder ``python -m
    reasonbrain synthworld`` writes (its test split): every item in both modes is gold (the reference, and the
    unchanged source; pairwise, one against the other)."""
    from reasonbrain.synthworld import cli as synth_cli

    synth = tmp_path_factory.mktemp("synth")
    assert synth_cli.main(["--n", "60", "--chains", "0", "--out", str(synth), "--workers", "1", "--no-progress",
                           "--split-fractions", "0.4", "0.1", "0.5"]) == 0
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("REASONBRAIN_RATE_MIN_SECONDS", "0")
        with launch_app(str(tmp_path_factory.mktemp("rate-gold"))) as app:
            ratings = RatingStore(app.store)
            app.n_test = ratings.import_method_folder("reference", str(synth), reference=True).added // 2
            directory = AnnotatorDirectory(ratings.settings.annotators_file)
            for name in ("dora", "emil", "fritz"):
                directory.add(name, PASSWORD)
            app.ratings = ratings
            yield app


@pytest.mark.parametrize("width,height,name", [(1280, 720, "dora"), (1400, 1000, "fritz"), (1920, 1080, "emil")])
def test_sign_in_after_a_typo_and_judge_large_images_in_both_modes(gold_study, width, height, name):
    SHOTS.mkdir(parents=True, exist_ok=True)
    size = f"{width}x{height}"
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_context(viewport={"width": width, "height": height}).new_page()
            page.set_default_timeout(TIMEOUT)
            page.goto(gold_study.url)
            page.get_by_role("tab", name="Rate").click()
            name_box = page.locator("#rate-name input, #rate-name textarea").first
            password_box = page.locator("#rate-password input").first
            name_box.fill(name)
            password_box.fill("not the password")
            page.locator("#rate-signin-btn").click()
            wait_text(page, "#rate-signin-message", "wrong password")  # said in the form, which stays usable
            sync_api.expect(page.locator("#rate-signin-btn")).to_be_enabled()
            sync_api.expect(password_box).to_have_value("")
            wait_settled(page)
            page.screenshot(path=str(SHOTS / f"rate-signin-refused-{size}.png"))
            password_box.fill(PASSWORD)
            password_box.press("Enter")
            wait_text(page, "#rate-who", name)
            wait_text(page, "#rate-progress", "0 / ")
            sync_api.expect(page.get_by_text("wrong password")).to_have_count(0)  # no message left over

            # absolute: the source and the edit, large and crisp; beside them the three criteria with their 1-5
            # choices and Submit / Skip: one screen, no scrolling per item
            shown = judged_images(page, ["rate-source", "rate-image-a"])
            assert_judgeable(shown)
            assert_fills_frame(shown)
            wait_settled(page)
            assert_on_one_screen(page, ["#rate-instruction", "#rate-ins", "#rate-cons", "#rate-plaus", *SCORES,
                                        "#rate-submit", "#rate-skip", "#rate-flag", "#rate-undo"])
            if height >= 1000:
                assert_on_one_screen(page, ["#rate-keys", "#rate-message"])
            side = page.locator("#rate-ins").bounding_box()
            assert side["x"] >= shown[1]["x"] + shown[1]["w"]  # beside the images, not under them
            assert "exactly the outcome" in page.locator(SCORES[4]).get_attribute("title")  # the full anchor
            sync_api.expect(page.locator("#rate-ins")).to_have_class(re.compile("rb-active"))
            page.screenshot(path=str(SHOTS / f"rate-absolute-{size}.png"))
            for criterion, score, then in (("ins", 4, "cons"), ("cons", 5, "plaus"), ("plaus", 3, "plaus")):
                page.locator(f"#rate-{criterion} label:has(input[value='{score}'])").click()  # the mouse, as a user
                sync_api.expect(page.locator(f"#rate-{then}")).to_have_class(re.compile("rb-active"))
            page.locator("#rate-submit").click()
            wait_text(page, "#rate-progress", "1 / ")
            wait_text(page, "#rate-message", "Saved")

            # pairwise: only gold items exist; they are shown, three images side by side
            page.locator("#rate-instruction").click()  # out of the text boxes: M switches the mode
            page.keyboard.press("m")
            page.locator("#rate-pairwise").wait_for(state="visible")
            wait_text(page, "#rate-progress", f"0 / {gold_study.n_test}")
            assert "Instruction:" in page.locator("#rate-instruction").inner_text()
            shown = judged_images(page, ["rate-source", "rate-image-a", "rate-image-b"])
            assert_judgeable(shown)
            assert_fills_frame(shown)
            wait_settled(page)
            assert_on_one_screen(page, ["#rate-instruction", "#rate-left", "#rate-right", "#rate-tie",
                                        "#rate-both-bad", "#rate-skip", "#rate-flag", "#rate-undo"])
            assert page.locator("#rate-left").bounding_box()["x"] >= shown[2]["x"] + shown[2]["w"]
            page.screenshot(path=str(SHOTS / f"rate-pairwise-{size}.png"))
            page.keyboard.press("a")
            wait_text(page, "#rate-progress", f"1 / {gold_study.n_test}")
        finally:
            browser.close()
    assert len(gold_study.ratings.my_ratings(f"local:{name}", "pairwise")) == 1
    assert [(r["ins_align"], r["consistency"], r["plausibility"])
            for r in gold_study.ratings.my_ratings(f"local:{name}", "absolute")] == [(4, 5, 3)]
    assert all((SHOTS / f"rate-{mode}-{size}.png").stat().st_size > 10_000 for mode in ("absolute", "pairwise"))
