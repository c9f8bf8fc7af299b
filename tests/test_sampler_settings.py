"""benchmarks/sampler_settings.py: one setting at a time on the validation split, rows compared record by record."""

from __future__ import annotations

from argparse import Namespace
from types import SimpleNamespace

import pytest

from reasonbrain.image_io import load_image
from reasonbrain.synthworld.dataset import load_chains, load_split, write_dataset

from .scripts import load_script


@pytest.fixture(scope="module")
def bench():
    return load_script("benchmarks/sampler_settings.py")


def test_rows_change_one_default_at_a_time(bench):
    defaults = SimpleNamespace(num_inference_steps=10, guidance_scale=3.0, image_guidance_scale=1.5)
    rows = bench.rows_to_run(defaults, Namespace(guidance=[4.5], image_guidance=[1.0], steps=[20],
                                                 scheduler=["EulerDiscreteScheduler"]))
    assert rows == [("defaults (steps 10, guidance 3, image guidance 1.5)", {}),
                    ("guidance 4.5", {"guidance_scale": 4.5}), ("image guidance 1", {"image_guidance_scale": 1.0}),
                    ("steps 20", {"num_inference_steps": 20}),
                    ("EulerDiscreteScheduler", {"scheduler": "EulerDiscreteScheduler"})]


def test_each_row_edits_the_validation_split_with_its_settings(bench, tmp_path):
    write_dataset(tmp_path, n=40, seed=4, resolution=64, n_chains=40, workers=1, progress=False)
    singles = [r for r in load_split(tmp_path, "val") if r.chain_id is None]
    chains = [c for c in load_chains(tmp_path) if c.split == "val"]
    assert len(singles) == 4 and [len(c.steps) for c in chains] == [3, 2, 2]
    records = {r.instruction: r for r in singles + [s for c in chains for s in c.steps]}
    calls = []

    def pipe(image, instruction, *, seed, num_inference_steps=None, **settings):
        """Right with text guidance 4.5 (or on the first single edit), else "no change"."""
        calls.append((num_inference_steps, settings))
        rec = records[instruction]
        right = settings.get("guidance_scale") == 4.5 or rec is singles[0]
        return SimpleNamespace(images=[load_image(rec.path(rec.tgt_image if right else rec.src_image))])

    rows = [("defaults", {}), ("guidance 4.5", {"guidance_scale": 4.5}), ("steps 20", {"num_inference_steps": 20})]
    results = bench.run(pipe, str(tmp_path), rows, stride=1, progress=False)
    per_row = 4 + 7  # single edits + chain steps
    assert calls[:per_row] == [(None, {})] * per_row
    assert calls[per_row:2 * per_row] == [(None, {"guidance_scale": 4.5})] * per_row
    assert calls[2 * per_row:] == [(20, {})] * per_row
    default, guided, steps = results
    assert default["single"]["hits"] == {r.id: r is singles[0] for r in singles}
    assert default["single"]["accuracy"] == 0.25 and guided["single"]["accuracy"] == 1.0
    assert (guided["right_only_here"], guided["right_only_with_defaults"]) == (3, 0)
    assert (steps["right_only_here"], steps["right_only_with_defaults"]) == (0, 0)
    assert guided["chains"]["per_holdout"] == {"seen": {"1-step": 1.0, "2-step": 1.0, "3-step": 1.0}}
    assert default["chains"]["1-step"] == 0.0 and steps["settings"] == {"num_inference_steps": 20}
    lines = bench.table(results).splitlines()
    assert lines[0].startswith("| setting | single edits (n=4) | story | chains 1-step / 2-step / 3-step (n=3) |")
    assert lines[3].startswith("| guidance 4.5 | 100.0% |") and "| 100.0% / 100.0% / 100.0% | 3 | 0 |" in lines[3]
