"""History tab: the user's chains (newest first) with a text filter; picking one reopens it in the Edit tab. Each
card names the model and mode that made the chain's latest step.

Everything comes from the database, so the list survives server restarts. Reopening is
:func:`app.tabs.edit.open_chain` (wired across tabs in :mod:`app.ui`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import gradio as gr

from app import identity, render
from app.engine import Engine
from app.errors import user_errors
from app.store import ChainInfo, Store
from app.tabs import edit

LIMIT = 200  # chains listed at once (the filter finds older ones)


@dataclass
class HistoryView:
    chains: list[ChainInfo]
    html: str
    summary: str
    models: dict[str, str]  # chain id -> the label of the model and mode of its latest step (render.model_label)

    def to_updates(self) -> tuple[str, str]:
        return self.html, self.summary


def list_chains(store: Store, user_id: Any, query: Any = "") -> HistoryView:
    """The user's chains matching ``query`` (title or any instruction), most recently updated first."""
    user = identity.require_user(user_id)
    q = query.strip() if isinstance(query, str) else ""
    with user_errors():
        chains = store.list_chains(user, query=q or None, limit=LIMIT)
        latest = store.latest_step_models(user, [c.id for c in chains])
    models = {cid: render.model_label(preset, mode, checkpoint_hash)
              for cid, (preset, checkpoint_hash, mode) in latest.items()}
    html = render.chain_cards_html(chains, render.image_url_for(store), query=q, models=models)
    n = len(chains)
    if q:
        summary = f"{n} chain{'s' if n != 1 else ''} matching “{render.esc(q)}”"
    else:
        summary = f"{n} chain{'s' if n != 1 else ''}" + (f" (the {LIMIT} most recent)" if n >= LIMIT else "")
    return HistoryView(chains=chains, html=html, summary=summary + " · click one to reopen it in the Edit tab.",
                       models=models)


def open_in_editor(store: Store, user_id: Any, chain_id: Any) -> edit.EditView:
    """Reopen a chain of this user in the Edit tab (its latest step; the timeline restored)."""
    return edit.open_chain(store, user_id, chain_id)


@dataclass
class HistoryHandles:
    query: gr.Textbox
    refresh_btn: gr.Button
    summary: gr.Markdown
    cards: gr.HTML

    @property
    def outputs(self) -> list[Any]:
        return [self.cards, self.summary]


def build(engine: Engine, store: Store, user_state: gr.State) -> HistoryHandles:
    """The History tab's components; the list refreshes on filter edits, Refresh, and (see app.ui) on opening."""
    with gr.Row(equal_height=True):
        query = gr.Textbox(placeholder="Filter by title or instruction…", show_label=False, scale=5,
                           elem_id="history-filter", max_length=200)
        refresh_btn = gr.Button("Refresh", scale=1, elem_id="history-refresh")
    summary = gr.Markdown("", elem_id="history-summary")
    cards = gr.HTML(render.chain_cards_html([], render.file_url), css_template=render.CARDS_CSS,
                    js_on_load=render.SELECT_JS, elem_id="history-list")
    h = HistoryHandles(query=query, refresh_btn=refresh_btn, summary=summary, cards=cards)

    def _list(user_id: Any, q: Any) -> tuple[str, str]:
        """The user's chains matching the filter, as HTML cards."""
        return list_chains(store, user_id, q).to_updates()

    query.change(_list, [user_state, query], h.outputs, trigger_mode="always_last", api_visibility="private",
                 concurrency_limit=None)
    query.submit(_list, [user_state, query], h.outputs, api_visibility="private", concurrency_limit=None)
    refresh_btn.click(_list, [user_state, query], h.outputs, api_name="list_chains", concurrency_limit=None)
    return h
