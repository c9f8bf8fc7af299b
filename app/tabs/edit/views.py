"""What the Edit tab shows for a session: :class:`EditView` (plain values) and the views of a source or a step.

The reasoning images (the ID Controller's attention heatmap, or a reason-then-edit's mask, and the regions image) are
rendered here too, for the follow-up event that sends them after the result (see
:func:`app.tabs.edit.layout.follow_up`).
"""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Callable
from typing import Any

import gradio as gr
import numpy as np
import PIL.Image

from app import render
from app.engine import render_attention_heatmap
from app.errors import user_errors
from app.store import ChainTree, StepInfo, Store
from app.tabs.edit.domain import domain_label
from app.tabs.edit.downloads import download_json, download_png
from app.tabs.edit.state import EditSession

logger = logging.getLogger(__name__)

DISPLAY_SIDE = 384  # heatmap / region images are sent about this large (shown ~320 px high)
HEATMAP_LABEL = "ID Controller attention"
MASK_LABEL = "Edit mask (dimmed: unchanged)"  # the object outlined; the editor changed pixels only where bright
MASK_DIM = 0.35  # brightness kept outside a reason-then-edit's edited area
MASK_OUTLINE = (0, 255, 255)
REGION_KEYS = ("region_labels", "region_scores", "region_attention", "bound_region", "region_names",
               "region_backend", "mode")  # what the session keeps of the shown step's regions (and its mode)


class _Keep:
    """Leave a component as it is (becomes ``gr.skip()``)."""

    def __repr__(self) -> str:
        return "KEEP"


KEEP: Any = _Keep()


@dataclasses.dataclass
class EditView:
    """Everything the Edit tab shows, in plain values (tests read these; ``to_updates`` feeds gradio)."""

    session: EditSession
    input_image: Any = KEEP  # path of the image the next edit reads; None clears; KEEP leaves the upload
    prompt: Any = KEEP
    slider: tuple[str, str] | None = None  # (before, after) paths
    status: str = ""
    object_md: str = ""
    regions_table: list[list[Any]] = dataclasses.field(default_factory=list)
    region_info: str = ""
    timings: list[list[Any]] = dataclasses.field(default_factory=list)
    download_png: str | None = None
    download_json: str | None = None
    timeline: str = dataclasses.field(default_factory=lambda: render.timeline_html(None, None, render.file_url))
    chain_title: str = ""
    tree: ChainTree | None = None  # for tests; not sent to the browser
    step: StepInfo | None = None

    @property
    def has_step(self) -> bool:
        return self.session.step_id is not None

    @property
    def has_chain(self) -> bool:
        return self.session.chain_id is not None

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
    s = EditSession.from_state(session)
    step, chain = s.step_id is not None, s.chain_id is not None
    flags = (True, step, step, chain, chain, True, step, step)
    return tuple(gr.update(interactive=(not busy) and f) for f in flags)


def region_info(session: Any, index: Any) -> str:
    """The line under the regions image for a click on region ``index``."""
    regions = EditSession.from_state(session).regions or {}
    try:
        i = int(index if not isinstance(index, (list, tuple)) else index[0])
    except (TypeError, ValueError):
        i = -1
    return render.region_info(regions, i)


def refused_status(message: str, headline: str = "Not edited.") -> str:
    """The status line after a refusal: what was refused and what to change (``message`` is safe HTML)."""
    return f'<span class="refused">⚠ <strong>{headline}</strong> {message}</span>'


def source_view(store: Store, tree: ChainTree) -> EditView:
    """A chain's source image on screen: the next instruction edits it (a new first step)."""
    s = EditSession(chain_id=tree.chain.id, input_rel=tree.chain.source_image)
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
    session: EditSession,
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
    session = dataclasses.replace(session, regions=shown_regions(details))
    view = EditView(
        session=session,
        slider=(before, after),
        status=step_status(tree, step),
        object_md=render.object_markdown(details, step=step),
        regions_table=render.region_rows(details),
        region_info=render.regions_summary(details),
        timings=render.timings_rows(step.timings, extra_timings),
        download_png=download_png(store, step),
        download_json=download_json(step),
        timeline=render.timeline_html(tree, step.id, _url_for(store),
                                      base_id=render.SOURCE_NODE if session.base_id is None else session.base_id),
        chain_title=tree.chain.title,
        tree=tree,
        step=step,
    )
    view.status = domain_label(tree) + view.status
    return view


def current_view(store: Store, user: str, session: EditSession) -> EditView:
    """Re-render the session's current position (after a rename, ...)."""
    tree = store.get_chain(user, session.chain_id, details=False)
    if session.step_id is None:
        view = source_view(store, tree)
    else:
        view = step_view(store, user, session, tree.step(session.step_id), tree=tree)
    view.input_image = KEEP
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
            f"{chain} · seed `{step.seed}`{total_txt}  \n"
            f'Model: <span class="rb-model">{render.esc(render.step_model_label(step))}</span>'
            f" `{render.esc(step.checkpoint_hash)}`")


