"""What the app adds on top of the model, on the tiny preset (random weights, CPU).

1. gradio_client round trip per edit minus the pipeline's own time (``timings["total"]``, the pipeline call's wall
   time): upload, queue, input checks, save to SQLite (fsync'd), the view, the response. Each client keeps its
   session, so after the warm-up edit (a new chain) every timed edit adds a step to that chain. Target: < 150 ms. For the Edit tab's ``/edit``
   event (result slider, reasoning text, regions table, timings, timeline, downloads) and for the lean
   ``/edit_image`` API (edited PNG + step JSON); a trivial gradio app gives the framework's own floor.
   The two reasoning images (attention heatmap, region masks: one PNG per mask) arrive in an unqueued
   follow-up event after the result is on screen; their server time (handler + gradio's postprocess) is
   measured separately, so "result + reasoning images" can be read off the table too.
   gradio_client polls its message queue every 50 ms (``time.sleep(0.05)`` in ``stream_sse_v1plus``), so its
   round trips carry up to 50 ms of waiting that is neither the app's nor the server's; the same calls over
   gradio's plain HTTP API (upload, ``POST /call/<api>``, read the SSE stream: what curl users do) show the
   round trip without it, for the app and for the trivial app. Most of the rest of gradio_client's own cost is
   httpx loading the CA bundle (~33 ms) for each of the ``httpx.Client``s it makes per call (upload, join,
   stream), even for http:// URLs; the trivial app is also timed with ``ssl_verify=False``, which skips that.
2. Opening a chain of 1,000 steps: the History tab's handler (``open_in_editor``: get_chain without the steps'
   details, the shown step's panel, the timeline HTML), and for comparison ``get_chain`` with every step's details
   JSON (what the handler avoids) + ``timeline_html``. Target: < 200 ms.

    .venv/bin/python benchmarks/app_overhead.py [--edits 10] [--chain-steps 1000]
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

USER = "00000000-0000-4000-8000-000000000001"
MELT = "What would happen if the ice cube were left in the sun?"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def stats(values: list[float]) -> tuple[float, float, float]:
    ordered = sorted(values)
    p90 = ordered[min(len(ordered) - 1, round(0.9 * (len(ordered) - 1)))]
    return statistics.mean(values), statistics.median(values), p90


def bench_edits(n_edits: int, data_dir: str) -> list[tuple[str, list[float]]]:
    from gradio_client import Client, handle_file

    from app.engine import Engine
    from app.settings import Settings
    from app.store import Store
    from app.ui import build_app, launch_options, queue_options

    settings = Settings(preset="tiny", data_dir=data_dir, port=free_port(), examples=False)
    store = Store(settings.db_path, settings.data_dir)
    engine = Engine(settings)
    engine.load()
    image = os.path.join(data_dir, "scene.png")
    engine.example_images()[0][0].resize((256, 256)).save(image)
    demo, handles = build_app(engine, store)
    demo.queue(**queue_options(settings)).launch(**launch_options(settings, store, prevent_thread_lock=True,
                                                                  quiet=True))
    rows = []
    try:
        url = f"http://{settings.host}:{settings.port}/"
        cases = (
            ("/edit (Edit tab event, 11 outputs)", "/edit", False),
            ("/edit_image (API: PNG + JSON)", "/edit_image", False),
            ("/edit_image, edited PNG downloaded", "/edit_image", True),
        )
        for label, endpoint, download in cases:
            client = Client(url, verbose=False, download_files=tempfile.mkdtemp() if download else False)
            user, _badge = client.predict(None, api_name="/identify")  # anonymous: user id = browser id
            args = (handle_file(image), MELT, 4, 7.5, 1.5, 0, True, "EulerAncestralDiscreteScheduler")
            client.predict(*args, api_name=endpoint)  # warm-up
            round_trips, pipeline = [], []
            for _ in range(n_edits):
                start = time.perf_counter()
                client.predict(*args, api_name=endpoint)
                round_trips.append(time.perf_counter() - start)
                newest = max(store.get_chain(user, store.list_chains(user, limit=1)[0].id).steps,
                             key=lambda s: s.created_at)
                pipeline.append(float(newest.timings["total"]))
            overhead = [r - p for r, p in zip(round_trips, pipeline)]
            rows += [(f"{label}: round trip", round_trips), (f"{label}: pipeline", pipeline),
                     (f"{label}: app overhead", overhead)]
            if endpoint == "/edit":
                rows.append(("/edit follow-up: reasoning images (handler + postprocess)",
                             bench_reasoning_images(store, user, handles.edit, n_edits)))
        http = HttpApi(url)
        user = http.call("identify", [None])[0]
        settings_args = [MELT, 4, 7.5, 1.5, 0, True, "EulerAncestralDiscreteScheduler"]
        http.call("edit_image", [http.upload(image), *settings_args])
        round_trips, pipeline = [], []
        for _ in range(n_edits):
            start = time.perf_counter()
            http.call("edit_image", [http.upload(image), *settings_args])  # the upload is part of the round trip
            round_trips.append(time.perf_counter() - start)
            newest = max(store.get_chain(user, store.list_chains(user, limit=1)[0].id).steps, key=lambda s: s.created_at)
            pipeline.append(float(newest.timings["total"]))
        label = "/edit_image over the HTTP API (no client polling)"
        rows += [(f"{label}: round trip", round_trips),
                 (f"{label}: app overhead", [r - p for r, p in zip(round_trips, pipeline)])]
    finally:
        demo.close()
        store.close()
    return rows


class HttpApi:
    """gradio's documented HTTP API with httpx: upload files, ``POST /call/<api>``, read the SSE stream."""

    def __init__(self, url: str) -> None:
        import uuid

        import httpx

        self.base = url.rstrip("/") + "/gradio_api"
        self.client = httpx.Client(timeout=120)
        self.session_hash = uuid.uuid4().hex[:12]  # one session: the identify call's user state is kept

    def upload(self, path: str) -> dict:
        with open(path, "rb") as f:
            r = self.client.post(f"{self.base}/upload", files={"files": (os.path.basename(path), f, "image/png")})
        r.raise_for_status()
        return {"path": r.json()[0], "meta": {"_type": "gradio.FileData"}}

    def call(self, api: str, data: list) -> list:
        import json

        r = self.client.post(f"{self.base}/call/{api}", json={"data": data, "session_hash": self.session_hash})
        r.raise_for_status()
        event = None
        with self.client.stream("GET", f"{self.base}/call/{api}/{r.json()['event_id']}") as stream:
            for line in stream.iter_lines():
                if line.startswith("event:"):
                    event = line.split(":", 1)[1].strip()
                elif line.startswith("data:") and event in ("complete", "error"):
                    if event == "error":
                        raise RuntimeError(f"{api} failed: {line[5:]}")
                    return json.loads(line[5:])
        raise RuntimeError(f"{api}: the stream ended without a result")


