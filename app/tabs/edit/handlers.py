"""The Edit tab's handlers: module-level functions with explicit arguments (engine, store, user id, session, ...)
returning an :class:`~app.tabs.edit.views.EditView`; :mod:`app.tabs.edit.layout` only wires them to components.

Every edit is saved (a new chain for a fresh image, a step of the current chain otherwise); errors become
``gr.Error`` with the message (:mod:`app.errors`) and leave no rows behind.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import time
from collections.abc import Callable
from typing import Any

import gradio as gr

from app import identity, render
from app.engine import EditRequest, EditResult, Engine
from app.errors import refusal, user_errors
from app.store import StepInfo, Store
from app.tabs.edit.domain import source_domain_note
from app.tabs.edit.downloads import step_payload
from app.tabs.edit.inputs import optional_float, optional_int, upload_file
from app.tabs.edit.state import EditSession
from app.tabs.edit.views import KEEP, EditView, current_view, refused_status, source_view, step_view

logger = logging.getLogger(__name__)

PROMPT_HINT = "What would happen if the ice cube were left in the sun?"


def prompt_hint(engine: Engine) -> str:
    """The example instruction the prompt box and its refusal show: a photo one where the examples are photos."""
    from app.photo_examples import PROMPT_HINT as PHOTO_PROMPT_HINT

    return PHOTO_PROMPT_HINT if engine.photo_examples else PROMPT_HINT


@dataclasses.dataclass(frozen=True)
class SavedEdit:
    """One edit run and saved: who, the session now on the saved step, the step, the engine's result."""

    user: str
    session: EditSession
    step: StepInfo
    result: EditResult
    save_seconds: float


def run_edit(
    engine: Engine,
    store: Store,
    user_id: Any,
    session: Any,
    image: Any,
    instruction: Any,
    steps: Any = None,
    guidance_scale: Any = None,
    image_guidance_scale: Any = None,
    seed: Any = None,
    randomize_seed: bool = True,
    scheduler: Any = None,
    progress: Callable[..., Any] | None = None,
) -> EditView:
    """Run one edit and save it. Fresh session: a new chain from ``image``; otherwise a step of the current
    chain whose input is the session's ``input_rel`` (the source, or the result being continued)."""
    saved = edit_and_save(
        engine, store, user_id, session, image, instruction, steps, guidance_scale, image_guidance_scale, seed,
        randomize_seed, scheduler, progress=progress,
    )
    view = step_view(store, saved.user, saved.session, saved.step, extra_timings={"save (app)": saved.save_seconds})
    view.status += "  \nType another instruction for an alternative edit of the same input, or press " \
                   "**Continue from this result** to edit the result (a multi-hop chain)."
    return view


def api_edit(
    engine: Engine,
    store: Store,
    user_id: Any,
    session: Any,
    image: Any,
    instruction: Any,
    steps: Any = None,
    guidance_scale: Any = None,
    image_guidance_scale: Any = None,
    seed: Any = None,
    randomize_seed: bool = True,
    scheduler: Any = None,
) -> tuple[EditSession, str, dict[str, Any]]:
    """The programmatic edit (``/edit_image``): same rules and saving as ``run_edit``, but returns only
    ``(session, the edited PNG's path, the step's JSON)`` instead of the whole Edit tab."""
    saved = edit_and_save(
        engine, store, user_id, session, image, instruction, steps, guidance_scale, image_guidance_scale, seed,
        randomize_seed, scheduler,
    )
    return saved.session, store.image_path(saved.step.output_image), step_payload(saved.step)


