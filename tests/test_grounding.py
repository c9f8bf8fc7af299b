"""The grounding map (ours): the ID Controller's attention spread onto the image grid, fed to the UNet input,
and the grounding loss that supervises that attention with the pixels an edit changes."""

from __future__ import annotations

import pytest
import torch
from PIL import Image

from reasonbrain.models.reasonbrain import ReasonBrainModel
from reasonbrain.training.task import ReasonBrainTrainingTask, ablation_config
from reasonbrain.training.train import with_components

from .conftest import dummy_batch, get_dummy_components, pipeline_for, tiny_config
from .test_model import condition


def test_attention_map_puts_each_tokens_weight_on_its_cells():
    frce = get_dummy_components().frce
    g, p, lp = frce.config.grid_size, frce.config.patch_size, frce.num_patch_tokens
    masks = torch.zeros(1, 2, g, g)
    masks[0, 0, -1, -1] = 1.0  # region 0: the bottom-right cell
    masks[0, 1] = 1.0 - masks[0, 0]
    attention = torch.zeros(1, lp + 2)
    attention[0, 0] = 0.5  # the top-left patch token
    attention[0, lp] = 0.25  # region 0
    m = frce.attention_map(attention, masks)[0]
    assert m.shape == (g, g) and m.max() == 1.0
    assert torch.all(m[:p, :p] == 1.0) and m[-1, -1] == 0.5
    m[:p, :p] = 0
    m[-1, -1] = 0
    assert m.abs().sum() == 0  # nothing anywhere else
    no_regions = frce.attention_map(attention[:, :lp], None)[0]
    assert torch.all(no_regions[:p, :p] == 1.0) and no_regions.sum() == p * p


def test_id_focus_is_the_attention_of_the_object_tokens_last_token():
    m = get_dummy_components().eval()
    batch = dummy_batch(m)
    batch.object_tokens = ["<obj> red apple | left </obj>", "<obj> cube </obj>"]
    with torch.no_grad():
        _, feats = m.mllm.encode_image(batch.source)
        obj, pad = m.encode_objects(batch.object_tokens)
        out = m.frce(feats, batch.region_masks, batch.region_valid, obj, pad)
        _, weights = m.frce.id_controller(m.frce.object_proj(obj), out.r_v, out.r_v_padding)
    last = (~pad).sum(1) - 1
    assert last[0] > last[1]  # the longer phrase ends later
    for i in range(2):
        torch.testing.assert_close(out.id_focus[i], weights[i, last[i]])
    assert not torch.allclose(out.id_focus, out.id_attention)  # not the average over O's tokens
    torch.testing.assert_close(out.id_map, m.frce.attention_map(out.id_focus, batch.region_masks))


def test_grounding_map_starts_as_a_no_op_then_marks_where_the_id_controller_looks():
    plain = get_dummy_components().eval()
    grounded = with_components(plain, {"grounding_map": True})
    assert grounded.config.components.grounding_map and not plain.config.components.grounding_map
    batch = dummy_batch(plain)
    with torch.no_grad():
        a, b = condition(plain, batch), condition(grounded, batch)
        torch.testing.assert_close(a.input_offset, b.input_offset)  # zero-initialised: same model
        grounded.conditioning.grounding_to_input.fill_(1.0)
        c = condition(grounded, batch)
    diff = c.input_offset - b.input_offset  # (B, C, h, w): the id_map on every channel
    torch.testing.assert_close(diff[:, 0], diff[:, -1])
    assert diff.amax() <= 1.0 + 1e-5 and diff.amin() >= 0 and diff.amax() > 0.5
    assert b.frce.id_map.shape == (2, plain.grid_size, plain.grid_size)


