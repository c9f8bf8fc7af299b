"""History snapshots: round trip, consistency under writes, bad snapshots skipped, retention, Hub dataset remote."""

from __future__ import annotations

import hashlib
import io
import os
import shutil
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import PIL.Image
import pytest

from app import identity, snapshots
from app.settings import Settings
from app.snapshots import FolderRemote, HubDatasetRemote, SnapshotError, Snapshotter
from app.store import Store

USER = "user-1"


def noise(seed: int, size: int = 8) -> PIL.Image.Image:
    return PIL.Image.fromarray(np.random.default_rng(seed).integers(0, 256, (size, size, 3), dtype=np.uint8))


def edit(store: Store, chain_id: str | None, parent: str | None, seed: int):
    """A first step (new chain) when ``chain_id`` is None, else a step on ``parent``'s output."""
    fields = dict(instruction=f"What if {seed}?", output_image=noise(seed + 1000), seed=seed, settings={"steps": 4},
                  preset="tiny", checkpoint_hash="random-tiny", timings={"total": 0.1}, details={"n": seed})
    if chain_id is None:
        return store.start_chain(USER, noise(seed), **fields)
    return store.add_step(USER, chain_id, parent, input_image=store.get_step(USER, parent).output_image, **fields)


def history(store: Store) -> list[tuple[str, list[tuple[str, str, str, str]]]]:
    out = []
    for c in sorted(store.list_chains(USER), key=lambda c: c.id):
        tree = store.get_chain(USER, c.id)
        out.append((c.title, [(s.id, s.instruction, s.input_image, s.output_image) for s in tree.steps]))
    return out


def wipe(db: Path, data: Path) -> None:
    for suffix in ("", "-wal", "-shm"):
        Path(f"{db}{suffix}").unlink(missing_ok=True)
    shutil.rmtree(data / "images")
    shutil.rmtree(data / "rating-images", ignore_errors=True)


def rating_image(data: Path, seed: int) -> str:
    """A file as app.ratings_store writes them: rating-images/<sha[:2]>/<sha>.png (never garbage-collected)."""
    buf = io.BytesIO()
    noise(seed).save(buf, format="PNG")
    sha = hashlib.sha256(buf.getvalue()).hexdigest()
    rel = f"rating-images/{sha[:2]}/{sha}.png"
    (data / rel).parent.mkdir(parents=True, exist_ok=True)
    (data / rel).write_bytes(buf.getvalue())
    return rel


@pytest.fixture
def paths(tmp_path):
    return tmp_path / "data" / "studio.db", tmp_path / "data", tmp_path / "remote"


def test_round_trip(paths):
    db, data, remote_dir = paths
    with Store(str(db), str(data)) as store:
        first = edit(store, None, None, 1)
        second = edit(store, first.chain_id, first.id, 2)
        edit(store, first.chain_id, second.id, 3)
        edit(store, None, None, 4)
        before = history(store)
        pixels = {s[3]: np.asarray(store.load_image(s[3])) for _, steps in before for s in steps}
    rated = rating_image(data, 7)
    rated_bytes = (data / rated).read_bytes()
    snap = Snapshotter(FolderRemote(str(remote_dir)), str(db), str(data))
    name = snap.snapshot()
    assert name and name.startswith("db/") and snap.snapshot() is None  # unchanged: nothing uploaded
    wipe(db, data)
    restored = Snapshotter(FolderRemote(str(remote_dir)), str(db), str(data))
    assert restored.restore_if_missing() == name
    assert restored.restore_if_missing() is None  # the database exists now: never overwritten
    with Store(str(db), str(data)) as store:
        assert history(store) == before and len(before) == 2 and len(before[0][1]) + len(before[1][1]) == 4
        for rel, arr in pixels.items():
            assert np.array_equal(np.asarray(store.load_image(rel)), arr)
    assert (data / rated).read_bytes() == rated_bytes
    assert not [p for p in data.rglob("*") if ".tmp-" in p.name]


def test_no_remote_snapshot_starts_empty(paths):
    db, data, remote_dir = paths
    assert Snapshotter(FolderRemote(str(remote_dir)), str(db), str(data)).restore_if_missing() is None
    assert not db.exists()


