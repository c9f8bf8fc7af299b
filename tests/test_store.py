"""History store: ownership isolation, the chain tree, undo, image GC, migrations, concurrency, crash safety."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from datetime import timezone
from pathlib import Path

import numpy as np
import PIL.Image
import pytest

from app import consistency
from app.store import NotFound, Store

REPO = Path(__file__).resolve().parent.parent


def img(value: int, size: tuple[int, int] = (16, 12)) -> PIL.Image.Image:
    return PIL.Image.new("RGB", size, (value % 256, (value * 7) % 256, (value * 13) % 256))


def noise(seed: int, size: int = 16) -> PIL.Image.Image:
    return PIL.Image.fromarray(np.random.default_rng(seed).integers(0, 256, (size, size, 3), dtype=np.uint8))


@pytest.fixture
def store(tmp_path):
    s = Store(str(tmp_path / "studio.db"), str(tmp_path / "data"))
    yield s
    s.close()


def add(store: Store, user: str, chain_id: str, parent: str | None, instruction: str, out: PIL.Image.Image,
        *, input_image=None, seed: int = 0):
    if input_image is None:
        input_image = store.get_step(user, parent).output_image if parent else store.get_chain(user, chain_id).chain.source_image
    return store.add_step(
        user, chain_id, parent, instruction=instruction, input_image=input_image, output_image=out, seed=seed,
        settings={"steps": 4, "guidance_scale": 7.5, "scheduler": "DDIMScheduler"}, preset="tiny",
        checkpoint_hash="random-tiny", timings={"total": 0.5}, details={"referenced_object": {"name": "apple"}},
    )


# --- images ------------------------------------------------------------------------------------------------------
def test_content_addressing_is_idempotent(store, tmp_path):
    a = store.save_image(img(1))
    b = store.save_image(img(1).convert("RGB"))
    with_meta = img(1)
    with_meta.info["comment"] = "other metadata, same pixels"
    assert store.save_image(with_meta) == a == b
    assert a.startswith("images/") and a.endswith(".png")
    sha = a.split("/")[-1][: -len(".png")]
    assert a.split("/")[1] == sha[:2] and len(sha) == 64
    assert store.save_image(img(2)) != a
    assert np.array_equal(np.asarray(store.load_image(a)), np.asarray(img(1)))
    files = [p for p in store.image_files() if not p.split("/")[-1].startswith(".")]
    assert sorted(files) == sorted({a, store.save_image(img(2))})
    assert os.path.isfile(os.path.join(tmp_path / "data", a))


@pytest.mark.parametrize("rel", [
    "../x", "/etc/passwd", "images/../../studio.db", "images/../studio.db", "images/./ab/x.png", "", "images",
    "images//x.png", "other/ab/x.png", "images\\..\\studio.db",
])
def test_image_path_rejects_escapes(store, rel):
    with pytest.raises(ValueError):
        store.image_path(rel)


def test_image_path_rejects_symlinks_out(store, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.png").write_bytes(b"x")
    os.symlink(outside, os.path.join(store.images_dir, "zz"))
    with pytest.raises(ValueError, match="symlink"):
        store.image_path("images/zz/secret.png")
    ok = store.save_image(img(3))
    assert store.image_path(ok) == os.path.join(store.data_dir, *ok.split("/"))


# --- chains and steps --------------------------------------------------------------------------------------------
def test_chain_lifecycle_titles_and_summary(store):
    chain = store.create_chain("alice", img(1))
    assert chain.title == "Untitled chain" and chain.num_steps == 0 and chain.last_output is None
    assert chain.created_at.tzinfo == timezone.utc and not chain.is_demo
    long = "What would happen if the ice cube were left in the sun on a very hot afternoon in July?"
    s1 = add(store, "alice", chain.id, None, long, img(2))
    assert s1.position == 1 and s1.parent_id is None and s1.input_image == chain.source_image
    assert s1.settings["scheduler"] == "DDIMScheduler" and s1.details["referenced_object"]["name"] == "apple"
    tree = store.get_chain("alice", chain.id)
    assert tree.chain.title == "What would happen if the ice cube were left in the sun on a…"  # whole words
    assert tree.chain.num_steps == 1
    assert tree.chain.last_output == s1.output_image and tree.chain.last_instruction == long
    assert tree.chain.updated_at >= chain.updated_at

    named = store.create_chain("alice", img(1), "  My chain  ")
    add(store, "alice", named.id, None, "What if it rained?", img(3))
    assert store.get_chain("alice", named.id).chain.title == "My chain"  # an explicit title is kept
    assert store.get_step("alice", s1.id) == s1
    assert store.count_steps("alice") == 2
    assert [c.id for c in store.list_chains("alice")] == [named.id, chain.id]  # most recently updated first
    assert [c.id for c in store.list_chains("alice", limit=1, offset=1)] == [chain.id]


def test_branching_tree_path_and_leaves(store):
    chain = store.create_chain("u", img(1))
    a = add(store, "u", chain.id, None, "What if the apple rotted?", img(2))
    b1 = add(store, "u", chain.id, a.id, "What if it then dried up?", img(3))
    b2 = add(store, "u", chain.id, a.id, "What if someone ate it instead?", img(4))
    c = add(store, "u", chain.id, b1.id, "What if it turned to dust?", img(5))
    assert (b1.position, b2.position, c.position) == (2, 2, 3)
    assert b1.input_image == a.output_image
    tree = store.get_chain("u", chain.id)
    assert [s.id for s in tree.steps] == [a.id, b1.id, b2.id, c.id]  # (position, created_at)
    assert [s.id for s in tree.children(None)] == [a.id]
    assert {s.id for s in tree.children(a.id)} == {b1.id, b2.id}
    assert [s.id for s in tree.path_to(c.id)] == [a.id, b1.id, c.id]
    assert [s.id for s in tree.path_to(a.id)] == [a.id]
    assert {s.id for s in tree.leaves()} == {b2.id, c.id}
    with pytest.raises(NotFound):
        tree.path_to("nope")
    # the tree's summary (from its loaded steps) is what the list's SQL summary says: the newest step, a branch
    listed = next(ch for ch in store.list_chains("u") if ch.id == chain.id)
    assert (tree.chain.num_steps, tree.chain.last_output, tree.chain.last_instruction) == \
        (listed.num_steps, listed.last_output, listed.last_instruction) == (4, c.output_image, c.instruction)
    newest = add(store, "u", chain.id, a.id, "What if it were painted blue?", img(6))  # a later branch off a
    assert store.get_chain("u", chain.id, details=False).chain.last_instruction == newest.instruction
    store.require_chain("u", chain.id)
    for user, chain_id in (("intruder", chain.id), ("u", "no-such-chain")):
        with pytest.raises(NotFound):
            store.require_chain(user, chain_id)
    # a parent from another chain is refused
    other = store.create_chain("u", img(9))
    with pytest.raises(ValueError, match="another chain"):
        add(store, "u", other.id, a.id, "What if?", img(6), input_image=a.output_image)
    with pytest.raises(NotFound):
        add(store, "u", chain.id, "missing", "What if?", img(6), input_image=a.output_image)


def test_undo_semantics(store):
    chain = store.create_chain("u", img(1))
    a = add(store, "u", chain.id, None, "What if the apple rotted?", img(2))
    b = add(store, "u", chain.id, a.id, "What if it dried up?", img(3))
    with pytest.raises(ValueError, match="undo those first"):
        store.undo_step("u", a.id)
    parent = store.undo_step("u", b.id)
    assert parent is not None and parent.id == a.id
    assert not os.path.exists(store.image_path(b.output_image))  # its output is no longer referenced
    assert store.undo_step("u", a.id) is None
    assert store.get_chain("u", chain.id).steps == []
    assert os.path.exists(store.image_path(chain.source_image))  # still the chain's source
    with pytest.raises(NotFound):
        store.get_step("u", a.id)


def test_rename_validation(store):
    chain = store.create_chain("u", img(1))
    assert store.rename_chain("u", chain.id, "  Melting ice  ").title == "Melting ice"
    assert store.rename_chain("u", chain.id, "x" * 200).title == "x" * 200
    for bad in ["", "   ", "x" * 201]:
        with pytest.raises(ValueError, match="1 to 200"):
            store.rename_chain("u", chain.id, bad)
    with pytest.raises(ValueError):
        store.create_chain("u", img(1), title="   ")
    assert store.get_chain("u", chain.id).chain.title == "x" * 200


def test_delete_cascades_and_collects_images(store):
    shared = img(7)
    keep = store.create_chain("u", shared)
    add(store, "u", keep.id, None, "What if it snowed?", img(8))
    doomed = store.create_chain("u", shared)  # same source image, stored once
    assert doomed.source_image == keep.source_image
    s1 = add(store, "u", doomed.id, None, "What if the apple rotted?", img(20))
    add(store, "u", doomed.id, s1.id, "What if it dried up?", img(21))
    store.delete_chain("u", doomed.id)
    with pytest.raises(NotFound):
        store.get_chain("u", doomed.id)
    with sqlite3.connect(store.db_path) as con:
        assert con.execute("select count(*) from steps where chain_id = ?", (doomed.id,)).fetchone()[0] == 0
    assert os.path.exists(store.image_path(keep.source_image))  # shared: still referenced by `keep`
    assert not os.path.exists(store.image_path(s1.output_image))
    report = consistency.check(store)
    assert report["ok"] and report["unreferenced_files"] == []


def test_ownership_isolation(store):
    a_chain = store.create_chain("alice", img(1))
    a_step = add(store, "alice", a_chain.id, None, "What if the apple rotted?", img(2))
    b_chain = store.create_chain("bob", img(3))
    assert [c.id for c in store.list_chains("bob")] == [b_chain.id]
    assert store.list_chains("bob", query="apple") == []
    assert store.count_steps("bob") == 0
    for call in [
        lambda: store.get_chain("bob", a_chain.id),
        lambda: store.get_step("bob", a_step.id),
        lambda: store.rename_chain("bob", a_chain.id, "mine"),
        lambda: store.delete_chain("bob", a_chain.id),
        lambda: store.undo_step("bob", a_step.id),
        lambda: add(store, "bob", a_chain.id, None, "What if?", img(4), input_image=a_chain.source_image),
        lambda: add(store, "bob", b_chain.id, a_step.id, "What if?", img(4), input_image=b_chain.source_image),
        lambda: store.get_chain("bob", "does-not-exist"),
    ]:
        with pytest.raises(NotFound) as err:
            call()
        assert "alice" not in str(err.value)
    # same message whether the row is someone else's or absent: no existence leak
    with pytest.raises(NotFound) as theirs:
        store.get_chain("bob", a_chain.id)
    with pytest.raises(NotFound) as absent:
        store.get_chain("bob", "0" * 32)
    assert str(theirs.value).replace(a_chain.id, "X") == str(absent.value).replace("0" * 32, "X")
    assert store.get_chain("alice", a_chain.id).chain.title == "What if the apple rotted?"
    assert store.user_ids() == ["alice", "bob"]
    assert not store.has_demo_chains()
    store.create_chain("demo", img(5), "Demo", is_demo=True)
    assert store.has_demo_chains()


def test_query_filters_title_and_instructions_with_like_escaping(store):
    c1 = store.create_chain("u", img(1), "100% melted")
    c2 = store.create_chain("u", img(2), "1000 melted")
    c3 = store.create_chain("u", img(3), "plain")
    add(store, "u", c3.id, None, "What if snake_case names were used?", img(4))
    c4 = store.create_chain("u", img(5), "snakeXcase")
    assert [c.id for c in store.list_chains("u", query="100%")] == [c1.id]
    assert {c.id for c in store.list_chains("u", query="100")} == {c1.id, c2.id}
    assert [c.id for c in store.list_chains("u", query="snake_case")] == [c3.id]  # "_" is literal
    assert [c.id for c in store.list_chains("u", query="SNAKE_CASE")] == [c3.id]  # case-insensitive
    assert {c.id for c in store.list_chains("u", query="snake")} == {c3.id, c4.id}
    assert store.list_chains("u", query="%") == [c for c in store.list_chains("u") if "%" in c.title]
    assert store.list_chains("u", query="\\") == []
    assert len(store.list_chains("u", query="  ")) == 4
    with pytest.raises(ValueError):
        store.list_chains("u", limit=0)


def test_add_step_validation(store):
    chain = store.create_chain("u", img(1))
    with pytest.raises(ValueError):
        add(store, "u", chain.id, None, "   ", img(2))
    with pytest.raises(ValueError, match="not stored"):
        add(store, "u", chain.id, None, "What if?", img(2), input_image="images/ab/" + "ab" * 32 + ".png")
    with pytest.raises(ValueError):
        add(store, "u", chain.id, None, "What if?", img(2), input_image="../studio.db")
    with pytest.raises(ValueError, match="JSON"):
        store.add_step("u", chain.id, None, instruction="What if?", input_image=img(1), output_image=img(2),
                       seed=1, settings={"x": object()}, preset="tiny", checkpoint_hash="h", timings={}, details={})
    for seed in (2**31, -1, True):  # the pipeline's seed range (reasonbrain.seeds)
        with pytest.raises(ValueError, match="seed must be a whole number from 0 to 2147483647"):
            add(store, "u", chain.id, None, "What if?", img(2), input_image=img(1), seed=seed)
    s = store.add_step("u", chain.id, None, instruction="What if?", input_image=img(1), output_image=img(2), seed=1,
                       settings={}, preset="tiny", checkpoint_hash="h", timings={}, details={})
    assert s.input_image == chain.source_image  # same pixels, same file


# --- database mechanics -----------------------------------------------------------------------------------------
def test_migrations_on_fresh_db_and_reopen_is_noop(tmp_path):
    from alembic.script import ScriptDirectory

    from app.store import MIGRATIONS_DIR

    head = ScriptDirectory(str(MIGRATIONS_DIR)).get_current_head()  # every migration applied, the latest last
    db = tmp_path / "fresh.db"
    s = Store(str(db), str(tmp_path / "d"))
    chain = s.create_chain("u", img(1))
    s.close()
    with sqlite3.connect(db) as con:
        assert con.execute("select version_num from alembic_version").fetchall() == [(head,)]
        tables = {r[0] for r in con.execute("select name from sqlite_master where type = 'table'")}
        schema_before = con.execute("select sql from sqlite_master order by name").fetchall()
    assert {"chains", "steps", "alembic_version"} <= tables
    s2 = Store(str(db), str(tmp_path / "d"))
    assert s2.get_chain("u", chain.id).chain.id == chain.id
    s2.close()
    with sqlite3.connect(db) as con:
        assert con.execute("select version_num from alembic_version").fetchall() == [(head,)]
        assert con.execute("select sql from sqlite_master order by name").fetchall() == schema_before


def test_models_match_migration(store):
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from app.store import Base

    with store.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert diff == []


def test_wal_and_foreign_keys_on(store):
    with store.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar().lower() == "wal"
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 5000


def test_concurrent_writers(store):
    """8 threads add steps at once, half of them through a second Store (its own engine and mutex, as another
    process would have): every row lands, nobody sees "database is locked"."""
    chain = store.create_chain("u", img(1))
    other = Store(store.db_path, store.data_dir)
    errors: list[BaseException] = []
    per_thread = 6

    def work(t: int) -> None:
        try:
            parent = None
            s = store if t % 2 else other
            for i in range(per_thread):
                step = add(s, "u", chain.id, parent, f"What if thread {t} step {i}?", noise(t * 100 + i),
                           input_image=chain.source_image)
                parent = step.id
                store.list_chains("u")  # readers interleave with writers
        except BaseException as err:  # collected and re-raised in the main thread
            errors.append(err)

    threads = [threading.Thread(target=work, args=(t,)) for t in range(8)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    other.close()
    assert errors == []
    tree = store.get_chain("u", chain.id)
    assert len(tree.steps) == 8 * per_thread
    assert len(tree.leaves()) == 8 and max(s.position for s in tree.steps) == per_thread
    assert consistency.check(store)["ok"]


# --- crash safety and the consistency checker -------------------------------------------------------------------
WRITER = textwrap.dedent("""
    import sys
    import numpy as np
    import PIL.Image
    from app.store import Store

    store = Store(sys.argv[1], sys.argv[2])
    chain = store.create_chain("u", PIL.Image.new("RGB", (32, 32)))
    parent, i = None, 0
    while True:
        out = PIL.Image.fromarray(np.random.default_rng(i).integers(0, 256, (64, 64, 3), dtype=np.uint8))
        step = store.add_step("u", chain.id, parent, instruction=f"What if {i}?", input_image=chain.source_image,
                              output_image=out, seed=i, settings={}, preset="tiny", checkpoint_hash="h",
                              timings={}, details={})
        parent = step.id if i % 3 else None
        i += 1
        print(step.id, flush=True)
