"""Rate tab: blind, randomised human ratings of edits (Ins-Align), fast from the keyboard.

- Sign in: a local annotator (name + password from the annotators file, see :mod:`app.annotators`) gets a random
  session token kept in this browser (``gr.BrowserState``); on a Space with OAuth an allowed Hugging Face account
  is recognised from its login. Every event resolves the annotator on the server from the token / login: nobody
  can act for someone else, and another annotator's item id is "not found".
- Absolute mode: one edit, scored 1-5 on Ins-Align, appearance consistency and visual plausibility (each score
  named on screen; its full anchor on hover and under "What the scores mean"). Pairwise mode: two edits of the same prompt, A (left) or B (right) better, tie, or both bad. Method
  names are never sent to the browser; order and sides are shuffled per annotator.
- Skip (comes back at the end), flag (leaves the queue, with an optional reason), undo (repeatable).
- One screen per item from 1200 px wide (1280x720 included): the images, and beside them the scores or the A / B
  buttons with Submit / Skip; no scrolling between items.
- Results (admins only: they reveal method names): Ins-Align per method with bootstrap CIs, win rates,
  Bradley-Terry, Krippendorff's alpha, per-annotator stats, plots, CSV/JSONL export, push to a HF dataset.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import gradio as gr
import pandas as pd

from app import display, identity, rating_results, render
from app.annotators import Annotator, AnnotatorDirectory
from app.ratings_store import Item, Progress, RatingStore
from app.store import NotFound

logger = logging.getLogger(__name__)

STORAGE_KEY = "reasonbrain-rate-session"
DEFAULT_MODE = "absolute"
MODE_CHOICES = [("Score one edit (1–5)", "absolute"), ("Compare two edits (A / B)", "pairwise")]
NOT_SIGNED_IN = "Please sign in to rate (your session ended, or you are not on the annotators list)."
NOT_FOUND = "This item is not in your queue."
WRONG_PASSWORD = "Unknown name or wrong password: check both and try again."
PAUSED = "Too many failed attempts for this name: wait a few minutes and try again."
EMPTY_MODE = {
    "absolute": "**Nothing to rate in this mode yet.** No edits have been imported for rating; the study's admin "
                "adds them (`python -m app.annotators import-steps` or `import-method`).",
    "pairwise": "**Nothing to compare in this mode yet.** Pairwise items show two methods' edits of the same "
                "prompt (or a ground truth against the unchanged image), and none are imported. Try absolute mode, "
                "or ask the study's admin to import a second method (`python -m app.annotators import-method`).",
}

# Anchors: Ins-Align as the paper defines it (how well the edited image aligns with the hypothetical
# instruction: the plausible, reasoned outcome on the right object), plus the two qualities it discusses
# alongside it (appearance consistency / identity preservation, visual plausibility). Each: (score, the short
# name on the choice, the full anchor: a tooltip on the choice and under "What the scores mean").
Anchor = tuple[int, str, str]
INS_ALIGN: list[Anchor] = [
    (1, "Not aligned", "no visible change, or a change unrelated to the instruction"),
    (2, "Barely", "something changed, but the wrong outcome or the wrong object"),
    (3, "Partly", "the right object changes, but the outcome is incomplete or only partly what the instruction "
                  "implies"),
    (4, "Mostly", "the implied outcome is clearly shown, with a minor error in extent or detail"),
    (5, "Fully", "exactly the outcome the instruction implies, on the right object, to the right extent"),
]
CONSISTENCY: list[Anchor] = [
    (1, "Different", "a different image: the scene or the main objects are not preserved"),
    (2, "Major", "large parts the instruction does not concern changed or were replaced"),
    (3, "Noticeable", "noticeable unintended changes, the scene still recognisable"),
    (4, "Minor", "small unintended changes (colour, texture) outside the edit"),
    (5, "Unchanged", "everything the instruction does not concern is unchanged"),
]
PLAUSIBILITY: list[Anchor] = [
    (1, "Broken", "noise, heavy distortion, unreadable"),
    (2, "Severe flaws", "strong artefacts or a physically impossible result"),
    (3, "Clear flaws", "clear artefacts or implausible parts, still readable"),
    (4, "Minor", "minor artefacts or slightly unnatural details"),
    (5, "Plausible", "a coherent, physically plausible photo without artefacts"),
]
# (elem_id, label, anchors), in the order the keys 1-5 score them
CRITERIA = [
    ("rate-ins", "Ins-Align: does the edit show what the instruction implies?", INS_ALIGN),
    ("rate-cons", "Consistency: is the rest of the image preserved?", CONSISTENCY),
    ("rate-plaus", "Plausibility: does the result look real and coherent?", PLAUSIBILITY),
]


def anchors_markdown() -> str:
    """Every criterion's full anchors (the accordion under the scores)."""
    parts = []
    for _, label, anchors in CRITERIA:
        rows = "\n".join(f"- **{k} · {short}**: {full}" for k, short, full in anchors)
        parts.append(f"**{label}**\n\n{rows}")
    return "\n\n".join(parts)


