"""Small rendering helpers: the chain timeline (a tree), History cards, tables and text for the reasoning panel, and
the label of the model and mode that made an edit (:func:`model_label`).

Everything returns plain strings / lists so it can be tested without a browser. User-provided text (titles,
instructions) is always HTML-escaped: ``gr.HTML`` renders through ``innerHTML``.
"""

from __future__ import annotations

import html
import math
import os
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime, timezone
from typing import Any
from urllib.parse import quote

from app.engine import CUSTOM, RANDOM
from app.store import ChainInfo, ChainTree, StepInfo
from reasonbrain.binding import SceneEntry
from reasonbrain.configuration import REASON_THEN_EDIT_MODE, REASONBRAIN_MODE

SOURCE_NODE = "source"  # data-step of the chain's source image in the timeline
MAX_INDENT = 6  # branch nesting levels drawn with indentation (deeper ones keep the last level)
INDENT_PX = 26
MAX_TEXT = 240  # characters of an instruction in a list (whole words; the tooltip has it all); CSS clamps lines
EMPTY = "—"
# the pipeline's stages in the order they run (stored timings come back sorted by name)
STAGE_ORDER = ("preprocess", "regions", "vision_encoder", "referring", "conditioning", "reasoning", "encode_image",
               "denoise", "decode")

# Click handling for the clickable HTML lists: one delegated listener on the component's root element, so it
# survives re-renders of the content. ``trigger('select', {index, value})`` arrives as ``gr.SelectData``.
SELECT_JS = (
    "element.addEventListener('click', (e) => {"
    " const n = e.target.closest('[data-select]');"
    " if (n && element.contains(n)) trigger('select', {index: Number(n.dataset.index || 0), value: n.dataset.select});"
    "});"
)

TIMELINE_CSS = """
.rb-tree { display: flex; flex-direction: column; gap: 4px; max-height: 460px; overflow-y: auto; padding: 2px; }
.rb-node { display: flex; align-items: center; gap: 10px; width: 100%; text-align: left; cursor: pointer;
  background: var(--block-background-fill); border: 1px solid var(--border-color-primary);
  border-radius: 8px; padding: 4px 8px; color: var(--body-text-color); font: inherit; }
.rb-node:hover { border-color: var(--color-accent); }
.rb-node.rb-current { border: 2px solid var(--color-accent); background: var(--color-accent-soft); }
.rb-node img { width: 48px; height: 48px; object-fit: cover; border-radius: 4px; flex: none; }
.rb-node img[data-rb-pixel-art] { image-rendering: pixelated; }
.rb-hop { font-weight: 600; min-width: 4.2em; flex: none; }
.rb-text { flex: 1; min-width: 0; overflow: hidden; display: -webkit-box; -webkit-line-clamp: 3;
  -webkit-box-orient: vertical; line-height: 1.3; overflow-wrap: anywhere; }
.rb-mark { font-size: 0.8em; opacity: 0.75; flex: none; }
.rb-empty { opacity: 0.7; padding: 8px; }
"""

CARDS_CSS = """
.rb-cards { display: grid; grid-template-columns: repeat(auto-fill, minmax(210px, 1fr)); gap: 12px; }
.rb-card { display: flex; flex-direction: column; gap: 4px; text-align: left; cursor: pointer; font: inherit;
  background: var(--block-background-fill); border: 1px solid var(--border-color-primary); border-radius: 10px;
  padding: 8px; color: var(--body-text-color); }
.rb-card:hover { border-color: var(--color-accent); }
.rb-card img { width: 100%; aspect-ratio: 1 / 1; object-fit: cover; border-radius: 6px; }
.rb-card img[data-rb-pixel-art] { image-rendering: pixelated; }
.rb-card-title { font-weight: 600; overflow: hidden; display: -webkit-box; -webkit-line-clamp: 3;
  -webkit-box-orient: vertical; line-height: 1.3; }
.rb-card-meta { font-size: 0.85em; opacity: 0.8; overflow: hidden; text-overflow: ellipsis; white-space: nowrap; }
.rb-card-last { font-size: 0.85em; opacity: 0.8; overflow: hidden; display: -webkit-box; -webkit-line-clamp: 3;
  -webkit-box-orient: vertical; line-height: 1.3; }
.rb-empty { opacity: 0.7; padding: 8px; }
.rb-card-model { font-size: 0.8em; opacity: 0.85; overflow-wrap: anywhere; line-height: 1.25; }
.rb-card-ood { align-self: flex-start; font-size: 0.8em; font-weight: 600; padding: 1px 8px; border-radius: 999px;
  border: 1px solid #d97706; color: #92400e; background: #fef3c7; }
"""


