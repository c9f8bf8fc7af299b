"""benchmarks/gpu_edit.py on CPU (tiny preset; real presets built on the meta device) and the speed paths it
relies on: batched MLLM text generation, fused LoRA, model CPU offload, detailed timings."""

from __future__ import annotations

import json
import math

import numpy as np
import PIL.Image
import pytest
import torch

from reasonbrain.configuration import ReasonBrainConfig
from reasonbrain.pipelines.pipeline_reasonbrain import (
    REASONING_PROMPT,
    REFERRING_PROMPT,
    ReasonBrainEditPipeline,
)

from .contracts import assert_model_cpu_offload
from .scripts import load_script

INSTRUCTION = "What would happen if the ice cube were left in the sun?"


@pytest.fixture(scope="module")
def gpu_edit():
    return load_script("benchmarks/gpu_edit.py")


def image(size: int = 64) -> PIL.Image.Image:
    return PIL.Image.fromarray(np.random.default_rng(0).integers(0, 255, (size, size, 3), dtype=np.uint8))


def test_benchmark_main_on_the_tiny_preset_writes_every_stage(gpu_edit, tmp_path, capsys):
    out = tmp_path / "bench.json"
    rc = gpu_edit.main(["--presets", "tiny", "--device", "cpu", "--dtype", "fp32", "--steps", "2", "--repeats", "1",
                        "--cpu-offload", "--json-out", str(out)])
    assert rc == 0
    data = json.loads(out.read_text())
    assert data["environment"]["device"] == "cpu" and data["environment"]["dtype"] == "float32"
    (result,) = data["results"]
    assert result["status"] == "ok" and result["preset"] == "tiny"
    assert result["parameters"]["total"] > 0 and 1 <= result["num_regions"] <= result["max_regions"]
    run = result["runs"]["2"]
    ours, bare = run["reasonbrain_ms"], run["bare_ms"]
    stages = {key for key, _ in gpu_edit.ROWS} | {"total", "conditioning"}
    assert stages <= set(ours), stages - set(ours)
    assert {"preprocess", "text_encoder", "encode_image", "denoise", "denoise_step", "decode", "total"} <= set(bare)
    for row in (ours, bare):
        assert all(math.isfinite(v) for v in row.values())
        assert all(v >= 0 for k, v in row.items() if k != "other")
        assert row["total"] > 0 and row["denoise"] > 0
        assert row["denoise_step"] == pytest.approx(row["denoise"] / 2, rel=0.25)
    assert ours["total"] >= ours["denoise"] + ours["decode"]
    # the conditioning's sub-stages are inside it
    inner = sum(ours[k] for k in ("text_encoder", "frce", "mllm_forward", "qformer", "cme"))
    assert inner <= ours["conditioning"] * 1.05 + 1.0
    assert run["ratio_edit"] > 0 and run["ratio_denoise"] > 0
    assert run["peak_gb"] is None  # CPU: no CUDA peak memory
    assert result["cpu_offload"]["edit_ms"] > 0
    # a row per method for comparison: reason-then-edit, and the plain editor (the same editor) as its bare baseline
    methods = result["methods"]
    rows = methods["runs"]["2"]
    assert set(rows) == {"reason_then_edit", "plain_editor"}
    assert methods["answer_tokens"] == methods["max_new_tokens"]  # EOS off: the answer runs to its token limit
    rte, plain = rows["reason_then_edit"]["ms"], rows["plain_editor"]["ms"]
    assert all(rte[k] > 0 for k in ("mllm_answer", "sam_regions", "editor", "total"))
    assert plain["mllm_answer"] == plain["sam_regions"] == 0.0 and plain["editor"] > 0
    assert rte["total"] >= rte["mllm_answer"] + rte["sam_regions"] + rte["editor"]
    assert rows["reason_then_edit"]["peak_gb"] is None  # CPU
    printed = capsys.readouterr().out
    assert "### tiny" in printed and "denoising loop / bare loop" in printed
    assert "methods for comparison" in printed and "| plain_editor | 2 | – | – |" in printed


def test_method_rows_alone(gpu_edit, tmp_path, capsys):
    out = tmp_path / "bench.json"
    assert gpu_edit.main(["--presets", "tiny", "--device", "cpu", "--dtype", "fp32", "--steps", "1", "--repeats", "1",
                          "--methods", "plain_editor", "--json-out", str(out)]) == 0
    (result,) = json.loads(out.read_text())["results"]
    assert result["status"] == "ok" and "runs" not in result and set(result["methods"]["runs"]["1"]) == {"plain_editor"}
    printed = capsys.readouterr().out
    assert "| plain_editor | 1 |" in printed and "B parameters" not in printed


@pytest.mark.parametrize("preset", ["reasonbrain-3b", "reasonbrain-7b"])
def test_real_presets_build_offline_with_substitute_tokenizers(gpu_edit, preset):
    # the meta device: the real-size construction path without allocating billions of parameters
    pipe, notes = gpu_edit.build_pipeline(preset, device=torch.device("meta"), dtype=torch.bfloat16)
    model = pipe.model
    assert any("bundled tokenizer" in n for n in notes)
    vocab = model.mllm.base.get_input_embeddings().weight.shape[0]
    assert max(model.mllm.img_token_ids) < vocab and len(model.mllm.tokenizer) <= vocab
    assert model.dtype == torch.bfloat16 and pipe.region_proposer.dtype == torch.float32  # SAM 2 stays fp32
    assert type(pipe.region_proposer.model).__name__ == "Sam2Model"
    assert type(pipe.scheduler).__name__ == "DPMSolverMultistepScheduler"
    assert pipe.scheduler.config.algorithm_type == "dpmsolver++" and pipe.config.defaults.num_inference_steps == 20
    assert model.mllm.base.generation_config.eos_token_id is None  # answers run to their token limit
    assert pipe.region_proposer.pred_iou_thresh == pipe.region_proposer.stability_score_thresh == 0.0
    assert pipe.region_proposer.max_regions == pipe.config.frce.max_regions == 32
    assert gpu_edit.parameter_counts(pipe)["total"] > 5e9


