"""The Gradio app: a header, then the Edit, History, Presenter and Rate tabs, wired together.

``create_app(engine, store)`` builds the Blocks; ``queue_options`` / ``launch_options`` hold how it is served
(bounded queue, upload size, only the image folders served), so ``python -m app`` and the tests launch
it the same way. Per-user data lives in ``gr.State`` / ``gr.BrowserState`` and the database, never here.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import gradio as gr

from app import identity
from app.engine import Engine
from app.ratings_store import IMAGES_DIR as RATING_IMAGES_DIR
from app.ratings_store import RatingStore
from app.settings import Settings
from app.store import Store
from app.tabs import edit, history, presenter, rate
from reasonbrain.configuration import REASON_THEN_EDIT_MODE

TITLE = "ReasonBrain Studio"
INTRO = (
    "Ask *what would happen if…* about an image and get the edit, with the model's reasoning made visible: "
    "the object it bound your instruction to, the regions it attended to, and every step of a multi-hop chain."
)
INTRO_REASON_THEN_EDIT = (
    "Reason-then-edit mode: an MLLM reasons about your *what would happen if…* instruction and writes an explicit "
    "edit, SAM 2 masks the object it names, and InstructPix2Pix edits only inside that mask. "
    "The models are pretrained ones, not trained ReasonBrain weights (there are none yet)."
)

CSS = """
#app-header h1 { margin-bottom: 0; }
#user-badge { text-align: right; opacity: 0.8; }
/* images a person judges fill their box; pixel art (the synth world) is upscaled crisply: app/display.py */
.rb-judge .image-frame img { width: 100%; height: 100%; object-fit: contain !important; }
.rb-pixel-art img { image-rendering: pixelated; }
/* Presenter: one screen without scrolling. The tab is as tall as the viewport under the page header (KEYS_JS
   measures --rb-presenter-top); the images take what the picker, the instruction and the buttons leave, never
   less than 256 px. Full screen gives the whole screen to the step counter, the instruction and the images. */
#presenter-root { height: calc(100vh - var(--rb-presenter-top, 180px) - 8px); min-height: min-content;
                  flex-wrap: nowrap; }
#presenter-root > * { flex: none; }
#presenter-root > #presenter-images { flex: 1 1 0; min-height: 256px; }
#presenter-before, #presenter-after { height: 100% !important; }
#presenter-header .rb-present-instr { font-size: clamp(1.3rem, min(2.4vw, 4vh), 2.6rem); }
#presenter-header .rb-present-long .rb-present-instr { font-size: clamp(1.1rem, min(1.8vw, 3vh), 2rem); }
#presenter-exit-fullscreen { display: none !important; }
#presenter-root:fullscreen { background: var(--body-background-fill); padding: 12px 24px 16px; height: 100vh;
                             box-sizing: border-box; overflow: hidden; }