def esc(text: object) -> str:
    return html.escape("" if text is None else str(text), quote=True)


def file_url(path: str) -> str:
    """URL gradio serves an allowed file under (the store's image folder is the only allowed path)."""
    return "/gradio_api/file=" + quote(str(path), safe="/")


_STORED_IMAGE = re.compile(r"images/[0-9a-f]{2}/[0-9a-f]{64}\.png")


def image_url_for(store: Any) -> Callable[[str], str]:
    """``rel -> URL`` for stored images. Content-addressed paths (what the store writes) are joined directly;
    anything else goes through ``store.image_path``'s full validation. (Serving is still checked by gradio
    against ``allowed_paths``: only the store's image folder.)"""
    root = store.data_dir

    def url_for(rel: str) -> str:
        if _STORED_IMAGE.fullmatch(rel):
            return file_url(os.path.join(root, *rel.split("/")))
        return file_url(store.image_path(rel))

    return url_for


def fmt_time(dt: datetime | None) -> str:
    if dt is None:
        return EMPTY
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    return dt.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def shorten(text: str | None, n: int = 90) -> str:
    """``text`` on one line, at most ``n`` characters; a longer one is cut at the last whole word, with "…"."""
    text = " ".join((text or "").split())
    if len(text) <= n:
        return text
    cut = text[: n - 1]
    if text[n - 1] != " " and " " in cut:  # do not end inside a word
        cut = cut[: cut.rindex(" ")]
    return cut.rstrip(" ,;:-—") + "…"


# ------------------------------------------------------------------------------------------ model and mode
MODE_NAMES = {REASONBRAIN_MODE: "ReasonBrain", REASON_THEN_EDIT_MODE: "reason-then-edit"}


def model_label(preset: str, mode: str | None, checkpoint_hash: str) -> str:
    """The model that made an edit and its mode, in words: ``"reasonbrain-3b · reason-then-edit (pretrained MLLM +
    InstructPix2Pix)"``, ``"synth · ReasonBrain (trained)"``, ``"tiny · ReasonBrain (random weights)"``. The weights
    are read from the checkpoint hash (``random-<preset>``; else reason-then-edit's are pretrained, ReasonBrain's trained);
    ``mode`` None (a step saved before modes existed) reads as reasonbrain."""
    mode = mode or REASONBRAIN_MODE
    if checkpoint_hash.startswith(f"{RANDOM}-"):
        weights: str | None = "random weights"
    elif checkpoint_hash == CUSTOM:  # a pipeline built in code: its weights are unknown
        weights = None
    elif mode == REASON_THEN_EDIT_MODE:
        weights = "pretrained MLLM + InstructPix2Pix"
    else:
        weights = "trained"
    return f"{preset} · {MODE_NAMES.get(mode, mode)}" + (f" ({weights})" if weights else "")


def step_model_label(step: StepInfo) -> str:
    """:func:`model_label` of a stored step (its details, when loaded, hold the mode)."""
    return model_label(step.preset, (step.details or {}).get("mode"), step.checkpoint_hash)


