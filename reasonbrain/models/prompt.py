"""The MLLM prompt: one user turn holding the visual tokens [IA][R_V][R_T] and the instruction, in the chat format of
the model's tokenizer (``apply_chat_template``), else of the preset's ``mllm.chat_template``.

The user turn is ``mllm.user_message``: ``<image>`` where the visual tokens go, ``{}`` where the instruction goes.
"""

from __future__ import annotations

from dataclasses import dataclass

from transformers import PreTrainedTokenizerBase

IMAGE_SLOT = "<image>"
TEXT_SLOT = "\ue000"  # a private-use character standing for the instruction while the template is rendered


@dataclass(frozen=True)
class PromptLayout:
    """Token ids of the prompt around its two slots: ``lead`` [visual tokens] ``between`` H ``tail``."""

    lead: list[int]  # BOS (when the tokenizer has one and the template does not write it) and the turn's opening
    between: list[int]
    tail: list[int]  # the turn's close and the assistant's opening (generation prompt)
    text: str  # the rendered prompt with "<image>" and "{}" at the slots, for reading

    @classmethod
    def from_tokenizer(cls, tokenizer: PreTrainedTokenizerBase, *, chat_template: str | None,
                       user_message: str) -> PromptLayout:
        """The layout from the tokenizer's chat template where it has one, else from ``chat_template``."""
        if user_message.count(IMAGE_SLOT) != 1 or user_message.count("{}") != 1 or (
                user_message.index(IMAGE_SLOT) > user_message.index("{}")):
            raise ValueError(f"mllm.user_message must hold {IMAGE_SLOT!r} once and then '{{}}' once (where the "
                             f"visual tokens and the instruction go), got {user_message!r}")
        if tokenizer.chat_template is None and chat_template is None:
            raise ValueError("the MLLM tokenizer has no chat template and mllm.chat_template is null: set "
                             "mllm.chat_template to the model's chat format (a Jinja template)")
        template = None if tokenizer.chat_template is not None else chat_template
        rendered = _render(tokenizer, template, user_message.replace("{}", TEXT_SLOT))
        if not _has_slots(rendered):
            # processor-style templates (llava-hf) take a list of parts and write the image marker themselves
            lead_text, _, rest = user_message.partition(IMAGE_SLOT)
            between_text = rest.replace("{}", TEXT_SLOT)
            parts = ([{"type": "text", "text": lead_text}] if lead_text else []) + [
                {"type": "image"}, {"type": "text", "text": between_text.lstrip("\n")}]
            try:
                rendered = _render(tokenizer, template, parts)
            except Exception:  # a string-only template fails on a list; the error below names the first form
                pass
        if not _has_slots(rendered):
            source = "the tokenizer's chat template" if tokenizer.chat_template is not None else "mllm.chat_template"
            raise ValueError(f"{source} must write the user message's text once as given (a string content, or "
                             f"image and text parts); it rendered {rendered!r}")
        lead, _, rest = rendered.partition(IMAGE_SLOT)
        between, _, tail = rest.partition(TEXT_SLOT)
        bos = tokenizer.bos_token
        needs_bos = bos is not None and not lead.startswith(bos)
        return cls(
            lead=([tokenizer.bos_token_id] if needs_bos else []) + _encode(tokenizer, lead),
            between=_encode(tokenizer, between),
            tail=_encode(tokenizer, tail),
            text=rendered.replace(TEXT_SLOT, "{}"),
        )


def _render(tokenizer: PreTrainedTokenizerBase, template: str | None, content) -> str:
    return tokenizer.apply_chat_template([{"role": "user", "content": content}], chat_template=template,
                                         add_generation_prompt=True, tokenize=False)


def _has_slots(rendered: str) -> bool:
    return rendered.count(IMAGE_SLOT) == 1 and rendered.count(TEXT_SLOT) == 1


def _encode(tokenizer: PreTrainedTokenizerBase, text: str) -> list[int]:
    return tokenizer.encode(text, add_special_tokens=False) if text else []
