"""Edit tab: upload or pick an image, type a hypothetical instruction, see the edit and the reasoning behind it.

The handlers are module-level functions with explicit arguments (engine, store, user id, session state, ...)
returning an :class:`EditView`; ``build`` only wires them to components. Every edit is saved (a new chain for a
fresh image, a step of the current chain otherwise); errors become ``gr.Error`` with the message and leave no
rows behind.

Session state (a plain dict in ``gr.State``, one per browser tab):

- ``chain_id``: the chain being edited; None -> the next edit starts a new chain from the uploaded image
- ``step_id``: the step shown in the result panel (None: nothing edited yet / the source is shown)
- ``base_id``: the step whose *output* the next edit starts from; None -> the chain's source image
- ``input_rel``: the stored image the next edit reads (the source, or ``base_id``'s output)
- ``regions``: labels / scores / attention of the shown step (for clicks on the region image)
"""

from __future__ import annotations

import contextlib
import html
import json
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import gradio as gr
import numpy as np
import PIL.Image

from app import identity, render
from app.components import UploadImage
from app.engine import EditRequest, EditResult, Engine, render_attention_heatmap
from app.store import ChainTree, NotFound, StepInfo, Store
from reasonbrain.seeds import MAX_SEED

logger = logging.getLogger(__name__)

DISPLAY_SIDE = 384  # heatmap / region images are sent about this large (shown ~320 px high)
HEATMAP_HEIGHT = 340
REGIONS_HEIGHT = 440  # the image and its legend (one line per 2-3 regions)
PIXEL_ART_MAX_PX = 128  # inputs no larger than this are pixel art: upscaled with nearest neighbour on screen
DOWNLOAD_DIR = os.path.join(tempfile.gettempdir(), "reasonbrain-studio-downloads")
MAX_DOWNLOAD_FILES = 400
PROMPT_HINT = "What would happen if the ice cube were left in the sun?"
NOT_FOUND_MESSAGE = "This chain or step does not exist (any more), or it belongs to someone else."
# after an exception (a bug, or a request gradio itself refused): its notice says why
FAILED_MESSAGE = ("<strong>The edit did not run</strong> (the notice at the top right says why). Your image and "
                  "instruction are still here: try again, or press <strong>New chain</strong>.")

# The Edit tab's style (app/ui.py adds it to the page).
CSS = """
/* before/after: both images fill the slider box the same way (gradio's own rule lets them overflow it by
   different amounts, so the horizon jumps at the handle and the bottom of the scene is cut off) */
#result-slider .slider-wrap img { position: absolute; inset: 0; width: 100%; height: 100%;
  max-height: none !important; object-fit: contain; }
/* the result is what a person judges: taller on a tall screen (380 px at 720 px high, 540 px at 1080) */
#result-slider { height: clamp(380px, 100vh - 540px, 560px) !important; }
#prompt-counter { font-size: var(--text-sm); color: var(--body-text-color-subdued); margin-top: -4px; }
#prompt-counter .html-container { padding: 0 12px; }
/* the primary controls stay on one line, so that they sit above the fold at 1280x720 */
#edit-buttons button { white-space: nowrap; }
#prompt-counter .over { color: var(--error-text-color); font-weight: 600; }
/* images a person judges fill their boxes; pixel art (the synth world's 64 px scenes) upscaled crisply */
#input-image .image-frame img, #attention-heatmap .image-frame img { width: 100%; height: 100%;
  object-fit: contain; }
#input-image img[data-rb-pixel-art], #example-scenes img[data-rb-pixel-art],
#result-slider img[data-rb-pixel-art] { image-rendering: pixelated; }
#regions-table .rb-swatch { display: inline-block; width: 0.85em; height: 0.85em; border-radius: 3px;
  margin-right: 6px; vertical-align: -0.1em; }
#regions-table .rb-swatch-none { border: 1px dashed var(--border-color-primary); }
#crisp-images { display: none; }
#edit-status .refused { display: block; padding: 8px 12px; border-radius: var(--radius-md);
  border: 1px solid var(--error-border-color); background: var(--error-background-fill);
  color: var(--error-text-color); }
#edit-status .rb-ood { display: inline-block; padding: 0 8px; border-radius: 999px; border: 1px solid #d97706;
  color: #92400e; background: #fef3c7; }
"""

# Sets data-rb-pixel-art on images no larger than PIXEL_ART_MAX_PX in the input box, the example scenes, the
# timeline, History and the before/after slider (CSS there upscales them crisply; photos keep smooth scaling:
# nearest neighbour would alias them when shown smaller than they are). Each image by its own size: an edit's
# result has its input's size, so the slider's two images are drawn alike.
CRISP_JS = f"""
if (!window.__rbCrisp) {{
  window.__rbCrisp = true;
  document.addEventListener('load', (e) => {{
    const img = e.target;
    if (img instanceof HTMLImageElement
        && img.closest('#input-image, #example-scenes, #timeline, #history-list, #result-slider')) {{
      img.toggleAttribute('data-rb-pixel-art', Math.max(img.naturalWidth, img.naturalHeight) <= {PIXEL_ART_MAX_PX});
    }}
  }}, true);
}}
"""


class _Keep:
    """Leave a component as it is (becomes ``gr.skip()``)."""

    def __repr__(self) -> str:
        return "KEEP"


KEEP: Any = _Keep()


def empty_session() -> dict[str, Any]:
    return {"chain_id": None, "step_id": None, "base_id": None, "input_rel": None, "regions": {}}


def _session(value: Any) -> dict[str, Any]:
    return render.with_defaults(value, empty_session())