# --------------------------------------------------------------------------------------------- chain timeline
def tree_order(tree: ChainTree) -> list[tuple[StepInfo, int, bool]]:
    """The steps in display order as ``(step, indent, is_branch)``.

    Every step's first child (the oldest) continues the line at the same indentation, so a long linear chain
    stays flat. A step's alternatives (its later siblings: other edits of the same input) are branches, shown
    indented right after it, each with its own continuation, before the line goes on. So step 1 comes first,
    then its alternatives, then step 2. Iterative (a 1,000-step chain does not recurse 1,000 deep)."""
    children: dict[str | None, list[StepInfo]] = {}
    for s in tree.steps:  # ordered by (position, created_at): children come out oldest first
        children.setdefault(s.parent_id, []).append(s)
    out: list[tuple[StepInfo, int, bool]] = []
    # stack items: (step, indent, is_branch, its alternatives); popped last-in first-out
    stack: list[tuple[StepInfo, int, bool, list[StepInfo]]] = []
    roots = children.get(None, [])
    if roots:  # the first step continues from the source image; other first steps are its alternatives
        stack.append((roots[0], 0, False, roots[1:]))
    while stack:
        step, indent, is_branch, alternatives = stack.pop()
        out.append((step, indent, is_branch))
        kids = children.get(step.id, [])
        if kids:  # the line goes on after the alternatives: pushed first
            stack.append((kids[0], indent, False, kids[1:]))
        for alt in reversed(alternatives):
            stack.append((alt, indent + 1, True, []))
    return out


def timeline_html(
    tree: ChainTree | None,
    current_id: str | None,
    url_for: Callable[[str], str],
    *,
    base_id: str | None = None,
) -> str:
    """The chain as a clickable tree: the source image, then every step (thumbnail, hop number, instruction).

    ``current_id``: the step shown in the result panel (highlighted; ``SOURCE_NODE`` for the source).
    ``base_id``: the step the next edit continues from, marked "next edit starts here"."""
    if tree is None:
        return '<div class="rb-tree"><div class="rb-empty">No chain yet: your first edit starts one.</div></div>'
    n_children: dict[str | None, int] = {}
    for s in tree.steps:
        n_children[s.parent_id] = n_children.get(s.parent_id, 0) + 1
    parts = ['<div class="rb-tree" role="list">']
    parts.append(_node(
        SOURCE_NODE, 0, url_for(tree.chain.source_image), "Source", "the uploaded image",
        current=current_id == SOURCE_NODE, indent=0,
        mark=_marks(n_children.get(None, 0), base=base_id == SOURCE_NODE),
    ))
    for index, (step, indent, is_branch) in enumerate(tree_order(tree), start=1):
        prefix = "↳ " if is_branch else ""
        parts.append(_node(
            step.id, index, url_for(step.output_image), f"{prefix}Step {step.position}", step.instruction,
            current=step.id == current_id, indent=indent,
            mark=_marks(n_children.get(step.id, 0), base=base_id == step.id),
        ))
    parts.append("</div>")
    return "".join(parts)


def _marks(n_children: int, *, base: bool) -> str:
    marks = []
    if n_children > 1:
        marks.append(f"{n_children} branches")
    if base:
        marks.append("next edit starts here")
    return " · ".join(marks)


def _node(node_id: str, index: int, img_url: str, hop: str, text: str, *, current: bool, indent: int,
          mark: str) -> str:
    level = min(indent, MAX_INDENT)
    cls = "rb-node rb-current" if current else "rb-node"
    aria = ' aria-current="step"' if current else ""
    style = f' style="margin-left:{level * INDENT_PX}px; width:calc(100% - {level * INDENT_PX}px)"' if level else ""
    mark_html = f'<span class="rb-mark">{esc(mark)}</span>' if mark else ""
    return (
        f'<button type="button" role="listitem" class="{cls}" data-select="{esc(node_id)}" data-index="{index}"'
        f'{aria}{style} title="{esc(text)}"><img src="{esc(img_url)}" alt="" loading="lazy">'
        f'<span class="rb-hop">{esc(hop)}</span><span class="rb-text">{esc(shorten(text, MAX_TEXT))}</span>'
        f'{mark_html}</button>'
    )


