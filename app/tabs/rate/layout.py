"""The Rate tab's layout: its components (``build``), its style, the keyboard shortcuts and the events that wire
them to the handlers (:mod:`app.tabs.rate.handlers`); ``wire_page`` adds the page-level wiring."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import gradio as gr

from app import display, identity
from app.tabs.rate.handlers import (
    DEFAULT_MODE,
    RateContext,
    export_files,
    flag,
    push,
    restore,
    results,
    show,
    sign_in,
    sign_out,
    skip,
    submit_absolute,
    submit_pairwise,
    undo,
)
from app.tabs.rate.scales import CRITERIA, Anchor, anchors_markdown

STORAGE_KEY = "reasonbrain-rate-session"
MODE_CHOICES = [("Score one edit (1–5)", "absolute"), ("Compare two edits (A / B)", "pairwise")]

# At 1200 px and wider the scores (or the A / B buttons) sit beside the images, so that the images, the choices
# and Submit / Skip fit one screen (1280x720 included): the images are square, as large as both the height under
# the page's top (--rb-rate-top, kept by KEYS_JS) and the width beside the side column allow, never under 256 px.
# Narrower, the side column goes under the images.
CSS = """
#rate-item-id { display: none !important; }
#rate-panel .rb-active { outline: 3px solid var(--color-accent) !important; outline-offset: -3px;
                          background: var(--color-accent-soft) !important; border-radius: 6px; }
#rate-instruction { font-size: 1.25em; }
#rate-signin-message p { color: var(--error-text-color); font-weight: 600; margin: 0; }
#rate-top { align-items: center; }
#rate-top > * { flex: 0 1 auto !important; width: auto !important; min-width: 0 !important; }
#rate-top > #rate-progress { flex: 1 1 240px !important; }
.rb-progress { display: flex; align-items: center; gap: 12px; }
.rb-progress progress { flex: 1; height: 12px; appearance: none; border: none; border-radius: 6px;
                        background: var(--neutral-200); overflow: hidden; }
.rb-progress progress::-webkit-progress-bar { background: var(--neutral-200); border-radius: 6px; }
.rb-progress progress::-webkit-progress-value { background: var(--color-accent); border-radius: 6px; }
.rb-progress progress::-moz-progress-bar { background: var(--color-accent); }
#rate-work { container-type: inline-size; flex-wrap: nowrap; align-items: flex-start; }
#rate-images { flex: none !important; width: auto !important; flex-wrap: nowrap !important; gap: 16px; --rb-n: 2; --rb-side: clamp(500px, 30cqw, 640px);
               --rb-h: max(256px, min(calc(100vh - var(--rb-rate-top, 290px) - 40px - 12px),
                                      calc((100cqw - var(--rb-side)) / var(--rb-n) - 16px))); }
#rate-work:has(.rb-pairwise-item) #rate-images { --rb-n: 3; --rb-side: clamp(280px, 16cqw, 400px); }
#rate-images > .rb-judge { flex: none !important; width: var(--rb-h) !important; height: auto !important;
                           min-width: 0 !important; margin: 0 !important; display: flex; flex-direction: column; }
#rate-images > .rb-judge > label[data-testid="block-label"] { position: static; align-self: flex-start; }
#rate-images > .rb-judge .image-container { flex: none; height: var(--rb-h) !important; }
#rate-side { flex: 1 1 0 !important; min-width: 0 !important; gap: 8px; }
#rate-side .rb-criterion { padding: 6px 10px 8px; }
#rate-side .rb-criterion [data-testid="block-info"] { font-size: var(--text-sm); margin-bottom: 6px; }
/* the five scores in one row of equal cells; the picked one is filled (gradio's .selected), the dot hidden */
#rate-side .rb-criterion .wrap { display: grid; grid-template-columns: repeat(5, minmax(0, 1fr)); gap: 6px; }
#rate-side .rb-criterion .wrap label { margin: 0; padding: 6px 2px; justify-content: center; text-align: center;
                                       font-size: var(--text-sm); line-height: 1.25; }