KEYS_HELP = {  # typing in a text box is never a shortcut
    "absolute": "**Keys**: **1–5** score the highlighted criterion · **Backspace** / **←** back one · **Enter** "
                "submit · **S** skip · **F** flag · **U** undo · **M** compare mode",
    "pairwise": "**Keys**: **A** / **1** / **←** left better · **B** / **2** / **→** right better · **T** / **3** tie · "
                "**X** / **4** both bad · **S** skip · **F** flag · **U** undo · **M** score mode",
}
PAIRWISE_CLASS = "rb-pairwise-item"  # on the images in pairwise mode: three in a row (CSS below)

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


@dataclass
class RateContext:
    """What the handlers need: the rating tables, the annotators file, and (tests) a Hub API object."""

    ratings: RatingStore
    directory: AnnotatorDirectory
    hub_api: Any = None  # None: huggingface_hub.HfApi with HF_TOKEN

    @classmethod
    def create(cls, ratings: RatingStore, hub_api: Any = None) -> RateContext:
        return cls(ratings, AnnotatorDirectory(ratings.settings.annotators_file), hub_api)


# ------------------------------------------------------------------------------------------------- who
def signed_in(ctx: RateContext, token: Any, profile: Any = None) -> Annotator | None:
    """The annotator acting, resolved on the server: an allowed Hugging Face login, else the session token."""
    if profile is not None:
        who = ctx.directory.from_profile(profile)
        if who is not None:
            return who
    annotator_id = ctx.ratings.session_annotator(token)
    return ctx.directory.get(annotator_id) if annotator_id else None


def require(ctx: RateContext, token: Any, profile: Any = None, *, admin: bool = False) -> Annotator:
    who = signed_in(ctx, token, profile)
    if who is None:
        raise refusal(NOT_SIGNED_IN)
    if admin and not who.admin:
        raise refusal("Results are for admins (they show method names, which would unblind rating).")
    return who


def refusal(message: str) -> gr.Error:
    """The annotator's mistake (or an ended session), not a bug: one log line, no traceback."""
    logger.info("rate refused: %s", message)
    return gr.Error(message, print_exception=False)


@contextlib.contextmanager
def user_errors() -> Iterator[None]:
    try:
        yield
    except NotFound as err:
        raise refusal(NOT_FOUND) from err
    except ValueError as err:
        if isinstance(err, gr.Error):
            raise
        raise refusal(render.esc(str(err))) from err


# ------------------------------------------------------------------------------------------------- views
@dataclass
class RateView:
    token: str | None
    who: Annotator | None
    mode: str
    item: Item | None = None
    progress: Progress = field(default_factory=Progress)
    message: str = ""
    signin_message: str = ""  # why signing in failed (shown in the form; gone once signed in)
    tasks_in_mode: int = 0  # the study's tasks in this mode (explains an empty queue)

    def to_updates(self) -> tuple[Any, ...]:
        signed = self.who is not None
        item = self.item
        pairwise = self.mode == "pairwise"
        images = item.images if item else []
        who = ""
        if signed:
            who = f"Signed in as **{render.esc(self.who.name)}**" + (" (admin)" if self.who.admin else "")
        classes = display.image_classes(item.source_image, *images) if item else [display.JUDGE_CLASS]
        if pairwise:
            classes = [*classes, PAIRWISE_CLASS]
        return (
            self.token,
            gr.Group(visible=not signed),
            gr.Column(visible=signed),
            who,
            progress_html(self.progress, item),
            self.instruction_text(),
            gr.Image(value=item.source_image if item else None, visible=bool(item), elem_classes=classes),
            gr.Image(value=images[0] if images else None, label="A (left)" if pairwise else "Edited",
                     visible=bool(item), elem_classes=classes),
            gr.Image(value=images[1] if len(images) > 1 else None, visible=bool(item) and pairwise,
                     elem_classes=classes),
            item.assignment_id if item else "",
            gr.Radio(value=None), gr.Radio(value=None), gr.Radio(value=None),
            gr.Column(visible=bool(item) and not pairwise),
            gr.Column(visible=bool(item) and pairwise),
            gr.Column(visible=bool(item)),
            self.message,
            gr.Accordion(visible=signed and self.who.admin),
            self.signin_message,
            gr.Button(visible=bool(item) and not pairwise),
            KEYS_HELP[self.mode] if item else "",
            gr.Accordion(visible=bool(item) and not pairwise),
        )

    def instruction_text(self) -> str:
        if self.item is not None:
            return f"**Instruction:** {render.esc(self.item.instruction)}"
        if self.who is None:
            return ""
        if self.progress.total:
            return "**All done in this mode.** Thank you! New items appear here when more are added."
        if self.tasks_in_mode:
            return (f"**Nothing left to claim in this mode:** its {self.tasks_in_mode} item(s) are with other "
                    "annotators. New items appear here when more are imported.")
        return EMPTY_MODE[self.mode]