# ------------------------------------------------------------------------------------------------ history cards
def chain_cards_html(chains: Sequence[ChainInfo], url_for: Callable[[str], str], *, query: str = "",
                     models: Mapping[str, str] | None = None) -> str:
    """History's cards; ``models``: chain id -> the label of the model that made its latest step."""
    if not chains:
        msg = f"No chain matches “{esc(query)}”." if query.strip() else "No chains yet: edit an image in the Edit tab."
        return f'<div class="rb-cards"><div class="rb-empty">{msg}</div></div>'
    parts = ['<div class="rb-cards" role="list">']
    for i, c in enumerate(chains):
        thumb = url_for(c.last_output or c.source_image)
        steps = f"{c.num_steps} step" + ("" if c.num_steps == 1 else "s")
        last = (f'<span class="rb-card-last">“{esc(shorten(c.last_instruction, MAX_TEXT))}”</span>'
                if c.last_instruction else "")
        tooltip = c.title + (f"\nlast step: {c.last_instruction}" if c.last_instruction else "")
        model = (models or {}).get(c.id)
        model_html = f'<span class="rb-card-model">{esc(model)}</span>' if model else ""
        parts.append(
            f'<button type="button" role="listitem" class="rb-card" data-select="{esc(c.id)}" data-index="{i}" '
            f'title="{esc(tooltip)}"><img src="{esc(thumb)}" alt="" loading="lazy">'
            f'<span class="rb-card-title">{esc(c.title)}</span>{ood_badge(c)}'
            f'<span class="rb-card-meta">{steps} · {esc(fmt_time(c.updated_at))}</span>{model_html}{last}</button>'
        )
    parts.append("</div>")
    return "".join(parts)


def ood_badge(chain: ChainInfo) -> str:
    """The History card's mark for a chain whose source is outside the model's world (its reason as tooltip)."""
    if not chain.out_of_domain:
        return ""
    return f'<span class="rb-card-ood" title="{esc(chain.domain_note)}">⚠ out of domain</span>'


# ----------------------------------------------------------------------------------------- reasoning panel text
# Region colours: the overlay masks, the legend and the table's swatches all use these, region i -> i % 10
REGION_COLOURS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#17becf",
                  "#bcbd22", "#7f7f7f")
BOUND_MARK = "★"


def region_colour(index: int) -> str:
    return REGION_COLOURS[index % len(REGION_COLOURS)]


def region_labels(details: Mapping[str, Any]) -> list[str]:
    """A step's region labels: stored beside its regions (ReasonBrain), else read from them (reason-then-edit)."""
    labels = list(details.get("region_labels") or [])
    if not labels and isinstance(details.get("regions"), Mapping):
        labels = list(details["regions"].get("labels") or [])
    return labels


def region_scores(details: Mapping[str, Any]) -> list[float]:
    """A step's region mask scores, found as :func:`region_labels` finds the labels."""
    scores = list(details.get("region_scores") or [])
    if not scores and isinstance(details.get("regions"), Mapping):
        scores = list(details["regions"].get("scores") or [])
    return scores


def region_name(details: Mapping[str, Any], index: int) -> str:
    """``"2 · “candle” · red, left ★"``: number, name (``region_names`` when stored with the details, else the
    backend's label) and the bound mark. The same text in the table, the legend and the region info."""
    names = list(details.get("region_names") or []) or region_labels(details)
    name = names[index] if 0 <= index < len(names) else f"region {index + 1}"
    mark = f" {BOUND_MARK}" if details.get("bound_region") == index else ""
    return f"{index + 1} · {name}{mark}"


def regions_label(details: Mapping[str, Any]) -> str:
    """The region image's label, short (it lies over the image): ``"Regions: colour segmenter"``."""
    proposer = proposer_text(details)
    return f"Regions: {proposer}" if proposer else "Regions"


def proposer_text(details: Mapping[str, Any]) -> str | None:
    """What produced the regions (``"colour segmenter"``, ``"SAM 2"``), from the stored backend or the labels."""
    from reasonbrain.region_names import proposer_name

    return proposer_name(details.get("region_backend"), region_labels(details))


def _from(proposer: str | None) -> str:
    """``" from the colour segmenter"`` / ``" from SAM 2"`` (a model's name takes no article)."""
    if not proposer:
        return ""
    return f" from {'' if proposer[:1].isupper() else 'the '}{proposer}"