@dataclass
class EditView:
    """Everything the Edit tab shows, in plain values (tests read these; ``to_updates`` feeds gradio)."""

    session: dict[str, Any]
    input_image: Any = KEEP  # path of the image the next edit reads; None clears; KEEP leaves the upload
    prompt: Any = KEEP
    slider: tuple[str, str] | None = None  # (before, after) paths
    status: str = ""
    object_md: str = ""
    regions_table: list[list[Any]] = field(default_factory=list)
    region_info: str = ""
    timings: list[list[Any]] = field(default_factory=list)
    download_png: str | None = None
    download_json: str | None = None
    timeline: str = field(default_factory=lambda: render.timeline_html(None, None, render.file_url))
    chain_title: str = ""
    tree: ChainTree | None = None  # for tests; not sent to the browser
    step: StepInfo | None = None

    @property
    def has_step(self) -> bool:
        return self.session.get("step_id") is not None

    @property
    def has_chain(self) -> bool:
        return self.session.get("chain_id") is not None

    def to_updates(self) -> tuple[Any, ...]:
        """Plain values in the order of ``EditHandles.view_outputs``. Which buttons are enabled and the two
        reasoning images are separate follow-up events (``control_states``, ``reasoning_images``), so the result
        is shown as soon as it is saved: config updates cost far more than values in gradio, and the region
        masks are one PNG each."""

        def val(v: Any) -> Any:
            return gr.skip() if isinstance(v, _Keep) else v

        return (
            self.session,
            val(self.input_image),
            val(self.prompt),
            self.slider,
            self.status,
            self.object_md,
            self.regions_table,
            self.region_info,
            self.timings,
            self.download_png,
            self.download_json,
            self.timeline,
            self.chain_title,
        )

    def result_updates(self) -> tuple[Any, ...]:
        """``to_updates`` without the input image and prompt (``EditHandles.result_outputs``): an edit leaves
        both as they are, and even a ``gr.skip()`` costs a config update."""
        if not (isinstance(self.input_image, _Keep) and isinstance(self.prompt, _Keep)):
            raise ValueError("result_updates() is for views that keep the input image and the prompt")
        values = self.to_updates()
        return (values[0], *values[3:])


def control_states(session: Any, *, busy: bool = False) -> tuple[Any, ...]:
    """Interactivity of the controls (``EditHandles.controls``: edit, continue, undo, rename, delete, new,
    download PNG, download JSON) for a session; all off while an edit runs."""
    s = _session(session)
    step, chain = s["step_id"] is not None, s["chain_id"] is not None
    flags = (True, step, step, chain, chain, True, step, step)
    return tuple(gr.update(interactive=(not busy) and f) for f in flags)


# ------------------------------------------------------------------------------------------------- errors
def refusal(message: str) -> gr.Error:
    """A request refused for the user's own mistake: one log line on the server, no traceback (gradio prints
    one for every other exception, which is what a bug should get)."""
    logger.info("refused: %s", message)
    return gr.Error(message, print_exception=False)


def user_error(err: BaseException) -> gr.Error:
    if isinstance(err, NotFound):
        return refusal(NOT_FOUND_MESSAGE)
    if isinstance(err, OSError):  # a stored image vanished or the disk failed: say so, not a stack trace
        logger.error("storage error: %s", err)
        return gr.Error("A stored image could not be read or written (the server's data folder has a problem; "
                        "an administrator can check it with `python -m app.consistency`).", print_exception=False)
    return refusal(render.esc(str(err) or err.__class__.__name__))  # the modal renders HTML


@contextlib.contextmanager
def user_errors():
    """ValueError / NotFound / OSError from the engine or the store -> gr.Error with a message for the user."""
    try:
        yield
    except (ValueError, NotFound, OSError) as err:
        if isinstance(err, gr.Error):
            raise
        raise user_error(err) from err