class RecordingRemote(FolderRemote):
    def __init__(self, root: str) -> None:
        super().__init__(root)
        self.puts: list[tuple[list[str], list[str]]] = []

    def put(self, files, delete=(), message=""):
        self.puts.append((sorted(files), list(delete)))
        super().put(files, delete, message)


def test_images_are_incremental_and_retention_keeps_n(paths):
    db, data, remote_dir = paths
    remote = RecordingRemote(str(remote_dir))
    snap = Snapshotter(remote, str(db), str(data), keep=2)
    names = []
    with Store(str(db), str(data)) as store:
        step = edit(store, None, None, 1)
        names.append(snap.snapshot())
        for seed in (2, 3, 4):
            step = edit(store, step.chain_id, step.id, seed)
            names.append(snap.snapshot())
    assert [len([f for f in files if f.startswith("images/")]) for files, _ in remote.puts] == [2, 1, 1, 1]
    assert remote.puts[2][1] == [names[0]] and remote.puts[3][1] == [names[1]]
    assert [f for f in remote.list_files() if f.startswith("db/")] == names[-2:]
    wipe(db, data)
    assert Snapshotter(remote, str(db), str(data)).restore_if_missing() == names[-1]
    with Store(str(db), str(data)) as store:
        assert len(store.get_chain(USER, step.chain_id).steps) == 4