def regions_summary(details: Mapping[str, Any]) -> str:
    """One line under the region image: how many regions, which proposer, what ★ means, what a click does."""
    labels = region_labels(details)
    if is_reason_then_edit(details):
        found = (f"{len(labels) - 1} object region{'s' if len(labels) != 2 else ''} and the background"
                 f"{esc(_from(proposer_text(details)))}. " if labels else "No regions for this step. ")
        return (f"{found}The edit mask: {mask_source_text(details)}.  \n"
                "Attention is not applicable in reason-then-edit mode (no ID Controller): the MLLM names the object.")
    if not labels:
        return "No regions for this step."
    n = max(0, len(labels) - 1)
    source = esc(_from(proposer_text(details)))
    bound = details.get("bound_region")
    bound_txt = (f" **{esc(region_name(details, bound))}** is the region the instruction was bound to (the ID "
                 "Controller's most attended)." if isinstance(bound, int) and 0 <= bound < n else "")
    return (f"{n} object region{'s' if n != 1 else ''} and the background{source}.{bound_txt}  \n"
            "Click a region (or its name) to see its mask score and attention.")


def region_rows(details: Mapping[str, Any]) -> list[list[Any]]:
    """``[swatch + #, name, score, attention]`` per region, most attended first (the bound object marked ★).
    The first cell is HTML (a swatch in the region's overlay colour; the background has none)."""
    labels = region_labels(details)
    scores = region_scores(details)
    attention = details.get("region_attention")
    rows = []
    for i, _label in enumerate(labels):
        att = attention[i] if attention is not None and i < len(attention) else None
        score = scores[i] if i < len(scores) else None
        swatch = (f'<span class="rb-swatch" style="background:{region_colour(i)}"></span>'
                  if i < len(labels) - 1 else '<span class="rb-swatch rb-swatch-none"></span>')
        name = region_name(details, i).split(" · ", 1)[1]
        rows.append([f"{swatch}{i + 1}", name, _num(score, 2), _pct(att), att if att is not None else -1.0])
    rows.sort(key=lambda r: r[4], reverse=True)
    return [r[:4] for r in rows]


def region_info(details: Mapping[str, Any], index: int) -> str:
    """Markdown for one selected region (``index`` into the regions, in their stored order)."""
    labels = region_labels(details)
    if not 0 <= index < len(labels):
        return "Select a region in the image to see its name, score and attention."
    scores = region_scores(details)
    attention = details.get("region_attention") or []
    score = scores[index] if index < len(scores) else None
    att = attention[index] if index < len(attention) else None
    rank = ""
    if attention:
        order = sorted(range(len(attention)), key=lambda i: attention[i], reverse=True)
        rank = f" (rank {order.index(index) + 1} of {len(attention)})" if index in order else ""
    bound = " — **the region the instruction was bound to**" if details.get("bound_region") == index else ""
    proposer = proposer_text(details)
    source = f" · found by {'' if proposer[:1].isupper() else 'the '}{esc(proposer)}" if proposer else ""
    attended = ("attention not applicable in reason-then-edit mode" if is_reason_then_edit(details)
                else f"ID-Controller attention {_pct(att)}{rank}")
    return f"**Region {esc(region_name(details, index))}**{bound}  \nmask score {_num(score, 3)} · {attended}{source}"


def _scene_line(details: Mapping[str, Any]) -> list[str]:
    """What the model's region recogniser saw (the objects an instruction can be bound to), where it has one."""
    scene = details.get("scene_objects")
    if scene is None:
        return []
    seen = ", ".join(SceneEntry(**o).describe() for o in scene)
    return [f"**Objects the model sees:** {esc(seen) if seen else 'none it recognises'}"]


