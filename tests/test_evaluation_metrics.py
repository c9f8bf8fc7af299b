"""The paper's automatic metrics: formulas on hand-computed cases, tiny random CLIP / DINO, MLLM-judge parsing."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from PIL import Image

from reasonbrain.evaluation import metrics as M
from reasonbrain.evaluation.embedders import ClipEmbedder, DinoEmbedder, MetricModelUnavailable
from reasonbrain.evaluation.judge import (
    PAPER_PROMPT,
    RATING_PROMPT,
    FakeJudge,
    Judgement,
    TransformersJudge,
    mllm_score,
    parse_score,
)
from tests.metric_fixtures import (
    save_tiny_clip,
    save_tiny_dino,
    tiny_clip,
    tiny_clip_embedder,
    tiny_dino_embedder,
)


def solid(rgb, size=(16, 16)) -> Image.Image:
    return Image.new("RGB", size, tuple(int(c) for c in rgb))


class FakeClip:
    """Image embedding = the image's mean RGB (0-255 scale, not normalised); texts looked up in a table."""

    def __init__(self, texts: dict[str, list[float]]) -> None:
        self.texts = texts

    def embed_images(self, images):
        return np.stack([np.asarray(im.convert("RGB"), dtype=float).reshape(-1, 3).mean(0) for im in images])

    def embed_texts(self, texts):
        return np.array([self.texts[t] for t in texts], dtype=float)


RED, GREEN, BLUE = (255, 0, 0), (0, 255, 0), (0, 0, 255)
FAKE = FakeClip({"red": [1, 0, 0], "green": [0, 1, 0], "blue": [0, 0, 1], "yellowish": [1, 1, 0]})


# ------------------------------------------------------------------------------------------ formulas
def test_cosine_similarity_known_vectors():
    a = np.array([[1.0, 0.0], [1.0, 2.0], [3.0, 4.0], [0.0, 0.0]])
    b = np.array([[1.0, 1.0], [-2.0, -4.0], [3.0, 4.0], [1.0, 0.0]])
    np.testing.assert_allclose(M.cosine_similarity(a, b), [1 / math.sqrt(2), -1.0, 1.0, 0.0])
    assert float(M.cosine_similarity(np.array([0.0, 5.0]), np.array([0.0, 0.1]))) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="equal shapes"):
        M.cosine_similarity(np.ones((2, 3)), np.ones((3, 3)))


def test_clip_score_and_clip_out_are_image_text_cosines():
    edits = [solid(RED), solid(RED), solid(GREEN)]
    texts = ["red", "yellowish", "blue"]
    np.testing.assert_allclose(M.clip_score(FAKE, edits, texts), [1.0, 1 / math.sqrt(2), 0.0], atol=1e-12)
    np.testing.assert_allclose(M.clip_output_similarity(FAKE, edits, texts), M.clip_score(FAKE, edits, texts))
    with pytest.raises(ValueError, match="aligned"):
        M.clip_score(FAKE, edits, texts[:2])


def test_clip_image_and_dino_similarity():
    edits = [solid(RED), solid(RED), solid((255, 255, 0))]
    targets = [solid(RED), solid(GREEN), solid(RED)]
    expected = [1.0, 0.0, 1 / math.sqrt(2)]
    np.testing.assert_allclose(M.clip_image_similarity(FAKE, edits, targets), expected, atol=1e-12)
    np.testing.assert_allclose(M.dino_similarity(FAKE, edits, targets), expected, atol=1e-12)
    assert M.clip_image_similarity(FAKE, [], []).shape == (0,)


