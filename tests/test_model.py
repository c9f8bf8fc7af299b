"""The ReasonBrain model library: shapes, gradients, save/load, determinism, [IMG] tokens, ablations."""

from __future__ import annotations

import os

import pytest
import torch
from safetensors.torch import load_file, save_file

from reasonbrain.configuration import ReasonBrainConfig, list_presets
from reasonbrain.models.reasonbrain import ReasonBrainModel
from reasonbrain.training.task import ABLATION_SWITCHES, ReasonBrainTrainingTask, ablation_config

from .conftest import dummy_batch, get_dummy_components, tiny_config


def condition(model, batch, **kw):
    latent_hw = (model.config.resolution // model.vae_scale_factor,) * 2
    return model.encode_condition(
        batch.source, batch.instructions, batch.object_tokens, batch.region_masks, batch.region_valid, latent_hw, **kw
    )


def test_shapes_through_every_module(tiny_model):
    m, cfg = tiny_model, tiny_model.config
    batch = dummy_batch(m)
    b, g = 2, m.grid_size
    ia, feats = m.mllm.encode_image(batch.source)
    assert ia.shape == (b, g * g, m.mllm.hidden_size)
    assert feats.shape == (b, g * g, m.mllm.vision_dim)
    obj, obj_pad = m.encode_objects(batch.object_tokens)
    k = cfg.frce.max_object_tokens
    assert obj.shape == (b, k, m.text_encoder.config.hidden_size) and obj_pad.shape == (b, k)
    assert not obj_pad[:, 0].any() and obj_pad[:, -1].all()  # short object phrases are padded
    frce = m.frce(feats, batch.region_masks, batch.region_valid, obj, obj_pad)
    lp = (g // cfg.frce.patch_size) ** 2
    assert frce.num_patch_tokens == lp
    assert frce.r_v.shape == (b, lp + 3, cfg.frce.hidden_size)
    assert frce.r_t.shape == (b, k, cfg.frce.hidden_size)
    assert frce.id_attention.shape == (b, lp + 3)
    torch.testing.assert_close(frce.id_attention.sum(-1), torch.ones(b))
    assert frce.r_v_llm.shape[-1] == frce.r_t_llm.shape[-1] == m.mllm.hidden_size
    with torch.no_grad():
        out = condition(m, batch, compute_mllm_loss=True)
    r = cfg.mllm.num_img_tokens
    assert out.img_hidden.shape == (b, r, m.mllm.hidden_size)
    assert out.guidance.shape == (b, cfg.qformer.num_queries, cfg.qformer.hidden_size)
    latent = cfg.resolution // m.vae_scale_factor
    assert out.input_offset.shape == (b, 2 * cfg.latent_channels, latent, latent)
    assert out.context.shape == (b, 2 * cfg.cme.num_queries, cfg.cross_attention_dim)
    assert out.mllm_loss.ndim == 0 and torch.isfinite(out.mllm_loss)
    image_latents = m.encode_image_latents(batch.source)
    eps = m.predict_noise(torch.randn_like(image_latents), torch.tensor([1, 500]), image_latents,
                          out.input_offset, out.context)
    assert eps.shape == image_latents.shape == (b, cfg.latent_channels, latent, latent)


def test_gradients_reach_every_trainable_parameter_and_no_frozen_one():
    model = get_dummy_components().train()
    task = ReasonBrainTrainingTask(model, cond_dropout=0.0)
    batch = dummy_batch(model)
    opt = torch.optim.SGD(task.trainable_parameters(), lr=0.1)
    # Step 1 moves zero-initialised layers (LoRA B, the conditioning maps) off zero; step 2 is checked.
    for _ in range(2):
        opt.zero_grad(set_to_none=True)
        task(batch, generator=torch.Generator().manual_seed(0))["loss"].backward()
        if _ == 0:
            opt.step()
    trainable = {n: p for n, p in model.named_parameters() if p.requires_grad}
    frozen = {n: p for n, p in model.named_parameters() if not p.requires_grad}
    assert trainable and frozen
    no_grad = [n for n, p in trainable.items() if p.grad is None or not torch.any(p.grad != 0)]
    assert no_grad == []
    assert [n for n, p in frozen.items() if p.grad is not None] == []
    frozen_prefixes = ("text_encoder.", "vae.", "mllm.vlm.base_model.model.model.vision_tower.")
    assert all(not n.startswith(frozen_prefixes) for n in trainable)
    assert any("lora_A" in n for n in trainable) and any("trainable_tokens_delta" in n for n in trainable)


def test_saved_checkpoint_layout_and_strict_loading(tmp_path, tiny_model):
    """Identical outputs after a round trip: tests/test_contracts.py (ModelContract)."""
    tiny_model.save_pretrained(tmp_path / "ckpt")
    assert {"mllm", "mllm_adapter", "frce", "qformer", "cme", "conditioning", "unet", "vae", "text_encoder",
            "tokenizer", "text_tokenizer", "reasonbrain_config.json"} <= set(os.listdir(tmp_path / "ckpt"))
    assert os.path.isfile(tmp_path / "ckpt" / "mllm_adapter" / "adapter_config.json")
    # strict loading: a missing weight in a component raises
    path = tmp_path / "ckpt" / "frce" / "diffusion_pytorch_model.safetensors"
    state = load_file(path)
    state.pop(next(iter(state)))
    save_file(state, path)
    with pytest.raises(ValueError, match="do not match"):
        ReasonBrainModel.from_pretrained(tmp_path / "ckpt")


def test_loading_a_non_checkpoint_folder_raises(tmp_path):
    with pytest.raises(ValueError, match="not a ReasonBrain checkpoint"):
        ReasonBrainModel.from_pretrained(tmp_path)


def test_seeded_construction_and_forward_are_deterministic():
    batch = dummy_batch(get_dummy_components())
    outs = []
    for _ in range(2):
        model = get_dummy_components(seed=123).eval()
        with torch.no_grad():
            outs.append(condition(model, batch).context)
    torch.testing.assert_close(outs[0], outs[1], rtol=0, atol=0)
    other = get_dummy_components(seed=124).eval()
    with torch.no_grad():
        assert not torch.allclose(outs[0], condition(other, batch).context)


def test_wrong_number_of_img_tokens_raises(tiny_model):
    batch = dummy_batch(tiny_model)
    batch.instructions = ["What if [IMG0] melted?", batch.instructions[1]]  # an extra [IMG] token
    with torch.no_grad(), pytest.raises(ValueError, match=r"exactly 4 \[IMG\] tokens"):
        condition(tiny_model, batch)


def test_img_token_ids_live_in_config_and_are_checked():
    cfg = tiny_config()
    assert cfg.mllm.img_token_ids == [655, 656, 657, 658]
    with pytest.raises(ValueError, match="num_img_tokens"):
        tiny_config(mllm={"img_token_ids": [655, 656]})
    with pytest.raises(ValueError, match="ids"):
        ReasonBrainModel.from_config(tiny_config(mllm={"img_token_ids": [600, 601, 602, 603]}))


def _param_names(model) -> set[str]:
    return {n for n, _ in model.named_parameters()}


@pytest.mark.parametrize(
    "switches, removed_prefixes",
    [
        ({"patch_branch": False}, ["frce.patch_"]),
        ({"region_branch": False}, ["frce.region_"]),
        ({"id_controller": False, "text_enhancer": False},
         ["frce.object_proj", "frce.id_controller", "frce.r_t_to_llm", "cme.textual", "conditioning.text_to_input"]),
        ({"text_enhancer": False}, ["cme.textual", "conditioning.text_to_input"]),
        ({"visual_enhancer": False}, ["cme.visual", "conditioning.visual_to_input"]),
    ],
)
def test_each_ablation_switch_removes_exactly_its_component(switches, removed_prefixes):
    full = _param_names(get_dummy_components())
    cfg = ablation_config(tiny_config(), **switches)
    torch.manual_seed(0)
    ablated_model = ReasonBrainModel.from_config(cfg).eval()
    ablated = _param_names(ablated_model)
    removed = full - ablated
    assert removed and ablated <= full
    assert all(n.startswith(tuple(removed_prefixes)) for n in removed)
    for prefix in removed_prefixes:
        assert any(n.startswith(prefix) for n in removed), prefix
    with torch.no_grad():
        out = condition(ablated_model, dummy_batch(ablated_model))
    assert torch.isfinite(out.context).all()


def test_baseline_has_no_frce_or_cme_and_feeds_qformer_to_unet():
    cfg = ablation_config(tiny_config(), baseline=True)
    assert not any(getattr(cfg.components, s) for s in ABLATION_SWITCHES)
    torch.manual_seed(0)
    model = ReasonBrainModel.from_config(cfg).eval()
    assert model.frce is None and model.cme is None
    names = _param_names(model)
    assert not any(n.startswith(("frce.", "cme.")) for n in names)
    assert "conditioning.guidance_to_context.weight" in names
    batch = dummy_batch(model)
    batch.region_masks = batch.region_valid = None
    with torch.no_grad():
        out = condition(model, batch)
    assert out.context.shape == (2, cfg.qformer.num_queries, cfg.cross_attention_dim)


def test_invalid_ablation_combinations_raise_clear_errors():
    with pytest.raises(ValueError, match="text_enhancer attends to R_T"):
        ablation_config(tiny_config(), id_controller=False)
    with pytest.raises(ValueError, match="needs R_V"):
        ablation_config(tiny_config(), patch_branch=False, region_branch=False, visual_enhancer=False,
                        text_enhancer=False)
    with pytest.raises(ValueError, match="unknown ablation switches"):
        ablation_config(tiny_config(), cme=False)


def test_tiny_model_overfits_one_batch():
    torch.manual_seed(0)
    model = get_dummy_components().train()
    task = ReasonBrainTrainingTask(model, cond_dropout=0.0)
    batch = dummy_batch(model)
    opt = torch.optim.AdamW(task.trainable_parameters(), lr=5e-3)
    losses = []
    for step in range(30):
        out = task(batch, generator=torch.Generator().manual_seed(step % 2))
        opt.zero_grad()
        out["loss"].backward()
        opt.step()
        losses.append({k: v.item() for k, v in out.items()})
    assert set(losses[0]) == {"mllm_loss", "dm_loss", "loss"}
    first = sum(x["loss"] for x in losses[:2]) / 2
    last = sum(x["loss"] for x in losses[-2:]) / 2
    assert last <= 0.5 * first, (first, last)
    assert losses[-1]["mllm_loss"] < 0.5 * losses[0]["mllm_loss"]


def test_config_validation_errors_are_actionable():
    with pytest.raises(ValueError, match="five hybrid blocks"):
        tiny_config(cme={"num_blocks": 4})
    with pytest.raises(ValueError, match="Unknown keys in config section 'frce'"):
        tiny_config(frce={"hidden": 3})
    with pytest.raises(ValueError, match="divisible"):
        tiny_config(frce={"hidden_size": 30})
    with pytest.raises(ValueError, match="Unknown preset"):
        ReasonBrainConfig.from_preset("nope")


def test_config_json_round_trip(tmp_path):
    cfg = tiny_config()
    cfg.save(tmp_path)
    assert ReasonBrainConfig.from_json_file(tmp_path / "reasonbrain_config.json") == cfg


@pytest.mark.parametrize("name", ["reasonbrain-3b", "reasonbrain-7b"])
def test_real_presets_carry_the_papers_numbers(name):
    cfg = ReasonBrainConfig.from_preset(name)
    assert cfg.mllm.num_img_tokens == 32
    assert (cfg.mllm.lora["r"], cfg.mllm.lora["alpha"]) == (8, 16)
    assert (cfg.qformer.num_layers, cfg.qformer.num_queries) == (6, 77)
    assert cfg.cme.num_blocks == 5
    assert cfg.diffusion.unet["in_channels"] == 8
    assert cfg.mllm.pretrained_model_name_or_path and cfg.diffusion.unet_pretrained
    assert "sam2.1" in cfg.regions.pretrained_model_name_or_path
    assert all(getattr(cfg.components, s) for s in ABLATION_SWITCHES)


def test_presets_listed():
    assert {"tiny", "reasonbrain-3b", "reasonbrain-7b"} <= set(list_presets())


def test_real_preset_builds_offline_on_meta_device():
    from reasonbrain.model_summary import parameter_table

    rows = parameter_table("reasonbrain-3b")
    assert rows["language_model"][0] > 3e9  # a 3B-class language model
    assert 0 < rows["language_model"][1] < 0.01 * rows["language_model"][0]  # LoRA only
    assert rows["frce"][0] > 1e7 and rows["cme"][0] > 1e7
    assert rows["vision_tower (E_I)"][1] == 0 and rows["vae"][1] == 0


def test_mode_targets_are_the_vae_posterior_mean_and_sampled_targets_are_not():
    model = get_dummy_components().eval()
    batch = dummy_batch(model)

    def loss(target_latents: str) -> float:
        task = ReasonBrainTrainingTask(model, cond_dropout=0.0, target_latents=target_latents)
        with torch.no_grad():
            return task(batch, generator=torch.Generator().manual_seed(0))["dm_loss"].item()

    assert loss("mode") == loss("mode")  # same noise and timesteps, deterministic target
    torch.manual_seed(1)
    first = loss("sample")
    torch.manual_seed(2)
    assert loss("sample") != first  # the sampled target latent differs between calls
    with pytest.raises(ValueError, match="target_latents"):
        ReasonBrainTrainingTask(model, target_latents="mean")


def test_a_component_config_that_disagrees_with_the_checkpoint_config_is_refused(tmp_path):
    """One source of truth: a component's saved config.json must say what reasonbrain_config.json says."""
    import json

    from tests.conftest import get_dummy_components

    model = get_dummy_components().eval()
    model.save_pretrained(tmp_path / "m")
    ReasonBrainModel.from_pretrained(tmp_path / "m")  # as saved: loads
    path = tmp_path / "m" / "qformer" / "config.json"
    saved = json.loads(path.read_text())
    heads = saved["num_heads"]
    saved["num_heads"] = heads * 2  # the same weight shapes, a different model
    path.write_text(json.dumps(saved))
    with pytest.raises(ValueError, match=rf"qformer/config.json disagrees .*num_heads is {heads * 2} there but {heads} here"):
        ReasonBrainModel.from_pretrained(tmp_path / "m")