def shown_regions(details: dict[str, Any]) -> dict[str, Any]:
    """What the session keeps of the shown step's regions (``REGION_KEYS``), labels and scores wherever the step's
    details hold them."""
    kept = {k: details.get(k) for k in REGION_KEYS}
    return {**kept, "region_labels": render.region_labels(details), "region_scores": render.region_scores(details)}


# --------------------------------------------------------------------------------------------- reasoning images
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
    referenced = details.get("referenced_object")  # reason-then-edit: the MLLM's name, and no bound region
    names = region_names(base, regions, bound=details.get("bound_region"),
                         bound_object=bound_object_name(referenced) if isinstance(referenced, dict) else None)
    return {**details, "region_names": names}


def reasoning_images(store: Store, user_id: Any, session: Any) -> tuple[Any, Any]:
    """``(heatmap, regions image)`` updates of the session's shown step, rendered from its stored details at display
    size (small pixel-art inputs upscaled crisply): the ID Controller's attention over the regions (a
    reason-then-edit step: its mask, :func:`mask_image`), and the regions as a ``gr.AnnotatedImage`` update whose
    legend names and colours match the overlay and the table. ``(None, None)`` when no step is shown (or the user
    has no session yet)."""
    s = EditSession.from_state(session)
    if s.step_id is None or not isinstance(user_id, str) or not user_id:
        return None, None
    with user_errors():
        step = store.get_step(user_id, s.step_id)
        base = store.load_image(step.input_image)
    details = step.details or {}
    shown = s.regions or {}
    if shown.get("region_names") and shown.get("region_labels") == render.region_labels(details):
        details = {**details, "region_names": shown["region_names"]}  # named by step_view already
    else:
        details = named_regions(store, step, details)
    regions = _regions_from_details(details)
    if render.is_reason_then_edit(details):
        heatmap = gr.update(value=mask_image(display_image(base), details), label=MASK_LABEL)
    else:
        heatmap = gr.update(label=HEATMAP_LABEL, value=render_attention_heatmap(  # over the crisp display image
            display_image(base), regions, details.get("region_attention"),
            patch_attention=details.get("patch_attention"), bound=details.get("bound_region"),
        ))
    value = annotated_regions(base, regions, details)
    labels = [label for _, label in value[1]]
    return heatmap, gr.update(
        value=value, color_map={label: render.region_colour(i) for i, label in enumerate(labels)},
        label=render.regions_label(details),
    )


def mask_image(display: PIL.Image.Image, details: dict[str, Any]) -> PIL.Image.Image:
    """A reason-then-edit's mask over the (display-size) input: the object's mask outlined, the input dimmed outside
    the edited area (the mask grown by ``mask_dilation``). The plain input when the details hold no mask."""
    mask, area = _stored_mask(details.get("mask"), display.size), _stored_mask(details.get("edit_area"), display.size)
    rgb = np.asarray(display.convert("RGB"), dtype=np.float32)
    if area is not None:
        rgb = np.where(area[..., None], rgb, rgb * MASK_DIM)
    if mask is not None and not mask.all():
        thickness = max(1, round(min(display.size) / 128))
        rgb[_outline(mask, thickness)] = MASK_OUTLINE
    return PIL.Image.fromarray(rgb.round().clip(0, 255).astype(np.uint8))


def _stored_mask(data: Any, size: tuple[int, int]) -> np.ndarray | None:
    """(H, W) bool at ``size`` (width, height) from a mask stored as ``ReasonThenEditOutput.to_dict`` writes it."""
    if not isinstance(data, dict):
        return None
    from reasonbrain.regions.container import decode_mask_rle

    try:
        mask = decode_mask_rle(data["counts"], tuple(data["size"]))
    except (KeyError, TypeError, ValueError) as err:
        logger.warning("stored mask could not be decoded: %s", err)
        return None
    image = PIL.Image.fromarray(mask.astype(np.uint8) * 255).resize(size, PIL.Image.Resampling.NEAREST)
    return np.asarray(image) > 127


def _outline(mask: np.ndarray, thickness: int) -> np.ndarray:
    """The pixels of ``mask`` within ``thickness`` of its edge, inside it (the picture's border counts as an edge)."""
    inner = mask
    for _ in range(thickness):
        padded = np.pad(inner, 1, constant_values=False)
        inner = inner & padded[:-2, 1:-1] & padded[2:, 1:-1] & padded[1:-1, :-2] & padded[1:-1, 2:]
    return mask & ~inner


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