""")


def test_kill_9_leaves_consistent_data(tmp_path):
    db, data = str(tmp_path / "studio.db"), str(tmp_path / "data")
    env = {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    proc = subprocess.Popen([sys.executable, "-c", WRITER, db, data], stdout=subprocess.PIPE, text=True, env=env)
    committed = []
    try:
        deadline = time.monotonic() + 60
        while len(committed) < 25 and time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            committed.append(line.strip())
        time.sleep(0.05)  # land the kill somewhere inside a later write
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        proc.stdout.close()
    assert len(committed) >= 25, "the writer subprocess did not get going"
    assert proc.returncode == -signal.SIGKILL

    # leftovers a crash can produce: an interrupted temp file and an image whose row never committed
    shard = Path(data, "images", "00")
    shard.mkdir(exist_ok=True)
    (shard / ".tmp-interrupted.png").write_bytes(b"partial")
    with Store(db, data) as store:
        orphan_image = store.save_image(noise(12345))
        report = consistency.check(store)
        assert report["ok"], report
        assert report["orphan_steps"] == [] and report["missing_files"] == []
        assert {"images/00/.tmp-interrupted.png", orphan_image} <= set(report["unreferenced_files"])
        steps = {s.id for s in store.get_chain("u", store.list_chains("u")[0].id).steps}
        assert set(committed) <= steps  # everything reported as committed survived

    def cli(*extra):
        return subprocess.run([sys.executable, "-m", "app.consistency", "--db", db, "--data-dir", data, *extra],
                              capture_output=True, text=True, env=env, cwd=REPO)

    result = cli()
    assert result.returncode == 0, result.stderr
    assert "unreferenced image files: " in result.stdout and "--fix" in result.stdout
    result = cli("--fix")
    assert result.returncode == 0, result.stderr
    assert consistency.check((db, data))["unreferenced_files"] == []


def test_consistency_detects_orphans_and_missing_files(store, tmp_path):
    chain = store.create_chain("u", img(1))
    step = add(store, "u", chain.id, None, "What if the apple rotted?", img(2))
    assert consistency.check(store)["ok"]
    os.remove(store.image_path(step.output_image))
    with sqlite3.connect(store.db_path) as con:  # a write that bypassed the foreign keys
        con.execute("PRAGMA foreign_keys=OFF")
        con.execute(
            "insert into steps (id, chain_id, parent_id, position, instruction, input_image, output_image, seed, "
            "settings_json, preset, checkpoint_hash, timings_json, details_json, created_at) values "
            "('orphan', 'nochain', NULL, 1, 'x', ?, ?, 0, '{}', 't', 'h', '{}', '{}', '2026-01-01 00:00:00')",
            (chain.source_image, chain.source_image),
        )
    report = consistency.check((store.db_path, store.data_dir))
    assert not report["ok"]
    assert report["orphan_steps"] == ["orphan"]
    assert [(m["id"], m["column"]) for m in report["missing_files"]] == [(step.id, "output_image")]
    assert consistency.main(["--db", store.db_path, "--data-dir", store.data_dir]) == 1
    assert consistency.main(["--db", str(tmp_path / "absent.db"), "--data-dir", store.data_dir]) == 2


def test_data_dir_behind_a_symlink(tmp_path):
    real = tmp_path / "real"
    real.mkdir()
    os.symlink(real, tmp_path / "link")
    with Store(str(tmp_path / "link" / "studio.db"), str(tmp_path / "link")) as store:
        rel = store.save_image(img(4))
        assert os.path.isfile(store.image_path(rel))
        assert consistency.check(store)["unreferenced_files"] == [rel]


def test_get_chain_without_details_defers_them(tmp_path):
    import PIL.Image

    from app.store import Store

    store = Store(str(tmp_path / "db.sqlite"), str(tmp_path / "data"))
    img = PIL.Image.new("RGB", (8, 8), "red")
    chain = store.create_chain("u", img)
    step = store.add_step("u", chain.id, None, instruction="What if?", input_image=img, output_image=img, seed=1,
                          settings={}, preset="tiny", checkpoint_hash="h", timings={}, details={"big": [1] * 100})
    lean = store.get_chain("u", chain.id, details=False)
    assert lean.steps[0].details is None and lean.steps[0].instruction == "What if?"
    assert store.get_chain("u", chain.id).steps[0].details == {"big": [1] * 100}
    assert store.get_step("u", step.id).details == {"big": [1] * 100}
    store.close()


def test_start_chain_writes_chain_and_first_step_together_or_nothing(store, monkeypatch):
    fields = dict(instruction="What if the ice cube were left in the sun?", output_image=noise(2), seed=5,
                  settings={"steps": 4}, preset="tiny", checkpoint_hash="h", timings={"total": 0.1}, details={})
    step = store.start_chain("u", noise(1), **fields)
    tree = store.get_chain("u", step.chain_id)
    assert [s.id for s in tree.steps] == [step.id] and step.position == 1 and step.parent_id is None
    assert step.input_image == tree.chain.source_image and tree.chain.title.startswith("What if the ice cube")
    assert store.load_image(step.output_image).tobytes() == noise(2).tobytes()

    files = sorted(store.image_files())

    def crash(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(store, "_write_file", crash)
    with pytest.raises(OSError, match="disk full"):
        store.start_chain("u", noise(3), **fields)
    monkeypatch.undo()
    real_insert = store._insert_step

    def crash_after_insert(s, *args, **kwargs):
        real_insert(s, *args, **kwargs)
        raise ValueError("killed mid-write")

    monkeypatch.setattr(store, "_insert_step", crash_after_insert)
    with pytest.raises(ValueError, match="killed mid-write"):
        store.start_chain("u", noise(4), **dict(fields, output_image=noise(5)))
    assert len(store.list_chains("u")) == 1 and store.count_steps("u") == 1
    assert sorted(store.image_files()) == files  # the failed writes' images were removed again
    with pytest.raises(ValueError, match="instruction"):
        store.start_chain("u", noise(3), **dict(fields, instruction="  "))
