"""The app in a real browser (Playwright + Chromium): edit, regions, a two-hop chain, reload -> History,
Presenter with the arrow keys, and a second browser that cannot see the first one's history.

Screenshots of every tab go to ``test-artifacts/screenshots/`` (gitignored)."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from tests.test_app_client import launch_app

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--disable-dev-shm-usage",
    "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run",
]
SHOTS = Path(__file__).resolve().parent.parent / "test-artifacts" / "screenshots"
MELT = "What would happen if the ice cube were left in the sun?"
DRY = "Imagine the puddle dried up in the afternoon heat."
TIMEOUT = 30_000  # ms; an edit on the tiny preset takes ~1 s, more on a busy CI machine

pytestmark = [
    pytest.mark.skipif(not os.path.exists(CHROMIUM), reason=f"Chromium not installed at {CHROMIUM} "
                       "(apt-get install -y chromium); the browser test needs it"),
    pytest.mark.timeout(300),
]
sync_api = pytest.importorskip("playwright.sync_api", reason="the playwright package is not installed")


def nodes(page) -> int:
    return page.locator("#timeline [data-select]").count()


def wait_nodes(page, n: int) -> None:
    page.wait_for_function(f"document.querySelectorAll('#timeline [data-select]').length === {n}", timeout=TIMEOUT)


def show_lazy_images(page, *selectors: str) -> None:
    for sel in selectors:
        page.locator(sel).first.scroll_into_view_if_needed()
    page.wait_for_function(
        "[...document.querySelectorAll('img')].filter(i => i.offsetParent !== null)"
        ".every(i => i.complete)", timeout=TIMEOUT)


def wait_settled(page) -> None:
    """Until no event is pending (gradio fades the outputs of a running event) and the fade back has ended (a
    0.15 s CSS transition): screenshots show the result."""
    page.wait_for_function(
        "() => document.querySelectorAll('.pending').length === 0 && [...document.querySelectorAll("
        "'[data-testid=status-tracker]')].every(t => t.classList.contains('hide') || t.offsetParent === null)"
        " && document.getAnimations().every(a => !(a instanceof CSSTransition) || a.playState !== 'running')",
        timeout=TIMEOUT)


def badge_id(page) -> str:
    page.wait_for_selector("#user-badge code", timeout=TIMEOUT)
    return page.locator("#user-badge code").inner_text()


def test_edit_chain_history_presenter_and_isolation(tmp_path):
    SHOTS.mkdir(parents=True, exist_ok=True)
    scene = tmp_path / "scene.png"
    with launch_app(str(tmp_path / "data"), examples=True, demo_seeds=(1,)) as app, \
            sync_api.sync_playwright() as pw:
        app.engine.example_images()[5][0].resize((256, 256)).save(scene)
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            context = browser.new_context(viewport={"width": 1400, "height": 1000})
            page = context.new_page()
            page.set_default_timeout(TIMEOUT)
            page.goto(app.url)
            me = badge_id(page)

            # --- edit: upload, type, Enter -------------------------------------------------------------
            page.locator("#input-image input[type=file]").set_input_files(str(scene))
            page.wait_for_selector("#input-image img")
            prompt = page.locator("#prompt").get_by_role("textbox")
            prompt.fill(MELT)
            prompt.press("Enter")
            wait_nodes(page, 2)  # the source + step 1
            assert page.locator("#result-slider img").count() >= 2
            assert "step 1" in page.locator("#edit-status").inner_text()
            sync_api.expect(page.locator("#continue-btn")).to_be_enabled()  # the controls follow the view
            assert "ice cube" in page.locator("#object-info").inner_text()
            page.wait_for_function("document.querySelector('#regions-table').innerText.includes('background')")
            # the heatmap and the region masks arrive in a follow-up event, after the result
            page.wait_for_selector("#attention-heatmap img")
            page.wait_for_selector("#regions-image img")
            show_lazy_images(page, "#reasoning-panel", "#timeline")
            page.screenshot(path=str(SHOTS / "edit.png"), full_page=True)

            # --- regions: pick one in the annotated image ------------------------------------------------
            label = page.locator("#regions-image").get_by_text(re.compile(r"^1 · ")).first
            name = " ".join(label.inner_text().split())  # "1 · light blue, centre": number and name as in the table
            label.click()
            page.wait_for_function("t => document.querySelector('#region-info').innerText.includes(t)",
                                   arg=f"Region {name}")
            assert "attention" in page.locator("#region-info").inner_text()
            page.locator("#reasoning-panel").first.screenshot(path=str(SHOTS / "regions.png"))

            # --- continue the chain: a second hop ------------------------------------------------------
            page.locator("#continue-btn").click()
            page.wait_for_function("document.querySelector('#edit-status').innerText.includes('Continuing')")
            prompt.fill(DRY)
            page.locator("#edit-btn").click()
            wait_nodes(page, 3)
            assert "step 2" in page.locator("#edit-status").inner_text()
            users = [u for u in app.store.user_ids() if u != "demo"]
            assert len(users) == 1 and users[0].startswith(me)  # the badge shows the id's first 8 characters
            assert app.store.count_steps(users[0]) == 2

            # --- reload: same browser id, the chain is in History --------------------------------------
            page.reload()
            assert badge_id(page) == me
            page.get_by_role("tab", name="History").click()
            card = page.locator("#history-list [data-select]")
            card.first.wait_for()
            assert card.count() == 1 and "2 steps" in card.first.inner_text()
            show_lazy_images(page, "#history-list")
            page.screenshot(path=str(SHOTS / "history.png"), full_page=True)
            page.locator("#history-filter").get_by_role("textbox").fill("no such chain")
            page.wait_for_function("document.querySelector('#history-list').innerText.includes('No chain matches')")
            page.locator("#history-filter").get_by_role("textbox").fill("ice cube")
            card.first.wait_for()
            card.first.click()  # reopens it in the Edit tab
            page.wait_for_function("document.querySelector('#edit-status').innerText.includes('Reopened')")
            assert page.get_by_role("tab", name="Edit").get_attribute("aria-selected") == "true"
            wait_nodes(page, 3)

            # --- presenter: own chain first, arrow keys ------------------------------------------------
            page.get_by_role("tab", name="Presenter").click()
            page.wait_for_function("document.querySelector('#presenter-header').innerText.includes('Step 1 of 2')")
            page.locator("#presenter-header").click()  # focus out of any input
            page.keyboard.press("ArrowRight")
            page.wait_for_function("document.querySelector('#presenter-header').innerText.includes('Step 2 of 2')")
            sync_api.expect(page.locator("#presenter-next")).to_be_disabled()
            page.keyboard.press("ArrowRight")  # stays on the last step
            page.keyboard.press("ArrowLeft")
            page.wait_for_function("document.querySelector('#presenter-header').innerText.includes('Step 1 of 2')")
            page.locator("#presenter-chain input").click()
            page.get_by_text("Demo 1 · snowman").first.click()  # the preloaded demo chain is offered to everyone
            page.wait_for_function("document.querySelector('#presenter-header').innerText.includes('Demo 1')")
            page.keyboard.press("ArrowRight")  # focus left the dropdown: the keys work right away
            page.wait_for_function("document.querySelector('#presenter-header').innerText.includes('Step 2 of 2')")
            show_lazy_images(page, "#presenter-root")
            page.screenshot(path=str(SHOTS / "presenter.png"), full_page=True)

            # --- a second browser (new localStorage): its own id, an empty history ----------------------
            other = browser.new_context(viewport={"width": 1200, "height": 900}).new_page()
            other.set_default_timeout(TIMEOUT)
            other.goto(app.url)
            assert badge_id(other) != me
            other.get_by_role("tab", name="History").click()
            other.wait_for_function("document.querySelector('#history-list').innerText.includes('No chains yet')")
            assert other.locator("#history-list [data-select]").count() == 0
        finally:
            browser.close()
    assert all((SHOTS / f"{name}.png").stat().st_size > 10_000 for name in ("edit", "regions", "history", "presenter"))
