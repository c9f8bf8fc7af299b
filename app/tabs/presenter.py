"""Presenter tab: replay a saved multi-hop chain step by step, large, with ←/→ keys.

Everything a presenter needs is on one screen without scrolling, at 1280x720 (a projector) as at 1920x1080:
the tab is as tall as the viewport under the page header and the images take the height the instruction leaves
(never under 256 px); "Full screen" (or F) gives the whole screen to the step counter, the instruction and the
two images. The layout is CSS in ``app.ui.CSS``.

Chains offered: the user's own and the preloaded demo chains (owned by ``identity.DEMO_USER``, readable by
everyone, editable by no one: only the Presenter reads them). A chain that branched is replayed along one
branch (the newest by default; a dropdown picks another).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import gradio as gr

from app import display, identity, render
from app.engine import Engine
from app.errors import refusal, user_errors
from app.store import ChainTree, NotFound, Store

LIMIT = 100
NO_CHAINS = ('<div class="rb-present-empty">No chains to present yet: edit an image in the Edit tab (every edit '
             'starts a chain), then come back here.</div>')
LONG_INSTRUCTION_CHARS = 90  # longer ones are set smaller (CSS .rb-present-long)


def empty_state() -> dict[str, Any]:
    return {"chain_id": None, "title": "", "is_demo": False, "leaf_id": None, "steps": [], "index": 0,
            "branches": []}


def _state(value: Any) -> dict[str, Any]:
    return render.with_defaults(value, empty_state())


@dataclass
class PresenterView:
    state: dict[str, Any]
    header: str
    before: str | None
    after: str | None
    branches: list[tuple[str, str]]
    branch: str | None

    @property
    def image_classes(self) -> list[str]:
        return display.image_classes(self.before, self.after)

    @property
    def index(self) -> int:
        return int(self.state["index"])

    @property
    def n(self) -> int:
        return len(self.state["steps"])

    @property
    def can_prev(self) -> bool:
        return self.n > 0 and self.index > 0

    @property
    def can_next(self) -> bool:
        return self.n > 0 and self.index < self.n - 1

    def to_updates(self) -> tuple[Any, ...]:
        classes = self.image_classes
        return (
            self.state, self.header,
            gr.Image(value=self.before, elem_classes=classes), gr.Image(value=self.after, elem_classes=classes),
            gr.update(interactive=self.can_prev), gr.update(interactive=self.can_next),
            gr.update(choices=self.branches, value=self.branch, visible=len(self.branches) > 1),
        )


def chain_choices(store: Store, user_id: Any) -> list[tuple[str, str]]:
    """(label, chain id): the user's chains with at least one step, then the demo chains."""
    user = identity.require_user(user_id)
    with user_errors():
        own = [c for c in store.list_chains(user, limit=LIMIT) if c.num_steps]
        demo = [c for c in store.list_chains(identity.DEMO_USER, limit=LIMIT) if c.is_demo and c.num_steps]
    return render.labels_for_choices(own, demo=False) + render.labels_for_choices(demo, demo=True)


def load_tree(store: Store, user: str, chain_id: Any) -> ChainTree:
    """The user's own chain, else a demo chain; anything else is NotFound (never another user's chain)."""
    if not isinstance(chain_id, str) or not chain_id:
        raise NotFound("no chain")
    try:
        return store.get_chain(user, chain_id, details=False)
    except NotFound:
        tree = store.get_chain(identity.DEMO_USER, chain_id, details=False)
        if not tree.chain.is_demo:
            raise
        return tree


def open_presentation(store: Store, user_id: Any, chain_id: Any, leaf_id: Any = None) -> PresenterView:
    """Start replaying ``chain_id`` at step 1 along the branch ending at ``leaf_id`` (default: the newest)."""
    user = identity.require_user(user_id)
    with user_errors():
        tree = load_tree(store, user, chain_id)
    if not tree.steps:
        raise refusal("This chain has no steps to present yet.")
    leaves = sorted(tree.leaves(), key=lambda s: (s.created_at, s.position), reverse=True)
    leaf = next((s for s in leaves if s.id == leaf_id), leaves[0])
    path = tree.path_to(leaf.id)
    steps = [
        {"position": s.position, "instruction": s.instruction,
         "before": store.image_path(s.input_image), "after": store.image_path(s.output_image)}
        for s in path
    ]
    branches = [(f"Branch ending at step {s.position}: {render.shorten(s.instruction, 60)}", s.id) for s in leaves]
    state = {"chain_id": tree.chain.id, "title": tree.chain.title, "is_demo": tree.chain.is_demo,
             "leaf_id": leaf.id, "steps": steps, "index": 0, "branches": branches}
    return _view(state)


def go(state: Any, delta: int) -> PresenterView:
    """Move ``delta`` steps (clamped to the chain: no wrap-around)."""
    s = _state(state)
    if s["steps"]:
        s["index"] = max(0, min(len(s["steps"]) - 1, int(s["index"]) + int(delta)))
    return _view(s)


def _view(state: dict[str, Any]) -> PresenterView:
    steps = state["steps"]
    branches = state.get("branches") or []
    if not steps:
        header = ('<div class="rb-present-empty">Pick a chain above to replay it step by step '
                  '(← / → keys move between steps).</div>')
        return PresenterView(state=state, header=header, before=None, after=None, branches=branches, branch=None)
    k = int(state["index"])
    step = steps[k]
    header = render.presenter_header_html(state["title"], k + 1, len(steps), step["instruction"],
                                          demo=bool(state["is_demo"]))
    if len(step["instruction"]) > LONG_INSTRUCTION_CHARS:  # a smaller font keeps the images on screen
        header = f'<div class="rb-present-long">{header}</div>'
    before = step["before"] if os.path.isfile(step["before"]) else None
    after = step["after"] if os.path.isfile(step["after"]) else None
    if before is None or after is None:
        header += '<div class="rb-present-empty">This step’s images are gone (the chain was changed or deleted).</div>'
    return PresenterView(state=state, header=header, before=before, after=after, branches=branches,
                         branch=state.get("leaf_id"))


