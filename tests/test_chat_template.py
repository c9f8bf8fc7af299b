"""The MLLM prompt in each preset's chat format (reasonbrain.models.prompt) and IA(E_I(I)) through transformers'
get_image_features: offline, with the bundled tokenizer and a tiny LLaVA."""

from __future__ import annotations

import os

import pytest
import torch
from transformers import AutoTokenizer, LlavaConfig, LlavaForConditionalGeneration
from transformers.utils.constants import OPENAI_CLIP_MEAN, OPENAI_CLIP_STD

from reasonbrain.configuration import ReasonBrainConfig
from reasonbrain.models.backbones import bundled_tokenizer_path
from reasonbrain.models.mllm import ReasonBrainMLLM, add_img_tokens
from reasonbrain.models.prompt import PromptLayout

# microsoft/Phi-3-mini-4k-instruct's chat template, which the 3B preset's tokenizer carries
PHI3_TOKENIZER_TEMPLATE = (
    "{% for message in messages %}{% if message['role'] == 'system' %}{{'<|system|>\n' + message['content'] + "
    "'<|end|>\n'}}{% elif message['role'] == 'user' %}{{'<|user|>\n' + message['content'] + '<|end|>\n'}}"
    "{% elif message['role'] == 'assistant' %}{{'<|assistant|>\n' + message['content'] + '<|end|>\n'}}{% endif %}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|assistant|>\n' }}{% else %}{{ eos_token }}{% endif %}"
)
PHI3_TOKENS = ["<|user|>", "<|end|>", "<|assistant|>"]
INSTRUCTION = "What if the ice cube were left in the sun?"


def bundled_tokenizer():
    return AutoTokenizer.from_pretrained(bundled_tokenizer_path())


def phi3_tokenizer():
    """The bundled tokenizer with Phi-3's chat tokens and chat template, as xtuner/llava-phi-3-mini-hf's has."""
    tok = bundled_tokenizer()
    tok.add_tokens(PHI3_TOKENS, special_tokens=True)
    tok.chat_template = PHI3_TOKENIZER_TEMPLATE
    return tok


def layout(tok, preset: str, **overrides) -> PromptLayout:
    mc = ReasonBrainConfig.from_preset(preset, mllm=overrides).mllm
    return PromptLayout.from_tokenizer(tok, chat_template=mc.chat_template, user_message=mc.user_message)


def encode(tok, text: str) -> list[int]:
    return tok.encode(text, add_special_tokens=False)


def tiny_mllm(tok, prompt: PromptLayout, strategy: str = "default") -> ReasonBrainMLLM:
    """A tiny random LLaVA (the tiny preset's architecture) with the given vision feature select strategy."""
    mc = ReasonBrainConfig.from_preset("tiny").mllm
    img_ids = add_img_tokens(tok, mc.num_img_tokens, None)
    torch.manual_seed(0)
    vlm = LlavaForConditionalGeneration(LlavaConfig(**{**mc.config, "vision_feature_select_strategy": strategy}))
    ReasonBrainMLLM.prepare_base(vlm, len(tok), freeze_vision_tower=True)
    return ReasonBrainMLLM(vlm=vlm.eval(), tokenizer=tok, prompt=prompt, img_token_ids=img_ids,
                           multiscale_layers=mc.multiscale_layers, vision_feature_layer=mc.vision_feature_layer)


# --- the prompt of each preset ------------------------------------------------------------------------------------
@pytest.mark.parametrize("preset", ["synth", "tiny"])
def test_models_built_from_scratch_keep_their_plain_format(preset):
    tok = bundled_tokenizer()
    prompt = layout(tok, preset)
    assert prompt.text == "USER:<image>{} ASSISTANT:"
    assert prompt.lead == [tok.bos_token_id] + encode(tok, "USER:")
    assert prompt.between == []
    assert prompt.tail == encode(tok, " ASSISTANT:")


def test_the_shipped_checkpoint_reads_with_its_trained_prompt():
    """Its config predates the prompt fields: the defaults give the "[BOS]USER:" ... " ASSISTANT:" it was trained on."""
    from reasonbrain.bundled import default_checkpoint

    folder = default_checkpoint()
    mc = ReasonBrainConfig.from_json_file(os.path.join(folder, "reasonbrain_config.json")).mllm
    tok = AutoTokenizer.from_pretrained(os.path.join(folder, "tokenizer"))
    prompt = PromptLayout.from_tokenizer(tok, chat_template=mc.chat_template, user_message=mc.user_message)
    assert (prompt.lead, prompt.between, prompt.tail) == (
        [tok.bos_token_id] + encode(tok, "USER:"), [], encode(tok, " ASSISTANT:"))


