"""The Rate tab's handlers and the view they return: sign-in, the annotator's current item, answers (score,
compare, skip, flag, undo) and the admins' results. Module-level functions with explicit arguments (a
:class:`RateContext`, the browser's token, the HF login), testable without a browser; every one resolves the
annotator on the server."""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from typing import Any

import gradio as gr
import pandas as pd

from app import display, rating_results, render
from app.annotators import Annotator, AnnotatorDirectory
from app.errors import refusal, user_errors
from app.ratings_store import Item, Progress, RatingStore
from app.store import NotFound

logger = logging.getLogger(__name__)

DEFAULT_MODE = "absolute"
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


KEYS_HELP = {  # typing in a text box is never a shortcut
    "absolute": "**Keys**: **1–5** score the highlighted criterion · **Backspace** / **←** back one · **Enter** "
                "submit · **S** skip · **F** flag · **U** undo · **M** compare mode",
    "pairwise": "**Keys**: **A** / **1** / **←** left better · **B** / **2** / **→** right better · **T** / **3** tie · "
                "**X** / **4** both bad · **S** skip · **F** flag · **U** undo · **M** score mode",
}
PAIRWISE_CLASS = "rb-pairwise-item"  # on the images in pairwise mode: three in a row (the layout's CSS)


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
        raise refusal(NOT_SIGNED_IN, log=logger)
    if admin and not who.admin:
        raise refusal("Results are for admins (they show method names, which would unblind rating).", log=logger)
    return who


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
        raise refusal(f"Score {', '.join(missing)} first (keys 1–5).", log=logger)
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
    with user_errors(NOT_FOUND, log=logger):
        answer = ctx.ratings.undo(who.id, _mode(mode))
    message = "Nothing to undo." if answer is None else f"Undid your last {_WHAT[answer.status]}: it is shown again."
    return current_view(ctx, who, token, mode, message)


_WHAT = {"done": "rating", "skipped": "skip", "flagged": "flag"}


def _answer(ctx: RateContext, who: Annotator, token: Any, mode: Any, act: Any) -> RateView:
    try:
        with user_errors(NOT_FOUND, log=logger):
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
    with user_errors(NOT_FOUND, log=logger):
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