def edit_and_save(
    engine: Engine,
    store: Store,
    user_id: Any,
    session: Any,
    image: Any,
    instruction: Any,
    steps: Any,
    guidance_scale: Any,
    image_guidance_scale: Any,
    seed: Any,
    randomize_seed: bool,
    scheduler: Any,
    *,
    progress: Callable[..., Any] | None = None,
) -> SavedEdit:
    """Validate, run the engine, save."""
    user = identity.require_user(user_id)
    s = EditSession.from_state(session)
    if not isinstance(instruction, str) or not instruction.strip():
        raise refusal(f"Type a hypothetical instruction first, e.g. “{prompt_hint(engine)}”")
    continuing = s.chain_id is not None
    with user_errors():
        if continuing:
            store.require_chain(user, s.chain_id)  # NotFound -> an error before any work
            source: Any = store.load_image(s.input_rel)
        else:
            if image is None:
                raise refusal("Upload an image (PNG, JPEG or WebP) or pick an example first.")
            source = image
        request = EditRequest(
            image=source,
            instruction=instruction,
            steps=optional_int("steps", steps),
            guidance_scale=optional_float("text guidance", guidance_scale),
            image_guidance_scale=optional_float("image guidance", image_guidance_scale),
            seed=None if randomize_seed else optional_int("seed", seed),
            scheduler=scheduler or None,
        )
        callback = None
        if progress is not None:
            if not engine.loaded:
                progress(0.0, desc="Loading the model…")

            def callback(done: int, total: int) -> None:
                progress((done, total), desc=f"Denoising {done}/{total}", unit="steps")

        result = engine.edit(request, progress=callback)
        start = time.perf_counter()
        note = None if continuing else source_domain_note(engine, result)
        step = save_result(store, user, s, result, domain_note=note)
        save_s = time.perf_counter() - start
    # the regions of the step shown before are dropped: step_view fills in the new step's
    s = EditSession(chain_id=step.chain_id, step_id=step.id, base_id=step.parent_id, input_rel=step.input_image)
    return SavedEdit(user=user, session=s, step=step, result=result, save_seconds=save_s)


def save_result(store: Store, user: str, session: EditSession, result: EditResult, *,
                domain_note: str | None = None) -> StepInfo:
    """Write the edit: a new chain with its first step (fresh session) or one step; one transaction either way.
    ``domain_note``: why a new chain's source is outside the model's world (see :func:`source_domain_note`)."""
    fields = {
        "instruction": result.output.instruction, "output_image": result.image, "seed": int(result.seed),
        "settings": result.settings, "preset": result.preset, "checkpoint_hash": result.checkpoint_hash,
        "timings": result.timings, "details": result.details,
    }
    if session.chain_id is None:
        return store.start_chain(user, result.input_image, domain_note=domain_note, **fields)
    return store.add_step(user, session.chain_id, session.base_id, input_image=session.input_rel, **fields)


def continue_from_result(store: Store, user_id: Any, session: Any) -> EditView:
    """The next edit will start from the shown step's result (a child of that step: a new hop, or a branch
    when the step already has later steps)."""
    user = identity.require_user(user_id)
    s = EditSession.from_state(session)
    if s.step_id is None:
        raise refusal("There is no result to continue from yet: run an edit first.")
    with user_errors():
        tree = store.get_chain(user, s.chain_id, details=False)
        step = tree.step(s.step_id)
        s = dataclasses.replace(s, base_id=step.id, input_rel=step.output_image)
        view = step_view(store, user, s, step, tree=tree)
    view.input_image = store.image_path(step.output_image)
    view.prompt = ""
    branch = " (a new branch: this step already has later steps)" if tree.children(step.id) else ""
    view.status = (f"**Continuing from step {step.position}**{branch}: the next instruction edits this result.  \n"
                   + view.status)
    return view


def select_step(store: Store, user_id: Any, session: Any, step_id: Any) -> EditView:
    """Show an earlier step of the current chain (or its source). Then: a new instruction edits the same
    input (an alternative, a sibling); Continue edits this step's result (a child: a branch)."""
    user = identity.require_user(user_id)
    s = EditSession.from_state(session)
    if s.chain_id is None:
        raise refusal("Open or start a chain first.")
    with user_errors():
        tree = store.get_chain(user, s.chain_id, details=False)
        if step_id == render.SOURCE_NODE:
            return source_view(store, tree)
        step = tree.step(str(step_id))
        s = dataclasses.replace(s, step_id=step.id, base_id=step.parent_id, input_rel=step.input_image)
        view = step_view(store, user, s, step, tree=tree)
    view.input_image = store.image_path(step.input_image)
    view.prompt = step.instruction
    return view


def open_chain(store: Store, user_id: Any, chain_id: Any, step_id: str | None = None) -> EditView:
    """Reopen a saved chain (History): its latest step is shown and the next edit continues from it."""
    user = identity.require_user(user_id)
    if not isinstance(chain_id, str) or not chain_id:
        raise refusal("Pick a chain first.")
    with user_errors():
        tree = store.get_chain(user, chain_id, details=False)
        if not tree.steps:
            return source_view(store, tree)
        step = tree.step(step_id) if step_id else max(tree.steps, key=lambda st: (st.created_at, st.position))
        s = EditSession(chain_id=tree.chain.id, step_id=step.id, base_id=step.id, input_rel=step.output_image)
        view = step_view(store, user, s, step, tree=tree)
    view.input_image = store.image_path(step.output_image)
    view.prompt = ""
    view.status = (f"Reopened **{render.esc(tree.chain.title)}** at step {step.position}: the next instruction "
                   "continues from this result. Pick any step in the timeline to branch from it.  \n" + view.status)
    return view


