"""The bundled synth checkpoint really performs the synthetic world's hypothetical edits (inference only)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

CHECKPOINT = Path(__file__).resolve().parents[1] / "checkpoints" / "synth"

pytestmark = pytest.mark.skipif(not (CHECKPOINT / "reasonbrain_config.json").exists(),
                                reason="checkpoints/synth is not built (make synth-checkpoint)")


@pytest.fixture(scope="module")
def pipe():
    from reasonbrain.pipelines.pipeline_reasonbrain import ReasonBrainEditPipeline

    return ReasonBrainEditPipeline.from_pretrained(CHECKPOINT)


@pytest.fixture(scope="module")
def heldout(tmp_path_factory):
    from reasonbrain.evaluation.synth_eval import CI_SUBSET_SAMPLES
    from reasonbrain.synthworld.dataset import write_dataset

    out = tmp_path_factory.mktemp("synth-heldout")
    write_dataset(out, n=CI_SUBSET_SAMPLES, seed=0, resolution=64, n_chains=0, workers=1, progress=False)
    return out


def test_shipped_checkpoint_reasoning_accuracy_on_heldout_samples(pipe, heldout):
    from reasonbrain.evaluation.synth_eval import evaluate_split

    measured = json.loads((CHECKPOINT / "metrics.json").read_text())["ci_subset"]
    result = evaluate_split(pipe, str(heldout), "test", progress=False)
    assert result["n"] == measured["n"] >= 30
    # a few points under the accuracy measured on this same subset when the checkpoint was exported
    assert result["accuracy"] >= measured["accuracy"] - 0.05, (result, measured)
    assert result["l1"] <= measured["l1"] + 0.01


def test_shipped_checkpoint_binds_the_instruction_and_is_deterministic(pipe, heldout):
    from reasonbrain.synthworld.dataset import load_split

    rec = load_split(heldout, "test")[0]
    a = pipe(str(rec.path(rec.src_image)), rec.instruction, seed=3)
    b = pipe(str(rec.path(rec.src_image)), rec.instruction, seed=3)
    assert list(a.images[0].getdata()) == list(b.images[0].getdata())
    assert a.referenced_object.name is not None and a.regions is not None
    assert a.settings["preset"] == "synth"


READING = [  # people's wording, not the generator's (and not the free-form benchmark's sentences)
    ("candle_light", "WHAT IF SOMEBODY LIT THE CANDLE WITH A LIGHTER"),
    ("ice_melt", "leave that ice cube in blazing sunshine for ages"),
    ("egg_drop", "oops, the egg slipped and fell to the ground"),
    ("sky_midnight", "show me this place late at night"),
    ("bread_toast", "pop the bread in the toaster"),
    ("balloon_pop", "what if somebody stuck a needle into the balloon"),
]


def test_shipped_checkpoint_reads_peoples_wording_and_refuses_absent_objects(pipe):
    from reasonbrain.referring import ObjectNotInImageError
    from reasonbrain.synthworld.accuracy import is_correct
    from reasonbrain.synthworld.dataset import sample_matching

    if pipe.model.recogniser is None:
        pytest.skip("this checkpoint has no scene recogniser")
    right = 0
    for i, (tid, text) in enumerate(READING):
        s = sample_matching(tid, f"ci-reading-{i}", exclude=["glass"])
        out = pipe(s.src, text, seed=i)
        same = pipe(s.src, text.lower(), seed=i)  # case is normalised away
        assert list(out.images[0].getdata()) == list(same.images[0].getdata())
        right += is_correct(out.images[0], s.tgt, [s.alternatives[a.kind] for a in s.record.alternatives])
        with pytest.raises(ObjectNotInImageError, match="There is no glass in this picture; the objects here are: ") as err:
            pipe(s.src, "What if the glass fell off the table?", seed=i)
        listed = set(err.value.present)  # names only: the recogniser's coarse cells say too little about where
        assert listed and listed <= {o.name for o in s.record.scene.objects}, (listed, s.record.scene.objects)
    assert right >= 4, f"{right} of {len(READING)} edits right"
