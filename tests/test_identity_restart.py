"""Anonymous visitors keep their history across a Space restart: the browser-state key travels with the snapshots.

gradio's frontend stores a ``gr.BrowserState`` value as ``base64(iv) + ":" + CryptoJS.AES.encrypt(json, passphrase)``
with ``passphrase = SHA256(secret)`` in hex; a passphrase makes CryptoJS use OpenSSL's format (``Salted__``, key and
iv from EVP_BytesToKey with MD5), which ``openssl enc -aes-256-cbc -md md5`` reads and writes. A value that does not
decrypt reads as the default (None), and the app then gives the browser a new id.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
import subprocess
import uuid
from pathlib import Path

import pytest

from app import identity
from app.snapshots import FolderRemote, Snapshotter
from app.store import Store

from .test_snapshots import edit, noise

pytestmark = pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command")


def _openssl(args: list[str], data: bytes, secret: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "BROWSER_STATE_PASSPHRASE": hashlib.sha256(secret.encode()).hexdigest()}
    return subprocess.run(["openssl", "enc", "-aes-256-cbc", "-md", "md5", "-base64", "-A", *args,
                           "-pass", "env:BROWSER_STATE_PASSPHRASE"], input=data, capture_output=True, env=env)


def browser_stores(value: object, secret: str) -> str:
    """What the browser keeps in localStorage for ``value`` (gradio's BrowserState, as above)."""
    done = _openssl(["-salt"], json.dumps(value).encode(), secret)
    assert done.returncode == 0, done.stderr
    return base64.b64encode(os.urandom(16)).decode() + ":" + done.stdout.decode().strip()


def browser_reads(stored: str, secret: str) -> object:
    """What the browser sends on page load: the decrypted value, or None (the default) when it does not decrypt."""
    done = _openssl(["-d"], stored.split(":", 1)[1].encode(), secret)
    try:
        return json.loads(done.stdout.decode()) if done.returncode == 0 else None
    except (UnicodeDecodeError, ValueError):
        return None


def start_app_and_load_page(stored: str, data: Path) -> str:
    """The app's side of a page load: its key (app/ui.py), then identity.resolve on what the browser sends."""
    return identity.resolve(browser_reads(stored, identity.browser_secret(str(data), env={})))[1]


@pytest.fixture
def anonymous_history(tmp_path):
    """An anonymous browser's history, snapshotted; then the Space's disk is wiped (a restart on a fresh one)."""
    db, data, remote = tmp_path / "data" / "studio.db", tmp_path / "data", tmp_path / "remote"
    with Store(str(db), str(data)) as store:
        secret = identity.browser_secret(str(data), env={})
        browser_id, user = identity.resolve(None)  # first visit
        stored = browser_stores(browser_id, secret)
        assert start_app_and_load_page(stored, data) == user  # a reload before the restart
        first = store.start_chain(user, noise(1), instruction="What if it rained?", output_image=noise(2), seed=1,
                                  settings={}, preset="tiny", checkpoint_hash="h", timings={}, details={})
        store.add_step(user, first.chain_id, first.id, input_image=store.get_step(user, first.id).output_image,
                       instruction="And then?", output_image=noise(3), seed=2, settings={}, preset="tiny",
                       checkpoint_hash="h", timings={}, details={})
        edit(store, None, None, 5)  # someone else's chain (test_snapshots.USER)
    assert Snapshotter(FolderRemote(str(remote)), str(db), str(data)).snapshot()
    shutil.rmtree(data)
    return db, data, remote, stored, user, first.chain_id


def test_same_browser_value_finds_its_history_after_a_restore(anonymous_history):
    db, data, remote, stored, user, chain_id = anonymous_history
    assert Snapshotter(FolderRemote(str(remote)), str(db), str(data)).restore_if_missing()
    resolved = start_app_and_load_page(stored, data)
    assert resolved == user
    with Store(str(db), str(data)) as store:
        assert [c.id for c in store.list_chains(resolved)] == [chain_id]
        assert [s.instruction for s in store.get_chain(resolved, chain_id).steps] == ["What if it rained?", "And then?"]


def test_without_the_key_the_same_browser_is_a_stranger(anonymous_history):
    """The failure this guards against: a history restored without its key is unreachable to its owner."""
    db, data, remote, stored, user, chain_id = anonymous_history
    for key in remote.rglob("*.secret"):
        key.unlink()
    assert Snapshotter(FolderRemote(str(remote)), str(db), str(data)).restore_if_missing()
    resolved = start_app_and_load_page(stored, data)
    assert resolved != user and uuid.UUID(resolved)
    with Store(str(db), str(data)) as store:
        assert store.list_chains(resolved) == [] and [c.id for c in store.list_chains(user)] == [chain_id]


def test_space_secret_takes_precedence(tmp_path):
    given = "a-space-secret-0123456789abcdef"
    assert identity.browser_secret(str(tmp_path), env={identity.SECRET_ENV: f"  {given}\n"}) == given
    assert not (tmp_path / identity.SECRET_FILE).exists()  # the file is neither written nor read
    stored = browser_stores("c0ffee00-0000-4000-8000-000000000000", given)
    assert browser_reads(stored, identity.browser_secret(str(tmp_path), env={identity.SECRET_ENV: given})) == (
        "c0ffee00-0000-4000-8000-000000000000")
    with pytest.raises(ValueError, match="at least 16") as err:
        identity.browser_secret(str(tmp_path), env={identity.SECRET_ENV: "short-key"})
    assert "short-key" not in str(err.value)
    file_key = identity.browser_secret(str(tmp_path), env={identity.SECRET_ENV: " "})  # blank: the file
    assert file_key == (tmp_path / identity.SECRET_FILE).read_text() and file_key != given
