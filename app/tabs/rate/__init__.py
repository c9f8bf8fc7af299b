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

One module per job: :mod:`~app.tabs.rate.scales` (the criteria and what each score means),
:mod:`~app.tabs.rate.handlers` (the handlers and the view they return, the admins' results) and
:mod:`~app.tabs.rate.layout` (components, style, keyboard shortcuts, events). This package exports the tab's public
names (``from app.tabs import rate``; ``rate.build``).
"""

from app.tabs.rate.handlers import (
    NOT_FOUND,
    NOT_SIGNED_IN,
    PAIRWISE_CLASS,
    RateContext,
    RateView,
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
from app.tabs.rate.layout import CSS, KEYS_JS, RateHandles, build, wire_page
from app.tabs.rate.scales import CRITERIA, anchors_markdown

__all__ = [
    "CRITERIA", "CSS", "KEYS_JS", "NOT_FOUND", "NOT_SIGNED_IN", "PAIRWISE_CLASS", "RateContext", "RateHandles",
    "RateView", "anchors_markdown", "build", "export_files", "flag", "push", "restore", "results", "show", "sign_in",
    "sign_out", "skip", "submit_absolute", "submit_pairwise", "undo", "wire_page",
]