def object_markdown(details: Mapping[str, Any], *, step: StepInfo | None = None) -> str:
    """Referenced object, object token (+ ids), reasoning text and seed, as Markdown (a reason-then-edit step:
    :func:`reason_then_edit_markdown`)."""
    if is_reason_then_edit(details):
        return reason_then_edit_markdown(details, step=step)
    obj = details.get("referenced_object") or {}
    name = obj.get("name") or "(none found)"
    attrs = ", ".join(f"{k}: {v}" for k, v in (obj.get("attributes") or {}).items())
    phrase = obj.get("phrase") or ""
    ids = details.get("object_token_ids") or []
    ids_text = ", ".join(str(i) for i in ids[:48]) + (" …" if len(ids) > 48 else "")
    from reasonbrain.pipelines.pipeline_reasonbrain import INFERRED_OUTCOME

    reasoning = (details.get("reasoning") or "").strip() or EMPTY
    reasoning_label = ("Reasoning (the model's inferred outcome)" if details.get("reasoning_kind") == INFERRED_OUTCOME
                       else "Reasoning")
    bound_index = details.get("bound_region")
    bound = region_name(details, bound_index) if isinstance(bound_index, int) else details.get("bound_region_label")
    lines = [
        f"**Referenced object:** {esc(name)}" + (f" ({esc(attrs)})" if attrs else "")
        + (f" — from “{esc(phrase)}”" if phrase and phrase != name else "")
        + f" · via {esc(obj.get('source') or 'parser')}",
        f"**Object token O:** `{_code(details.get('object_token') or EMPTY)}`",
        f"**Token ids:** `[{_code(ids_text)}]`",
        f"**Bound region (most attended):** {esc(bound)}" if bound else "**Bound region (most attended):** —",
        *_scene_line(details),
        f"**{reasoning_label}:** {esc(reasoning)}",
        *_seed_and_settings(details, step),
    ]
    return "  \n".join(lines)


def _seed_and_settings(details: Mapping[str, Any], step: StepInfo | None) -> list[str]:
    lines = [f"**Seed:** `{details.get('seed', step.seed if step else EMPTY)}`"]
    settings = details.get("settings") or {}
    if settings:
        lines.append(
            "**Settings:** " + esc(", ".join(
                f"{k}={settings[k]}" for k in ("num_inference_steps", "guidance_scale", "image_guidance_scale",
                                               "scheduler") if k in settings
            ))
        )
    return lines


# ---------------------------------------------------------------------------------- reason-then-edit's reasoning
MAX_ANSWER_CHARS = 400  # of the MLLM's raw answer in the panel (the JSON download has it all)


def is_reason_then_edit(details: Mapping[str, Any]) -> bool:
    """Whether a step's details come from the reason-then-edit mode (steps without a mode are ReasonBrain's)."""
    return details.get("mode") == REASON_THEN_EDIT_MODE


def mask_source_text(details: Mapping[str, Any]) -> str:
    """Where a reason-then-edit's mask came from, in words (``reasonbrain.edit_mask``'s rule)."""
    from reasonbrain.edit_mask import BOX, BOX_PROMPT, BOX_REGION, OBJECT_REGION, WHOLE_IMAGE

    source = details.get("mask_source")
    region = f"the region{_from(proposer_text(details))}"
    obj = details.get("referenced_object")
    text = {
        BOX_PROMPT: f"the mask{_from(proposer_text(details))} prompted with the MLLM's box",
        BOX_REGION: f"{region} that matches the MLLM's box",
        BOX: "the MLLM's box itself (no region matched it well enough)",
        OBJECT_REGION: f"{region} that best matches “{obj}” (the MLLM gave no usable box)",
        WHOLE_IMAGE: "the whole picture (nothing confined the edit)",
    }.get(source, f"{source or 'unknown'}")
    dilation = (details.get("settings") or {}).get("mask_dilation")
    grown = f", grown by {dilation} latent cell{'s' if dilation != 1 else ''}" if dilation else ""
    return esc(text + (f"; the editor could change pixels only inside it{grown}" if source != WHOLE_IMAGE else ""))