def test_llava_1_5_format_of_the_7b_preset():
    tok = bundled_tokenizer()  # like llava-1.5's tokenizer, it has no chat template: the preset's is used
    assert tok.chat_template is None
    prompt = layout(tok, "reasonbrain-7b")
    assert prompt.text == "USER: <image>\n{} ASSISTANT:"
    assert prompt.lead == [tok.bos_token_id] + encode(tok, "USER: ")
    assert prompt.between == encode(tok, "\n")
    assert prompt.tail == encode(tok, " ASSISTANT:")


def test_phi3_format_of_the_3b_preset_comes_from_the_tokenizer():
    tok = phi3_tokenizer()
    user, end, assistant = tok.convert_tokens_to_ids(PHI3_TOKENS)
    expected = "<|user|>\n<image>\n{}<|end|>\n<|assistant|>\n"
    # the tokenizer's template wins over the preset's (here set to llava-1.5's to tell them apart)
    llava = ReasonBrainConfig.from_preset("reasonbrain-7b").mllm.chat_template
    prompt = layout(tok, "reasonbrain-3b", chat_template=llava)
    assert prompt.text == expected
    assert prompt.lead == [tok.bos_token_id, user] + encode(tok, "\n")
    assert prompt.between == encode(tok, "\n")
    assert prompt.tail == [end] + encode(tok, "\n") + [assistant] + encode(tok, "\n")
    # without a tokenizer template, the preset's own stands in with the same format
    tok.chat_template = None
    assert layout(tok, "reasonbrain-3b") == prompt


# the shape of llava-hf's processor chat template: content is a list of image and text parts
LLAVA_HF_PARTS_TEMPLATE = (
    "{% for message in messages %}{% if message['role'] != 'system' %}{{ message['role'].upper() + ': '}}{% endif %}"
    "{% for content in message['content'] | selectattr('type', 'equalto', 'image') %}{{ '<image>\n' }}{% endfor %}"
    "{% for content in message['content'] | selectattr('type', 'equalto', 'text') %}{{ content['text'] + ' '}}"
    "{% endfor %}{% endfor %}{% if add_generation_prompt %}{{ 'ASSISTANT:' }}{% endif %}"
)


def test_a_tokenizer_template_of_image_and_text_parts_gives_the_llava_format():
    """A string content renders nothing from such a template; the parts form is used, with the same result as the
    preset's llava-1.5 template."""
    tok = bundled_tokenizer()
    expected = layout(tok, "reasonbrain-7b")
    tok.chat_template = LLAVA_HF_PARTS_TEMPLATE
    assert layout(tok, "reasonbrain-7b") == expected


@pytest.mark.parametrize("preset", ["reasonbrain-7b", "reasonbrain-3b"])
def test_the_sequence_holds_the_format_the_visual_tokens_and_the_img_tokens(preset):
    tok = phi3_tokenizer() if preset == "reasonbrain-3b" else bundled_tokenizer()
    prompt = layout(tok, preset)
    mllm = tiny_mllm(tok, prompt)
    ia, _ = mllm.encode_image(torch.zeros(1, 3, 32, 32))
    n_image = mllm.grid_size**2
    assert ia.shape[1] == n_image == 64  # tiny preset: 32 px images, 4 px patches
    seq = mllm.build_sequence([INSTRUCTION], ia)
    ids = seq["input_ids"][0].tolist()
    body = encode(tok, f" Instruction: {INSTRUCTION}")
    assert ids == (prompt.lead + [mllm.placeholder_id] * n_image + prompt.between + body + prompt.tail
                   + mllm.img_token_ids)
    assert ids.count(mllm.placeholder_id) == n_image
    img = "".join(f"[IMG{i}]" for i in range(len(mllm.img_token_ids)))
    text = tok.decode([i for k, i in enumerate(ids) if i != mllm.placeholder_id or ids[k - 1] != i])
    chat = {"reasonbrain-7b": "USER: <image>\n Instruction: {} ASSISTANT:",
            "reasonbrain-3b": "<|user|>\n<image>\n Instruction: {}<|end|>\n<|assistant|>\n"}[preset]
    assert text == tok.bos_token + chat.format(INSTRUCTION) + img
    # a generation prompt ends at the assistant's opening
    prompt_only = mllm.build_sequence([INSTRUCTION], ia, append_img_tokens=False)["input_ids"][0].tolist()
    assert prompt_only == ids[: -len(mllm.img_token_ids)]
    # the visual tokens' embeddings sit where the image goes
    start = len(prompt.lead)
    assert torch.equal(seq["inputs_embeds"][0, start : start + n_image], ia[0])