def test_clip_direction_normalises_before_the_difference():
    # image delta: e(green) - e(red) = (-1, 1, 0); text deltas (-1, 1, 0) -> 1 and (-1, 0, 1) -> 1/2
    src = [solid(RED), solid(RED), solid(RED)]
    edit = [solid(GREEN), solid(GREEN), solid((0, 128, 0))]  # a darker green has the same direction
    out = M.clip_direction_similarity(FAKE, src, edit, ["red", "red", "red"], ["green", "blue", "green"])
    np.testing.assert_allclose(out, [1.0, 0.5, 1.0], atol=1e-12)
    # no image change -> 0
    assert M.clip_direction_similarity(FAKE, [solid(RED)], [solid(RED)], ["red"], ["green"])[0] == 0.0


def test_l1_distance_hand_computed():
    a = np.zeros((2, 2, 3), np.float32)
    b = a.copy()
    b[0, 0, 0] = 0.5
    assert M.l1_distance(a, b) == pytest.approx(0.5 / 12)
    assert M.l1_distance(solid((0, 0, 0)), solid((255, 255, 255))) == pytest.approx(1.0)
    assert M.l1_distance(np.full((4, 4, 3), 51, np.uint8), np.full((4, 4, 3), 102, np.uint8)) == pytest.approx(0.2)
    # the edit is resized to the target's size
    assert M.l1_distance(solid((255, 0, 0), (32, 24)), solid((255, 0, 0), (8, 6))) == pytest.approx(0.0, abs=1e-6)


def test_dilate_square():
    m = np.zeros((7, 7), bool)
    m[3, 3] = True
    d = M.dilate(m, 1)
    assert d.sum() == 9 and d[2:5, 2:5].all()
    assert M.dilate(m, 0).sum() == 1
    edge = np.zeros((5, 5), bool)
    edge[0, 0] = True
    assert M.dilate(edge, 2).sum() == 9


def test_identity_preservation_hand_computed():
    src = np.full((20, 20, 3), 0.5, np.float32)
    tgt = src.copy()
    tgt[5:10, 5:10] = 1.0  # the intended change: 25 pixels
    edit = tgt.copy()
    edit[0, 0] = 0.0  # one unintended change of 0.5 per channel outside the region
    mask = M.changed_region(src, tgt, margin=0.0)
    assert mask.sum() == 25
    # 375 kept pixels x 3 channels, total abs difference 3 * 0.5
    assert M.identity_preservation(src, edit, tgt, margin=0.0) == pytest.approx(1 - 1.5 / (375 * 3))
    assert M.identity_preservation(src, tgt, tgt) == pytest.approx(1.0)
    assert M.identity_preservation(src, src, changed_mask=mask) == pytest.approx(1.0)
    assert math.isnan(M.identity_preservation(src, edit, changed_mask=np.ones((20, 20), bool)))
    with pytest.raises(ValueError, match="changed_mask"):
        M.identity_preservation(src, edit)
    with pytest.raises(ValueError, match="shape"):
        M.identity_preservation(src, edit, changed_mask=np.zeros((4, 4), bool))


def test_reasoning_correct_reuses_synth_accuracy():
    src, tgt = solid((10, 10, 10), (8, 8)), solid((200, 10, 10), (8, 8))
    assert M.reasoning_correct(tgt, tgt, [src])
    assert not M.reasoning_correct(src, tgt, [src])
    with pytest.raises(ValueError, match="alternative"):
        M.reasoning_correct(tgt, tgt, [])


# ------------------------------------------------------------------------------- tiny CLIP and DINO
@pytest.fixture(scope="module")
def clip():
    return tiny_clip_embedder()


@pytest.fixture(scope="module")
def dino():
    return tiny_dino_embedder()


def random_images(n, seed=0, size=(40, 30)):
    rng = np.random.default_rng(seed)
    return [Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)) for _ in range(n)]


