"""Shared fixtures: tiny real components (random weights, same classes as the real presets), offline, CPU."""

from __future__ import annotations

import logging
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import pytest  # noqa: E402
import torch  # noqa: E402

from reasonbrain.configuration import ReasonBrainConfig  # noqa: E402

torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))


def tiny_config(**overrides) -> ReasonBrainConfig:
    return ReasonBrainConfig.from_preset("tiny", **overrides)


def get_dummy_components(seed: int = 0, **overrides):
    """A tiny ReasonBrainModel built from config with seeded random weights."""
    from reasonbrain.models.reasonbrain import ReasonBrainModel

    torch.manual_seed(seed)
    return ReasonBrainModel.from_config(tiny_config(**overrides))


def pipeline_for(model):
    """The pipeline of a tiny model with its (random-weight) SAM 2 proposer, chosen explicitly."""
    from reasonbrain.pipelines.pipeline_reasonbrain import ReasonBrainEditPipeline
    from reasonbrain.regions import build_region_proposer

    return ReasonBrainEditPipeline(model=model, region_proposer=build_region_proposer(model.config.regions,
                                                                                      load_pretrained=False))


def dummy_batch(model, batch_size: int = 2, seed: int = 0):
    from reasonbrain.training.task import Batch

    g = torch.Generator().manual_seed(seed)
    res = model.config.resolution
    grid = model.grid_size
    source = torch.rand(batch_size, 3, res, res, generator=g) * 2 - 1
    target = source.clone()
    target[:, :, res // 4 : 3 * res // 4, res // 4 : 3 * res // 4] = 0.8
    masks = torch.zeros(batch_size, 3, grid, grid)
    masks[:, 0, : grid // 2] = 1
    masks[:, 1, grid // 2 :, : grid // 2] = 1
    masks[:, 2] = 1 - masks[:, 0] - masks[:, 1]
    valid = torch.ones(batch_size, 3, dtype=torch.bool)
    instructions = ["What would happen if the ice cube were left in the sun?", "Imagine the red apple left for weeks."]
    objects = ["<obj> ice cube </obj>", "<obj> red apple </obj>"]
    return Batch(
        source=source, target=target, instructions=(instructions * batch_size)[:batch_size],
        object_tokens=(objects * batch_size)[:batch_size], region_masks=masks, region_valid=valid,
    )


@pytest.fixture
def tiny_model():
    return get_dummy_components().eval()


@pytest.fixture(autouse=True)
def root_logging_restored():
    """Entry points (``reasonbrain``'s and ``app``'s ``main``) call ``logging.basicConfig`` with a test's captured
    stderr: put the root logger back after every test, or later tests' log lines go to a closed stream."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    for handler in root.handlers[:]:
        if handler not in handlers:
            root.removeHandler(handler)
    for handler in handlers:
        if handler not in root.handlers:
            root.addHandler(handler)
    root.setLevel(level)


@pytest.fixture(scope="module")
def browser():
    """One headless Chromium per test module, for the browser tests (skipped where Playwright is missing)."""
    sync_api = pytest.importorskip("playwright.sync_api", reason="the playwright package is not installed")
    from tests.test_app_browser import CHROMIUM, CHROMIUM_ARGS

    with sync_api.sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()