def test_reader_states_follow_the_image_and_its_separator():
    tok = bundled_tokenizer()
    prompt = layout(tok, "reasonbrain-7b")
    mllm = tiny_mllm(tok, prompt)
    ia = torch.randn(1, 4, mllm.hidden_size)
    states = torch.randn(1, 5, mllm.hidden_size)
    keep = torch.tensor([[True, True, True, False, False]])
    seq = mllm.build_sequence(["ignored"], ia, instruction_embeds=(states, keep))
    ids = seq["input_ids"][0].tolist()
    lead = encode(tok, " Instruction: ")
    start = len(prompt.lead) + 4 + len(prompt.between) + len(lead)
    assert ids[start - len(lead) - len(prompt.between) : start] == prompt.between + lead
    assert torch.equal(seq["inputs_embeds"][0, start : start + 5], states[0])
    assert seq["attention_mask"][0].sum() == len(ids) - 2


def test_a_template_that_writes_bos_gets_no_second_one():
    tok = bundled_tokenizer()
    prompt = PromptLayout.from_tokenizer(
        tok, chat_template="{{ bos_token }}{% for m in messages %}Q: {{ m['content'] }}{% endfor %} A:",
        user_message="<image>{}")
    assert prompt.lead == encode(tok, tok.bos_token + "Q: ") and prompt.lead.count(tok.bos_token_id) == 1


def test_prompt_errors_are_actionable():
    tok = bundled_tokenizer()
    plain = ReasonBrainConfig().mllm.chat_template
    with pytest.raises(ValueError, match="user_message"):
        PromptLayout.from_tokenizer(tok, chat_template=plain, user_message="<image>")
    with pytest.raises(ValueError, match="user_message"):
        PromptLayout.from_tokenizer(tok, chat_template=plain, user_message="{}<image>")
    with pytest.raises(ValueError, match="mllm.chat_template is null"):
        PromptLayout.from_tokenizer(tok, chat_template=None, user_message="<image>{}")
    with pytest.raises(ValueError, match="mllm.chat_template must write the user message"):
        PromptLayout.from_tokenizer(tok, chat_template="USER: hello ASSISTANT:", user_message="<image>{}")


# --- IA(E_I(I)) through get_image_features --------------------------------------------------------------------------
@pytest.mark.parametrize("strategy", ["default", "full"])
def test_encode_image_is_get_image_features_with_the_configs_layer_and_strategy(strategy):
    tok = bundled_tokenizer()
    mllm = tiny_mllm(tok, layout(tok, "tiny"), strategy)
    pixels = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(0)) * 2 - 1
    with torch.no_grad():
        ia, multiscale = mllm.encode_image(pixels)
        x = ((pixels + 1) / 2 - torch.tensor(OPENAI_CLIP_MEAN).view(1, 3, 1, 1)) / torch.tensor(
            OPENAI_CLIP_STD).view(1, 3, 1, 1)
        expected = mllm.base.get_image_features(x, vision_feature_layer=-2, vision_feature_select_strategy=strategy)
        hidden = mllm.base.model.vision_tower(x, output_hidden_states=True).hidden_states
    n_patches = mllm.grid_size**2
    assert ia.shape == (2, n_patches + (strategy == "full"), mllm.hidden_size)
    torch.testing.assert_close(ia, torch.stack(expected.pooler_output), rtol=0, atol=0)
    # the multi-scale features are the patch grid (CLS left out) under either strategy
    assert multiscale.shape == (2, n_patches, mllm.vision_dim)
    torch.testing.assert_close(multiscale, torch.cat([hidden[i][:, 1:] for i in mllm.multiscale_layers], -1),
                               rtol=0, atol=0)