#rate-side .rb-criterion .wrap label span { display: block; margin: 0; white-space: pre-line; }
#rate-side .rb-criterion .wrap label span::first-line { font-weight: 700; }
#rate-side .rb-criterion .wrap label input { position: absolute; opacity: 0; pointer-events: none; }
#rate-side .rb-criterion .wrap label:focus-within { outline: 2px solid var(--color-accent); }
#rate-side button { white-space: nowrap; }
#rate-side #rate-keys, #rate-side #rate-keys p { font-size: var(--text-sm); line-height: 1.4; }
#rate-pairwise button { justify-content: flex-start; }
@media (max-width: 1199px) {
  #rate-work { flex-wrap: wrap; }
  #rate-images, #rate-work:has(.rb-pairwise-item) #rate-images { --rb-side: 0px; }
  #rate-side { flex-basis: 100% !important; }
}
"""

# Keyboard shortcuts: press the tab's own buttons / radio inputs while the Rate panel is visible. Also: clicking a
# score moves the highlight to the next criterion (as the keys do), each score shows its full anchor on hover,
# and --rb-rate-top (where the images start on the page) is kept for the CSS.
KEYS_JS = """() => {
  if (window.__reasonbrainRateKeys) return;
  window.__reasonbrainRateKeys = true;
  const anchors = __ANCHORS__;
  const crits = Object.keys(anchors);
  let crit = 0, lastItem = null, lastTop = null, placing = false;
  const visible = (id) => { const el = document.getElementById(id); return !!el && el.offsetParent !== null; };
  const click = (id) => {
    let b = document.getElementById(id);
    if (b && b.tagName !== 'BUTTON') b = b.querySelector('button');
    if (b && !b.disabled && b.offsetParent !== null) { b.click(); return true; }
    return false;
  };
  const mark = () => crits.forEach((c, i) => document.getElementById(c)?.classList.toggle('rb-active', i === crit));
  const place = () => {
    if (placing) return;
    placing = true;
    requestAnimationFrame(() => {
      placing = false;
      const work = document.getElementById('rate-work');
      if (!work || work.offsetParent === null) return;
      mark();  // again: gradio rewrites a component's classes when it updates it
      const top = Math.round(work.getBoundingClientRect().top + window.scrollY);
      if (top !== lastTop) { lastTop = top; document.documentElement.style.setProperty('--rb-rate-top', top + 'px'); }
      crits.forEach((c) => document.querySelectorAll(`#${c} label`).forEach((l) => {
        const v = l.querySelector('input')?.value;
        if (v && anchors[c][v - 1] && l.title !== anchors[c][v - 1]) l.title = anchors[c][v - 1];
      }));
    });
  };
  const sync = () => {
    const box = document.querySelector('#rate-item-id textarea, #rate-item-id input');
    const item = box ? box.value : null;
    if (item !== lastItem) { lastItem = item; crit = 0; mark(); }
    place();
  };
  new MutationObserver(sync).observe(document.body, {subtree: true, childList: true, attributes: true});
  window.addEventListener('resize', place);
  document.addEventListener('change', (e) => {  // a score picked with the mouse: highlight the next criterion
    const i = crits.findIndex((c) => e.target.closest && e.target.closest('#' + c));
    if (i >= 0) { crit = Math.min(i + 1, crits.length - 1); mark(); }
  });
  document.addEventListener('keydown', (e) => {
    if (e.defaultPrevented || e.altKey || e.ctrlKey || e.metaKey || e.repeat) return;
    const t = e.target;  // typing in a visible text field: not a shortcut (a field hidden after sign-in is not)
    if (t && t.offsetParent !== null && (t.isContentEditable || /^(TEXTAREA|SELECT)$/.test(t.tagName) ||
                                         (t.tagName === 'INPUT' && t.type !== 'radio'))) return;
    if (t && t.tagName === 'BUTTON' && (e.key === 'Enter' || e.key === ' ')) return;
    if (!visible('rate-panel')) return;
    sync();
    const k = e.key.length === 1 ? e.key.toLowerCase() : e.key;
    const absolute = visible('rate-absolute'), pairwise = visible('rate-pairwise');
    let done = false;
    if (absolute && k >= '1' && k <= '5') {
      const at = crit, input = document.querySelector(`#${crits[at]} input[value="${k}"]`);
      if (input) { input.click(); crit = Math.min(at + 1, crits.length - 1); done = true; }
    } else if (absolute && (k === 'Backspace' || k === 'ArrowLeft')) { crit = Math.max(crit - 1, 0); done = true; }
    else if (absolute && k === 'ArrowRight') { crit = Math.min(crit + 1, crits.length - 1); done = true; }
    else if (absolute && k === 'Enter') done = click('rate-submit');
    else if (pairwise && (k === 'a' || k === '1' || k === 'ArrowLeft')) done = click('rate-left');
    else if (pairwise && (k === 'b' || k === '2' || k === 'ArrowRight')) done = click('rate-right');
    else if (pairwise && (k === 't' || k === '3')) done = click('rate-tie');
    else if (pairwise && (k === 'x' || k === '4')) done = click('rate-both-bad');
    else if (k === 's') done = click('rate-skip');
    else if (k === 'f') done = click('rate-flag');
    else if (k === 'u') done = click('rate-undo');
    else if (k === 'm') {
      const other = document.querySelector('#rate-mode input:not(:checked)');
      if (other) { other.click(); done = true; }
    }
    if (done) { e.preventDefault(); mark(); }
  });
}""".replace("__ANCHORS__", json.dumps({elem_id: [f"{k} · {short}: {full}" for k, short, full in anchors]
                                         for elem_id, _, anchors in CRITERIA}))


# ------------------------------------------------------------------------------------------------- layout
@dataclass
class RateHandles:
    token: gr.BrowserState
    mode: gr.Radio
    signin: gr.Group
    panel: gr.Column
    item_id: gr.Textbox
    results: gr.Accordion
    outputs: list[Any]


def _criterion(elem_id: str, label: str, anchors: list[Anchor]) -> gr.Radio:
    return gr.Radio([(f"{k}\n{short}", k) for k, short, _ in anchors], label=label, elem_id=elem_id,
                    elem_classes=["rb-criterion"])


def build(ctx: RateContext) -> RateHandles:
    """The Rate tab's components and events (page-level wiring: :func:`wire_page`)."""
    token = gr.BrowserState(None, storage_key=STORAGE_KEY,
                            secret=identity.browser_secret(ctx.ratings.store.data_dir))
    with gr.Group(visible=True, elem_id="rate-signin") as signin:
        gr.Markdown("### Sign in to rate\nAnnotators are added by the study's admin "
                    "(`python -m app.annotators add NAME`)."
                    + (" On this Space you can also sign in with Hugging Face (button at the top)."
                       if identity.oauth_enabled() else ""))
        with gr.Row():
            name = gr.Textbox(label="Name", max_lines=1, max_length=64, elem_id="rate-name")
            password = gr.Textbox(label="Password", type="password", max_lines=1, max_length=256,
                                  elem_id="rate-password")
        signin_btn = gr.Button("Sign in", variant="primary", elem_id="rate-signin-btn")
        signin_message = gr.Markdown("", elem_id="rate-signin-message")
    with gr.Column(visible=False, elem_id="rate-panel") as panel:
        with gr.Row(elem_id="rate-top"):
            who = gr.Markdown("", elem_id="rate-who")
            progress = gr.HTML("", js_on_load=None, elem_id="rate-progress")
            mode = gr.Radio(MODE_CHOICES, value=DEFAULT_MODE, show_label=False, elem_id="rate-mode")
            signout_btn = gr.Button("Sign out", size="sm", elem_id="rate-signout")
        instruction = gr.Markdown("", elem_id="rate-instruction")
        with gr.Row(elem_id="rate-work"):  # the images; beside them (under them below 1200 px) the choices
            with gr.Row(elem_id="rate-images"):
                view = {"interactive": False, "buttons": ["fullscreen"], "elem_classes": [display.JUDGE_CLASS]}
                source = gr.Image(label="Source", elem_id="rate-source", **view)
                image_a = gr.Image(label="Edited", elem_id="rate-image-a", **view)
                image_b = gr.Image(label="B (right)", elem_id="rate-image-b", visible=False, **view)
            with gr.Column(elem_id="rate-side"):
                with gr.Column(visible=False, elem_id="rate-absolute") as absolute:
                    ins, cons, plaus = (_criterion(*c) for c in CRITERIA)
                with gr.Column(visible=False, elem_id="rate-pairwise") as pairwise:
                    left_btn = gr.Button("A (left) is better · A", size="md", elem_id="rate-left")
                    right_btn = gr.Button("B (right) is better · B", size="md", elem_id="rate-right")
                    tie_btn = gr.Button("Tie · T", size="md", elem_id="rate-tie")
                    bad_btn = gr.Button("Both bad · X", size="md", elem_id="rate-both-bad")
                with gr.Column(visible=False, elem_id="rate-actions") as actions:
                    with gr.Row(equal_height=True):
                        submit_btn = gr.Button("Submit · Enter", variant="primary", size="md", elem_id="rate-submit",
                                               visible=False, scale=2, min_width=120)
                        skip_btn = gr.Button("Skip · S", size="md", elem_id="rate-skip", min_width=80)
                        flag_btn = gr.Button("Flag · F", size="md", elem_id="rate-flag", min_width=80)
                        undo_btn = gr.Button("Undo · U", size="md", elem_id="rate-undo", min_width=80)
                    note = gr.Textbox(placeholder="Why flag it? (optional; Enter flags)", show_label=False,
                                      max_lines=1, max_length=500, container=False, elem_id="rate-flag-note")
                message = gr.Markdown("", elem_id="rate-message")
                keys = gr.Markdown("", elem_id="rate-keys")
                with gr.Accordion("What the scores mean (or hover a score)", open=False, visible=False,
                                  elem_id="rate-anchors") as anchors_box:
                    gr.Markdown(anchors_markdown())
        item_id = gr.Textbox(elem_id="rate-item-id", show_label=False, interactive=False)  # hidden by CSS
        with gr.Accordion("Results (admins)", open=False, visible=False, elem_id="rate-results") as results_box:
            with gr.Row():
                exclude_fast = gr.Checkbox(True, label="Leave out too-fast answers", elem_id="rate-exclude-fast")
                refresh_btn = gr.Button("Refresh results", elem_id="rate-refresh")
            summary = gr.Markdown("")
            methods_df = gr.Dataframe(label="Ins-Align per method (95% bootstrap CI)", interactive=False)
            wins_df = gr.Dataframe(label="Win rate of row over column (comparisons)", interactive=False)
            bt_df = gr.Dataframe(label="Bradley–Terry ranking", interactive=False)
            alpha_df = gr.Dataframe(label="Agreement on overlap items", interactive=False)
            annotators_df = gr.Dataframe(label="Annotators", interactive=False)
            plots = gr.Gallery(label="Plots (click to enlarge)", columns=4, height="auto", object_fit="contain")
            with gr.Row():
                export_btn = gr.Button("Export CSV / JSONL / report", elem_id="rate-export")
                files = gr.File(label="Export", file_count="multiple", interactive=False)
            with gr.Row():
                repo = gr.Textbox(label="Hugging Face dataset repo", placeholder="owner/name", max_lines=1)
                push_btn = gr.Button("Push to the Hub", elem_id="rate-push")
            push_status = gr.Markdown("")

    outputs = [token, signin, panel, who, progress, instruction, source, image_a, image_b, item_id, ins, cons,
               plaus, absolute, pairwise, actions, message, results_box, signin_message, submit_btn, keys,
               anchors_box]
    h = RateHandles(token=token, mode=mode, signin=signin, panel=panel, item_id=item_id, results=results_box,
                    outputs=outputs)

    # Every handler takes the browser's token and resolves the annotator on the server (profile: HF login).
    def _sign_in(name_value: Any, password_value: Any, mode_value: Any) -> tuple[Any, ...]:
        """Sign in with name + password; returns the session token and the first item."""
        return sign_in(ctx, name_value, password_value, mode_value).to_updates()

    def _sign_out(tok: Any, mode_value: Any, profile: gr.OAuthProfile | None) -> tuple[Any, ...]:
        return sign_out(ctx, tok, mode_value, profile).to_updates()

    def _show(tok: Any, mode_value: Any, profile: gr.OAuthProfile | None) -> tuple[Any, ...]:
        """The annotator's current item in this mode."""
        return show(ctx, tok, mode_value, profile).to_updates()

    def _absolute(tok: Any, item: Any, i: Any, c: Any, p: Any, mode_value: Any,
                  profile: gr.OAuthProfile | None) -> tuple[Any, ...]:
        """Score the current item (Ins-Align, consistency, plausibility: 1-5 each)."""
        return submit_absolute(ctx, tok, item, i, c, p, mode_value, profile).to_updates()

    def _pairwise(side: str):
        def handler(tok: Any, item: Any, mode_value: Any, profile: gr.OAuthProfile | None) -> tuple[Any, ...]:
            return submit_pairwise(ctx, tok, item, side, mode_value, profile).to_updates()
        return handler

    def _skip(tok: Any, item: Any, mode_value: Any, profile: gr.OAuthProfile | None) -> tuple[Any, ...]:
        return skip(ctx, tok, item, mode_value, profile).to_updates()

    def _flag(tok: Any, item: Any, why: Any, mode_value: Any, profile: gr.OAuthProfile | None) -> tuple[Any, ...]:
        return (*flag(ctx, tok, item, why, mode_value, profile).to_updates(), "")

    def _undo(tok: Any, mode_value: Any, profile: gr.OAuthProfile | None) -> tuple[Any, ...]:
        return undo(ctx, tok, mode_value, profile).to_updates()

    def _results(tok: Any, fast: Any, profile: gr.OAuthProfile | None) -> tuple[Any, ...]:
        return results(ctx, tok, fast, profile)

    def _export(tok: Any, profile: gr.OAuthProfile | None) -> list[str]:
        return export_files(ctx, tok, profile)

    def _push(tok: Any, repo_id: Any, profile: gr.OAuthProfile | None) -> str:
        return push(ctx, tok, repo_id, profile)

    fast = {"concurrency_limit": None}  # database work only: no need to queue behind edits
    signin_btn.click(_sign_in, [name, password, mode], outputs, api_name="rate_sign_in", **fast).then(
        lambda: "", None, password, queue=False, api_visibility="private")
    password.submit(_sign_in, [name, password, mode], outputs, api_visibility="private", **fast).then(
        lambda: "", None, password, queue=False, api_visibility="private")
    signout_btn.click(_sign_out, [token, mode], outputs, api_name="rate_sign_out", **fast)
    mode.input(_show, [token, mode], outputs, api_name="rate_show", **fast)
    submit_btn.click(_absolute, [token, item_id, ins, cons, plaus, mode], outputs, api_name="rate_absolute",
                     trigger_mode="once", **fast)
    for btn, side in ((left_btn, "left"), (right_btn, "right"), (tie_btn, "tie"), (bad_btn, "both_bad")):
        btn.click(_pairwise(side), [token, item_id, mode], outputs, api_name=f"rate_{side}", trigger_mode="once",
                  **fast)
    skip_btn.click(_skip, [token, item_id, mode], outputs, api_name="rate_skip", trigger_mode="once", **fast)
    flag_btn.click(_flag, [token, item_id, note, mode], [*outputs, note], api_name="rate_flag", trigger_mode="once",
                   **fast)
    note.submit(_flag, [token, item_id, note, mode], [*outputs, note], api_visibility="private",
                trigger_mode="once", **fast)  # type a reason, Enter flags
    undo_btn.click(_undo, [token, mode], outputs, api_name="rate_undo", trigger_mode="once", **fast)
    refresh_btn.click(_results, [token, exclude_fast],
                      [summary, methods_df, wins_df, bt_df, alpha_df, annotators_df, plots], api_name="rate_results")
    export_btn.click(_export, [token], files, api_name="rate_export")
    push_btn.click(_push, [token, repo], push_status, api_name="rate_push")
    return h


def wire_page(demo: gr.Blocks, tab: gr.Tab, h: RateHandles, ctx: RateContext) -> None:
    """Page-level wiring: opening the tab restores this browser's sign-in; the keyboard shortcuts."""

    def _restore(tok: Any, mode_value: Any, profile: gr.OAuthProfile | None) -> tuple[Any, ...]:
        """Continue where this browser's annotator left off (or show the sign-in form)."""
        return restore(ctx, tok, mode_value, profile).to_updates()

    tab.select(_restore, [h.token, h.mode], h.outputs, api_name="rate_restore", concurrency_limit=None)
    demo.load(None, js=KEYS_JS)
