"""The Rate tab in a real browser (Playwright + Chromium), keyboard only once signed in: absolute scores with
1-5 + Enter, undo, skip, switching to pairwise with M, A/B/T/X choices, progress; the results view for an admin.

Screenshots go to ``test-artifacts/screenshots/rate-*.png`` (gitignored)."""

from __future__ import annotations

import pytest

from app.annotators import AnnotatorDirectory
from app.ratings_store import RatingStore
from tests.test_app_browser import CHROMIUM, CHROMIUM_ARGS, SHOTS, TIMEOUT, show_lazy_images
from tests.test_app_client import launch_app
from tests.test_rate_handlers import PASSWORD, seed_study, task_of

pytestmark = [
    pytest.mark.skipif(not __import__("os").path.exists(CHROMIUM), reason=f"Chromium not installed at {CHROMIUM}"),
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
