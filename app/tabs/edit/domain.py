"""The model's world in the Edit tab: the check that a source image is a scene a synth-only model knows, the
warning under the input image, and the "out of domain" mark on a result's status line."""

from __future__ import annotations

import logging
from typing import Any

import gradio as gr

from app import render
from app.engine import EditResult, Engine
from app.store import ChainTree, NotFound, Store
from app.tabs.edit.state import EditSession

logger = logging.getLogger(__name__)

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
    s = EditSession.from_state(session)
    html = ""
    if s.chain_id is not None and isinstance(user_id, str) and user_id:
        try:
            chain = store.get_chain(user_id, s.chain_id, details=False).chain
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