def test_tiny_clip_shapes_ranges_and_identity(clip):
    imgs = random_images(3)
    assert clip.embed_images(imgs).shape == (3, 16)
    assert clip.embed_texts(["a red apple", "melted ice", ""]).shape == (3, 16)
    other = random_images(3, seed=1)
    ci = M.clip_image_similarity(clip, imgs, other)
    assert ci.shape == (3,) and np.all(np.abs(ci) <= 1 + 1e-9)
    np.testing.assert_allclose(M.clip_image_similarity(clip, imgs, imgs), 1.0, atol=1e-5)
    cs = M.clip_score(clip, imgs, ["a puddle of water", "a red apple", "night sky"])
    assert cs.shape == (3,) and np.all(np.abs(cs) <= 1 + 1e-9)
    cd = M.clip_direction_similarity(clip, imgs, other, ["ice cube"] * 3, ["puddle"] * 3)
    assert cd.shape == (3,) and np.all(np.abs(cd) <= 1 + 1e-9)
    assert np.allclose(M.clip_direction_similarity(clip, imgs, imgs, ["a"] * 3, ["b"] * 3), 0.0)


def test_tiny_clip_single_batch_equals_batched(clip):
    imgs = random_images(3)
    clip.batch_size = 2
    try:
        batched = clip.embed_images(imgs)
    finally:
        clip.batch_size = 32
    np.testing.assert_allclose(batched, clip.embed_images(imgs), atol=1e-5)


def test_tiny_dino_shapes_and_identity(dino):
    imgs = random_images(2)
    assert dino.embed_images(imgs).shape == (2, 32)
    np.testing.assert_allclose(M.dino_similarity(dino, imgs, imgs), 1.0, atol=1e-5)
    d = M.dino_similarity(dino, imgs, random_images(2, seed=3))
    assert np.all(np.abs(d) <= 1 + 1e-9)


def test_processor_built_from_config_when_absent():
    model, tok, _ = tiny_clip()
    emb = ClipEmbedder(model, tok)  # no image processor: built from the vision config
    assert emb.embed_images(random_images(1)).shape == (1, 16)
    from tests.metric_fixtures import tiny_dino

    vit, _ = tiny_dino()
    assert DinoEmbedder(vit).embed_images(random_images(1)).shape == (1, 32)


def test_embedders_round_trip_through_save_pretrained(tmp_path, clip, dino):
    c2 = ClipEmbedder.from_pretrained(save_tiny_clip(tmp_path / "clip"), device="cpu")
    imgs = random_images(2)
    np.testing.assert_allclose(c2.embed_images(imgs), clip.embed_images(imgs), atol=1e-5)
    np.testing.assert_allclose(c2.embed_texts(["a b"]), clip.embed_texts(["a b"]), atol=1e-5)
    d2 = DinoEmbedder.from_pretrained(save_tiny_dino(tmp_path / "dino"))
    np.testing.assert_allclose(d2.embed_images(imgs), dino.embed_images(imgs), atol=1e-5)