@dataclass
class PresenterHandles:
    state: gr.State
    chain: gr.Dropdown
    branch: gr.Dropdown
    refresh_btn: gr.Button
    fullscreen_btn: gr.Button
    header: gr.HTML
    before: gr.Image
    after: gr.Image
    prev_btn: gr.Button
    next_btn: gr.Button

    @property
    def outputs(self) -> list[Any]:
        return [self.state, self.header, self.before, self.after, self.prev_btn, self.next_btn, self.branch]


FULLSCREEN_JS = """() => {
  const root = document.getElementById('presenter-root');
  if (!root) return;
  if (document.fullscreenElement) { document.exitFullscreen(); } else if (root.requestFullscreen) { root.requestFullscreen(); }
}"""
BLUR_JS = "() => { if (document.activeElement) document.activeElement.blur(); }"


def build(engine: Engine, store: Store, user_state: gr.State) -> PresenterHandles:
    state = gr.State(empty_state())
    with gr.Column(elem_id="presenter-root"):
        with gr.Row(equal_height=True, elem_id="presenter-controls"):  # hidden in full screen
            chain = gr.Dropdown(choices=[], value=None, label="Chain to present", show_label=False, scale=5,
                                elem_id="presenter-chain")
            branch = gr.Dropdown(choices=[], value=None, label="Branch", show_label=False, scale=4, visible=False,
                                 elem_id="presenter-branch")
            refresh_btn = gr.Button("Refresh list", scale=0, min_width=150, elem_id="presenter-refresh")
            fullscreen_btn = gr.Button("Full screen", scale=0, min_width=150, elem_id="presenter-fullscreen")
        header = gr.HTML(_view(empty_state()).header, css_template=render.PRESENTER_CSS, elem_id="presenter-header",
                         js_on_load=None)
        with gr.Row(equal_height=True, elem_id="presenter-images"):
            image = {"interactive": False, "buttons": ["fullscreen"],  # height: CSS (fills the row)
                     "elem_classes": [display.JUDGE_CLASS]}
            before = gr.Image(label="Before", elem_id="presenter-before", **image)
            after = gr.Image(label="After", elem_id="presenter-after", **image)
        with gr.Row(elem_id="presenter-nav"):
            prev_btn = gr.Button("← Previous", interactive=False, size="lg", elem_id="presenter-prev")
            next_btn = gr.Button("Next →", interactive=False, size="lg", variant="primary", elem_id="presenter-next")
            exit_btn = gr.Button("Exit full screen (Esc)", size="lg", scale=0, min_width=200,
                                 elem_id="presenter-exit-fullscreen")  # shown only in full screen (CSS)
    h = PresenterHandles(state=state, chain=chain, branch=branch, refresh_btn=refresh_btn,
                         fullscreen_btn=fullscreen_btn, header=header, before=before, after=after,
                         prev_btn=prev_btn, next_btn=next_btn)

    def _open(user_id: Any, chain_id: Any) -> tuple[Any, ...]:
        return open_presentation(store, user_id, chain_id).to_updates()

    def _branch(user_id: Any, st: Any, leaf_id: Any) -> tuple[Any, ...]:
        chain_id = _state(st)["chain_id"]
        if not chain_id or not leaf_id or leaf_id == _state(st)["leaf_id"]:
            return tuple(gr.skip() for _ in h.outputs)
        return open_presentation(store, user_id, chain_id, leaf_id).to_updates()

    # after picking from a dropdown, move focus away from it so ←/→ step through the chain right away
    chain.input(_open, [user_state, chain], h.outputs, api_name="present").then(None, js=BLUR_JS)
    branch.input(_branch, [user_state, state, branch], h.outputs, api_visibility="private").then(None, js=BLUR_JS)
    prev_btn.click(lambda st: go(st, -1).to_updates(), state, h.outputs, api_name="present_prev",
                   concurrency_limit=None)
    next_btn.click(lambda st: go(st, +1).to_updates(), state, h.outputs, api_name="present_next",
                   concurrency_limit=None)
    refresh_btn.click(lambda user_id, current: refresh(store, user_id, current), [user_state, state], chain,
                      api_visibility="private", concurrency_limit=None)
    fullscreen_btn.click(None, None, None, js=FULLSCREEN_JS)
    exit_btn.click(None, None, None, js=FULLSCREEN_JS)
    return h


def enter(store: Store, user_id: Any, current: Any = None) -> tuple[Any, ...]:
    """On opening the tab: refresh the chain list; if nothing is being presented, open the first chain."""
    choices = chain_choices(store, user_id)
    st = _state(current)
    if st["chain_id"] and any(v == st["chain_id"] for _, v in choices):
        return (gr.update(choices=choices, value=st["chain_id"]), *(gr.skip() for _ in range(7)))
    if not choices:  # nothing to pick: say where chains come from
        view = _view(empty_state())
        view.header = NO_CHAINS
        return (gr.update(choices=[], value=None), *view.to_updates())
    first = choices[0][1]
    return (gr.update(choices=choices, value=first), *open_presentation(store, user_id, first).to_updates())


def refresh(store: Store, user_id: Any, current: Any = None) -> Any:
    """Dropdown update with the current choices (keeps the open chain selected when it still exists)."""
    choices = chain_choices(store, user_id)
    chain_id = _state(current)["chain_id"]
    value = chain_id if any(v == chain_id for _, v in choices) else None
    return gr.update(choices=choices, value=value)
