"""Contracts every ReasonBrain pipeline and model keeps (the idea of diffusers' ``PipelineTesterMixin``).

A test class mixes in :class:`PipelineContract` or :class:`ModelContract`, says how to build its subject, and
inherits the checks:

(a) batch equals single: each row of a batch gives what that row gives alone (float tolerance);
(b) ``save_pretrained`` / ``from_pretrained`` gives identical outputs;
(c) model CPU offload runs every component on the execution device, moved there just before it runs and back to
    the CPU right after (forward pre-hooks record where each module ran; a spy on ``.to`` records the moves);
(d) ``.to()`` round trips of dtype and of device (the device ones need a GPU: ``gpu`` marker).

The checks are plain ``assert_*`` functions too, for a test that needs one with its own call.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Iterator, Mapping
from contextlib import ExitStack
from typing import Any
from unittest import mock

import numpy as np
import pytest
import torch
from torch import nn

from tests.conftest import dummy_batch

BATCH_RTOL, BATCH_ATOL = 1e-4, 1e-5  # batch vs single: only the order of float reductions differs
GPU_IMAGE_TOLERANCE = 0.01  # mean |CUDA - CPU| on [0, 1]: float32 on both, the kernels differ
CPU = torch.device("cpu")

needs_gpu = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


# --- shared pieces ---------------------------------------------------------------------------------------------
def same_device(a: torch.device, b: torch.device) -> bool:
    """``cuda`` and ``cuda:0`` are the same place when one of them names no index."""
    a, b = torch.device(a), torch.device(b)
    return a.type == b.type and (a.index is None or b.index is None or a.index == b.index)


def model_batch(model):
    """Two (image, instruction, object, regions) rows of different lengths, regions ragged; none without a region
    branch."""
    batch = dummy_batch(model)
    batch.source = batch.source.to(model.dtype)
    if model.config.components.region_branch:
        batch.region_valid[1, 2] = False
    else:
        batch.region_masks = batch.region_valid = None
    return batch


def batch_row(batch, i: int):
    return dataclasses.replace(batch, **{f.name: getattr(batch, f.name)[i : i + 1] for f in dataclasses.fields(batch)
                                         if getattr(batch, f.name) is not None})


def condition(model, batch):
    latent_hw = (model.config.resolution // model.vae_scale_factor,) * 2
    return model.encode_condition(batch.source, batch.instructions, batch.object_tokens, batch.region_masks,
                                  batch.region_valid, latent_hw)


def model_outputs(model, batch, rows: range | None = None) -> dict[str, torch.Tensor]:
    """What the pipeline takes from the model per edit: the conditioning, a noise prediction, a decoded image.
    ``rows``: which rows of the full batch ``batch`` holds (each row's noise and timestep follow its index)."""
    rows = rows if rows is not None else range(batch.source.shape[0])
    with torch.no_grad():
        cond = condition(model, batch)
        image_latents = model.encode_image_latents(batch.source)  # (B, C, h, w)
        noisy = torch.cat([torch.randn(1, *image_latents.shape[1:], generator=torch.Generator().manual_seed(r))
                           for r in rows]).to(image_latents)
        timesteps = torch.tensor([999 - 450 * r for r in rows], device=image_latents.device)
        eps = model.predict_noise(noisy, timesteps, image_latents, cond.input_offset, cond.context)
        return {"context": cond.context, "input_offset": cond.input_offset, "img_hidden": cond.img_hidden,
                "image_latents": image_latents, "eps": eps, "decoded": model.decode_latents(noisy)}


def floating_dtypes(module: nn.Module) -> set[torch.dtype]:
    return {t.dtype for t in itertools.chain(module.parameters(), module.buffers()) if t.is_floating_point()}


def devices_of(module: nn.Module) -> set[torch.device]:
    return {t.device for t in itertools.chain(module.parameters(), module.buffers())}


def assert_same_edit(expected, actual, tolerance: float = 0.0) -> None:
    """Same images (pixel for pixel, or within ``tolerance`` mean |difference| on [0, 1]) and the same text."""
    assert len(expected.images) == len(actual.images)
    for a, b in zip(expected.images, actual.images):
        a, b = np.asarray(a, dtype=np.float64) / 255, np.asarray(b, dtype=np.float64) / 255
        assert a.shape == b.shape, (a.shape, b.shape)
        diff = np.abs(a - b).mean()
        assert diff <= tolerance, f"images differ: mean |difference| {diff:.5f} > {tolerance}"
    assert (expected.seed, expected.object_token) == (actual.seed, actual.object_token)
    if tolerance == 0:  # greedy text may flip a near-tie token on other kernels
        assert expected.reasoning == actual.reasoning, (expected.reasoning, actual.reasoning)


# --- (c) where modules ran, and the offload moves --------------------------------------------------------------
def offloaded_components(pipe) -> dict[str, tuple[Any, nn.Module]]:
    """name -> (what the pipeline moves, the network that runs): every model component, and the region
    proposer's network where the region branch uses one (a classical segmenter has none)."""
    parts = {name: (module, module) for name, module in pipe.model.named_children()}
    network = getattr(pipe.region_proposer, "model", None)
    if pipe.config.components.region_branch and isinstance(network, nn.Module):
        parts["region_proposer"] = (pipe.region_proposer, network)
    return parts


class ComponentRecorder:
    """Records, per component, the devices its modules ran on (their parameters and tensor inputs, from forward
    pre-hooks on every sub-module) and, in order with the runs, each ``.to(device)`` call that moved it."""

    def __init__(self, components: Mapping[str, tuple[Any, nn.Module]]) -> None:
        self.components = components
        self.ran_on: dict[str, set[torch.device]] = {name: set() for name in components}
        self.events: dict[str, list[tuple[str, torch.device | None]]] = {name: [] for name in components}
        self._stack = ExitStack()

    def __enter__(self) -> ComponentRecorder:
        for name, (mover, network) in self.components.items():
            for module in network.modules():
                handle = module.register_forward_pre_hook(self._run_hook(name), with_kwargs=True)
                self._stack.callback(handle.remove)
            self._stack.enter_context(mock.patch.object(mover, "to", self._move_spy(name, mover.to)))
        return self

    def __exit__(self, *exc) -> None:
        self._stack.close()

    def _run_hook(self, name: str):
        def hook(module: nn.Module, args: tuple, kwargs: dict) -> None:
            parameter = next(module.parameters(), None)
            devices = {parameter.device} if parameter is not None else set()
            devices |= {t.device for t in _tensors(args, kwargs) if t.ndim > 0}  # 0-d CPU scalars mix with any device
            self.ran_on[name] |= devices
            if not self.events[name] or self.events[name][-1][0] != "run":
                self.events[name].append(("run", None))

        return hook

    def _move_spy(self, name: str, move):
        def to(*args: Any, **kwargs: Any):
            device = kwargs.get("device", args[0] if args else None)
            self.events[name].append(("to", torch.device(device) if device is not None else None))
            return move(*args, **kwargs)

        return to

    def moves(self, name: str) -> list[torch.device | None]:
        return [device for kind, device in self.events[name] if kind == "to"]


def _tensors(args: tuple, kwargs: dict) -> Iterator[torch.Tensor]:
    for value in itertools.chain(args, kwargs.values()):
        if isinstance(value, torch.Tensor):
            yield value
        elif isinstance(value, (tuple, list)):
            yield from (v for v in value if isinstance(v, torch.Tensor))


def assert_ran_on(record: ComponentRecorder, device: torch.device) -> None:
    """Every component ran, and every module of it that ran had its weights and inputs on ``device``."""
    for name, seen in record.ran_on.items():
        assert seen, f"{name} never ran"
        assert all(same_device(d, device) for d in seen), f"{name} ran on {sorted(map(str, seen))}, not {device}"


def assert_moved_in_for_each_run(record: ComponentRecorder, device: torch.device) -> None:
    """Per component: moves come in pairs, to ``device`` then to the CPU, and every run sits inside a pair."""
    for name, events in record.events.items():
        seq = "".join("R" if kind == "run" else "T" for kind, _ in events)
        inside = False
        for kind, target in events:
            if kind == "run":
                assert inside, f"{name} ran while offloaded: {seq}"
                continue
            expected = CPU if inside else device
            assert target is not None and same_device(target, expected), f"{name} moved to {target}: {seq}"
            inside = not inside
        assert not inside and "R" in seq, f"{name} left on the device or never ran: {seq}"


def assert_model_cpu_offload(pipe, device: torch.device | str, image: Any, instruction: str, *, reference=None,
                             **call: Any):
    """An edit under ``enable_model_cpu_offload(device)``: each component moved to ``device`` just before it runs,
    runs there, goes back to the CPU right after; the edit equals ``reference`` (an edit of ``pipe`` on the CPU
    without offload: made here when not given). Returns the offloaded edit."""
    device = torch.device(device)
    reference = reference if reference is not None else pipe(image, instruction, **call)
    pipe.enable_model_cpu_offload(device)
    assert same_device(pipe.device, device)
    parts = offloaded_components(pipe)
    with ComponentRecorder(parts) as record:
        out = pipe(image, instruction, **call)
    assert_ran_on(record, device)
    assert_moved_in_for_each_run(record, device)
    for name, (_, network) in parts.items():
        assert devices_of(network) == {CPU}, f"{name} stayed on {devices_of(network)} after the edit"
    assert_same_edit(reference, out, tolerance=0.0 if device.type == "cpu" else GPU_IMAGE_TOLERANCE)
    return out


def assert_explicit_device_ends_offload(pipe, device: torch.device | str, image: Any, instruction: str, reference,
                                        **call: Any) -> None:
    """After ``pipe.to(device)`` an edit runs every component on ``device`` and moves nothing."""
    device = torch.device(device)
    pipe.to(device)
    assert same_device(pipe.device, device)
    with ComponentRecorder(offloaded_components(pipe)) as record:
        out = pipe(image, instruction, **call)
    assert_ran_on(record, device)
    assert {name: record.moves(name) for name in record.events if record.moves(name)} == {}
    assert_same_edit(reference, out, tolerance=0.0 if device.type == "cpu" else GPU_IMAGE_TOLERANCE)


# --- (a) batch equals single -----------------------------------------------------------------------------------
def assert_model_batch_equals_single(model, batch) -> None:
    together = model_outputs(model, batch)
    for i in range(batch.source.shape[0]):
        alone = model_outputs(model, batch_row(batch, i), range(i, i + 1))
        for key, value in alone.items():
            torch.testing.assert_close(together[key][i : i + 1], value, rtol=BATCH_RTOL, atol=BATCH_ATOL,
                                       msg=lambda m, key=key, i=i: f"{key}, row {i}: {m}")


def assert_pipeline_batch_equals_single(pipe, images: list, instructions: list[str]) -> None:
    """The model's batched stages (the CFG branches, ``num_images_per_prompt``), and the batched reasoning text
    where the pipeline writes one (``infer_outcomes``)."""
    assert_model_batch_equals_single(pipe.model, model_batch(pipe.model))
    if pipe.config.mllm.generate_reasoning:
        together = pipe.infer_outcomes(images, instructions)
        alone = [pipe.infer_outcomes([im], [text])[0] for im, text in zip(images, instructions)]
        assert together == alone and any(together), (together, alone)


# --- (b) save / load -------------------------------------------------------------------------------------------
def assert_model_save_load_identical(model, folder) -> None:
    model.save_pretrained(folder)
    loaded = type(model).from_pretrained(folder)
    before, after = model.state_dict(), loaded.state_dict()
    assert before.keys() == after.keys(), sorted(before.keys() ^ after.keys())[:10]
    assert [k for k in before if not torch.equal(before[k], after[k])] == []
    batch = model_batch(model)
    expected, actual = model_outputs(model, batch), model_outputs(loaded, batch)
    for key in expected:
        torch.testing.assert_close(actual[key], expected[key], rtol=0, atol=0, msg=lambda m, key=key: f"{key}: {m}")


def assert_pipeline_save_load_identical(pipe, folder, image: Any, instruction: str, reference, **call: Any) -> None:
    pipe.save_pretrained(folder)
    loaded = type(pipe).from_pretrained(folder)
    assert type(loaded.scheduler) is type(pipe.scheduler)
    settings = [{k: v for k, v in s.config.items() if not k.startswith("_")} for s in (pipe.scheduler, loaded.scheduler)]
    assert settings[0] == settings[1], settings  # "_" keys are diffusers' bookkeeping
    assert_same_edit(reference, loaded(image, instruction, **call))


# --- (d) dtype and device round trips ----------------------------------------------------------------------------
def assert_model_dtype_round_trip(model) -> None:
    """float32 -> float64 -> float32 changes nothing; bfloat16 casts every weight and runs finite."""
    batch = model_batch(model)
    expected = model_outputs(model, batch)
    assert model.to(torch.float64).dtype == torch.float64 and floating_dtypes(model) == {torch.float64}
    assert model.to(torch.float32).dtype == torch.float32 and floating_dtypes(model) == {torch.float32}
    actual = model_outputs(model, batch)
    for key in expected:
        torch.testing.assert_close(actual[key], expected[key], rtol=0, atol=0, msg=lambda m, key=key: f"{key}: {m}")
    model.to(torch.bfloat16)
    assert model.dtype == torch.bfloat16 and floating_dtypes(model) == {torch.bfloat16}
    out = model_outputs(model, model_batch(model))
    for key, value in out.items():
        assert value.dtype == torch.bfloat16 and torch.isfinite(value.float()).all(), key


def assert_model_device_round_trip(model, device: torch.device | str) -> None:
    """On ``device`` within float noise of the CPU; back on the CPU, identical."""
    batch = model_batch(model)
    expected = model_outputs(model, batch)
    model.to(device)
    assert all(same_device(d, torch.device(device)) for d in devices_of(model))
    on_device = model_outputs(model, dataclasses.replace(batch, **{
        k: v.to(device) for k, v in vars(batch).items() if isinstance(v, torch.Tensor)}))
    for key in expected:
        torch.testing.assert_close(on_device[key].cpu(), expected[key], rtol=1e-3, atol=1e-3,
                                   msg=lambda m, key=key: f"{key}: {m}")
    model.to(CPU)
    actual = model_outputs(model, batch)
    for key in expected:
        torch.testing.assert_close(actual[key], expected[key], rtol=0, atol=0, msg=lambda m, key=key: f"{key}: {m}")


def assert_pipeline_dtype_round_trip(pipe, image: Any, instruction: str, reference, **call: Any) -> None:
    """``pipe.to(dtype=...)`` casts every model weight (the region proposer keeps its own dtype); float32 ->
    float64 -> float32 gives the same edit; a bfloat16 edit runs."""
    proposer = pipe.region_proposer
    proposer_dtype = getattr(proposer, "dtype", None)
    for dtype in (torch.float64, torch.float32):
        pipe.to(dtype=dtype)
        assert pipe.model.dtype == dtype and floating_dtypes(pipe.model) == {dtype}
        assert getattr(proposer, "dtype", None) == proposer_dtype
    assert_same_edit(reference, pipe(image, instruction, **call))
    pipe.to(dtype=torch.bfloat16)
    assert floating_dtypes(pipe.model) == {torch.bfloat16}
    out = pipe(image, instruction, **call)
    assert [im.size for im in out.images] == [im.size for im in reference.images]


# --- the mixins ------------------------------------------------------------------------------------------------
class PipelineContract:
    """Mix into a test class that defines ``make_pipeline()`` (a fresh pipeline, the same weights each time),
    ``edit_inputs()`` -> (image, instruction) and ``batch_inputs()`` -> ([images], [instructions])."""

    call: dict[str, Any] = {"seed": 3, "num_inference_steps": 2}

    def make_pipeline(self):
        raise NotImplementedError

    def edit_inputs(self) -> tuple[Any, str]:
        raise NotImplementedError

    def batch_inputs(self) -> tuple[list, list[str]]:
        raise NotImplementedError

    @pytest.fixture(scope="class")
    def pipe(self):
        return self.make_pipeline()

    @pytest.fixture(scope="class")
    def reference(self, pipe):
        return pipe(*self.edit_inputs(), **self.call)

    def test_batch_equals_single(self, pipe):
        assert_pipeline_batch_equals_single(pipe, *self.batch_inputs())

    def test_save_load_round_trip(self, pipe, reference, tmp_path):
        assert_pipeline_save_load_identical(pipe, tmp_path / "ckpt", *self.edit_inputs(), reference, **self.call)

    def test_model_cpu_offload(self, reference):
        pipe = self.make_pipeline()
        assert_model_cpu_offload(pipe, "cpu", *self.edit_inputs(), reference=reference, **self.call)
        assert_explicit_device_ends_offload(pipe, "cpu", *self.edit_inputs(), reference, **self.call)

    def test_dtype_round_trip(self, reference):
        assert_pipeline_dtype_round_trip(self.make_pipeline(), *self.edit_inputs(), reference, **self.call)

    @pytest.mark.gpu
    @needs_gpu
    def test_model_cpu_offload_on_gpu(self, reference):
        pipe = self.make_pipeline()
        assert_model_cpu_offload(pipe, "cuda", *self.edit_inputs(), reference=reference, **self.call)
        assert_explicit_device_ends_offload(pipe, "cuda", *self.edit_inputs(), reference, **self.call)

    @pytest.mark.gpu
    @needs_gpu
    def test_device_round_trip_on_gpu(self, reference):
        pipe = self.make_pipeline()
        assert_explicit_device_ends_offload(pipe, "cuda", *self.edit_inputs(), reference, **self.call)
        assert_explicit_device_ends_offload(pipe, "cpu", *self.edit_inputs(), reference, **self.call)


class ModelContract:
    """Mix into a test class that defines ``make_model()`` (a fresh model in eval mode, the same weights each
    time)."""

    def make_model(self):
        raise NotImplementedError

    @pytest.fixture(scope="class")
    def model(self):
        return self.make_model()

    def test_batch_equals_single(self, model):
        assert_model_batch_equals_single(model, model_batch(model))

    def test_save_load_round_trip(self, model, tmp_path):
        assert_model_save_load_identical(model, tmp_path / "ckpt")

    def test_dtype_round_trip(self):
        assert_model_dtype_round_trip(self.make_model())

    @pytest.mark.gpu
    @needs_gpu
    def test_device_round_trip_on_gpu(self):
        assert_model_device_round_trip(self.make_model(), "cuda")
