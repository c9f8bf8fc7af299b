"""Requests refused for the user's own mistake: one policy for every tab (Edit, History, Presenter, Rate).

A refusal is a ``gr.Error`` with a message for the user and one log line on the server, no traceback; gradio prints
a traceback for every other exception, which is what a bug should get.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator

import gradio as gr

from app import render
from app.store import NotFound

logger = logging.getLogger(__name__)

NOT_FOUND_MESSAGE = "This chain or step does not exist (any more), or it belongs to someone else."
STORAGE_MESSAGE = ("A stored image could not be read or written (the server's data folder has a problem; "
                   "an administrator can check it with `python -m app.consistency`).")


def refusal(message: str, *, log: logging.Logger = logger) -> gr.Error:
    """A ``gr.Error`` for ``message`` (safe HTML: the modal renders it), logged as one line on ``log``."""
    log.info("refused: %s", message)
    return gr.Error(message, print_exception=False)


@contextlib.contextmanager
def user_errors(not_found: str = NOT_FOUND_MESSAGE, *, log: logging.Logger = logger) -> Iterator[None]:
    """ValueError / NotFound / OSError from the engine or the stores -> ``gr.Error`` with a message for the user.

    ``not_found``: what a missing (or someone else's) row means in the calling tab; ``log``: the tab's logger. A
    ``gr.Error`` raised inside passes unchanged; a vanished image or a failing disk is named as such."""
    try:
        yield
    except gr.Error:
        raise
    except NotFound as err:
        raise refusal(not_found, log=log) from err
    except OSError as err:
        log.error("storage error: %s", err)
        raise gr.Error(STORAGE_MESSAGE, print_exception=False) from err
    except ValueError as err:
        raise refusal(render.esc(str(err) or err.__class__.__name__), log=log) from err