def progress_html(p: Progress, item: Item | None) -> str:
    if p.total == 0:
        return "<div class='rb-progress'><span>Your queue in this mode is empty.</span></div>"
    parts = [f"<b>{p.answered} / {p.total}</b> done"]
    if p.skipped:
        parts.append(f"{p.skipped} skipped (they come back at the end)")
    if p.flagged:
        parts.append(f"{p.flagged} flagged")
    if item is not None and item.status == "skipped":
        parts.append("showing a skipped item again")
    return (f"<div class='rb-progress' id='rate-progress-text'><progress value='{p.answered}' max='{p.total}'>"
            f"</progress><span>{' · '.join(parts)}</span></div>")


def _mode(mode: Any) -> str:
    return mode if mode in ("absolute", "pairwise") else DEFAULT_MODE


def current_view(ctx: RateContext, who: Annotator, token: Any, mode: Any, message: str = "") -> RateView:
    mode = _mode(mode)
    item = ctx.ratings.next_item(who.id, mode)
    progress = item.progress if item else ctx.ratings.progress(who.id, mode)
    tasks = 0 if item or progress.total else ctx.ratings.task_count(mode)
    return RateView(token=token if isinstance(token, str) else None, who=who, mode=mode, item=item,
                    progress=progress, message=message, tasks_in_mode=tasks)


def signed_out_view(mode: Any) -> RateView:
    return RateView(token=None, who=None, mode=_mode(mode))


# ------------------------------------------------------------------------------------------------- handlers
def restore(ctx: RateContext, token: Any, mode: Any, profile: Any = None) -> RateView:
    """Opening the tab: continue where this browser's annotator left off, or show the sign-in form."""
    who = signed_in(ctx, token, profile)
    if who is None:
        if profile is not None:
            gr.Warning("Your Hugging Face account is not on this study's annotators list; ask its admin.")
        return signed_out_view(mode)
    return current_view(ctx, who, token, mode)


def sign_in(ctx: RateContext, name: Any, password: Any, mode: Any) -> RateView:
    """Name + password: the first item, or the sign-in form again with what went wrong (in the form, not a toast
    that would outlive a successful retry)."""
    who = ctx.directory.authenticate(name, password)
    if who is None:
        paused = ctx.directory.paused(name)
        logger.info("rate sign-in refused for %r (%s)", str(name)[:64], "paused" if paused else "wrong credentials")
        view = signed_out_view(mode)
        view.signin_message = PAUSED if paused else WRONG_PASSWORD
        return view
    token = ctx.ratings.create_session(who.id)
    return current_view(ctx, who, token, mode, message=f"Welcome, {render.esc(who.name)}.")


def sign_out(ctx: RateContext, token: Any, mode: Any, profile: Any = None) -> RateView:
    ctx.ratings.end_session(token)
    if profile is not None and ctx.directory.from_profile(profile) is not None:
        gr.Info("You are signed in with Hugging Face: use its Logout button at the top of the page.")
        return restore(ctx, None, mode, profile)
    gr.Info("Signed out.")
    return signed_out_view(mode)


def show(ctx: RateContext, token: Any, mode: Any, profile: Any = None) -> RateView:
    """The current item of ``mode`` (switching modes, or reloading)."""
    return current_view(ctx, require(ctx, token, profile), token, mode)


def submit_absolute(ctx: RateContext, token: Any, item_id: Any, ins: Any, cons: Any, plaus: Any, mode: Any,
                    profile: Any = None) -> RateView:
    who = require(ctx, token, profile)
    missing = [name for name, v in (("Ins-Align", ins), ("consistency", cons), ("plausibility", plaus)) if v is None]
    if missing:
        raise refusal(f"Score {', '.join(missing)} first (keys 1–5).")
    return _answer(ctx, who, token, mode, lambda: ctx.ratings.rate_absolute(
        who.id, item_id, ins_align=ins, consistency=cons, plausibility=plaus))


def submit_pairwise(ctx: RateContext, token: Any, item_id: Any, side: str, mode: Any,
                    profile: Any = None) -> RateView:
    who = require(ctx, token, profile)
    return _answer(ctx, who, token, mode, lambda: ctx.ratings.rate_pairwise(who.id, item_id, side))


