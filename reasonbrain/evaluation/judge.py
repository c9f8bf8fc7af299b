"""MLLM score: a multimodal model judges whether an edit follows its instruction.

The paper (appendix D, after Yang et al. 2024, judged with Video-LLaVA) gives the edited image with this
prompt; the three placeholders read "[object Object]" in the paper's text (a rendering slip for the input
description, the editing instruction and the output description):

    "The input description: [object Object], the editing instruction: [object Object], and the output
    description: [object Object]. Please evaluate if the given edited image has been successfully edited.
    If yes, return 1; if not, return 0."

"The final score is the average of model judgments across all samples." :data:`PAPER_PROMPT` is that prompt
(scale 1: the answer is 0 or 1). :data:`RATING_PROMPT` is a graded variant (source and edit, 0-10) for
finer comparisons. A judge is any callable ``judge(source, edited, instruction, input_description=...,
output_description=...) -> Judgement``; :func:`mllm_score` averages ``Judgement.normalized`` (score / scale,
in [0, 1]) where an unparseable answer counts as 0 (the judge did not confirm the edit) and is reported.

:class:`TransformersJudge` runs any LLaVA-style ``AutoModelForImageTextToText`` chat model (loaded lazily by
Hub id or local folder); :class:`FakeJudge` returns scripted answers for tests.
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from PIL import Image

from reasonbrain.evaluation.embedders import MetricModelUnavailable, unavailable_message

logger = logging.getLogger(__name__)

DEFAULT_JUDGE_MODEL = "llava-hf/llava-1.5-7b-hf"  # the paper used Video-LLaVA-7B; any image-text chat model works


@dataclass(frozen=True)
class JudgePrompt:
    """A judging prompt: ``template`` with {instruction}, {input_description}, {output_description} fields;
    ``scale`` = the largest score the answer may give; ``images`` = which images are shown, in order."""

    name: str
    template: str
    scale: int
    images: tuple[str, ...] = ("edited",)

    def format(self, instruction: str, input_description: str | None, output_description: str | None) -> str:
        return self.template.format(instruction=instruction, input_description=input_description or "(not given)",
                                    output_description=output_description or "(not given)")


PAPER_PROMPT = JudgePrompt(
    name="paper",
    template=("The input description: {input_description}, the editing instruction: {instruction}, and the output "
              "description: {output_description}. Please evaluate if the given edited image has been successfully "
              "edited. If yes, return 1; if not, return 0."),
    scale=1,
    images=("edited",),
)

RATING_PROMPT = JudgePrompt(
    name="rating",
    template=("The first image is the original, the second image is the result of editing it. The editing "
              "instruction was: {instruction}. Rate from 0 to 10 how well the edited image carries out what the "
              "instruction implies while keeping everything else unchanged. Answer with a single number."),
    scale=10,
    images=("source", "edited"),
)

PROMPTS = {p.name: p for p in (PAPER_PROMPT, RATING_PROMPT)}


@dataclass(frozen=True)
class Judgement:
    score: float | None  # on [0, scale]; None when the answer could not be parsed
    scale: int
    text: str  # the judge's raw answer

    @property
    def normalized(self) -> float:
        """score / scale in [0, 1]; an unparseable answer counts as 0 (not confirmed)."""
        return 0.0 if self.score is None else self.score / self.scale


class Judge(Protocol):
    def __call__(self, source: Image.Image, edited: Image.Image, instruction: str, *,
                 input_description: str | None = None, output_description: str | None = None) -> Judgement: ...


# --------------------------------------------------------------------------------------------- parsing
_NUM = r"(\d+(?:\.\d+)?)"
_RANGE = re.compile(rf"(?:from|between)?\s*{_NUM}\s*(?:-|–|to|and)\s*{_NUM}\b(?!\s*/)", re.I)
_FRACTION = re.compile(rf"{_NUM}\s*(?:/|out of)\s*{_NUM}", re.I)
_LABELLED = re.compile(rf"\b(?:score|rating|answer|return|returns|grade)\b\s*(?:is|of|:|=|would be)?\s*:?\s*{_NUM}", re.I)
_NUMBER = re.compile(rf"(?<![\w.]){_NUM}(?![\w])")
_YES = re.compile(r"\byes\b", re.I)
_NO = re.compile(r"\bno\b", re.I)


def parse_score(text: str, scale: int) -> float | None:
    """The score in ``text`` on [0, scale], or None when there is none. In order of preference:

    1. a fraction ``a/b`` or ``a out of b`` (rescaled to ``scale`` when ``b != scale``);
    2. a labelled number (``score: 7``, ``rating is 8``, ``return 1``);
    3. the first number within [0, scale] once ranges such as ``0 to 10`` / ``0-10`` are removed;
    4. for scale 1 only: a lone ``yes`` (1) or ``no`` (0).
    Numbers outside [0, scale] are ignored; junk gives None.
    """
    if not isinstance(text, str) or not text.strip():
        return None

    def ok(x: float) -> bool:
        return 0.0 <= x <= scale and math.isfinite(x)

    for m in _FRACTION.finditer(text):
        a, b = float(m.group(1)), float(m.group(2))
        if b > 0 and 0 <= a <= b:
            return a * scale / b
    stripped = _RANGE.sub(" ", text)
    for m in _LABELLED.finditer(stripped):
        if ok(float(m.group(1))):
            return float(m.group(1))
    for m in _NUMBER.finditer(stripped):
        if ok(float(m.group(1))):
            return float(m.group(1))
    if scale == 1:
        yes, no = bool(_YES.search(text)), bool(_NO.search(text))
        if yes != no:
            return 1.0 if yes else 0.0
    return None


# ---------------------------------------------------------------------------------------------- judges
class FakeJudge:
    """Test judge: answers from ``answers`` (a list, cycled, or a function of the instruction) parsed like a
    real judge's text; records the prompts it saw."""

    def __init__(self, answers: Sequence[str] | Callable[[str], str] = ("1",), prompt: JudgePrompt = PAPER_PROMPT) -> None:
        self.answers = answers
        self.prompt = prompt
        self.prompts: list[str] = []

    def __call__(self, source: Image.Image, edited: Image.Image, instruction: str, *,
                 input_description: str | None = None, output_description: str | None = None) -> Judgement:
        self.prompts.append(self.prompt.format(instruction, input_description, output_description))
        if callable(self.answers):
            text = self.answers(instruction)
        else:
            text = self.answers[(len(self.prompts) - 1) % len(self.answers)]
        return Judgement(parse_score(text, self.prompt.scale), self.prompt.scale, text)


