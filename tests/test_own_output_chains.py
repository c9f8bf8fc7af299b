"""Own-output chain data: every step after the first gets the bundled model's own previous edit as its source (the
same edit the chains evaluation makes) and the ideal target and wrong outcomes of that step, scored as the chains
evaluation scores them; the test split is refused."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from reasonbrain.bundled import default_checkpoint
from reasonbrain.evaluation.synth_eval import chain_seed
from reasonbrain.reason50k import read_split
from reasonbrain.synthworld.dataset import load_chains, load_split, write_dataset
from reasonbrain.training.own_output_chains import main, write_own_output_chains


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> str:
    folder = tmp_path_factory.mktemp("world")
    write_dataset(folder, n=20, seed=0, resolution=64, n_chains=12, workers=1, progress=False)
    return str(folder)


@pytest.fixture(scope="module")
def pipe():
    from reasonbrain.pipelines.pipeline_reasonbrain import ReasonBrainEditPipeline

    return ReasonBrainEditPipeline.from_pretrained(default_checkpoint())


def pixels(image) -> np.ndarray:
    return np.asarray(image.convert("RGB") if isinstance(image, Image.Image) else Image.open(image).convert("RGB"))


def test_steps_after_the_first_start_from_the_models_own_edit(world, pipe, tmp_path):
    chains = [c for c in load_chains(world) if c.split == "train"][:2]
    assert chains and all(len(c.steps) >= 2 for c in chains)
    summary = write_own_output_chains(pipe, world, str(tmp_path / "own"), split="train", limit=2, progress=False)
    records = load_split(tmp_path / "own", "train")
    assert summary["refused_chains"] == 0  # these scenes hold every object their chains name
    assert summary["records"] == len(records) == sum(len(c.steps) - 1 for c in chains)
    assert len({r.id for r in records}) == len(records) and all(r.chain_id is None for r in records)

    first, step2 = chains[0], records[0]
    edit = pipe(str(first.steps[0].path(first.steps[0].src_image)), first.steps[0].instruction,
                seed=chain_seed(0, 0, 1)).images[0]
    assert np.array_equal(pixels(step2.path(step2.src_image)), pixels(edit))  # the model's own step-1 edit
    ideal = first.steps[1]
    assert step2.instruction == ideal.instruction and step2.id == f"{ideal.id}-own1"
    assert np.array_equal(pixels(step2.path(step2.tgt_image)), pixels(ideal.path(ideal.tgt_image)))
    kinds = {a.kind: a.image for a in step2.alternatives}
    assert kinds["no_change"] != step2.src_image  # the ideal source, scored as the chains evaluation scores it
    assert np.array_equal(pixels(step2.path(kinds["no_change"])), pixels(ideal.load_image("no_change")))
    assert np.array_equal(pixels(step2.path(kinds["wrong_state"])), pixels(ideal.load_image("wrong_state")))
    assert len(read_split(str(tmp_path / "own" / "train.jsonl"))) == len(records)  # what training reads
    assert json.loads((tmp_path / "own" / "train_summary.json").read_text())["records"] == len(records)


def test_the_test_split_and_an_existing_output_are_refused(world, pipe, tmp_path, capsys):
    with pytest.raises(ValueError, match="never trained on"):
        write_own_output_chains(pipe, world, str(tmp_path / "t"), split="test")
    (tmp_path / "v").mkdir()
    (tmp_path / "v" / "val.jsonl").write_text("")
    with pytest.raises(ValueError, match="exists"):
        write_own_output_chains(pipe, world, str(tmp_path / "v"), split="val")
    with pytest.raises(SystemExit):
        main(["--checkpoint", default_checkpoint(), "--data", world, "--out", str(tmp_path / "t"), "--split", "test"])
    assert "invalid choice" in capsys.readouterr().err