@pytest.mark.parametrize("preset", ["reasonbrain-3b", "reasonbrain-7b"])
def test_real_presets_build_reason_then_edit_and_the_plain_editor_offline(gpu_edit, preset):
    rte, plain, notes = gpu_edit.build_methods(preset, device=torch.device("meta"), dtype=torch.bfloat16)
    assert plain.editor is rte.editor and type(rte.editor).__name__ == "StableDiffusionInstructPix2PixPipeline"
    assert rte.editor.unet.config.in_channels == 8 and rte.editor.unet.dtype == torch.bfloat16
    assert type(rte.reasoner.mllm.base).__name__ == "LlavaForConditionalGeneration"
    assert rte.reasoner.mllm.base.generation_config.eos_token_id is None
    assert rte.reasoner.max_new_tokens == rte.config.reason_then_edit.max_new_tokens
    assert any("bundled tokenizer" in n for n in notes) and any("max_new_tokens" in n for n in notes)
    assert type(rte.region_proposer.model).__name__ == "Sam2Model" and rte.region_proposer.dtype == torch.float32


def test_layer_override_reduces_only_the_transformer_depths(gpu_edit):
    pipe, notes = gpu_edit.build_pipeline("reasonbrain-3b", device=torch.device("meta"), dtype=torch.bfloat16,
                                          num_layers=2, resolution=256)
    base = pipe.model.mllm.base.config
    assert base.text_config.num_hidden_layers == 2
    assert base.vision_config.num_hidden_layers == 14  # the deepest multi-scale feature layer is -14
    assert pipe.model.text_encoder.config.num_hidden_layers == 2
    assert pipe.config.resolution == 256 and any("REDUCED" in n for n in notes)


def test_batched_generation_matches_one_prompt_at_a_time():
    torch.manual_seed(0)
    pipe = ReasonBrainEditPipeline.from_config(ReasonBrainConfig.from_preset("tiny"))
    mllm = pipe.model.mllm
    with torch.no_grad():  # random weights large enough for varied greedy tokens
        for p in mllm.base.model.language_model.parameters():
            p.normal_(0, 0.3)
    ia_tokens, _ = mllm.encode_image(torch.rand(1, 3, 64, 64) * 2 - 1)
    prompts = {"referring": (REFERRING_PROMPT.format(INSTRUCTION), 4),
               "reasoning": (REASONING_PROMPT.format(INSTRUCTION), 9)}
    together = pipe._generate(ia_tokens, prompts)
    apart = {k: pipe._generate(ia_tokens, {k: v})[k] for k, v in prompts.items()}
    assert together == apart and len(set(together["reasoning"])) > 1
    pipe.enable_static_generation_cache()  # a fixed-size KV cache: the same greedy tokens
    assert pipe._generate(ia_tokens, prompts) == together


def test_fused_lora_gives_the_same_edit_and_blocks_saving(tmp_path):
    torch.manual_seed(0)
    cfg = ReasonBrainConfig.from_preset("tiny", mllm={"generate_reasoning": True, "reasoning_max_new_tokens": 4})
    pipe = ReasonBrainEditPipeline.from_config(cfg)
    with torch.no_grad():
        for name, p in pipe.model.mllm.vlm.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.2)
    kw = dict(seed=1, num_inference_steps=2, referring="mllm")
    a = pipe(image(), INSTRUCTION, **kw)
    pipe.fuse_lora()
    b = pipe(image(), INSTRUCTION, **kw)
    with pytest.raises(ValueError, match="unfuse_lora"):
        pipe.save_pretrained(tmp_path / "ckpt")
    pipe.unfuse_lora()
    assert a.reasoning == b.reasoning and a.object_token == b.object_token
    diff = np.abs(np.asarray(a.images[0], dtype=float) - np.asarray(b.images[0], dtype=float)).max()
    assert diff <= 2.0


def test_cpu_offload_and_detailed_timings_keep_the_result():
    torch.manual_seed(0)
    pipe = ReasonBrainEditPipeline.from_config(ReasonBrainConfig.from_preset("tiny"))
    a = pipe(image(), INSTRUCTION, seed=3, num_inference_steps=3)
    assert a.detailed_timings is None and "detailed_timings" not in a.to_dict()
    # each offloaded component moved in just before it runs and out right after; the same image as ``a``
    b = assert_model_cpu_offload(pipe, "cpu", image(), INSTRUCTION, reference=a, seed=3, num_inference_steps=3,
                                 detailed_timings=True)
    assert set(b.detailed_timings["conditioning"]) == {"text_encoder", "frce", "mllm", "qformer", "cme"}
    assert len(b.detailed_timings["denoise_steps"]) == 3 and "vision_encoder" in b.timings
    pipe.to("cpu")  # an explicit device ends the offload
    assert pipe._offload_device is None
