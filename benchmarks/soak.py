"""Soak: many gradio_client users against a launched app (tiny preset, temp data) for a while; prints a table.

Each user loops: edit (``/edit_image``), sometimes continue the chain, undo, list or reopen its chains. At the
end every acknowledged edit must have its row and image, nobody may see another user's chains, and the
consistency checker must report no orphan rows and no missing files.

    .venv/bin/python benchmarks/soak.py [--users 20] [--seconds 300] [--steps 2]
"""

from __future__ import annotations

import argparse
import os
import random
import socket
import statistics
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

PROMPTS = [
    "What would happen if the ice cube were left in the sun?",
    "Suppose the apple were left on the table for a month.",
    "Imagine night falls over the scene.",
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--users", type=int, default=20)
    ap.add_argument("--seconds", type=float, default=300)
    ap.add_argument("--steps", type=int, default=2, help="denoising steps per edit")
    args = ap.parse_args(argv)

    from gradio_client import Client, handle_file
    from gradio_client.exceptions import AppError

    from app import consistency
    from app.engine import Engine
    from app.settings import Settings
    from app.store import Store
    from app.ui import create_app, launch_options, queue_options

    data_dir = tempfile.mkdtemp(prefix="soak-")
    settings = Settings(preset="tiny", data_dir=data_dir, port=free_port(), examples=False)
    store = Store(settings.db_path, settings.data_dir)
    engine = Engine(settings)
    engine.load()
    image = os.path.join(data_dir, "scene.png")
    engine.example_images()[0][0].resize((128, 128)).save(image)
    demo = create_app(engine, store)
    demo.queue(**queue_options(settings)).launch(**launch_options(settings, store, prevent_thread_lock=True,
                                                                  quiet=True))
    url = f"http://127.0.0.1:{settings.port}/"
    deadline = time.monotonic() + args.seconds
    acknowledged: dict[str, list[str]] = {}
    latencies: dict[str, list[float]] = {}
    outcomes: Counter[str] = Counter()
    lock = threading.Lock()

    def record(kind: str, seconds: float | None, outcome: str) -> None:
        with lock:
            outcomes[f"{kind}: {outcome}"] += 1
            if seconds is not None:
                latencies.setdefault(kind, []).append(seconds)

    def user(i: int) -> None:
        rng = random.Random(i)
        client = Client(url, verbose=False, download_files=False)
        uid, _ = client.predict(None, api_name="/identify")
        mine = acknowledged.setdefault(uid, [])
        while time.monotonic() < deadline:
            action = rng.choices(["edit", "continue", "undo", "list"], weights=[6, 2, 1, 1])[0]
            start = time.perf_counter()
            try:
                if action == "edit":
                    _png, details = client.predict(
                        handle_file(image), rng.choice(PROMPTS), args.steps, 7.5, 1.5, rng.randrange(1000), False,
                        "EulerAncestralDiscreteScheduler", api_name="/edit_image")
                    with lock:
                        mine.append(details["step_id"])
                elif action == "continue":
                    client.predict(api_name="/continue_chain")
                elif action == "undo":  # the undone step is no longer expected in the history
                    client.predict(api_name="/undo")
                    live = {s.id for c in store.list_chains(uid, limit=1000)
                            for s in store.get_chain(uid, c.id, details=False).steps}
                    with lock:
                        mine[:] = [s for s in mine if s in live]
                else:
                    client.predict("", api_name="/list_chains")
                record(action, time.perf_counter() - start, "ok")
            except AppError as err:
                record(action, None, "refused (queue full)" if "queue" in str(err).lower() else f"error: {err}"[:80])

    threads = [threading.Thread(target=user, args=(i,), daemon=True) for i in range(args.users)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    lost = 0
    for uid, steps in acknowledged.items():
        for step_id in steps:
            try:
                step = store.get_step(uid, step_id)
                lost += not os.path.isfile(store.image_path(step.output_image))
            except Exception:
                lost += 1
    chains_of = {uid: {c.id for c in store.list_chains(uid, limit=1000)} for uid in acknowledged}
    leaks = sum(1 for a in chains_of for b in chains_of if a != b and chains_of[a] & chains_of[b])
    report = consistency.check(store)
    demo.close()
    store.close()

    print(f"\n{args.users} users for {wall:.0f} s, {args.steps} denoising steps per edit (tiny preset, CPU)\n")
    print(f"{'request':<10} {'n ok':>6} {'median ms':>10} {'p90 ms':>8}")
    for kind, values in sorted(latencies.items()):
        ordered = sorted(values)
        p90 = ordered[min(len(ordered) - 1, round(0.9 * (len(ordered) - 1)))]
        print(f"{kind:<10} {len(values):>6} {1000 * statistics.median(values):>10.0f} {1000 * p90:>8.0f}")
    print("\noutcomes:")
    for name, n in sorted(outcomes.items()):
        print(f"  {name}: {n}")
    held = sum(len(v) for v in acknowledged.values())
    print(f"\nacknowledged edits held: {held}, rows or images lost: {lost}, cross-user leaks: {leaks}, "
          f"consistency ok: {report['ok']} (orphan steps {len(report['orphan_steps'])}, "
          f"missing files {len(report['missing_files'])})")
    return 0 if lost == 0 and leaks == 0 and report["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