def reason_then_edit_markdown(details: Mapping[str, Any], *, step: StepInfo | None = None) -> str:
    """The reasoning panel of a reason-then-edit step: the MLLM's outcome, the explicit instruction the editor was
    given, the object, where the mask came from and what fell back, as Markdown."""
    from reasonbrain.reasoning_prompt import FROM_MLLM

    outcome = (details.get("outcome") or "").strip()
    edit = details.get("edit_instruction") or EMPTY
    given = ("the MLLM's explicit edit" if details.get("edit_instruction_source") == FROM_MLLM
             else "your instruction as typed: the MLLM gave no explicit edit")
    obj = details.get("referenced_object")
    box = details.get("box")
    box_txt = f" · box [{', '.join(f'{v:.2f}' for v in box)}]" if isinstance(box, list) and len(box) == 4 else ""
    fallbacks = [str(f) for f in details.get("fallbacks") or []]
    answer = shorten(details.get("mllm_answer") or "", MAX_ANSWER_CHARS) or EMPTY
    lines = [
        f"**Outcome (the MLLM's reasoning):** {esc(outcome) if outcome else '— (the MLLM gave none)'}",
        f"**Edit instruction given to the editor:** “{esc(edit)}” ({given})",
        f"**Referenced object:** {esc(obj) if obj else '(none named)'}{esc(box_txt)}",
        f"**Mask:** {mask_source_text(details)}",
        "**Fallbacks:** " + ("none: everything came from the MLLM" if not fallbacks
                             else "; ".join(esc(f) for f in fallbacks)),
        f"**The MLLM's answer:** `{_code(answer)}`",
        *_seed_and_settings(details, step),
    ]
    return "  \n".join(lines)


def timings_rows(timings: Mapping[str, Any] | None, extra: Mapping[str, float] | None = None) -> list[list[Any]]:
    """``[stage, ms]`` rows in pipeline order, ``total`` last; ``extra`` (e.g. the app's own save time) after."""
    rows = []
    timings = dict(timings or {})
    total = timings.pop("total", None)
    order = {name: i for i, name in enumerate(STAGE_ORDER)}
    for k in sorted(timings, key=lambda name: (order.get(name, len(order)), name)):
        rows.append([k, _ms(timings[k])])
    if total is not None:
        rows.append(["total (pipeline)", _ms(total)])
    for k, v in (extra or {}).items():
        rows.append([k, _ms(v)])
    return rows


def presenter_header_html(title: str, k: int, n: int, instruction: str, *, demo: bool) -> str:
    badge = ' <span class="rb-badge">demo</span>' if demo else ""
    return (
        f'<div class="rb-present-head"><div class="rb-present-meta">{esc(title)}{badge}'
        f' · <span class="rb-stepcount">Step {k} of {n}</span></div>'
        f'<div class="rb-present-instr">“{esc(instruction)}”</div></div>'
    )


PRESENTER_CSS = """
.rb-present-head { padding: 6px 4px; }
.rb-present-meta { font-size: 1.1rem; opacity: 0.85; }
.rb-stepcount { font-weight: 700; }
.rb-present-instr { font-size: clamp(1.5rem, 2.6vw, 2.4rem); font-weight: 600; line-height: 1.25; margin-top: 6px; }
.rb-badge { font-size: 0.75em; padding: 1px 6px; border-radius: 6px; background: var(--color-accent-soft); }
.rb-present-empty { font-size: 1.3rem; opacity: 0.8; padding: 12px 4px; }
"""


def labels_for_choices(chains: Iterable[ChainInfo], *, demo: bool) -> list[tuple[str, str]]:
    out = []
    for c in chains:
        prefix = "Demo · " if demo and not c.title.lower().startswith("demo") else ""
        steps = f"{c.num_steps} step" + ("" if c.num_steps == 1 else "s")
        out.append((f"{prefix}{shorten(c.title, 60)} ({steps})", c.id))
    return out


def _num(v: Any, digits: int) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return EMPTY
    return f"{float(v):.{digits}f}"


def _pct(v: Any) -> str:
    if v is None:
        return EMPTY
    return f"{100 * float(v):.1f}%"


def _ms(v: Any) -> str:
    try:
        return f"{1000 * float(v):.0f} ms"
    except (TypeError, ValueError):
        return EMPTY


def _code(text: str) -> str:
    return str(text).replace("`", "'")


def with_defaults(value: Any, defaults: dict[str, Any]) -> dict[str, Any]:
    """A session/state dict from the browser: exactly ``defaults``' keys, values taken from ``value`` if a dict."""
    if isinstance(value, dict):
        defaults.update({k: value.get(k, defaults[k]) for k in defaults})
    return defaults