def test_pipeline_reports_the_attention_the_grounding_map_spreads():
    from reasonbrain.pipelines.pipeline_reasonbrain import ReasonBrainEditPipeline
    from reasonbrain.synthworld.segmenter import ColorSegmentsRegionProposer

    image = Image.new("RGB", (64, 64), (40, 90, 160))
    image.paste((220, 40, 40), (8, 30, 24, 46))
    image.paste((240, 220, 30), (40, 30, 56, 46))
    plain = get_dummy_components()
    for model, field in ((plain, "id_attention"), (with_components(plain, {"grounding_map": True}), "id_focus")):
        pipe = ReasonBrainEditPipeline(model=model, region_proposer=ColorSegmentsRegionProposer(max_regions=4))
        seen: list = []
        hook = model.frce.register_forward_hook(lambda module, args, out, seen=seen: seen.append(out))
        try:
            out = pipe(image, "What if the red square on the left melted?", num_inference_steps=1, seed=0)
        finally:
            hook.remove()
        attn = getattr(seen[0], field)[0]
        lp, r = seen[0].num_patch_tokens, len(out.regions)
        expected = attn[lp : lp + r] / attn[lp : lp + r].sum()
        torch.testing.assert_close(torch.tensor(out.region_attention), expected.float(), atol=1e-5, rtol=1e-4)
        assert not torch.allclose(seen[0].id_focus, seen[0].id_attention)  # the two fields tell apart


def test_with_components_keeps_the_checkpoint_and_refuses_to_drop_modules(tmp_path):

    model = get_dummy_components().eval()
    model.save_pretrained(tmp_path / "m")
    loaded = ReasonBrainModel.from_pretrained(tmp_path / "m")
    assert not loaded.config.components.grounding_map  # checkpoints written before the switch load unchanged
    grounded = with_components(loaded, {"grounding_map": True})
    pil = Image.fromarray((torch.rand(64, 64, 3).numpy() * 255).astype("uint8"))
    outs = [pipeline_for(m)(pil, "What if the apple rotted?", seed=1, num_inference_steps=2).images[0]
            for m in (loaded, grounded)]
    assert list(outs[0].getdata()) == list(outs[1].getdata())
    grounded.save_pretrained(tmp_path / "g")
    again = ReasonBrainModel.from_pretrained(tmp_path / "g")
    assert again.config.components.grounding_map and hasattr(again.conditioning, "grounding_to_input")
    with pytest.raises(ValueError, match="may only switch modules on"):
        with_components(loaded, {"region_branch": False})


def test_grounding_switch_needs_the_id_controller_and_the_baseline_drops_it():
    with pytest.raises(ValueError, match="grounding_map spreads the ID Controller"):
        tiny_config(components={"grounding_map": True, "id_controller": False, "text_enhancer": False})
    on = tiny_config(components={"grounding_map": True})
    assert not ablation_config(on, baseline=True).components.grounding_map


def test_grounding_loss_learns_where_the_edit_is_and_skips_dropped_or_unchanged_samples():
    torch.manual_seed(0)
    model = get_dummy_components().train()
    task = ReasonBrainTrainingTask(model, cond_dropout=0.0, grounding_loss_weight=1.0)
    batch = dummy_batch(model)  # the centre square changes: patch tokens there, regions 1 and 2 partly
    opt = torch.optim.AdamW(task.trainable_parameters(), lr=3e-3)
    history = []
    for step in range(25):
        out = task(batch, generator=torch.Generator().manual_seed(step))
        opt.zero_grad()
        out["loss"].backward()
        opt.step()
        history.append((out["grounding_loss"].item(), out["grounding_hit"].item()))
    assert history[-1][0] < 0.8 * history[0][0], history
    assert history[-1][1] == 1.0
    with torch.no_grad():
        batch.object_tokens = ["", ""]  # instruction dropped: nothing to ground
        assert task(batch)["grounding_loss"].item() == 0.0
        batch.object_tokens = ["<obj> ice cube </obj>"] * 2
        batch.target = batch.source.clone()  # no change: no target distribution
        assert task(batch)["grounding_loss"].item() == 0.0


def test_grounding_loss_needs_the_id_controller():
    model = get_dummy_components(components={"id_controller": False, "text_enhancer": False})
    task = ReasonBrainTrainingTask(model, cond_dropout=0.0, grounding_loss_weight=1.0)
    with pytest.raises(ValueError, match="needs the ID Controller"):
        task(dummy_batch(model))