def undo(store: Store, user_id: Any, session: Any) -> EditView:
    """Delete the shown step (it must be the last of its branch) and show its parent."""
    user = identity.require_user(user_id)
    s = EditSession.from_state(session)
    if s.step_id is None:
        raise refusal("Nothing to undo: no step is selected.")
    with user_errors():
        parent = store.undo_step(user, s.step_id)
        tree = store.get_chain(user, s.chain_id, details=False)
        if parent is None:
            view = source_view(store, tree)
        else:
            s = dataclasses.replace(s, step_id=parent.id, base_id=parent.id, input_rel=parent.output_image)
            view = step_view(store, user, s, parent, tree=tree)
            view.input_image = store.image_path(parent.output_image)
    view.prompt = ""
    view.status = "Undone. " + view.status
    return view


def rename_chain(store: Store, user_id: Any, session: Any, title: Any) -> EditView:
    user = identity.require_user(user_id)
    s = EditSession.from_state(session)
    if s.chain_id is None:
        raise refusal("There is no chain to rename yet.")
    with user_errors():
        store.rename_chain(user, s.chain_id, title if isinstance(title, str) else "")
        view = current_view(store, user, s)
    gr.Info(f"Renamed to “{view.chain_title}”.")
    return view


def delete_chain(store: Store, user_id: Any, session: Any) -> EditView:
    user = identity.require_user(user_id)
    s = EditSession.from_state(session)
    if s.chain_id is None:
        raise refusal("There is no chain to delete.")
    with user_errors():
        title = store.get_chain(user, s.chain_id, details=False).chain.title
        store.delete_chain(user, s.chain_id)
    view = EditView(session=EditSession(), input_image=None, prompt="")
    view.status = f"Deleted “{render.esc(title)}”. Upload an image to start a new chain."
    return view


def new_chain(keep_input: bool = False) -> EditView:
    """Forget the current chain (nothing is deleted): the next edit starts a new chain."""
    view = EditView(session=EditSession(), input_image=KEEP if keep_input else None)
    view.status = ("New image: your next edit starts a new chain." if keep_input
                   else "Upload an image or pick an example to start a new chain.")
    return view


def check_upload(engine: Engine, upload: Any) -> EditView:
    """A new upload starts a new chain; an unusable file (not an image, too large, ...) is refused at once: the
    box is cleared and the status says what to upload instead. ``upload`` is gradio's raw file payload."""
    path, name = upload_file(upload)
    view = new_chain(keep_input=True)
    if not isinstance(path, str) or not path:
        return view
    try:
        with open(path, "rb") as f:
            engine.read_image(f.read())  # the same checks as an edit: size, pixel count, decodable
    except (ValueError, OSError) as err:
        shown = f"“{name or os.path.basename(path)}”"
        reason = str(err)
        reason = reason.replace("the uploaded data", shown, 1) if "the uploaded data" in reason else f"{shown}: {reason}"
        message = f"{reason[0].upper()}{reason[1:]}. Upload a PNG, JPEG or WebP image, or pick an example scene."
        logger.info("refused upload: %s", message)
        view.input_image = None
        view.status = refused_status(render.esc(message), "Upload refused.")
    return view


def prompt_counter(engine: Engine, text: Any) -> str:
    """The live count under the prompt: characters and tokens against the model's limits (one source: the
    pipeline's character limit and the model's token limit), in red with what to do when over."""
    n = engine.instruction_length(text)
    tokens = f" · {n.tokens:,} / {n.max_tokens:,} tokens" if n.tokens is not None else ""
    if n.chars == 0:
        return f"Press Enter to edit · up to {n.max_chars:,} characters ({n.max_tokens:,} tokens for this model)"
    count = f"{n.chars:,} / {n.max_chars:,} characters{tokens}"
    if n.chars > n.max_chars:
        return (f'<span class="over">{count}: too long by {n.chars - n.max_chars:,} characters. '
                "Shorten it before editing.</span>")
    if n.too_long:
        return (f'<span class="over">{count}: this model reads at most {n.max_tokens:,} tokens. '
                "Shorten it before editing.</span>")
    return f"Press Enter to edit · {count}"