def bench_reasoning_images(store, user: str, h, n: int) -> list[float]:
    """Server time of the follow-up that renders the heatmap and the region masks for the newest step."""
    from app.tabs import edit

    chain = store.get_chain(user, store.list_chains(user, limit=1)[0].id)
    step = max(chain.steps, key=lambda s: s.created_at)
    session = dict(edit.empty_session(), chain_id=chain.chain.id, step_id=step.id)
    times = []
    for _ in range(n):
        start = time.perf_counter()
        heatmap, regions = edit.reasoning_images(store, user, session)
        h.heatmap.postprocess(heatmap)
        h.regions_image.postprocess(regions)
        times.append(time.perf_counter() - start)
    return times


def bench_floor(n_calls: int, data_dir: str) -> list[tuple[str, list[float]]]:
    """Reference: the same client call pattern against a trivial gradio app (image in -> image out)."""
    import gradio as gr
    import PIL.Image
    from gradio_client import Client, handle_file

    image = os.path.join(data_dir, "floor.png")
    PIL.Image.new("RGB", (256, 256), "white").save(image)
    with gr.Blocks(analytics_enabled=False) as demo:
        inp, text, out = gr.Image(type="filepath"), gr.Textbox(), gr.Image()
        gr.Button().click(lambda path, _: path, [inp, text], out, api_name="echo")
    port = free_port()
    demo.queue(default_concurrency_limit=1).launch(server_name="127.0.0.1", server_port=port,
                                                   prevent_thread_lock=True, quiet=True)
    try:
        timed = {}
        for verify in (True, False):
            client = Client(f"http://127.0.0.1:{port}/", verbose=False, download_files=False, ssl_verify=verify)
            client.predict(handle_file(image), "x", api_name="/echo")
            timed[verify] = []
            for _ in range(n_calls):
                start = time.perf_counter()
                client.predict(handle_file(image), "x", api_name="/echo")
                timed[verify].append(time.perf_counter() - start)
        http = HttpApi(f"http://127.0.0.1:{port}/")
        http.call("echo", [http.upload(image), "x"])
        raw = []
        for _ in range(n_calls):
            start = time.perf_counter()
            http.call("echo", [http.upload(image), "x"])
            raw.append(time.perf_counter() - start)
    finally:
        demo.close()
    return [("reference: trivial gradio app, image echo round trip", timed[True]),
            ("reference: the same, gradio_client(ssl_verify=False)", timed[False]),
            ("reference: trivial gradio app, image echo over the HTTP API", raw)]