class TransformersJudge:
    """A chat MLLM from transformers (``AutoModelForImageTextToText`` + ``AutoProcessor`` with a chat template,
    e.g. LLaVA-1.5 / LLaVA-NeXT / Qwen2-VL / Video-LLaVA-hf), loaded on first use. Greedy decoding."""

    def __init__(self, name_or_path: str = DEFAULT_JUDGE_MODEL, *, prompt: JudgePrompt = PAPER_PROMPT,
                 device: Any = None, torch_dtype: Any = None, max_new_tokens: int = 16,
                 model: Any = None, processor: Any = None) -> None:
        self.name_or_path = name_or_path
        self.prompt = prompt
        self.device = device
        self.torch_dtype = torch_dtype
        self.max_new_tokens = max_new_tokens
        self.model, self.processor = model, processor

    def load(self) -> TransformersJudge:
        if self.model is None or self.processor is None:
            from transformers import AutoModelForImageTextToText, AutoProcessor

            try:
                self.processor = AutoProcessor.from_pretrained(self.name_or_path)
                kwargs = {} if self.torch_dtype is None else {"dtype": self.torch_dtype}
                self.model = AutoModelForImageTextToText.from_pretrained(self.name_or_path, **kwargs)
            except (OSError, ValueError) as err:
                raise MetricModelUnavailable(
                    unavailable_message("MLLM judge", self.name_or_path, "--judge-model", ["mllm"], err)) from err
            self.model.eval()
            if self.device is not None:
                self.model.to(self.device)
        return self

    def __call__(self, source: Image.Image, edited: Image.Image, instruction: str, *,
                 input_description: str | None = None, output_description: str | None = None) -> Judgement:
        import torch

        self.load()
        shown = {"source": source.convert("RGB"), "edited": edited.convert("RGB")}
        text = self.prompt.format(instruction, input_description, output_description)
        content = [{"type": "image", "image": shown[k]} for k in self.prompt.images] + [{"type": "text", "text": text}]
        inputs = self.processor.apply_chat_template([{"role": "user", "content": content}], add_generation_prompt=True,
                                                    tokenize=True, return_dict=True, return_tensors="pt")
        device = next(self.model.parameters()).device
        inputs = {k: (v.to(device) if hasattr(v, "to") else v) for k, v in inputs.items()}
        if "pixel_values" in inputs:
            inputs["pixel_values"] = inputs["pixel_values"].to(self.model.dtype)
        with torch.no_grad():
            out = self.model.generate(**inputs, max_new_tokens=self.max_new_tokens, do_sample=False)  # (1, T + new)
        answer = self.processor.batch_decode(out[:, inputs["input_ids"].shape[1]:], skip_special_tokens=True)[0]
        return Judgement(parse_score(answer, self.prompt.scale), self.prompt.scale, answer.strip())


def mllm_score(judgements: Iterable[Judgement]) -> dict[str, float]:
    """Mean of ``normalized`` judgements (unparseable = 0), with the count and the number unparsed."""
    items = list(judgements)
    vals = [j.normalized for j in items]
    return {"mllm": sum(vals) / len(vals) if vals else math.nan, "n": len(vals),
            "unparsed": sum(j.score is None for j in items)}