# ------------------------------------------------------------------------------------------------- handlers
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
    s, step, result, save_s = edit_and_save(
        engine, store, user_id, session, image, instruction, steps, guidance_scale, image_guidance_scale, seed,
        randomize_seed, scheduler, progress=progress,
    )
    view = step_view(store, s["user"], s["session"], step, extra_timings={"save (app)": save_s})
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
) -> tuple[dict[str, Any], str, dict[str, Any]]:
    """The programmatic edit (``/edit_image``): same rules and saving as ``run_edit``, but returns only
    ``(session, the edited PNG's path, the step's JSON)`` instead of the whole Edit tab."""
    s, step, _result, _ = edit_and_save(
        engine, store, user_id, session, image, instruction, steps, guidance_scale, image_guidance_scale, seed,
        randomize_seed, scheduler,
    )
    session = dict(s["session"], regions={})
    return session, store.image_path(step.output_image), step_payload(step)


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
) -> tuple[dict[str, Any], StepInfo, EditResult, float]:
    """Validate, run the engine, save. Returns ``({"user", "session"}, step, result, save seconds)``."""
    user = identity.require_user(user_id)
    s = _session(session)
    if not isinstance(instruction, str) or not instruction.strip():
        raise refusal(f"Type a hypothetical instruction first, e.g. “{PROMPT_HINT}”")
    continuing = s["chain_id"] is not None
    with user_errors():
        if continuing:
            store.require_chain(user, s["chain_id"])  # NotFound -> an error before any work
            source: Any = store.load_image(s["input_rel"])
        else:
            if image is None:
                raise refusal("Upload an image (PNG, JPEG or WebP) or pick an example first.")
            source = image
        request = EditRequest(
            image=source,
            instruction=instruction,
            steps=_opt_int("steps", steps),
            guidance_scale=_opt_float("text guidance", guidance_scale),
            image_guidance_scale=_opt_float("image guidance", image_guidance_scale),
            seed=None if randomize_seed else _opt_int("seed", seed),
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
    s.update(chain_id=step.chain_id, step_id=step.id, base_id=step.parent_id, input_rel=step.input_image)
    return {"user": user, "session": s}, step, result, save_s


def save_result(store: Store, user: str, session: dict[str, Any], result: EditResult, *,
                domain_note: str | None = None) -> StepInfo:
    """Write the edit: a new chain with its first step (fresh session) or one step; one transaction either way.
    ``domain_note``: why a new chain's source is outside the model's world (see :func:`source_domain_note`)."""
    fields = {
        "instruction": result.output.instruction, "output_image": result.image, "seed": int(result.seed),
        "settings": result.settings, "preset": result.preset, "checkpoint_hash": result.checkpoint_hash,
        "timings": result.timings, "details": result.details,
    }
    if session["chain_id"] is None:
        return store.start_chain(user, result.input_image, domain_note=domain_note, **fields)
    return store.add_step(user, session["chain_id"], session["base_id"], input_image=session["input_rel"], **fields)


def continue_from_result(store: Store, user_id: Any, session: Any) -> EditView:
    """The next edit will start from the shown step's result (a child of that step: a new hop, or a branch
    when the step already has later steps)."""
    user = identity.require_user(user_id)
    s = _session(session)
    if s["step_id"] is None:
        raise refusal("There is no result to continue from yet: run an edit first.")
    with user_errors():
        tree = store.get_chain(user, s["chain_id"], details=False)
        step = tree.step(s["step_id"])
        s.update(base_id=step.id, input_rel=step.output_image)
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
    s = _session(session)
    if s["chain_id"] is None:
        raise refusal("Open or start a chain first.")
    with user_errors():
        tree = store.get_chain(user, s["chain_id"], details=False)
        if step_id == render.SOURCE_NODE:
            return source_view(store, tree)
        step = tree.step(str(step_id))
        s.update(step_id=step.id, base_id=step.parent_id, input_rel=step.input_image)
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
        s = empty_session()
        s.update(chain_id=tree.chain.id, step_id=step.id, base_id=step.id, input_rel=step.output_image)
        view = step_view(store, user, s, step, tree=tree)
    view.input_image = store.image_path(step.output_image)
    view.prompt = ""
    view.status = (f"Reopened **{render.esc(tree.chain.title)}** at step {step.position}: the next instruction "
                   "continues from this result. Pick any step in the timeline to branch from it.  \n" + view.status)
    return view


def undo(store: Store, user_id: Any, session: Any) -> EditView:
    """Delete the shown step (it must be the last of its branch) and show its parent."""
    user = identity.require_user(user_id)
    s = _session(session)
    if s["step_id"] is None:
        raise refusal("Nothing to undo: no step is selected.")
    with user_errors():
        parent = store.undo_step(user, s["step_id"])
        tree = store.get_chain(user, s["chain_id"], details=False)
        if parent is None:
            view = source_view(store, tree)
        else:
            s.update(step_id=parent.id, base_id=parent.id, input_rel=parent.output_image)
            view = step_view(store, user, s, parent, tree=tree)
            view.input_image = store.image_path(parent.output_image)
    view.prompt = ""
    view.status = "Undone. " + view.status
    return view


def rename_chain(store: Store, user_id: Any, session: Any, title: Any) -> EditView:
    user = identity.require_user(user_id)
    s = _session(session)
    if s["chain_id"] is None:
        raise refusal("There is no chain to rename yet.")
    with user_errors():
        store.rename_chain(user, s["chain_id"], title if isinstance(title, str) else "")
        view = current_view(store, user, s)
    gr.Info(f"Renamed to “{view.chain_title}”.")
    return view


def delete_chain(store: Store, user_id: Any, session: Any) -> EditView:
    user = identity.require_user(user_id)
    s = _session(session)
    if s["chain_id"] is None:
        raise refusal("There is no chain to delete.")
    with user_errors():
        title = store.get_chain(user, s["chain_id"], details=False).chain.title
        store.delete_chain(user, s["chain_id"])
    view = EditView(session=empty_session(), input_image=None, prompt="")
    view.status = f"Deleted “{render.esc(title)}”. Upload an image to start a new chain."
    return view


def new_chain(keep_input: bool = False) -> EditView:
    """Forget the current chain (nothing is deleted): the next edit starts a new chain."""
    view = EditView(session=empty_session(), input_image=KEEP if keep_input else None)
    view.status = ("New image: your next edit starts a new chain." if keep_input
                   else "Upload an image or pick an example to start a new chain.")
    return view


def current_view(store: Store, user: str, session: dict[str, Any]) -> EditView:
    """Re-render the session's current position (after a rename, ...)."""
    tree = store.get_chain(user, session["chain_id"], details=False)
    if session["step_id"] is None:
        view = source_view(store, tree)
    else:
        view = step_view(store, user, session, tree.step(session["step_id"]), tree=tree)
    view.input_image = KEEP
    return view


def region_info(session: Any, index: Any) -> str:
    regions = _session(session)["regions"] or {}
    try:
        i = int(index if not isinstance(index, (list, tuple)) else index[0])
    except (TypeError, ValueError):
        i = -1
    return render.region_info(regions, i)


def refused_status(message: str, headline: str = "Not edited.") -> str:
    """The status line after a refusal: what was refused and what to change (``message`` is safe HTML)."""
    return f'<span class="refused">⚠ <strong>{headline}</strong> {message}</span>'


def check_upload(engine: Engine, upload: Any) -> EditView:
    """A new upload starts a new chain; an unusable file (not an image, too large, ...) is refused at once: the
    box is cleared and the status says what to upload instead. ``upload`` is gradio's raw file payload."""
    path = upload.get("path") if isinstance(upload, dict) else getattr(upload, "path", upload)
    name = upload.get("orig_name") if isinstance(upload, dict) else getattr(upload, "orig_name", None)
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


def pick_instruction(sample: Any) -> str:
    """A clicked example instruction (a Dataset row ``[instruction]``, HTML-escaped for display) -> the prompt."""
    if isinstance(sample, (list, tuple)) and sample:
        sample = sample[-1]
    return html.unescape(str(sample or ""))


# ------------------------------------------------------------------------------------- the model's world
DOMAIN_CSS = """
.rb-domain { border: 1px solid #d97706; border-left-width: 5px; border-radius: var(--radius-md);
  background: color-mix(in srgb, #f59e0b 14%, var(--block-background-fill)); color: var(--body-text-color);
  padding: 8px 12px; font-size: var(--text-sm); line-height: 1.4; }
.rb-domain p { margin: 4px 0 0; }
.rb-domain details { margin-top: 2px; }
.rb-domain summary { cursor: pointer; color: var(--body-text-color-subdued); }
"""
OUT_OF_DOMAIN = "out of domain"


def source_domain_note(engine: Engine, result: EditResult) -> str | None:
    """For a new chain: why its source is outside a synth-only model's world (None when it is inside, or the
    model is not synth-only). The check also goes into the first step's details (``domain``)."""
    check = engine.domain_check(result.input_image)
    if check is None:
        return None
    result.details["domain"] = check.to_dict()
    return None if check.in_domain else check.reason


def domain_label(tree: ChainTree) -> str:
    """The mark at the start of a result's status line when the chain's source is outside the model's world."""
    if not tree.chain.out_of_domain:
        return ""
    return (f'<span class="rb-ood" title="{render.esc(tree.chain.domain_note)}">⚠ <strong>{OUT_OF_DOMAIN}</strong>'
            "</span> — the source image is not a scene of the model's synthetic world; expect a blur.  \n")


def domain_warning_html(engine: Engine, reason: str, *, chain: bool = False) -> str:
    """The warning under the input image (compact: the prompt and Edit stay in view): what the model knows,
    that the example scenes show it at work, that Edit still runs; the full list and the reason fold out."""
    from reasonbrain.synthworld.domain import world_summary

    head = "This chain's source image is outside what the model knows." if chain else \
        "This image is outside what the model knows."
    return (
        f'<div class="rb-domain" role="alert"><strong>⚠ {head}</strong> '
        f"The loaded model (<code>{render.esc(engine.preset_name)}</code>) knows only the synthetic world: "
        f"{render.esc(world_summary(short=True))}. A photo comes back as a coloured blur. "
        "<strong>Pick an example scene</strong> to see what it can do, or press <strong>Edit</strong> anyway: "
        f"the result is labelled <em>{OUT_OF_DOMAIN}</em>."
        "<details><summary>Everything it knows · why this warning</summary>"
        f"<p>{render.esc(world_summary()[:1].upper() + world_summary()[1:])}.</p>"
        f"<p>Why: {render.esc(reason)}.</p></details></div>"
    )


def domain_notice(engine: Engine, store: Store, user_id: Any, session: Any, image: Any, shown: Any = None) -> Any:
    """The warning's update for what the Edit tab shows: an open chain -> its stored verdict; otherwise the input
    image is checked (a synth-only model and an image outside its world -> the warning). ``gr.skip()`` when
    ``shown`` (the warning's current HTML) is already right."""
    s = _session(session)
    html = ""
    if s["chain_id"] is not None and isinstance(user_id, str) and user_id:
        try:
            chain = store.get_chain(user_id, s["chain_id"], details=False).chain
        except NotFound:
            chain = None
        if chain is not None and chain.out_of_domain:
            html = domain_warning_html(engine, chain.domain_note or "", chain=True)
    elif image is not None:
        try:
            check = engine.domain_check(image)
        except ValueError as err:  # an unreadable upload: the upload's own check says so
            logger.debug("no domain check: %s", err)
            check = None
        if check is not None and not check.in_domain:
            logger.info("out-of-domain upload for %s: %s", engine.preset_name, check.reason)
            html = domain_warning_html(engine, check.reason)
    if html == (shown or ""):
        return gr.skip()
    return gr.update(value=html, visible=bool(html))


# --------------------------------------------------------------------------------------------------- views
def source_view(store: Store, tree: ChainTree) -> EditView:
    s = empty_session()
    s.update(chain_id=tree.chain.id, input_rel=tree.chain.source_image)
    view = EditView(session=s, input_image=store.image_path(tree.chain.source_image), prompt=KEEP, tree=tree)
    view.timeline = render.timeline_html(tree, render.SOURCE_NODE, _url_for(store), base_id=render.SOURCE_NODE)
    view.chain_title = tree.chain.title
    view.status = (f"**{render.esc(tree.chain.title)}** · the source image: the next instruction edits it "
                   "(a new first step).")
    view.status = domain_label(tree) + view.status
    return view


def step_view(
    store: Store,
    user: str,
    session: dict[str, Any],
    step: StepInfo,
    *,
    tree: ChainTree | None = None,
    extra_timings: dict[str, float] | None = None,
) -> EditView:
    """The result panel, reasoning panel (text parts) and timeline for one stored step; the heatmap and region
    images come from :func:`reasoning_images`."""
    tree = tree or store.get_chain(user, step.chain_id, details=False)
    if step.details is None:  # the timeline was loaded without details: fetch the shown step's
        step = store.get_step(user, step.id)
    details = step.details or {}
    before, after = store.image_path(step.input_image), store.image_path(step.output_image)
    for path in (before, after):
        if not os.path.isfile(path):
            raise FileNotFoundError(f"stored image missing: {path}")
    details = named_regions(store, step, details)
    session = dict(session)
    session["regions"] = {k: details.get(k) for k in REGION_KEYS}
    base_id = session.get("base_id")
    view = EditView(
        session=session,
        slider=(before, after),
        status=step_status(tree, step),
        object_md=render.object_markdown(details, step=step),
        regions_table=render.region_rows(details),
        region_info=render.regions_summary(details),
        timings=render.timings_rows(step.timings, extra_timings),
        download_png=_download_png(store, step),
        download_json=_download_json(step),
        timeline=render.timeline_html(tree, step.id, _url_for(store),
                                      base_id=render.SOURCE_NODE if base_id is None else base_id),
        chain_title=tree.chain.title,
        tree=tree,
        step=step,
    )
    view.status = domain_label(tree) + view.status
    return view


def step_status(tree: ChainTree, step: StepInfo) -> str:
    """The line under the result: the instruction of the step on screen first, then where it sits and how it
    was made."""
    total = (step.timings or {}).get("total")
    total_txt = f" · {float(total):.2f} s" if total is not None else ""
    siblings = tree.children(step.parent_id)
    alternative = " (an alternative)" if siblings and siblings[0].id != step.id else ""
    n = len(tree.steps)
    chain = f"Chain of {n} step{'s' if n != 1 else ''}"
    if not step.instruction.startswith(tree.chain.title.rstrip("…").strip()):  # not the default title
        chain = f"Chain “{render.esc(render.shorten(tree.chain.title, 80))}” ({n} step{'s' if n != 1 else ''})"
    return (f"**Showing step {step.position}{alternative}:** “{render.esc(step.instruction)}”  \n"
            f"{chain} · seed `{step.seed}`{total_txt}"
            f" · {render.esc(step.preset)} `{render.esc(step.checkpoint_hash)}`")


REGION_KEYS = ("region_labels", "region_scores", "region_attention", "bound_region", "region_names",
               "region_backend")


def named_regions(store: Store, step: StepInfo, details: dict[str, Any]) -> dict[str, Any]:
    """``details`` plus ``region_names``: each region named from the step's input image (colour, position, the
    bound object; see :func:`reasonbrain.region_names.region_names`). Unchanged when there are no regions."""
    regions = _regions_from_details(details)
    if regions is None:
        return details
    from reasonbrain.region_names import bound_object_name, region_names

    try:
        base = store.load_image(step.input_image)
    except (OSError, ValueError) as err:  # the image check above passed: a decoding problem, named once
        logger.warning("regions of step %s left unnamed: %s", step.id, err)
        return details
    names = region_names(base, regions, bound=details.get("bound_region"),
                         bound_object=bound_object_name(details.get("referenced_object")))
    return {**details, "region_names": names}


def reasoning_images(store: Store, user_id: Any, session: Any) -> tuple[Any, Any]:
    """``(heatmap, regions image)`` of the session's shown step, rendered from its stored details at display
    size (small pixel-art inputs upscaled crisply): the ID Controller's attention over the regions, and the
    regions as a ``gr.AnnotatedImage`` update whose legend names and colours match the overlay and the table.
    ``(None, None)`` when no step is shown (or the user has no session yet)."""
    s = _session(session)
    if s["step_id"] is None or not isinstance(user_id, str) or not user_id:
        return None, None
    with user_errors():
        step = store.get_step(user_id, s["step_id"])
        base = store.load_image(step.input_image)
    details = step.details or {}
    shown = s["regions"] or {}
    if shown.get("region_names") and shown.get("region_labels") == details.get("region_labels"):
        details = {**details, "region_names": shown["region_names"]}  # named by step_view already
    else:
        details = named_regions(store, step, details)
    regions = _regions_from_details(details)
    heatmap = render_attention_heatmap(  # over the crisp display image: blocks stay blocks, the outline is thin
        display_image(base), regions, details.get("region_attention"),
        patch_attention=details.get("patch_attention"), bound=details.get("bound_region"),
    )
    value = annotated_regions(base, regions, details)
    labels = [label for _, label in value[1]]
    return heatmap, gr.update(
        value=value, color_map={label: render.region_colour(i) for i, label in enumerate(labels)},
        label=render.regions_label(details),
    )


def annotated_regions(base: PIL.Image.Image, regions: Any, details: dict[str, Any] | None = None
                      ) -> tuple[Any, list[tuple[np.ndarray, str]]] | None:
    """``gr.AnnotatedImage`` value: the input (display size) and one mask per object region, labelled as in
    the table (``render.region_name``; the background is left out)."""
    if base is None:
        return None
    display = display_image(base.convert("RGB"))
    if regions is None or len(regions) <= 1:
        return display, []
    details = details or {"region_labels": list(regions.labels)}
    resized = regions.resized(display.size)
    masks = resized.masks.detach().cpu().numpy()
    return display, [(masks[i].astype(np.float32), render.region_name(details, i))
                     for i in range(resized.num_objects)]


def _regions_from_details(details: dict[str, Any]) -> Any:
    data = details.get("regions")
    if not isinstance(data, dict):
        return None
    from reasonbrain.regions import Regions

    try:
        return Regions.from_dict(data)
    except (ValueError, KeyError, TypeError) as err:
        logger.warning("stored regions could not be decoded: %s", err)
        return None


def display_image(image: PIL.Image.Image, side: int = DISPLAY_SIDE) -> PIL.Image.Image:
    """``image`` sized for its box: a larger one shrunk (Lanczos) to ``side``; a small one (the synth world's
    64 px pixel art) enlarged by a whole factor with nearest neighbour, so it stays crisp at any zoom."""
    longest = max(image.size)
    if longest > side:
        scale = side / longest
        size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
        return image.resize(size, PIL.Image.Resampling.LANCZOS)
    factor = side // longest
    if factor < 2:
        return image
    return image.resize((image.width * factor, image.height * factor), PIL.Image.Resampling.NEAREST)


def _url_for(store: Store) -> Callable[[str], str]:
    return render.image_url_for(store)


# ------------------------------------------------------------------------------------------------- downloads
def _download_name(step: StepInfo, ext: str) -> str:
    return f"reasonbrain-{step.chain_id[:8]}-step{step.position}-{step.id[:8]}.{ext}"


def _download_png(store: Store, step: StepInfo) -> str:
    """The stored PNG under a readable name (hard link when possible, else a copy) in the temp folder."""
    os.makedirs(DOWNLOAD_DIR, exist_ok=True)
    path = os.path.join(DOWNLOAD_DIR, _download_name(step, "png"))
    if not os.path.isfile(path):
        src = store.image_path(step.output_image)
        try:
            os.link(src, path)
        except OSError:
            shutil.copyfile(src, path)
        _prune_downloads()
    return path


def step_payload(step: StepInfo) -> dict[str, Any]:
    """What "Download JSON" and the API return: the step's ids and the engine's details (no pixels)."""
    return {
        "step_id": step.id, "chain_id": step.chain_id, "parent_id": step.parent_id, "position": step.position,
        "created_at": render.fmt_time(step.created_at), **(step.details or {}),
    }


def _download_json(step: StepInfo) -> str:
    os.makedirs(DOWNLOAD_DIR, exist_ok=True)
    path = os.path.join(DOWNLOAD_DIR, _download_name(step, "json"))
    if not os.path.isfile(path):
        payload = step_payload(step)
        fd, tmp = tempfile.mkstemp(dir=DOWNLOAD_DIR, suffix=".json.tmp")
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(json.dumps(payload))  # dumps, not dump(indent=...): the C encoder, ~10x faster on masks
        os.replace(tmp, path)
    return path


def _prune_downloads() -> None:
    try:
        entries = [e for e in os.scandir(DOWNLOAD_DIR) if e.is_file()]
    except FileNotFoundError:
        return
    if len(entries) <= MAX_DOWNLOAD_FILES:
        return
    entries.sort(key=lambda e: e.stat().st_mtime)
    keep = MAX_DOWNLOAD_FILES * 3 // 4  # prune well below the cap, so the next edits do not sort again
    for e in entries[: len(entries) - keep]:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(e.path)


# --------------------------------------------------------------------------------------------- input parsing
def _opt_int(name: str, value: Any) -> int | None:
    if value is None or value == "":
        return None
    if isinstance(value, float):
        if not value.is_integer():
            raise ValueError(f"{name} must be a whole number, got {value}")
        return int(value)
    try:
        return int(value)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{name} must be a whole number, got {value!r}") from err


def _opt_float(name: str, value: Any) -> float | None:
    if value is None or value == "":
        return None
    try:
        return float(value)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{name} must be a number, got {value!r}") from err


# ------------------------------------------------------------------------------------------------------ build
@dataclass
class EditHandles:
    session: gr.State
    input_image: gr.Image
    prompt: gr.Textbox
    edit_btn: gr.Button
    continue_btn: gr.Button
    undo_btn: gr.Button
    new_btn: gr.Button
    rename_btn: gr.Button
    delete_btn: gr.Button
    confirm_row: gr.Row
    confirm_delete_btn: gr.Button
    cancel_delete_btn: gr.Button
    slider: gr.ImageSlider
    status: gr.Markdown
    object_md: gr.Markdown
    heatmap: gr.Image
    regions_table: gr.Dataframe
    regions_image: gr.AnnotatedImage
    region_info: gr.Markdown
    timings: gr.Dataframe
    download_png: gr.DownloadButton
    download_json: gr.DownloadButton
    timeline: gr.HTML
    chain_title: gr.Textbox
    steps: gr.Slider
    guidance: gr.Slider
    image_guidance: gr.Slider
    seed: gr.Number
    randomize: gr.Checkbox
    scheduler: gr.Dropdown
    instruction_examples: list[gr.Dataset]
    api_trigger: gr.Button  # hidden: the lean programmatic endpoint /edit_image
    api_image: gr.Image
    api_details: gr.JSON
    prompt_counter: gr.HTML
    examples: gr.Examples | None = None
    domain_warning: gr.HTML | None = None  # shown when the input is outside a synth-only model's world
    engine: Engine | None = None  # for the follow-ups that ask the model (the domain warning)

    @property
    def controls(self) -> list[Any]:
        return [self.edit_btn, self.continue_btn, self.undo_btn, self.rename_btn, self.delete_btn, self.new_btn,
                self.download_png, self.download_json]

    @property
    def view_outputs(self) -> list[Any]:
        return [
            self.session, self.input_image, self.prompt, self.slider, self.status, self.object_md,
            self.regions_table, self.region_info, self.timings, self.download_png, self.download_json,
            self.timeline, self.chain_title,
        ]

    @property
    def result_outputs(self) -> list[Any]:
        """``view_outputs`` less the input image and the prompt (what an edit returns)."""
        return [o for o in self.view_outputs if o is not self.input_image and o is not self.prompt]

    @property
    def reasoning_outputs(self) -> list[Any]:
        return [self.heatmap, self.regions_image]


def example_files(engine: Engine) -> list[list[str]]:
    """The engine's example scenes written once to a temp folder (not the store: they are not user data)."""
    folder = tempfile.mkdtemp(prefix="reasonbrain-examples-")
    rows = []
    for i, (image, instruction) in enumerate(engine.example_images()):
        path = os.path.join(folder, f"example-{i}.png")
        image.save(path)
        rows.append([path, instruction])
    return rows


def build(engine: Engine, store: Store, user_state: gr.State) -> EditHandles:
    """The Edit tab's components and events (call inside a ``gr.Tab``)."""
    defaults = engine.defaults()
    categories = engine.example_instructions()
    session = gr.State(empty_session())
    examples = None
    category_sets: list[gr.Dataset] = []
    with gr.Row(equal_height=False):
        with gr.Column(scale=5, min_width=320):
            input_image = UploadImage(
                label="Input image", type="filepath", image_mode=None, sources=["upload", "clipboard"],
                height=304, elem_id="input-image",  # the image 264 px, the buttons above the fold at 720 px
            )
            domain_warning = gr.HTML("", visible=False, elem_id="domain-warning", css_template=DOMAIN_CSS,
                                     js_on_load=None)
            # no max_length: the browser would cut a long paste silently; the counter and the edit say it instead
            prompt = gr.Textbox(
                label="Hypothetical instruction", placeholder=PROMPT_HINT, lines=1, max_lines=1, elem_id="prompt",
            )
            prompt_count = gr.HTML(prompt_counter(engine, ""), elem_id="prompt-counter", padding=False)
            with gr.Row(elem_id="edit-buttons"):  # one line at 1280 px wide (min widths: the labels' widths)
                edit_btn = gr.Button("Edit", variant="primary", elem_id="edit-btn", scale=2, min_width=120)
                continue_btn = gr.Button("Continue from this result", elem_id="continue-btn", interactive=False,
                                         scale=2, min_width=230)
                new_btn = gr.Button("New chain", elem_id="new-btn", scale=1, min_width=120)
            with gr.Accordion("Example instructions by reasoning category", open=True,
                              elem_id="instruction-examples"):
                with gr.Tabs():
                    for cat, texts in categories.items():
                        with gr.Tab(cat.title(), elem_id=f"examples-{cat}"):
                            # HTML samples: shown whole (a Textbox sample is cut at 60 characters)
                            category_sets.append(gr.Dataset(
                                components=[gr.HTML(visible=False)], samples=[[render.esc(t)] for t in texts],
                                layout="table", show_label=False, samples_per_page=8,
                                elem_id=f"instructions-{cat}",
                            ))
            if engine.settings.examples:
                examples = gr.Examples(
                    examples=example_files(engine), inputs=[input_image, prompt], cache_examples=False,
                    label="Example scenes (click one: image and instruction)", examples_per_page=6,
                    api_visibility="private", elem_id="example-scenes", visible_columns=[0],
                )
            with gr.Accordion("Advanced settings", open=False, elem_id="advanced"):
                steps = gr.Slider(1, max(100, defaults["steps"]), value=defaults["steps"], step=1,
                                  label="Denoising steps", elem_id="steps")
                guidance = gr.Slider(0.0, 20.0, value=defaults["guidance_scale"], step=0.1,
                                     label="Text guidance", elem_id="guidance")
                image_guidance = gr.Slider(0.0, 10.0, value=defaults["image_guidance_scale"], step=0.1,
                                           label="Image guidance", elem_id="image-guidance")
                with gr.Row():
                    seed = gr.Number(value=0, precision=0, minimum=0, maximum=MAX_SEED, label="Seed",
                                     elem_id="seed")
                    randomize = gr.Checkbox(value=True, label="Randomise seed", elem_id="randomize")
                scheduler = gr.Dropdown(engine.scheduler_names(), value=defaults["scheduler"], label="Scheduler",
                                        elem_id="scheduler")
        with gr.Column(scale=6, min_width=360):
            slider = gr.ImageSlider(label="Before / after (drag the handle)", type="filepath", interactive=False,
                                    height=380, elem_id="result-slider")
            status = gr.Markdown("Upload an image or pick an example, then describe a hypothetical change.",
                                 elem_id="edit-status")
            with gr.Row():
                download_png = gr.DownloadButton("Download PNG", interactive=False, size="sm",
                                                 elem_id="download-png")
                download_json = gr.DownloadButton("Download JSON", interactive=False, size="sm",
                                                  elem_id="download-json")
            with gr.Group(elem_id="chain-panel"):
                gr.Markdown("**Chain** — click a step to show it; *Continue* then branches from that step.",
                            padding=True)
                timeline = gr.HTML(render.timeline_html(None, None, render.file_url),
                                   css_template=render.TIMELINE_CSS, js_on_load=render.SELECT_JS,
                                   elem_id="timeline", padding=True)
                with gr.Row(equal_height=True):  # Rename as tall as the title's box (no gap under it)
                    chain_title = gr.Textbox(label="Chain title", max_length=200, scale=3, elem_id="chain-title")
                    rename_btn = gr.Button("Rename", interactive=False, scale=1, elem_id="rename-btn")
                with gr.Row():
                    undo_btn = gr.Button("Undo step", interactive=False, elem_id="undo-btn")
                    delete_btn = gr.Button("Delete chain", variant="stop", interactive=False, elem_id="delete-btn")
                with gr.Row(visible=False, elem_id="confirm-row") as confirm_row:
                    gr.Markdown("**Delete this chain and all its steps?** This cannot be undone.", padding=True)
                    confirm_delete_btn = gr.Button("Yes, delete", variant="stop", elem_id="confirm-delete")
                    cancel_delete_btn = gr.Button("Cancel", elem_id="cancel-delete")
    with gr.Group(elem_id="reasoning-panel"):
        gr.Markdown("### Reasoning — what the model bound, attended to and did", padding=True)
        with gr.Row(equal_height=False):
            with gr.Column(scale=4, min_width=280):
                object_md = gr.Markdown("—", elem_id="object-info", padding=True)
                timings = gr.Dataframe(headers=["Stage", "Time"], value=[], label="Stage timings",
                                       interactive=False, elem_id="timings", wrap=True, max_height=330)
            with gr.Column(scale=3, min_width=280):
                # PNG: the upscaled pixel art stays crisp (JPEG rings around its hard edges)
                heatmap = gr.Image(label="ID Controller attention", interactive=False,
                                   height=HEATMAP_HEIGHT, elem_id="attention-heatmap", format="png")
                regions_table = gr.Dataframe(headers=["#", "Region", "Score", "Attention"], value=[],
                                             datatype=["html", "str", "str", "str"],
                                             column_widths=["13%", "43%", "18%", "26%"],
                                             label="Regions by attention (★ bound region)", interactive=False,
                                             elem_id="regions-table", max_height=330, wrap=True)
            with gr.Column(scale=3, min_width=280):
                regions_image = gr.AnnotatedImage(label="Regions", height=REGIONS_HEIGHT,
                                                  elem_id="regions-image", format="png")
                region_info_md = gr.Markdown("", elem_id="region-info", padding=True)
    # marks small images in the input box and the example scenes as pixel art (CSS: crisp upscaling)
    gr.HTML("", js_on_load=CRISP_JS, elem_id="crisp-images", padding=False, container=False)

    with gr.Row(visible=False):  # the lean API endpoint's outputs (not shown)
        api_trigger = gr.Button("edit_image", elem_id="api-edit")
        api_image = gr.Image(type="filepath", format="png", label="Edited image")
        api_details = gr.JSON(label="Step details")
    h = EditHandles(
        session=session, input_image=input_image, prompt=prompt, edit_btn=edit_btn, continue_btn=continue_btn,
        undo_btn=undo_btn, new_btn=new_btn, rename_btn=rename_btn, delete_btn=delete_btn, confirm_row=confirm_row,
        confirm_delete_btn=confirm_delete_btn, cancel_delete_btn=cancel_delete_btn, slider=slider, status=status,
        object_md=object_md, heatmap=heatmap, regions_table=regions_table, regions_image=regions_image,
        region_info=region_info_md, timings=timings, download_png=download_png, download_json=download_json,
        timeline=timeline, chain_title=chain_title, steps=steps, guidance=guidance, image_guidance=image_guidance,
        seed=seed, randomize=randomize, scheduler=scheduler, instruction_examples=category_sets,
        api_trigger=api_trigger, api_image=api_image, api_details=api_details, prompt_counter=prompt_count,
    )
    h.examples = examples
    h.domain_warning = domain_warning
    h.engine = engine
    _wire(engine, store, user_state, h)
    return h


def follow_up(store: Store, user_state: gr.State, h: EditHandles, event: Any) -> Any:
    """After an event that shows a view: the controls' states (instant) and the reasoning images, both unqueued
    so that the result is on screen first. Returns the controls' event."""

    def _controls(session: Any) -> tuple[Any, ...]:
        return control_states(session)

    def _images(user_id: Any, session: Any) -> tuple[Any, Any]:
        return reasoning_images(store, user_id, session)

    event.then(_images, [user_state, h.session], h.reasoning_outputs, queue=False, api_visibility="private",
               show_progress="hidden")
    if h.domain_warning is not None and h.engine is not None:
        engine = h.engine

        def _domain(user_id: Any, session: Any, image: Any, shown: Any) -> Any:
            return domain_notice(engine, store, user_id, session, image, shown)

        event.then(_domain, [user_state, h.session, h.input_image, h.domain_warning], h.domain_warning,
                   queue=False, api_visibility="private", show_progress="hidden")
    return event.then(_controls, h.session, h.controls, queue=False, api_visibility="private")


def _wire(engine: Engine, store: Store, user_state: gr.State, h: EditHandles) -> None:
    outputs = h.view_outputs

    def on(trigger: Any, fn: Any, inputs: Any, **kwargs: Any) -> Any:
        """``trigger`` -> fn (the view) -> the controls' states and the reasoning images (unqueued)."""
        return follow_up(store, user_state, h, trigger(fn, inputs, outputs, **kwargs))

    def _edit(user_id: Any, session: Any, image: Any, prompt: Any, steps: Any, guidance: Any, image_guidance: Any,
              seed: Any, randomize: Any, scheduler: Any,
              progress=gr.Progress()) -> tuple[Any, ...]:  # noqa: B008 (gradio injects the tracker)
        """Edit the image as the hypothetical instruction implies; saves the step and returns the result."""
        return run_edit(engine, store, user_id, session, image, prompt, steps, guidance, image_guidance, seed,
                        bool(randomize), scheduler, progress=progress).result_updates()

    def _edit_in_browser(user_id: Any, session: Any, image: Any, prompt: Any, steps: Any, guidance: Any,
                         image_guidance: Any, seed: Any, randomize: Any, scheduler: Any,
                         progress=gr.Progress()) -> tuple[Any, ...]:  # noqa: B008 (gradio injects the tracker)
        """``_edit`` for the Edit button and Enter: a refusal is shown in the status line (the result stays) and
        the follow-up re-enables the controls, as after an edit."""
        try:
            return _edit(user_id, session, image, prompt, steps, guidance, image_guidance, seed, randomize,
                         scheduler, progress=progress)
        except gr.Error as err:
            if err.print_exception:  # not a refusal: gradio logs the traceback, .failure restores the controls
                raise
            gr.Warning(err.message, title="Not edited", duration=6)
            return tuple(refused_status(err.message) if o is h.status else gr.skip() for o in h.result_outputs)

    def _after_failure(session: Any) -> tuple[Any, ...]:
        return (*control_states(session), f'<span class="refused">⚠ {FAILED_MESSAGE}</span>')

    edit_inputs = [user_state, h.session, h.input_image, h.prompt, h.steps, h.guidance, h.image_guidance, h.seed,
                   h.randomize, h.scheduler]
    for trigger in (h.edit_btn.click, h.prompt.submit):
        locked = trigger(lambda: control_states(None, busy=True), None, h.controls, queue=False,
                         api_visibility="private")
        edited = locked.then(_edit_in_browser, edit_inputs, h.result_outputs, api_visibility="private",
                             concurrency_id="edit", show_progress_on=[h.slider])
        follow_up(store, user_state, h, edited)
        # gradio's frontend runs no .then after an exception: without this the buttons would stay disabled
        edited.failure(_after_failure, h.session, [*h.controls, h.status], queue=False, api_visibility="private")
    # the public /edit (gradio_client): the same edit, where a refusal is an error for the caller
    h.api_trigger.click(_edit, edit_inputs, h.result_outputs, api_name="edit", concurrency_id="edit")

    def _api_edit(user_id: Any, session: Any, image: Any, prompt: Any, steps: Any, guidance: Any,
                  image_guidance: Any, seed: Any, randomize: Any, scheduler: Any) -> tuple[Any, ...]:
        """Edit an image programmatically: returns the edited PNG and the step's JSON (saved like UI edits)."""
        return api_edit(engine, store, user_id, session, image, prompt, steps, guidance, image_guidance, seed,
                        bool(randomize), scheduler)

    h.api_trigger.click(_api_edit, edit_inputs, [h.session, h.api_image, h.api_details], api_name="edit_image",
                        concurrency_id="edit")

    def _continue(user_id: Any, session: Any) -> tuple[Any, ...]:
        return continue_from_result(store, user_id, session).to_updates()

    on(h.continue_btn.click, _continue, [user_state, h.session], api_name="continue_chain")

    def _select(user_id: Any, session: Any, evt: gr.SelectData) -> tuple[Any, ...]:
        return select_step(store, user_id, session, evt.value).to_updates()

    on(h.timeline.select, _select, [user_state, h.session], api_visibility="private", concurrency_limit=None)

    def _undo(user_id: Any, session: Any) -> tuple[Any, ...]:
        return undo(store, user_id, session).to_updates()

    on(h.undo_btn.click, _undo, [user_state, h.session], api_name="undo")

    def _rename(user_id: Any, session: Any, title: Any) -> tuple[Any, ...]:
        return rename_chain(store, user_id, session, title).to_updates()

    on(h.rename_btn.click, _rename, [user_state, h.session, h.chain_title], api_name="rename_chain")
    on(h.chain_title.submit, _rename, [user_state, h.session, h.chain_title], api_visibility="private")

    h.delete_btn.click(lambda: gr.update(visible=True), None, h.confirm_row, queue=False, api_visibility="private")
    h.cancel_delete_btn.click(lambda: gr.update(visible=False), None, h.confirm_row, queue=False,
                              api_visibility="private")

    def _delete(user_id: Any, session: Any) -> tuple[Any, ...]:
        return delete_chain(store, user_id, session).to_updates()

    on(h.confirm_delete_btn.click, _delete, [user_state, h.session], api_name="delete_chain").then(
        lambda: gr.update(visible=False), None, h.confirm_row, queue=False, api_visibility="private")

    on(h.new_btn.click, lambda: new_chain().to_updates(), None, queue=False, api_visibility="private")
    def _upload(upload: Any) -> tuple[Any, ...]:
        return check_upload(engine, upload).to_updates()

    # a new upload (or clearing the image) starts a new chain; the upload is checked at once, raw (preprocessing
    # would fail on a file that is not an image before the check could say so)
    on(h.input_image.upload, _upload, h.input_image, queue=False, preprocess=False, api_visibility="private")
    on(h.input_image.clear, lambda: new_chain().to_updates(), None, queue=False, api_visibility="private")
    if h.examples is not None:  # picking an example starts a new chain (the example fills image and prompt)
        on(h.examples.dataset.click, lambda: new_chain(keep_input=True).to_updates(), None, queue=False,
           api_visibility="private")

    def _region(session: Any, evt: gr.SelectData) -> str:
        return region_info(session, evt.index)

    h.regions_image.select(_region, h.session, h.region_info, queue=False, api_visibility="private")
    for dataset in h.instruction_examples:
        dataset.click(pick_instruction, dataset, h.prompt, queue=False, api_visibility="private")
    h.prompt.change(lambda text: prompt_counter(engine, text), h.prompt, h.prompt_counter, queue=False,
                    show_progress="hidden", trigger_mode="always_last", api_visibility="private")