def skip(ctx: RateContext, token: Any, item_id: Any, mode: Any, profile: Any = None) -> RateView:
    who = require(ctx, token, profile)
    return _answer(ctx, who, token, mode, lambda: ctx.ratings.skip(who.id, item_id))


def flag(ctx: RateContext, token: Any, item_id: Any, note: Any, mode: Any, profile: Any = None) -> RateView:
    who = require(ctx, token, profile)
    return _answer(ctx, who, token, mode, lambda: ctx.ratings.flag(who.id, item_id, note))


def undo(ctx: RateContext, token: Any, mode: Any, profile: Any = None) -> RateView:
    who = require(ctx, token, profile)
    with user_errors():
        answer = ctx.ratings.undo(who.id, _mode(mode))
    message = "Nothing to undo." if answer is None else f"Undid your last {_WHAT[answer.status]}: it is shown again."
    return current_view(ctx, who, token, mode, message)


_WHAT = {"done": "rating", "skipped": "skip", "flagged": "flag"}


def _answer(ctx: RateContext, who: Annotator, token: Any, mode: Any, act: Any) -> RateView:
    try:
        with user_errors():
            answer = act()
    except gr.Error as err:
        if "already answered" not in str(err):
            raise
        gr.Warning("That item was already answered (a double key press?); showing your current item.")
        return current_view(ctx, who, token, mode)
    if answer.status == "done":
        took = f" in {answer.seconds:.1f} s" if answer.seconds is not None else ""
        message = f"Saved{took}."
        if answer.too_fast:
            message += f" ⚠ Faster than {ctx.ratings.settings.min_seconds:g} s: marked as too fast. Take your time."
    else:
        message = {"skipped": "Skipped: it comes back at the end.", "flagged": "Flagged: thanks for reporting it."}[
            answer.status]
    return current_view(ctx, who, token, mode, message)


# --- results (admins) ----------------------------------------------------------------------------------------
def results(ctx: RateContext, token: Any, exclude_fast: Any, profile: Any = None) -> tuple[Any, ...]:
    require(ctx, token, profile, admin=True)
    records = ctx.ratings.records()
    plots_dir = _fresh_dir()
    res = rating_results.compute(records, min_seconds=ctx.ratings.settings.min_seconds,
                                 exclude_too_fast=bool(exclude_fast), plots_dir=plots_dir)
    wins_headers, wins_rows = res.wins
    note = {"pairwise": "from pairwise judgments", "absolute": "derived from absolute Ins-Align scores",
            "none": "no comparisons yet"}[res.comparisons_from]
    gallery = [(path, name.replace("_", " ")) for name, path in res.plots.items()]
    return (
        res.summary + f" Win rates and Bradley–Terry: {note}.",
        _frame(["method", "Ins-Align [0,1]", "CI low", "CI high", "consistency [0,1]", "plausibility [0,1]",
                "ratings", "prompts"], res.methods),
        _frame(wins_headers, wins_rows),
        _frame(["rank", "method", "strength", "log-strength"], res.bradley_terry),
        _frame(["criterion", "Krippendorff's alpha", "level", "overlap units", "annotators"], res.agreement),
        _frame(["annotator", "ratings", "median s", "too fast", "gold", "gold accuracy", "flagged"], res.annotators),
        gallery,
    )


def export_files(ctx: RateContext, token: Any, profile: Any = None) -> list[str]:
    require(ctx, token, profile, admin=True)
    return rating_results.export(ctx.ratings, _fresh_dir())


def push(ctx: RateContext, token: Any, repo_id: Any, profile: Any = None) -> str:
    require(ctx, token, profile, admin=True)
    repo = repo_id.strip() if isinstance(repo_id, str) else ""
    out = _fresh_dir()
    with user_errors():
        rating_results.export(ctx.ratings, out)
        try:
            url = rating_results.push_to_hub(out, repo, api=ctx.hub_api, token=os.environ.get("HF_TOKEN"))
        except (ValueError, NotFound):
            raise
        except Exception as err:  # network / auth errors from the Hub client: say what happened
            logger.exception("push to the Hub failed")
            raise gr.Error(f"Upload failed: {render.esc(err)}") from err
    return f"Pushed to [{render.esc(repo)}]({url})."


def _frame(headers: list[str], rows: list[list[Any]]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=headers)


def _fresh_dir(keep: int = 20) -> str:
    """A new folder for plots / exports under the system temp dir (served by gradio); older ones are pruned."""
    base = os.path.join(tempfile.gettempdir(), "reasonbrain-rate")
    os.makedirs(base, exist_ok=True)
    old = sorted((e for e in os.scandir(base) if e.is_dir()), key=lambda e: e.stat().st_mtime)
    for entry in old[: max(0, len(old) - keep + 1)]:
        shutil.rmtree(entry.path, ignore_errors=True)
    return tempfile.mkdtemp(dir=base)


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
