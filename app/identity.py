"""Who is the user: a random id held in the browser, or the Hugging Face account on a Space with OAuth.

- Anonymous: each browser gets a random UUID on its first visit, kept in ``localStorage`` through
  ``gr.BrowserState`` (encrypted with a per-installation secret kept in the data folder, so the id survives
  server restarts). The user id is the UUID itself.
- Space with ``hf_oauth: true`` (``OAUTH_CLIENT_ID`` set): a signed-in visitor is ``"hf:<username>"``; the
  browser id is kept as the fallback for visitors who have not signed in.

Nothing here lives in module globals: the resolved id travels in a per-session ``gr.State``.
"""

from __future__ import annotations

import logging
import os
import secrets
import uuid

import gradio as gr

logger = logging.getLogger(__name__)

STORAGE_KEY = "reasonbrain-studio-user"
SECRET_FILE = ".browser-state-secret"
DEMO_USER = "demo"  # owner of the preloaded demo chains (readable by everyone, editable by no one)
HF_PREFIX = "hf:"


def oauth_enabled() -> bool:
    """True on a Space whose README enables ``hf_oauth`` (the platform then sets ``OAUTH_CLIENT_ID``)."""
    return bool(os.environ.get("SPACE_ID") and os.environ.get("OAUTH_CLIENT_ID"))


def browser_secret(data_dir: str) -> str:
    """The key ``gr.BrowserState`` encrypts the id with: created once, then read from ``data_dir``.

    A fresh random key per start (gradio's default) would make every returning browser a new user after a
    restart. The file is created with mode 0600 and never logged."""
    os.makedirs(data_dir, exist_ok=True)
    path = os.path.join(data_dir, SECRET_FILE)
    try:
        with open(path, encoding="utf-8") as f:
            secret = f.read().strip()
        if len(secret) >= 16:
            return secret
    except FileNotFoundError:
        pass
    secret = secrets.token_urlsafe(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(secret)
    return secret


def new_browser_id() -> str:
    return str(uuid.uuid4())


def valid_browser_id(value: object) -> str | None:
    """The canonical UUID string if ``value`` is one, else None (anything else from the browser is ignored)."""
    if not isinstance(value, str) or len(value) > 64:
        return None
    try:
        return str(uuid.UUID(value))
    except ValueError:
        return None


def user_id_for(browser_id: str | None, profile: object | None = None) -> str:
    """``hf:<username>`` for a signed-in Hugging Face user, else the browser's UUID."""
    username = _username(profile)
    if username:
        return HF_PREFIX + username
    bid = valid_browser_id(browser_id)
    if bid is None:
        raise ValueError("no browser id yet: reload the page")
    return bid


def resolve(browser_value: object, profile: gr.OAuthProfile | None = None) -> tuple[str, str]:
    """On page load: keep (or create) the browser's id and return ``(browser_id, user_id)``.

    ``profile`` is injected by gradio from the OAuth session (None when not signed in / no OAuth)."""
    browser_id = valid_browser_id(browser_value) or new_browser_id()
    return browser_id, user_id_for(browser_id, profile)


def require_user(user_id: object) -> str:
    """The session's user id, or a gr.Error telling the user to reload (the load event has not run)."""
    if isinstance(user_id, str) and user_id and user_id != DEMO_USER:
        return user_id
    message = "Your session is not ready yet: reload the page and try again."
    logger.info("refused: %s", message)
    raise gr.Error(message, print_exception=False)  # not a bug: one log line, no traceback


def describe(user_id: str | None) -> str:
    """A short, non-revealing description for the header badge."""
    if not user_id:
        return "connecting…"
    if user_id.startswith(HF_PREFIX):
        return f"signed in as **{user_id[len(HF_PREFIX):]}**"
    return f"anonymous browser `{user_id[:8]}`"


def _username(profile: object | None) -> str | None:
    if profile is None:
        return None
    name = getattr(profile, "username", None)
    if name is None and isinstance(profile, dict):
        name = profile.get("preferred_username") or profile.get("username")
    if isinstance(name, str) and name.strip():
        return name.strip()
    return None