def test_bad_snapshots_are_skipped_for_an_older_good_one(paths, caplog):
    db, data, remote_dir = paths
    with Store(str(db), str(data)) as store:
        edit(store, None, None, 1)
        before = history(store)
    good = Snapshotter(FolderRemote(str(remote_dir)), str(db), str(data)).snapshot()
    blob = (remote_dir / good).read_bytes()
    # newer but partial: its content no longer matches the hash in its name
    (remote_dir / "db" / f"29990101T000000000000Z-{hashlib.sha256(blob).hexdigest()[:16]}.sqlite").write_bytes(
        blob[: len(blob) // 2])
    # newer, hash right, the steps table's root page garbled: fails integrity_check
    with sqlite3.connect(str(remote_dir / good)) as conn:
        page_size = conn.execute("PRAGMA page_size").fetchone()[0]
        root = conn.execute("SELECT rootpage FROM sqlite_master WHERE name = 'steps'").fetchone()[0]
    garbled = bytearray(blob)
    garbled[(root - 1) * page_size: (root - 1) * page_size + 64] = b"\xff" * 64
    sha = hashlib.sha256(garbled).hexdigest()[:16]
    (remote_dir / "db" / f"29990102T000000000000Z-{sha}.sqlite").write_bytes(bytes(garbled))
    # an interrupted upload is never even listed
    (remote_dir / "db" / ".tmp-abc").write_bytes(blob[:100])
    wipe(db, data)
    assert Snapshotter(FolderRemote(str(remote_dir)), str(db), str(data)).restore_if_missing() == good
    skipped = [r.getMessage() for r in caplog.records if "skipping snapshot" in r.getMessage()]
    assert len(skipped) == 2 and "hash" in skipped[1] and "malformed" in skipped[0]
    with Store(str(db), str(data)) as store:
        assert history(store) == before
    assert sorted(p.name for p in db.parent.iterdir() if ".tmp-" in p.name) == []


def test_only_bad_snapshots_refuse_to_start_empty(paths):
    db, data, remote_dir = paths
    (remote_dir / "db").mkdir(parents=True)
    (remote_dir / "db" / "29990101T000000000000Z-0123456789abcdef.sqlite").write_bytes(b"not a database")
    with pytest.raises(SnapshotError, match="passed verification"):
        Snapshotter(FolderRemote(str(remote_dir)), str(db), str(data)).restore_if_missing()
    assert not db.exists()


def test_snapshot_while_another_thread_writes_is_consistent(paths):
    db, data, remote_dir = paths
    remote = FolderRemote(str(remote_dir))
    stop, errors = threading.Event(), []
    with Store(str(db), str(data)) as store:
        first = edit(store, None, None, 0)

        def writer() -> None:
            step, seed = first, 1
            try:
                while not stop.is_set():
                    step = edit(store, step.chain_id, step.id, seed)
                    seed += 1
                    if seed % 5 == 0:  # also deletes (and garbage-collects images) now and then
                        store.delete_chain(USER, edit(store, None, None, 10_000 + seed).chain_id)
            except Exception as err:  # surfaced by the assertion below
                errors.append(err)

        thread = threading.Thread(target=writer)
        thread.start()
        snap = Snapshotter(remote, str(db), str(data), keep=10)
        names = []
        try:
            for _ in range(4):
                time.sleep(0.05)
                names.append(snap.snapshot())
        finally:
            stop.set()
            thread.join()
    assert not errors and len({n for n in names if n}) >= 3
    in_remote = set(remote.list_files())
    for name in filter(None, names):
        path = str(remote_dir / name)
        snapshots._verify_db(path)  # integrity_check ok
        assert snapshots._referenced_images(path) <= in_remote  # every image the snapshot refers to was uploaded
        with sqlite3.connect(path) as conn:
            assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "delete"


class FakeHubApi:
    """The HfApi methods HubDatasetRemote uses, over an in-memory repo."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.commits: list[tuple[str, list[Any], str]] = []
        self.created: list[tuple[str, dict[str, Any]]] = []

    def create_repo(self, repo_id: str, **kwargs: Any) -> None:
        self.created.append((repo_id, kwargs))

    def list_repo_files(self, repo_id: str, *, repo_type: str) -> list[str]:
        assert repo_type == "dataset"
        return list(self.files)

    def create_commit(self, repo_id: str, operations: list[Any], *, commit_message: str, repo_type: str) -> None:
        assert repo_type == "dataset"
        for op in operations:
            if type(op).__name__ == "CommitOperationAdd":
                self.files[op.path_in_repo] = Path(op.path_or_fileobj).read_bytes()
            else:
                del self.files[op.path_in_repo]
        self.commits.append((repo_id, operations, commit_message))

    def hf_hub_download(self, repo_id: str, filename: str, *, repo_type: str, local_dir: str) -> str:
        path = Path(local_dir, filename)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(self.files[filename])
        return str(path)


def test_hub_dataset_remote_with_a_fake_api(paths):
    db, data, _ = paths
    api = FakeHubApi()
    snap = Snapshotter(HubDatasetRemote("alice/history", api), str(db), str(data), keep=1)
    with Store(str(db), str(data)) as store:
        step = edit(store, None, None, 1)
        first = snap.snapshot()
        edit(store, step.chain_id, step.id, 2)
        second = snap.snapshot()
        before = history(store)
    assert api.created == [("alice/history", {"repo_type": "dataset", "private": True, "exist_ok": True})]
    assert len(api.commits) == 2  # one commit per snapshot: database, new images and deletions together
    assert sorted(op.path_in_repo for op in api.commits[1][1]) == sorted([second, first, *(
        f for f in api.files if f.startswith("images/") and f not in {o.path_in_repo for o in api.commits[0][1]})])
    assert [f for f in api.files if f.startswith("db/")] == [second]
    wipe(db, data)
    assert Snapshotter(HubDatasetRemote("alice/history", api), str(db), str(data)).restore_if_missing() == second
    with Store(str(db), str(data)) as store:
        assert history(store) == before


def test_periodic_thread_and_final_snapshot(paths):
    db, data, remote_dir = paths
    remote = FolderRemote(str(remote_dir))
    with Store(str(db), str(data)) as store:
        snap = Snapshotter(remote, str(db), str(data), every_s=0.05)
        step = edit(store, None, None, 1)
        snap.start()
        deadline = time.monotonic() + 5
        while not any(f.startswith("db/") for f in remote.list_files()) and time.monotonic() < deadline:
            time.sleep(0.02)
        edit(store, step.chain_id, step.id, 2)
        snap.stop()  # joins the thread, then the final snapshot
    newest = max(f for f in remote.list_files() if f.startswith("db/"))
    assert len(snapshots._referenced_images(str(remote_dir / newest))) == 3


def test_settings_hook(tmp_path):
    assert snapshots.snapshotter_from_settings(Settings(data_dir=str(tmp_path))) is None
    s = Settings.from_env_and_args([], env={"REASONBRAIN_DATA_DIR": str(tmp_path),
                                            "REASONBRAIN_SNAPSHOT_DIR": str(tmp_path / "r"),
                                            "REASONBRAIN_SNAPSHOT_EVERY_S": "30", "REASONBRAIN_SNAPSHOT_KEEP": "3"})
    snap = snapshots.snapshotter_from_settings(s)
    assert isinstance(snap.remote, FolderRemote) and (snap.every_s, snap.keep) == (30, 3)
    assert snap.db_path == os.path.join(str(tmp_path), "studio.db")
    hub = snapshots.snapshotter_from_settings(Settings(data_dir=str(tmp_path), snapshot_repo="a/b"), FakeHubApi())
    assert isinstance(hub.remote, HubDatasetRemote) and hub.remote.repo_id == "a/b"
    with pytest.raises(ValueError, match="not both"):
        Settings(data_dir=str(tmp_path), snapshot_dir="x", snapshot_repo="a/b")
    with pytest.raises(ValueError, match="snapshot_every_s"):
        Settings.from_env_and_args(["--snapshot-every-s", "-1"], env={})


def test_app_refuses_to_start_when_restore_fails(tmp_path, capsys):
    from app.__main__ import main

    remote = tmp_path / "remote" / "db"
    remote.mkdir(parents=True)
    (remote / "29990101T000000000000Z-0123456789abcdef.sqlite").write_bytes(b"garbage")
    assert main(["--data-dir", str(tmp_path / "data"), "--snapshot-dir", str(tmp_path / "remote")]) == 2
    assert "could not restore" in capsys.readouterr().err
    assert not (tmp_path / "data" / "studio.db").exists()


def test_rating_images_folder_matches_the_ratings_store():
    ratings_store = pytest.importorskip("app.ratings_store")
    assert snapshots.RATING_IMAGES_DIR == ratings_store.IMAGES_DIR


class FlakyRemote(FolderRemote):
    """Image downloads fail the way a network error would (not an OSError)."""

    def get(self, path, dest):
        if path.startswith("images/"):
            raise RuntimeError("connection reset")
        super().get(path, dest)


def test_interrupted_restore_leaves_no_database_so_the_next_start_retries(paths):
    db, data, remote_dir = paths
    with Store(str(db), str(data)) as store:
        edit(store, None, None, 1)
    name = Snapshotter(FolderRemote(str(remote_dir)), str(db), str(data)).snapshot()
    wipe(db, data)
    with pytest.raises(RuntimeError, match="connection reset"):
        Snapshotter(FlakyRemote(str(remote_dir)), str(db), str(data)).restore_if_missing()
    assert not db.exists()
    assert Snapshotter(FolderRemote(str(remote_dir)), str(db), str(data)).restore_if_missing() == name
    assert len(list((data / "images").rglob("*.png"))) == 2


# --------------------------------------------------------------------------------------- browser-state secret
def secret_of(data: Path) -> str:
    return (data / identity.SECRET_FILE).read_text(encoding="utf-8")


def mode_of(path: Path) -> str:
    return oct(path.stat().st_mode & 0o777)


def test_browser_secret_travels_with_each_snapshot_and_comes_back_0600(paths, caplog):
    db, data, remote_dir = paths
    with Store(str(db), str(data)) as store:
        edit(store, None, None, 1)
    secret = identity.browser_secret(str(data), env={})
    caplog.set_level("DEBUG")
    name = Snapshotter(FolderRemote(str(remote_dir)), str(db), str(data)).snapshot()
    paired = remote_dir / name.replace(".sqlite", ".secret")
    assert paired.read_text(encoding="utf-8") == secret and mode_of(paired) == "0o600"
    shutil.rmtree(data)  # a new, empty disk
    assert Snapshotter(FolderRemote(str(remote_dir)), str(db), str(data)).restore_if_missing() == name
    assert secret_of(data) == secret and mode_of(data / identity.SECRET_FILE) == "0o600"
    assert identity.browser_secret(str(data), env={}) == secret
    assert secret not in caplog.text and "restored the browser-state secret" in caplog.text
    assert not [p for p in data.rglob("*") if ".tmp-" in p.name]


def test_restore_rule_for_the_secret(paths):
    db, data, remote_dir = paths
    remote = FolderRemote(str(remote_dir))
    with Store(str(db), str(data)) as store:
        edit(store, None, None, 1)
    snapshot_secret = identity.browser_secret(str(data), env={})
    name = Snapshotter(remote, str(db), str(data)).snapshot()
    # the database is here: a local key is never replaced (browsers hold values encrypted with it)
    identity.write_secret(str(data), "another-local-key-0123456789")
    assert Snapshotter(remote, str(db), str(data)).restore_if_missing() is None
    assert secret_of(data) == "another-local-key-0123456789"
    # the database is here but its key was lost: the newest snapshot's key comes back
    (data / identity.SECRET_FILE).unlink()
    assert Snapshotter(remote, str(db), str(data)).restore_if_missing() is None
    assert secret_of(data) == snapshot_secret
    # full restore (the database is gone, so is the history a local key belonged to): the snapshot's key wins
    identity.write_secret(str(data), "a-key-of-a-lost-history-0123")
    wipe(db, data)
    assert Snapshotter(remote, str(db), str(data)).restore_if_missing() == name
    assert secret_of(data) == snapshot_secret


def test_secret_pairs_follow_retention_and_reach_an_older_snapshot(paths):
    db, data, remote_dir = paths
    remote = RecordingRemote(str(remote_dir))
    with Store(str(db), str(data)) as store:
        step = edit(store, None, None, 1)
        first = Snapshotter(remote, str(db), str(data), keep=2).snapshot()  # taken before the key existed
        assert not [f for f in remote.list_files() if f.endswith(".secret")]
        secret = identity.browser_secret(str(data), env={})
        snap = Snapshotter(remote, str(db), str(data), keep=2)  # a restart: the database has not changed
        assert snap.snapshot() is None
        assert remote.puts[-1] == ([first.replace(".sqlite", ".secret")], [])
        names = [first]
        for seed in (2, 3):
            step = edit(store, step.chain_id, step.id, seed)
            names.append(snap.snapshot())
    kept = sorted(f for f in remote.list_files() if f.startswith("db/"))
    assert kept == sorted([*names[-2:], *(n.replace(".sqlite", ".secret") for n in names[-2:])])
    assert all((remote_dir / f).read_text() == secret for f in kept if f.endswith(".secret"))


def test_a_bad_remote_secret_is_skipped(paths, caplog):
    db, data, remote_dir = paths
    with Store(str(db), str(data)) as store:
        edit(store, None, None, 1)
    identity.browser_secret(str(data), env={})
    name = Snapshotter(FolderRemote(str(remote_dir)), str(db), str(data)).snapshot()
    (remote_dir / name.replace(".sqlite", ".secret")).write_text("short")
    shutil.rmtree(data)
    assert Snapshotter(FolderRemote(str(remote_dir)), str(db), str(data)).restore_if_missing() == name
    assert not (data / identity.SECRET_FILE).exists() and "not a browser-state secret" in caplog.text


class VisibleHubApi(FakeHubApi):
    def __init__(self, private: bool) -> None:
        super().__init__()
        self.private = private

    def repo_info(self, repo_id: str, *, repo_type: str):
        assert repo_type == "dataset"
        return type("DatasetInfo", (), {"private": self.private})()


@pytest.mark.parametrize("private", [True, False])
def test_hub_dataset_gets_the_secret_only_when_private(paths, caplog, private):
    db, data, _ = paths
    api = VisibleHubApi(private)
    with Store(str(db), str(data)) as store:
        step = edit(store, None, None, 1)
        secret = identity.browser_secret(str(data), env={})
        snap = Snapshotter(HubDatasetRemote("alice/history", api), str(db), str(data))
        name = snap.snapshot()
        edit(store, step.chain_id, step.id, 2)
        snap.snapshot()
    secrets_in_repo = [f for f in api.files if f.endswith(".secret")]
    if private:
        assert len(secrets_in_repo) == 2 and api.files[name.replace(".sqlite", ".secret")] == secret.encode()
        assert len(api.commits) == 2  # in the snapshot's own commit
    else:
        assert secrets_in_repo == [] and caplog.text.count("is not private") == 1
    assert secret not in caplog.text


class UnreachableRemote(FolderRemote):
    def list_files(self):
        raise RuntimeError("connection refused")


def test_a_local_history_is_served_when_its_lost_key_cannot_be_fetched(paths, caplog):
    db, data, remote_dir = paths
    with Store(str(db), str(data)) as store:
        edit(store, None, None, 1)
    assert Snapshotter(UnreachableRemote(str(remote_dir)), str(db), str(data)).restore_if_missing() is None
    assert "browser-state secret not restored (connection refused)" in caplog.text
