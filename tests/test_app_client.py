"""The launched app through gradio_client: the Edit tab's ``/edit`` endpoint end to end (tiny preset, temp DB)."""

from __future__ import annotations

import contextlib
import os
import socket
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import PIL.Image
import pytest

from app.engine import Engine
from app.settings import Settings
from app.store import Store

MELT = "What would happen if the ice cube were left in the sun?"
SCHEDULER = "EulerAncestralDiscreteScheduler"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class RunningApp:
    url: str
    settings: Settings
    store: Store
    engine: Engine


@contextlib.contextmanager
def launch_app(data_dir: str, *, examples: bool = False, demo_seeds: tuple[int, ...] = (),
               checkpoint: str | None = None, mode: str | None = None,
               pipeline_factory: Callable[[], Any] | None = None) -> Iterator[RunningApp]:
    """The app as ``python -m app --preset tiny [--mode mode]`` serves it (or ``--checkpoint checkpoint``), in this
    process on a free port (closed after); ``pipeline_factory``: the Engine's pipeline built in code."""
    from app.demo_chains import preload_demo_chains
    from app.ui import create_app, launch_options, queue_options

    model = {"preset": None, "checkpoint": checkpoint} if checkpoint else {"preset": "tiny"}
    settings = Settings(**model, mode=mode, data_dir=data_dir, port=free_port(), examples=examples)
    store = Store(settings.db_path, settings.data_dir)
    engine = Engine(settings, pipeline_factory=pipeline_factory)
    engine.load()
    if demo_seeds:
        preload_demo_chains(engine, store, seeds=demo_seeds)
    demo = create_app(engine, store)
    demo.queue(**queue_options(settings)).launch(
        **launch_options(settings, store, prevent_thread_lock=True, quiet=True)
    )
    try:
        yield RunningApp(url=f"http://{settings.host}:{settings.port}/", settings=settings, store=store, engine=engine)
    finally:
        demo.close()
        store.close()


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    with launch_app(str(tmp_path_factory.mktemp("client-app"))) as running:
        yield running


@pytest.fixture(scope="module")
def scene(app, tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp("scene") / "scene.png"
    app.engine.example_images()[0][0].resize((120, 100)).save(path)
    return str(path)


def edit_args(image, text=MELT, steps=2):
    from gradio_client import handle_file

    return (handle_file(image), text, steps, 7.5, 1.5, 11, False, SCHEDULER)


def test_one_edit_through_the_api_is_saved(app, scene, tmp_path):
    from gradio_client import Client

    client = Client(app.url, verbose=False, download_files=str(tmp_path))
    browser_id, badge = client.predict(None, api_name="/identify")
    assert "anonymous" in badge
    out = client.predict(*edit_args(scene), api_name="/edit")
    before, after = next(v for v in out if isinstance(v, (list, tuple)) and len(v) == 2)  # the before/after slider
    assert PIL.Image.open(after).size == (120, 100) and PIL.Image.open(before).size == (120, 100)
    assert any("Referenced object" in str(v) for v in out) and any("rb-tree" in str(v) for v in out)

    chains = app.store.list_chains(browser_id)
    assert len(chains) == 1 and chains[0].num_steps == 1
    step = app.store.get_chain(browser_id, chains[0].id).steps[0]
    assert step.instruction == MELT and step.seed == 11 and step.settings["num_inference_steps"] == 2
    assert os.path.isfile(app.store.image_path(step.output_image))

    # the same session continues the chain
    client.predict(api_name="/continue_chain")
    client.predict(*edit_args(scene, "Imagine the puddle dried up."), api_name="/edit")
    tree = app.store.get_chain(browser_id, chains[0].id)
    assert [s.position for s in tree.steps] == [1, 2] and tree.steps[1].parent_id == step.id

    # the lean programmatic endpoint: the edited PNG and the step's JSON, saved like any edit
    api = Client(app.url, verbose=False, download_files=str(tmp_path))
    api_user, _ = api.predict(None, api_name="/identify")
    png, details = api.predict(*edit_args(scene), api_name="/edit_image")
    assert PIL.Image.open(png).size == (120, 100)
    assert details["instruction"] == MELT and details["object_token"].startswith("<obj>")
    assert details["region_attention"] and app.store.get_step(api_user, details["step_id"]).seed == 11


def test_bad_requests_are_errors_and_the_app_keeps_serving(app, scene, tmp_path):
    from gradio_client import Client
    from gradio_client.exceptions import AppError

    client = Client(app.url, verbose=False, download_files=False)
    user, _ = client.predict(None, api_name="/identify")
    with pytest.raises(AppError, match="instruction"):
        client.predict(*edit_args(scene, text="   "), api_name="/edit")
    corrupt = tmp_path / "corrupt.png"
    corrupt.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00garbage" * 50)
    with pytest.raises(AppError):
        client.predict(*edit_args(str(corrupt)), api_name="/edit")
    with pytest.raises(AppError, match="minimum"):  # the steps slider rejects 0 before the handler runs
        client.predict(*edit_args(scene, steps=0), api_name="/edit")
    assert app.store.list_chains(user) == [] and app.store.count_steps(user) == 0
    # still serving: a good edit right after the bad ones
    client.predict(*edit_args(scene, steps=1), api_name="/edit")
    assert app.store.count_steps(user) == 1


def test_another_browser_cannot_open_a_chain_by_id(app, scene):
    from gradio_client import Client
    from gradio_client.exceptions import AppError

    alice = Client(app.url, verbose=False, download_files=False)
    alice_id, _ = alice.predict(None, api_name="/identify")
    alice.predict(*edit_args(scene, steps=1), api_name="/edit")
    chain_id = app.store.list_chains(alice_id)[0].id

    bob = Client(app.url, verbose=False, download_files=False)
    bob_id, _ = bob.predict(None, api_name="/identify")
    assert bob_id != alice_id
    with pytest.raises(AppError, match="does not exist"):
        bob.predict(chain_id, api_name="/open_chain")
    assert "No chains yet" in bob.predict("", api_name="/list_chains")[0]
    assert app.store.list_chains(bob_id) == []
    opened = alice.predict(chain_id, api_name="/open_chain")
    assert any("Reopened" in str(v) for v in opened)


def test_only_the_image_folder_is_served(app, scene):
    from gradio_client import Client

    client = Client(app.url, verbose=False, download_files=False)
    user, _ = client.predict(None, api_name="/identify")
    client.predict(*edit_args(scene, steps=1), api_name="/edit")
    step = app.store.get_chain(user, app.store.list_chains(user)[0].id).steps[0]
    image_url = app.url + "gradio_api/file=" + app.store.image_path(step.output_image)
    with urllib.request.urlopen(image_url) as r:
        assert r.status == 200 and r.headers["content-type"] == "image/png"
    for path in (app.settings.db_path, os.path.abspath(__file__)):
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(app.url + "gradio_api/file=" + path)
        assert err.value.code in (403, 404)