#presenter-root:fullscreen #presenter-controls { display: none !important; }
#presenter-root:fullscreen #presenter-exit-fullscreen { display: inline-flex !important; }
"""

# ←/→ press the Presenter's Previous/Next buttons while the Presenter tab is visible (not while typing); F toggles
# full screen. Also keeps --rb-presenter-top (where the Presenter starts on the page) for its CSS.
KEYS_JS = """() => {
  if (window.__reasonbrainKeys) return;
  window.__reasonbrainKeys = true;
  const place = () => {
    const root = document.getElementById('presenter-root');
    if (!root || root.offsetParent === null || document.fullscreenElement) return;
    const top = Math.round(root.getBoundingClientRect().top + window.scrollY);
    document.documentElement.style.setProperty('--rb-presenter-top', top + 'px');
  };
  const watch = () => {
    const root = document.getElementById('presenter-root');
    if (!root) return setTimeout(watch, 200);
    new ResizeObserver(place).observe(root);
    new ResizeObserver(place).observe(document.getElementById('app-header') || document.body);
  };
  watch();
  window.addEventListener('resize', place);
  document.addEventListener('keydown', (e) => {
    if (e.defaultPrevented || e.altKey || e.ctrlKey || e.metaKey || e.shiftKey) return;
    const t = e.target;
    if (t && (t.isContentEditable || /^(INPUT|TEXTAREA|SELECT)$/.test(t.tagName))) return;
    const id = e.key === 'ArrowRight' ? 'presenter-next' : (e.key === 'ArrowLeft' ? 'presenter-prev' :
               (e.key === 'f' ? 'presenter-fullscreen' : null));
    if (!id) return;
    const root = document.getElementById('presenter-root');
    if (!root || root.offsetParent === null && !document.fullscreenElement) return;
    let b = document.getElementById(id);
    if (b && b.tagName !== 'BUTTON') b = b.querySelector('button');
    if (b && !b.disabled) { e.preventDefault(); b.click(); }
  });
}"""


@dataclass
class AppHandles:
    edit: edit.EditHandles
    history: history.HistoryHandles
    presenter: presenter.PresenterHandles
    rate: rate.RateHandles
    user_state: gr.State
    browser_id: gr.BrowserState
    tabs: gr.Tabs


def create_app(engine: Engine, store: Store, *, rate_ctx: rate.RateContext | None = None) -> gr.Blocks:
    """The whole app (see ``build_app`` for the component handles). ``rate_ctx``: the Rate tab's ratings and
    annotators (default: from ``REASONBRAIN_ANNOTATORS`` / ``REASONBRAIN_RATE_*``, next to the store)."""
    return build_app(engine, store, rate_ctx=rate_ctx)[0]


def build_app(engine: Engine, store: Store, *, rate_ctx: rate.RateContext | None = None
              ) -> tuple[gr.Blocks, AppHandles]:
    rate_ctx = rate_ctx or rate.RateContext.create(RatingStore(store))
    with gr.Blocks(title=TITLE, analytics_enabled=False) as demo:
        browser_id = gr.BrowserState(None, storage_key=identity.STORAGE_KEY,
                                     secret=identity.browser_secret(store.data_dir))
        user_state = gr.State(None)
        with gr.Row(equal_height=True, elem_id="app-header"):
            with gr.Column(scale=4):
                gr.Markdown(f"# {TITLE}\n{intro(engine)}", elem_id="app-intro")
            with gr.Column(scale=1, min_width=200):
                badge = gr.Markdown(identity.describe(None), elem_id="user-badge")
                if identity.oauth_enabled():
                    gr.LoginButton(elem_id="login")
        with gr.Tabs(elem_id="tabs") as tabs:
            with gr.Tab("Edit", id="edit", elem_id="tab-edit"):
                edit_h = edit.build(engine, store, user_state)
            with gr.Tab("History", id="history", elem_id="tab-history") as history_tab:
                hist_h = history.build(engine, store, user_state)
            with gr.Tab("Presenter", id="presenter", elem_id="tab-presenter") as presenter_tab:
                pres_h = presenter.build(engine, store, user_state)
            with gr.Tab("Rate", id="rate", elem_id="tab-rate") as rate_tab:  # annotators (own sign-in)
                rate_h = rate.build(rate_ctx)
        gr.Markdown(
            f"Model: **{engine.model_label}** · checkpoint `{engine.checkpoint_hash}` · your edits are saved "
            "to this server's history, visible only to you (this browser, or your Hugging Face account "
            "when signed in).",
            elem_id="footer-note",
        )

        def _identify(browser_value: Any, profile: gr.OAuthProfile | None) -> tuple[str, str, str]:
            """Who is this browser: returns (browser id, user id, badge text)."""
            bid, user = identity.resolve(browser_value, profile)
            return bid, user, identity.describe(user)

        def _history(user_id: Any, query: Any) -> tuple[str, str]:
            return history.list_chains(store, user_id, query).to_updates()

        def _presenter_enter(user_id: Any, state: Any) -> tuple[Any, ...]:
            return presenter.enter(store, user_id, state)

        demo.load(_identify, browser_id, [browser_id, user_state, badge], api_name="identify").then(
            _history, [user_state, hist_h.query], hist_h.outputs, api_visibility="private"
        )
        demo.load(None, js=KEYS_JS)
        rate.wire_page(demo, rate_tab, rate_h, rate_ctx)
        history_tab.select(_history, [user_state, hist_h.query], hist_h.outputs, api_visibility="private",
                           concurrency_limit=None)
        presenter_tab.select(_presenter_enter, [user_state, pres_h.state], [pres_h.chain, *pres_h.outputs],
                             api_visibility="private", concurrency_limit=None)

        def _open(user_id: Any, evt: gr.SelectData) -> tuple[Any, ...]:
            view = history.open_in_editor(store, user_id, evt.value)
            return (*view.to_updates(), gr.Tabs(selected="edit"))

        edit.follow_up(store, user_state, edit_h, hist_h.cards.select(
            _open, user_state, [*edit_h.view_outputs, tabs], api_visibility="private"))

        def _open_by_id(user_id: Any, chain_id: Any) -> tuple[Any, ...]:
            """Reopen a chain by id in the Edit tab (API)."""
            return (*history.open_in_editor(store, user_id, chain_id).to_updates(), gr.Tabs(selected="edit"))

        chain_id_box = gr.Textbox(visible=False, elem_id="open-chain-id")
        edit.follow_up(store, user_state, edit_h, chain_id_box.submit(
            _open_by_id, [user_state, chain_id_box], [*edit_h.view_outputs, tabs], api_name="open_chain"))
    return demo, AppHandles(edit=edit_h, history=hist_h, presenter=pres_h, rate=rate_h, user_state=user_state,
                            browser_id=browser_id, tabs=tabs)


def intro(engine: Engine) -> str:
    """The header's text: what happens to an image in the mode being served."""
    return INTRO_REASON_THEN_EDIT if engine.mode == REASON_THEN_EDIT_MODE else INTRO


def queue_options(settings: Settings) -> dict[str, Any]:
    """A bounded queue; one edit at a time per event (the engine serialises the model anyway)."""
    return {"max_size": settings.queue_size, "default_concurrency_limit": 1}


def launch_options(settings: Settings, store: Store, **overrides: Any) -> dict[str, Any]:
    """``demo.launch`` arguments: host/port, upload limit, only the image folders served (the store's and the
    ratings'), style."""
    options: dict[str, Any] = {
        "server_name": settings.host,
        "server_port": settings.port,
        "max_file_size": f"{settings.max_upload_mb:g}mb",
        "allowed_paths": [store.images_dir, os.path.join(store.data_dir, RATING_IMAGES_DIR)],
        "show_error": True,
        "css": CSS + edit.CSS + rate.CSS,
        "theme": gr.themes.Soft(),
    }
    options.update(overrides)
    return options
