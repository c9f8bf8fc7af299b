"""Edit tab: upload or pick an image, type a hypothetical instruction, see the edit and the reasoning behind it.

One module per job:

- :mod:`~app.tabs.edit.state`: :class:`EditSession`, where this browser tab is in its chain (its ``gr.State``)
- :mod:`~app.tabs.edit.handlers`: one function per event (edit, continue, select, undo, rename, delete, upload, ...)
  with explicit arguments, returning an :class:`EditView`; testable without a browser
- :mod:`~app.tabs.edit.views`: :class:`EditView` and the views of a source or a step, the reasoning images
- :mod:`~app.tabs.edit.domain`: the model's world (the out-of-domain warning and mark)
- :mod:`~app.tabs.edit.downloads`: a step's PNG and JSON as files
- :mod:`~app.tabs.edit.inputs`: raw widget values -> typed values
- :mod:`~app.tabs.edit.layout`: the components, their style and their events (``build``)

This package exports the tab's public names, so callers write ``from app.tabs import edit`` and ``edit.build``.
"""

from app.errors import NOT_FOUND_MESSAGE
from app.tabs.edit.domain import domain_notice, source_domain_note
from app.tabs.edit.downloads import step_payload
from app.tabs.edit.handlers import (
    PROMPT_HINT,
    api_edit,
    check_upload,
    continue_from_result,
    delete_chain,
    new_chain,
    open_chain,
    prompt_counter,
    rename_chain,
    run_edit,
    select_step,
    undo,
)
from app.tabs.edit.inputs import pick_instruction
from app.tabs.edit.layout import CSS, EditHandles, build, follow_up
from app.tabs.edit.state import EditSession, empty_session
from app.tabs.edit.views import KEEP, EditView, control_states, display_image, reasoning_images, region_info

__all__ = [
    "CSS", "KEEP", "NOT_FOUND_MESSAGE", "PROMPT_HINT", "EditHandles", "EditSession", "EditView", "api_edit", "build",
    "check_upload", "continue_from_result", "control_states", "delete_chain", "display_image", "domain_notice",
    "empty_session", "follow_up", "new_chain", "open_chain", "pick_instruction", "prompt_counter",
    "reasoning_images", "region_info", "rename_chain", "run_edit", "select_step", "source_domain_note",
    "step_payload", "undo",
]
