"""The reason-then-edit mode's MLLM: the preset's pretrained LLaVA-class model, untouched (no LoRA, nothing trained),
answering the structured prompt (``reasonbrain.reasoning_prompt``) in the preset's chat format, and matching an
object's name to SAM regions through its own visual tokens."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from transformers import AutoTokenizer, LlavaConfig, LlavaForConditionalGeneration

from reasonbrain.configuration import ReasonBrainConfig
from reasonbrain.models.backbones import tokenizer_source
from reasonbrain.models.mllm import ReasonBrainMLLM, add_img_tokens
from reasonbrain.models.prompt import PromptLayout
from reasonbrain.reasoning_prompt import structured_prompt
from reasonbrain.regions import Regions, masks_to_feature_grid

PROMPT_TOKEN_LIMIT = 2048  # the structured prompt with the instruction; longer ones are refused, never cut


class StructuredReasoner:
    """Wraps a :class:`ReasonBrainMLLM` (its chat format, image encoding and greedy generation) for reason-then-edit.

    ``ReasonBrainMLLM`` declares [IMG] tokens; they are added to this tokenizer and never used here."""

    def __init__(self, *, mllm: ReasonBrainMLLM, max_new_tokens: int) -> None:
        self.mllm = mllm.eval()
        self.max_new_tokens = int(max_new_tokens)

    @classmethod
    def from_config(cls, config: ReasonBrainConfig, *, load_backbones: bool = False,
                    torch_dtype: torch.dtype | None = None) -> StructuredReasoner:
        """The preset's MLLM: its Hub weights with ``load_backbones`` (``mllm.pretrained_model_name_or_path``), else
        random weights of its architecture (``mllm.config``)."""
        mc = config.mllm
        if load_backbones and not mc.pretrained_model_name_or_path:
            raise ValueError(f"preset {config.name!r} names no pretrained MLLM (mllm.pretrained_model_name_or_path): "
                             "reason-then-edit needs one, or load_backbones=False for random weights (tests)")
        tokenizer = AutoTokenizer.from_pretrained(tokenizer_source(mc.tokenizer))
        img_ids = add_img_tokens(tokenizer, mc.num_img_tokens, None)
        dtype = {"dtype": torch_dtype} if torch_dtype is not None else {}
        if load_backbones:
            vlm = LlavaForConditionalGeneration.from_pretrained(mc.pretrained_model_name_or_path, **dtype)
        else:
            vlm = LlavaForConditionalGeneration(LlavaConfig(**mc.config)).to(**dtype)
        ReasonBrainMLLM.prepare_base(vlm, len(tokenizer), freeze_vision_tower=True)
        vlm.requires_grad_(False)
        mllm = ReasonBrainMLLM(
            vlm=vlm, tokenizer=tokenizer,
            prompt=PromptLayout.from_tokenizer(tokenizer, chat_template=mc.chat_template, user_message=mc.user_message),
            img_token_ids=img_ids, multiscale_layers=mc.multiscale_layers,
            vision_feature_layer=mc.vision_feature_layer, max_instruction_tokens=PROMPT_TOKEN_LIMIT,
        )
        return cls(mllm=mllm, max_new_tokens=config.reason_then_edit.max_new_tokens)

    def to(self, device: torch.device | str | None = None, dtype: torch.dtype | None = None) -> StructuredReasoner:
        self.mllm.to(device=device, dtype=dtype)
        return self

    @property
    def device(self) -> torch.device:
        return self.mllm.base.device

    def prompt_text(self, instruction: str) -> str:
        """The whole prompt as the MLLM reads it, ``<image>`` where the visual tokens go (for reading and tests)."""
        return self.mllm.prompt.text.replace("{}", structured_prompt(instruction))

    def check_prompt(self, instruction: str) -> None:
        """ValueError when the prompt with ``instruction`` would exceed PROMPT_TOKEN_LIMIT tokens."""
        n = len(self.mllm.tokenizer.encode(structured_prompt(instruction), add_special_tokens=False))
        if n > PROMPT_TOKEN_LIMIT:
            raise ValueError(f"The instruction makes the reasoning prompt {n} tokens long; at most "
                             f"{PROMPT_TOKEN_LIMIT} are read. Shorten it.")

    @torch.no_grad()
    def encode_image(self, pixels: torch.Tensor) -> torch.Tensor:
        """(1, 3, R, R) in [-1, 1] -> the MLLM's visual tokens IA(E_I(I)) (1, N, d_llm)."""
        base = self.mllm.base
        return self.mllm.encode_image(pixels.to(base.device, base.dtype))[0]

    def sequence(self, ia_tokens: torch.Tensor, instruction: str) -> dict[str, torch.Tensor]:
        """The generation prompt: the chat format's user turn with the visual tokens and the structured prompt."""
        self.check_prompt(instruction)
        return self.mllm.build_sequence([structured_prompt(instruction)], ia_tokens, text_template="{}",
                                        append_img_tokens=False)

    def generate(self, sequence: dict[str, torch.Tensor]) -> str:
        """The MLLM's greedy answer to a prompt sequence."""
        return self.mllm.generate_text(sequence, self.max_new_tokens)[0]

    @torch.no_grad()
    def answer(self, ia_tokens: torch.Tensor, instruction: str) -> str:
        """The MLLM's raw answer to the structured prompt for ``instruction`` about the picture of ``ia_tokens``."""
        return self.generate(self.sequence(ia_tokens, instruction))

    @torch.no_grad()
    def region_scores(self, ia_tokens: torch.Tensor, name: str, regions: Regions) -> torch.Tensor:
        """(M - 1,) cosine similarity between each object region's mean visual token (IA tokens pooled over the
        region's cells of the vision grid) and the mean input embedding of ``name``'s tokens: both live in the
        language model's input space."""
        grid = self.mllm.grid_size
        patches = ia_tokens[0, -grid * grid :].float()  # (g*g, d): the grid's tokens (a CLS token, if any, is first)
        weights = masks_to_feature_grid(regions, (grid, grid))[:-1].flatten(1).to(patches.device)  # (M-1, g*g)
        pooled = weights @ patches / weights.sum(1, keepdim=True).clamp(min=1e-6)  # (M-1, d)
        ids = self.mllm.tokenizer.encode(name, add_special_tokens=False) or [self.mllm.tokenizer.unk_token_id or 0]
        table = self.mllm.base.get_input_embeddings().weight
        word = table[torch.tensor(ids, device=table.device)].float().mean(0)  # (d,)
        return F.cosine_similarity(pooled, word[None].to(pooled.device), dim=-1).cpu()