def test_unavailable_model_names_the_id_and_the_flag(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(MetricModelUnavailable, match=r"reasonbrain-tests/no-such-clip.*--clip-model"):
        ClipEmbedder.from_pretrained("reasonbrain-tests/no-such-clip", metrics=["clip", "clip_i"])
    with pytest.raises(MetricModelUnavailable, match=r"reasonbrain-tests/no-such-dino.*--dino-model"):
        DinoEmbedder.from_pretrained("reasonbrain-tests/no-such-dino")
    with pytest.raises(MetricModelUnavailable, match=r"reasonbrain-tests/no-such-judge.*--judge-model"):
        TransformersJudge("reasonbrain-tests/no-such-judge").load()


# ----------------------------------------------------------------------------------------- MLLM judge
@pytest.mark.parametrize(
    ("text", "scale", "expected"),
    [
        ("1", 1, 1.0),
        ("0", 1, 0.0),
        ("Yes, the image has been successfully edited.", 1, 1.0),
        ("No.", 1, 0.0),
        ("The answer is 1.", 1, 1.0),
        ("8", 10, 8.0),
        ("Score: 7/10", 10, 7.0),
        ("I would rate it 4 out of 5.", 10, 8.0),
        ("On a scale from 0 to 10, I'd give it a 9.", 10, 9.0),
        ("Rating: 6.5", 10, 6.5),
        ("**3**", 10, 3.0),
        ("12", 10, None),
        ("asdf qwerty", 10, None),
        ("", 1, None),
        ("yes and no", 1, None),
        ("<s> ### ???", 1, None),
    ],
)
def test_parse_score(text, scale, expected):
    assert parse_score(text, scale) == expected


def test_paper_prompt_is_quoted_with_its_fields():
    text = PAPER_PROMPT.format("What if the ice melted?", "an ice cube on a table", "a puddle on a table")
    assert text.startswith("The input description: an ice cube on a table, the editing instruction: What if the ice")
    assert text.endswith("Please evaluate if the given edited image has been successfully edited. "
                         "If yes, return 1; if not, return 0.")
    assert PAPER_PROMPT.scale == 1 and PAPER_PROMPT.images == ("edited",)
    assert RATING_PROMPT.scale == 10 and RATING_PROMPT.images == ("source", "edited")


def test_fake_judge_and_mllm_score():
    judge = FakeJudge(["1", "no", "garbage", "Score: 1"])
    im = solid(RED)
    js = [judge(im, im, f"instruction {i}", input_description="in", output_description="out") for i in range(4)]
    assert [j.score for j in js] == [1.0, 0.0, None, 1.0]
    assert "the editing instruction: instruction 2" in judge.prompts[2]
    summary = mllm_score(js)
    assert summary == {"mllm": 0.5, "n": 4, "unparsed": 1}
    graded = FakeJudge(lambda ins: "7/10", prompt=RATING_PROMPT)(im, im, "x")
    assert graded.normalized == pytest.approx(0.7)
    assert Judgement(None, 10, "junk").normalized == 0.0


class _StubProcessor:
    def __init__(self):
        self.messages = None

    def apply_chat_template(self, messages, **kwargs):
        self.messages = messages
        return {"input_ids": torch.tensor([[5, 6, 7]]), "attention_mask": torch.ones(1, 3, dtype=torch.long),
                "pixel_values": torch.zeros(len([c for c in messages[0]["content"] if c["type"] == "image"]), 3, 4, 4)}

    def batch_decode(self, ids, skip_special_tokens=True):
        return ["Score: 9/10" if ids.tolist() == [[42, 43]] else "wrong slice"]


class _StubModel(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(1))

    @property
    def dtype(self):
        return self.w.dtype

    def generate(self, input_ids, max_new_tokens, do_sample, **kwargs):
        assert not do_sample and kwargs["pixel_values"].dtype == self.w.dtype
        return torch.cat([input_ids, torch.tensor([[42, 43]])], dim=1)


def test_transformers_judge_decodes_only_the_new_tokens():
    proc = _StubProcessor()
    judge = TransformersJudge("stub", prompt=RATING_PROMPT, model=_StubModel(), processor=proc)
    out = judge(solid(RED), solid(GREEN), "What if it rained?")
    assert out.score == 9.0 and out.scale == 10 and out.text == "Score: 9/10"
    content = proc.messages[0]["content"]
    assert [c["type"] for c in content] == ["image", "image", "text"]
    assert content[0]["image"].getpixel((0, 0)) == RED and "What if it rained?" in content[2]["text"]


def test_transformers_judge_with_a_tiny_llava_loaded_from_a_folder(tmp_path):
    from tests.metric_fixtures import save_tiny_llava_judge

    folder = save_tiny_llava_judge(tmp_path / "judge")
    for prompt in (PAPER_PROMPT, RATING_PROMPT):
        judge = TransformersJudge(folder, prompt=prompt, max_new_tokens=4)
        out = judge(solid(RED), solid(GREEN), "What if the ice melted?", input_description="ice",
                    output_description="water")
        assert isinstance(out.text, str) and out.scale == prompt.scale
        assert out.score is None or 0 <= out.score <= prompt.scale  # random weights: junk text, parsed safely
        assert 0.0 <= out.normalized <= 1.0