def bench_open_chain(n_steps: int, data_dir: str) -> list[tuple[str, list[float]]]:
    import PIL.Image

    from app import render
    from app.engine import EditRequest, Engine
    from app.settings import Settings
    from app.store import Store
    from app.tabs import history

    settings = Settings(preset="tiny", data_dir=data_dir, examples=False)
    store = Store(os.path.join(data_dir, "chain.sqlite"), data_dir)
    engine = Engine(settings)
    result = engine.edit(EditRequest(image=PIL.Image.new("RGB", (64, 64), "white"), instruction=MELT, steps=1, seed=0))
    chain = store.create_chain(USER, result.input_image, title="1,000 hops")
    parent, input_ref = None, chain.source_image
    start = time.perf_counter()
    for i in range(n_steps):
        step = store.add_step(
            USER, chain.id, parent, instruction=f"{MELT} (hop {i + 1})", input_image=input_ref,
            output_image=result.image, seed=i, settings=result.settings, preset=result.preset,
            checkpoint_hash=result.checkpoint_hash, timings=result.timings, details=result.details,
        )
        parent, input_ref = step.id, step.output_image
    print(f"(wrote a {n_steps}-step chain in {time.perf_counter() - start:.1f} s)")
    url_for = render.image_url_for(store)
    handler, bare, get_chain, timeline = [], [], [], []
    for _ in range(7):
        t0 = time.perf_counter()
        view = history.open_in_editor(store, USER, chain.id)
        handler.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        tree = store.get_chain(USER, chain.id)
        t1 = time.perf_counter()
        render.timeline_html(tree, tree.steps[-1].id, url_for)
        t2 = time.perf_counter()
        bare.append(t2 - t0)
        get_chain.append(t1 - t0)
        timeline.append(t2 - t1)
    assert view.timeline.count("data-select=") == n_steps + 1
    store.close()
    name = f"open a {n_steps}-step chain"
    return [(f"{name}: History handler (open_in_editor)", handler[1:]),
            (f"{name}: get_chain with every step's details + timeline_html", bare[1:]),
            (f"{name}:   of which store.get_chain", get_chain[1:]),
            (f"{name}:   of which timeline_html", timeline[1:])]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--edits", type=int, default=10)
    parser.add_argument("--chain-steps", type=int, default=1000)
    args = parser.parse_args(argv)
    import torch

    torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))
    with tempfile.TemporaryDirectory() as d1, tempfile.TemporaryDirectory() as d2:
        rows = bench_edits(args.edits, d1) + bench_floor(args.edits, d1) + bench_open_chain(args.chain_steps, d2)
    width = max(len(name) for name, _ in rows)
    print(f"\n{'measurement':<{width}}  {'n':>3}  {'mean ms':>8}  {'median ms':>9}  {'p90 ms':>7}")
    for name, values in rows:
        mean, median, p90 = stats(values)
        print(f"{name:<{width}}  {len(values):>3}  {1000 * mean:>8.1f}  {1000 * median:>9.1f}  {1000 * p90:>7.1f}")
    print("\ntargets: app overhead per edit < 150 ms; opening a 1,000-step chain < 200 ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
