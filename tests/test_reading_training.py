"""Training the reading side: distilling E_T into an InstructionReader (resume, continuing from a reader) and giving
a checkpoint the scene recogniser of another one."""

from __future__ import annotations

import csv
import dataclasses

import pytest
import torch

from reasonbrain.models.instruction_reader import InstructionReader
from reasonbrain.models.reasonbrain import ReasonBrainModel
from reasonbrain.training.distill_reader import DistillConfig, distill
from reasonbrain.training.train import save_checkpoint
from tests.conftest import get_dummy_components

READER = {"hidden_size": 32, "num_layers": 1, "num_heads": 4, "ff_mult": 2, "max_length": 24}


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    from reasonbrain.synthworld.dataset import write_dataset

    root = tmp_path_factory.mktemp("reading")
    write_dataset(root / "data", n=40, seed=2, resolution=64, workers=1)
    save_checkpoint(get_dummy_components(seed=3).eval(), str(root / "teacher"))
    cfg = DistillConfig(teacher=str(root / "teacher"), data_dir=str(root / "data"), output_dir=str(root / "run"),
                        reader=READER, max_length=24, train_images=6, max_steps=4, batch_size=3, warmup_steps=1,
                        log_every=1, val_every=1000, val_samples=2, save_every=2)
    return root, cfg


def reader_weights(path: str) -> dict[str, torch.Tensor]:
    model = ReasonBrainModel.from_pretrained(path)
    assert isinstance(model.text_encoder, InstructionReader) and model.reads_normalized_text
    return model.text_encoder.state_dict()


