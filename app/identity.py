"""Who is the user: a random id held in the browser, or the Hugging Face account on a Space with OAuth.

- Anonymous: each browser gets a random UUID on its first visit, kept in ``localStorage`` through
  ``gr.BrowserState`` (encrypted with a per-installation secret, so the id survives server restarts: the Space
  secret ``REASONBRAIN_BROWSER_SECRET`` when set, else a key kept in the data folder, which the history snapshots
  carry and restore, app/snapshots.py). The user id is the UUID itself.
- Space with ``hf_oauth: true`` (``OAUTH_CLIENT_ID`` set): a signed-in visitor is ``"hf:<username>"``; the
  browser id is kept as the fallback for visitors who have not signed in.

Nothing here lives in module globals: the resolved id travels in a per-session ``gr.State``.
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import tempfile
import uuid
from collections.abc import Mapping

import gradio as gr

logger = logging.getLogger(__name__)

STORAGE_KEY = "reasonbrain-studio-user"
SECRET_FILE = ".browser-state-secret"  # in the data folder, mode 0600
SECRET_ENV = "REASONBRAIN_BROWSER_SECRET"  # a Space secret; takes precedence over the file
MIN_SECRET_LENGTH = 16
DEMO_USER = "demo"  # owner of the preloaded demo chains (readable by everyone, editable by no one)
HF_PREFIX = "hf:"


def oauth_enabled() -> bool:
    """True on a Space whose README enables ``hf_oauth`` (the platform then sets ``OAUTH_CLIENT_ID``)."""
    return bool(os.environ.get("SPACE_ID") and os.environ.get("OAUTH_CLIENT_ID"))


def browser_secret(data_dir: str, env: Mapping[str, str] | None = None) -> str:
    """The key ``gr.BrowserState`` encrypts the id with: ``REASONBRAIN_BROWSER_SECRET`` when set, else created once
    in ``data_dir`` (mode 0600) and read from there.

    A fresh random key per start (gradio's default) would make every returning browser a new user after a
    restart. The key is never logged. (gradio sends it to the browser, which does the encrypting: it lets an id
    survive restarts, it hides nothing from the visitor.)"""
    given = (os.environ if env is None else env).get(SECRET_ENV, "").strip()
    if given:
        if not valid_secret(given):
            raise ValueError(f"{SECRET_ENV} must be one line of at least {MIN_SECRET_LENGTH} characters "
                             "(e.g. python -c 'import secrets; print(secrets.token_urlsafe(32))')")
        return given
    os.makedirs(data_dir, exist_ok=True)
    try:
        with open(secret_path(data_dir), encoding="utf-8") as f:
            secret = f.read().strip()
        if valid_secret(secret):
            return secret
    except FileNotFoundError:
        pass
    secret = secrets.token_urlsafe(32)
    write_secret(data_dir, secret)
    return secret


def secret_path(data_dir: str) -> str:
    return os.path.join(data_dir, SECRET_FILE)


def valid_secret(text: str) -> bool:
    return len(text) >= MIN_SECRET_LENGTH and len(text.splitlines()) == 1


def write_secret(data_dir: str, secret: str) -> None:
    """Put ``secret`` in place atomically, readable by this user only (mode 0600 from the first byte)."""
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=data_dir)  # mkstemp creates the file 0600
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(secret)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, secret_path(data_dir))
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


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
