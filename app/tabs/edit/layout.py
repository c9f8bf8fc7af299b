"""The Edit tab's layout: its components (``build``, inside a ``gr.Tab``), its style and the events that wire
them to the handlers (:mod:`app.tabs.edit.handlers`) and the follow-ups (the controls' states, the reasoning
images, the domain warning)."""

from __future__ import annotations

import contextlib
import os
import tempfile
from dataclasses import dataclass
from typing import Any

import gradio as gr

from app import render
from app.components import UploadImage
from app.engine import Engine
from app.store import Store
from app.tabs.edit.domain import DOMAIN_CSS, domain_notice
from app.tabs.edit.handlers import (
    api_edit,
    check_upload,
    continue_from_result,
    delete_chain,
    new_chain,
    prompt_counter,
    prompt_hint,
    rename_chain,
    run_edit,
    select_step,
    undo,
)
from app.tabs.edit.inputs import pick_instruction
from app.tabs.edit.state import empty_session
from app.tabs.edit.views import (
    HEATMAP_LABEL,
    MASK_LABEL,
    control_states,
    reasoning_images,
    refused_status,
    region_info,
)
from reasonbrain.configuration import REASON_THEN_EDIT_MODE
from reasonbrain.seeds import MAX_SEED

HEATMAP_HEIGHT = 340
REGIONS_HEIGHT = 440  # the image and its legend (one line per 2-3 regions)
PHOTO_EXAMPLES_CLASS = "rb-photo-examples"  # example photos of any shape, shown as same-size squares (CSS)
PIXEL_ART_MAX_PX = 128  # inputs no larger than this are pixel art: upscaled with nearest neighbour on screen
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
.rb-photo-examples #example-scenes .gallery-item .container { width: 96px; max-width: none; height: 96px; }
.rb-photo-examples #example-scenes .gallery-item img { width: 100%; height: 100%; object-fit: cover; }
#regions-table .rb-swatch { display: inline-block; width: 0.85em; height: 0.85em; border-radius: 3px;
  margin-right: 6px; vertical-align: -0.1em; }
#regions-table .rb-swatch-none { border: 1px dashed var(--border-color-primary); }
#crisp-images { display: none; }
#edit-status .refused { display: block; padding: 8px 12px; border-radius: var(--radius-md);
  border: 1px solid var(--error-border-color); background: var(--error-background-fill);
  color: var(--error-text-color); }
#edit-status .rb-model { font-weight: 600; }
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
    """The engine's example images written once to a temp folder (not the store: they are not user data); photos
    as JPEG (small), the synthetic scenes as PNG (crisp)."""
    folder = tempfile.mkdtemp(prefix="reasonbrain-examples-")
    suffix = "jpg" if engine.photo_examples else "png"
    rows = []
    for i, (image, instruction) in enumerate(engine.example_images()):
        path = os.path.join(folder, f"example-{i}.{suffix}")
        image.save(path)
        rows.append([path, instruction])
    return rows


def _examples(engine: Engine, rows: list[list[str]], inputs: list[Any]) -> gr.Examples:
    """The example images (click one: it fills the image and the instruction); photos in a box whose CSS shows
    them as same-size squares (``PHOTO_EXAMPLES_CLASS``), the synthetic scenes as gradio draws them."""
    photos = engine.photo_examples
    with gr.Column(elem_classes=[PHOTO_EXAMPLES_CLASS]) if photos else contextlib.nullcontext():
        return gr.Examples(
            examples=rows, inputs=inputs, cache_examples=False,
            label=f"Example {'photos' if photos else 'scenes'} (click one: image and instruction)", examples_per_page=6,
            api_visibility="private", elem_id="example-scenes", visible_columns=[0],
        )


def build(engine: Engine, store: Store, user_state: gr.State) -> EditHandles:
    """The Edit tab's components and events (call inside a ``gr.Tab``)."""
    defaults = engine.defaults()
    reasons_first = engine.mode == REASON_THEN_EDIT_MODE  # the panel's titles follow the mode being served
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
                label="Hypothetical instruction", placeholder=prompt_hint(engine), lines=1,
                max_lines=1, elem_id="prompt",
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
            rows = example_files(engine) if engine.settings.examples else []
            if rows:  # none: the example photos are not installed
                examples = _examples(engine, rows, [input_image, prompt])
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
        gr.Markdown("### Reasoning — what the MLLM inferred, the instruction the editor was given, and the mask"
                    if reasons_first else "### Reasoning — what the model bound, attended to and did", padding=True)
        with gr.Row(equal_height=False):
            with gr.Column(scale=4, min_width=280):
                object_md = gr.Markdown("—", elem_id="object-info", padding=True)
                timings = gr.Dataframe(headers=["Stage", "Time"], value=[], label="Stage timings",
                                       interactive=False, elem_id="timings", wrap=True, max_height=330)
            with gr.Column(scale=3, min_width=280):
                # PNG: the upscaled pixel art stays crisp (JPEG rings around its hard edges)
                heatmap = gr.Image(label=MASK_LABEL if reasons_first else HEATMAP_LABEL, interactive=False,
                                   height=HEATMAP_HEIGHT, elem_id="attention-heatmap", format="png")
                regions_table = gr.Dataframe(headers=["#", "Region", "Score", "Attention"], value=[],
                                             datatype=["html", "str", "str", "str"],
                                             column_widths=["13%", "43%", "18%", "26%"],
                                             label="Regions found (no attention in this mode)" if reasons_first
                                             else "Regions by attention (★ bound region)", interactive=False,
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