def test_distillation_trains_only_the_reader_and_resumes(setup):
    root, cfg = setup
    summary = distill(cfg)
    assert summary["steps"] == 4 and (root / "run" / "encoded.pt").exists()
    with open(root / "run" / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    assert [int(r["step"]) for r in rows] == [1, 2, 3, 4] and all(float(r["total"]) > 0 for r in rows)
    with open(root / "run" / "validation.csv") as f:
        assert [int(r["step"]) for r in csv.DictReader(f)] == [4]
    teacher, student = ReasonBrainModel.from_pretrained(cfg.teacher), ReasonBrainModel.from_pretrained(
        str(root / "run" / "checkpoint"))
    assert torch.equal(teacher.unet.conv_in.weight, student.unet.conv_in.weight)  # every other module is shared
    step2, step4 = reader_weights(str(root / "run" / "checkpoint-000002")), reader_weights(str(root / "run" / "checkpoint"))
    assert any(not torch.equal(step2[k], step4[k]) for k in step4)

    resumed = distill(dataclasses.replace(cfg, max_steps=6), resume=True)  # from state.pt at step 4
    assert resumed["steps"] == 6
    with open(root / "run" / "metrics.csv") as f:
        assert [int(r["step"]) for r in csv.DictReader(f)][-2:] == [5, 6]


def test_a_second_stage_starts_from_the_first_stage_reader(setup):
    root, cfg = setup
    first = root / "run" / "checkpoint-000002"
    if not first.exists():
        distill(cfg)
    stage2 = dataclasses.replace(cfg, output_dir=str(root / "run2"), init_reader=str(first), learning_rate=0.0,
                                 max_steps=2, save_every=2)
    distill(stage2)
    start, after = reader_weights(str(first)), reader_weights(str(root / "run2" / "checkpoint"))
    assert all(torch.equal(start[k], after[k]) for k in start)  # lr 0: the reader it started from, unchanged


def test_recogniser_is_reused_only_with_the_same_vae(tmp_path):
    from reasonbrain.training.train_recogniser import main

    donor = get_dummy_components(seed=4, recogniser={"object_names": ["apple", "glass"]}).eval()
    target = get_dummy_components(seed=4).eval()  # same seed: the same VAE
    assert target.recogniser is None
    save_checkpoint(donor, str(tmp_path / "donor"))
    save_checkpoint(target, str(tmp_path / "target"))
    assert main(["--checkpoint", str(tmp_path / "target"), "--out", str(tmp_path / "out"),
                 "--reuse", str(tmp_path / "donor")]) == 0
    out = ReasonBrainModel.from_pretrained(str(tmp_path / "out"))
    assert out.config.recogniser.object_names == ["apple", "glass"]
    assert all(torch.equal(a, b) for a, b in zip(out.recogniser.state_dict().values(),
                                                  donor.recogniser.state_dict().values()))

    save_checkpoint(get_dummy_components(seed=5).eval(), str(tmp_path / "other"))
    with pytest.raises(ValueError, match="another VAE"):
        main(["--checkpoint", str(tmp_path / "other"), "--out", str(tmp_path / "out2"), "--reuse",
              str(tmp_path / "donor")])
    with pytest.raises(ValueError, match="no scene recogniser"):
        main(["--checkpoint", str(tmp_path / "other"), "--out", str(tmp_path / "out2"), "--reuse",
              str(tmp_path / "target")])


def test_unet_term_matches_the_teachers_prediction(setup):
    from types import SimpleNamespace

    from reasonbrain.schedulers import make_scheduler
    from reasonbrain.training.distill_reader import EncodedImages, unet_loss

    root, cfg = setup
    run = dataclasses.replace(cfg, output_dir=str(root / "run_unet"), unet_loss_weight=0.5, max_steps=2)
    saved = torch.load(root / "run" / "encoded.pt", weights_only=False) if (root / "run" / "encoded.pt").exists() \
        else None
    if saved is not None:  # a cache from before the UNet term: the latents are added to it, the rest is reused
        for key in ("image_latents", "target_latents"):
            saved["images"].pop(key, None)
        (root / "run_unet").mkdir()
        torch.save(saved, root / "run_unet" / "encoded.pt")
    distill(run)
    with open(root / "run_unet" / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    assert all(float(r["unet"]) > 0 for r in rows)
    assert all(abs(float(r["total"]) - float(r["input_offset"]) - float(r["context"]) - float(r["guidance"])
                   - 0.5 * float(r["unet"])) < 1e-4 for r in rows)

    teacher = ReasonBrainModel.from_pretrained(cfg.teacher).eval()
    cache = torch.load(root / "run_unet" / "encoded.pt", weights_only=False)
    enc = EncodedImages.__new__(EncodedImages)
    enc.__dict__.update(cache["images"])
    assert enc.target_latents.shape == enc.image_latents.shape and enc.target_latents.shape[0] == 6
    idx = torch.tensor([0, 1, 2])
    own = {k: v[idx] for k, v in cache["own"].items()}
    empty = {k: v[idx] for k, v in cache["empty"].items()}
    sched = make_scheduler(teacher.config.diffusion.train_scheduler)
    same = SimpleNamespace(input_offset=own["input_offset"], context=own["context"])
    assert unet_loss(teacher, enc, idx, same, own, empty, sched, torch.Generator().manual_seed(0)) == 0
    context = own["context"].clone().requires_grad_(True)
    moved = SimpleNamespace(input_offset=own["input_offset"], context=context + 0.1)
    loss = unet_loss(teacher, enc, idx, moved, own, empty, sched, torch.Generator().manual_seed(0))
    loss.backward()
    assert loss > 0 and context.grad.abs().sum() > 0  # the frozen UNet passes the gradient back to the reader


def test_background_swap_redraws_scenes_without_a_held_out_pairing(monkeypatch):
    """Swapped samples keep their objects, change background kind together (source and target), and never put a
    kind on a background it is held out from; without swapping the renders are the generator's own."""
    import reasonbrain.synthworld.dataset as dataset
    from reasonbrain.synthworld.world import HELDOUT_COMBOS
    from reasonbrain.training.train_recogniser import rendered_scenes

    seen = []
    original = dataset.generate_sample

    def recording(*args, **kwargs):
        sample = original(*args, **kwargs)
        seen.append(sample)
        return sample

    monkeypatch.setattr(dataset, "generate_sample", recording)
    plain, plain_names = rendered_scenes(12, 3, 64)
    swapped, swapped_names = rendered_scenes(12, 3, 64, background_swap=1.0)
    assert swapped_names == plain_names
    changed = 0
    for i in range(12):
        src_changed = not torch.equal(plain[2 * i], swapped[2 * i])
        assert src_changed == (not torch.equal(plain[2 * i + 1], swapped[2 * i + 1]))  # source and target together
        changed += src_changed
    assert changed >= 10  # a sample stays only when every other background is held out for one of its kinds

    from reasonbrain.image_io import prepare_image
    from reasonbrain.synthworld.render import Renderer
    from reasonbrain.synthworld.world import BACKGROUNDS

    renderer = Renderer(64)
    for i, sample in enumerate(seen[12:]):
        if torch.equal(plain[2 * i], swapped[2 * i]):
            continue
        kinds = {o.kind for o in sample.record.scene.objects}
        matches = [b for b in BACKGROUNDS if torch.equal(prepare_image(renderer.render(dataclasses.replace(
            sample.record.scene, background=dataclasses.replace(sample.record.scene.background, kind=b))), 64)[0],
            swapped[2 * i])]
        assert matches and not any((k, b) in HELDOUT_COMBOS for k in kinds for b in matches)
