"""The synthetic reasoning world: determinism, proportions, invariances, alternatives, splits, jsonl, CLI."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from reasonbrain.synthworld import (
    CATEGORIES,
    CATEGORY_WEIGHTS,
    HELDOUT_COMBOS,
    HELDOUT_TEMPLATES,
    KINDS,
    TEMPLATES,
    TRANSFORMATIONS,
    Renderer,
    distinct_transitions,
    example_instructions,
    generate_sample,
    is_correct,
    load_chains,
    load_split,
    object_kinds,
    plan_sample,
    reasoning_accuracy,
    sample_chain,
    sample_scene,
    write_dataset,
)
from reasonbrain.synthworld.accuracy import image_distance, psnr
from reasonbrain.synthworld.cli import main as cli_main
from reasonbrain.synthworld.instructions import reframe_instruction, split_instruction
from reasonbrain.synthworld.world import transformations_from

REPO = Path(__file__).resolve().parents[1]
REASON50K_FIELDS = ("id", "category", "src_image", "tgt_image", "instruction", "objects")
EXTRA_FIELDS = ("target", "transformation", "template_id", "background", "alternatives", "scene", "resolution",
                "seed", "output_description", "input_description")


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def renderer() -> Renderer:
    return Renderer(64)


@pytest.fixture(scope="module")
def samples(renderer):
    return [generate_sample(7, i, renderer=renderer) for i in range(160)]


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("synth")
    write_dataset(out, n=48, seed=3, n_chains=8, workers=1, progress=False)
    return out


# ------------------------------------------------------------------------------------ inventory
def test_world_inventory():
    assert len(object_kinds()) >= 12
    assert len(distinct_transitions()) >= 20
    assert len(TEMPLATES) >= 12 and HELDOUT_TEMPLATES < set(TEMPLATES)
    assert {t.category for t in TRANSFORMATIONS} == set(CATEGORIES)
    for t in TRANSFORMATIONS:
        states = KINDS[t.kind].states
        assert t.src in states and t.dst in states and t.src != t.dst, t.id
        assert (t.stories and all("{ref}" in s for s in t.stories)) if t.category == "story" else t.conditions, t.id
    for kind in object_kinds():  # every starting state can be transformed (wrong-object alternatives)
        assert len(KINDS[kind].states) >= 3
        assert all(transformations_from(kind, s) for s in KINDS[kind].initial), kind
    for kind, bg in HELDOUT_COMBOS:
        assert bg in KINDS[kind].backgrounds and len(KINDS[kind].backgrounds) > 1


def test_category_and_split_proportions():
    n = 6000
    draws = [plan_sample(0, i) for i in range(n)]
    cats = Counter(tr.category for _, tr in draws)
    for c in CATEGORIES:
        assert abs(cats[c] / n - CATEGORY_WEIGHTS[c]) < 0.025, (c, cats[c] / n)
    splits = Counter(s for s, _ in draws)
    assert abs(splits["train"] / n - 0.85) < 0.02 and abs(splits["test"] / n - 0.10) < 0.015
    assert draws[:50] == [plan_sample(0, i) for i in range(50)]  # same seed -> same split


def test_example_instructions_and_sample_scene():
    ex = example_instructions()
    assert set(ex) == set(CATEGORIES) and all(len(v) >= 2 for v in ex.values())
    for c in CATEGORIES:
        s = sample_scene(5, category=c)
        assert s.record.category == c and s.src.size == (64, 64)
    with pytest.raises(ValueError, match="category"):
        sample_scene(0, category="magic")
    with pytest.raises(ValueError, match="resolution"):
        sample_scene(0, resolution=8)


@pytest.mark.parametrize("resolution", [128, 256])
def test_other_resolutions(resolution):
    s = sample_scene(11, resolution=resolution)
    assert s.src.size == s.tgt.size == (resolution, resolution)
    assert all(im.size == (resolution, resolution) for im in s.alternatives.values())
    x0, y0, x1, y1 = s.record.target.box
    assert 0 <= x0 < x1 <= resolution and 0 <= y0 < y1 <= resolution


# ----------------------------------------------------------------------------------- invariances
def test_same_seed_same_sample(renderer):
    a, b = generate_sample(1, 5, renderer=renderer), generate_sample(1, 5, renderer=Renderer(64))
    assert a.record.to_json() == b.record.to_json()
    assert a.src.tobytes() == b.src.tobytes() and a.tgt.tobytes() == b.tgt.tobytes()


def test_partial_render_is_exact(samples, renderer):
    """Targets and alternatives re-resample only the changed region; that must equal a full render."""
    for s in samples[:60]:
        assert s.tgt.tobytes() == renderer.render(s.tgt_scene).tobytes(), s.record.id
        assert s.src.tobytes() == renderer.render(s.record.scene).tobytes(), s.record.id


def test_distractors_unchanged(samples):
    checked = 0
    for s in samples:
        r = s.record
        src, tgt = np.asarray(s.src), np.asarray(s.tgt)
        for o in r.scene.objects:
            if r.target.kind != "sky" and o.position == r.target.position:
                continue
            x0, y0, x1, y1 = o.box
            if r.target.kind == "sky":  # scene-level: objects untouched (only anti-aliased edges see the new sky)
                same = [t for t in s.tgt_scene.objects if t.position == o.position][0]
                assert (same.kind, same.state, same.colour, same.box) == (o.kind, o.state, o.colour, o.box)
            else:
                assert np.array_equal(src[y0:y1, x0:x1], tgt[y0:y1, x0:x1]), (r.id, o)
                ws = np.asarray(s.alternatives["wrong_state"])
                assert np.array_equal(src[y0:y1, x0:x1], ws[y0:y1, x0:x1]), (r.id, o)
            checked += 1
        if r.target.kind != "sky":  # outside the edit box nothing changes at all
            x0, y0, x1, y1 = r.target.edit_box
            mask = np.ones(src.shape[:2], bool)
            mask[max(0, y0 - 3):y1 + 3, max(0, x0 - 3):x1 + 3] = False
            assert np.array_equal(src[mask], tgt[mask]), r.id
    assert checked > 100


def test_alternatives_and_is_correct(samples):
    kinds_seen = Counter()
    for s in samples:
        alts = [s.alternatives[a.kind] for a in s.record.alternatives]
        assert [a.kind for a in s.record.alternatives] == ["wrong_object", "wrong_state", "no_change"]
        assert s.alternatives["no_change"].tobytes() == s.src.tobytes()
        for a in alts:
            assert image_distance(a, s.tgt) > 0
        assert is_correct(s.tgt, s.tgt, alts)
        for a in alts:
            assert not is_correct(a, s.tgt, alts)
        kinds_seen[s.record.category] += 1
    assert set(kinds_seen) == set(CATEGORIES)
    s = samples[0]  # arrays (HWC uint8, CHW float) and an upscaled edit are accepted
    arr = np.asarray(s.tgt)
    assert is_correct(arr, s.tgt, [s.src]) and is_correct(arr.transpose(2, 0, 1) / 255.0, s.tgt, [s.src])
    assert psnr(s.tgt, s.tgt) == 100.0 and image_distance(s.tgt.resize((256, 256)), s.tgt) < image_distance(s.src, s.tgt) + 0.05
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        is_correct(arr.astype(np.float32) * 2 - 1, s.tgt, [s.src])


def test_reasoning_accuracy(samples):
    sub = samples[:40]
    perfect = reasoning_accuracy(sub, [s.tgt for s in sub])
    assert perfect["accuracy"] == 1.0 and perfect["l1"] == 0.0 and perfect["psnr"] == 100.0
    assert set(perfect["per_category"]) <= set(CATEGORIES) and perfect["n"] == 40
    lazy = reasoning_accuracy(sub, {s.record.id: s.src for s in sub})  # "no change" is never correct
    assert lazy["accuracy"] == 0.0 and lazy["l1"] > 0
    with pytest.raises(ValueError, match="edits"):
        reasoning_accuracy(sub, [s.tgt for s in sub[:3]])


def test_reasoning_accuracy_per_holdout(samples):
    """Accuracy per what a record holds out from training, beside the per-category figures; the table shows it."""
    from reasonbrain.evaluation.synth_eval import markdown_table
    from reasonbrain.synthworld.accuracy import HOLDOUT_GROUPS, holdout_group

    groups = Counter(holdout_group(s) for s in samples)
    assert set(groups) == set(HOLDOUT_GROUPS), groups  # 160 samples of seed 7 hold every kind
    assert holdout_group(samples[0].record) == holdout_group(samples[0])
    edits = [s.tgt if holdout_group(s) in ("seen", "combo") else s.src for s in samples]
    result = reasoning_accuracy(samples, edits)
    assert result["per_holdout"] == {"seen": 1.0, "template": 0.0, "combo": 1.0, "template+combo": 0.0}
    assert result["count_per_holdout"] == {g: groups[g] for g in HOLDOUT_GROUPS}
    assert result["accuracy"] == pytest.approx((groups["seen"] + groups["combo"]) / len(samples))
    assert "hits" not in result
    hits = reasoning_accuracy(samples, edits, per_record=True)["hits"]
    assert hits == {s.record.id: holdout_group(s) in ("seen", "combo") for s in samples}
    table = markdown_table({**result, "seconds_per_edit": 0.5})
    assert f"| the instruction template | {groups['template']} | 0.0% |" in table
    assert f"| nothing (template and kind x background seen in training) | {groups['seen']} | 100.0% |" in table
    assert table.index("| **overall** |") < table.index("| held out from training |") < table.index("L1 to target")
    del result["per_holdout"]
    assert "held out from training" not in markdown_table({**result, "seconds_per_edit": 0.5})


# ----------------------------------------------------------------------------------------- splits
def test_split_holdouts(renderer):
    by_split: dict[str, list[int]] = {"train": [], "val": [], "test": []}
    for i in range(3000):
        by_split[plan_sample(2, i)[0]].append(i)
    records = [generate_sample(2, i, renderer=renderer).record
               for i in by_split["train"][:120] + by_split["val"][:30] + by_split["test"][:70]]
    seen = Counter()
    for r in records:
        combos = {(o.kind, r.background) for o in r.scene.objects}
        if r.split in ("train", "val"):
            assert r.template_id not in HELDOUT_TEMPLATES, r.id
            assert not combos & HELDOUT_COMBOS, r.id
            assert r.holdout == []
        else:
            seen["template"] += r.template_id in HELDOUT_TEMPLATES
            seen["combo"] += bool(combos & HELDOUT_COMBOS)
            assert ("template" in r.holdout) == (r.template_id in HELDOUT_TEMPLATES)
    assert seen["template"] >= 15 and seen["combo"] >= 5, seen


def test_reframing_keeps_object_and_condition(samples):
    import random

    from reasonbrain.referring import extract_referenced_object
    from reasonbrain.synthworld import VOCABULARY

    heldout_only = {"Assume", "Consider", "image"}  # words only the held-out templates use
    rng, changed = random.Random(0), 0
    for s in samples:
        r = s.record
        slots = split_instruction(r.instruction, r.template_id, r.transformation)
        assert slots is not None, r.instruction
        tr = next(t for t in TRANSFORMATIONS if t.id == r.transformation)
        assert ("story" in slots) == bool(tr.stories)
        if "cond" in slots:
            assert slots["cond"] in tr.conditions and slots["ref"].startswith("the ")
        for _ in range(3):
            text = reframe_instruction(r.instruction, r.template_id, r.transformation, rng)
            core = slots.get("story") or slots["cond"]
            assert core in text and text[0].isupper()
            assert not heldout_only & set(text.replace("?", " ").replace(".", " ").split()), text
            before, after = (extract_referenced_object(t, VOCABULARY) for t in (r.instruction, text))
            assert (after.name, after.attributes) == (before.name, before.attributes)
            changed += text != r.instruction
    assert changed > 2 * len(samples)  # mostly new wording
    # deterministic in the generator; unparsable instructions (other data) pass through unchanged
    r = samples[0].record
    assert (reframe_instruction(r.instruction, r.template_id, r.transformation, random.Random(5))
            == reframe_instruction(r.instruction, r.template_id, r.transformation, random.Random(5)))
    assert reframe_instruction("Make it rain.", r.template_id, r.transformation, rng) == "Make it rain."
    assert split_instruction(r.instruction, "T99", r.transformation) is None


# ----------------------------------------------------------------------------------------- output
def test_write_dataset_deterministic(dataset, tmp_path):
    write_dataset(tmp_path, n=48, seed=3, n_chains=8, workers=1, progress=False)
    assert _files(dataset) == _files(tmp_path)


def test_jsonl_round_trip(dataset):
    total = 0
    for split in ("train", "val", "test"):
        lines = (dataset / f"{split}.jsonl").read_text().splitlines()
        records = load_split(dataset, split)
        assert len(records) == len(lines)
        for line, rec in zip(lines, records):
            raw = json.loads(line)
            assert all(k in raw for k in REASON50K_FIELDS + EXTRA_FIELDS)
            assert rec.to_json() == raw and rec.split == split
            assert raw["objects"] == [raw["target"]["name"]] and raw["instruction"].strip()
            for rel in [rec.src_image, rec.tgt_image, *(a.image for a in rec.alternatives)]:
                assert not Path(rel).is_absolute() and (dataset / rel).is_file()
            assert rec.load_image("tgt").size == (64, 64)
            assert {"kind", "name", "colour", "position", "box"} <= set(raw["target"])
            assert all({"kind", "colour", "position", "box", "state"} <= set(o) for o in raw["scene"]["objects"])
        total += len(records)
    assert total >= 48
    meta = json.loads((dataset / "meta.json").read_text())
    assert meta["seed"] == 3 and set(meta["heldout_templates"]) == HELDOUT_TEMPLATES
    with pytest.raises(ValueError, match="split"):
        load_split(dataset, "dev")


def test_chains(dataset):
    chains = load_chains(dataset)
    assert len(chains) == 8
    split_ids = {r.id for s in ("train", "val", "test") for r in load_split(dataset, s)}
    for chain in chains:
        assert 2 <= len(chain.steps) <= 3
        for k, step in enumerate(chain.steps):
            assert step.chain_id == chain.id and step.step == k and step.id in split_ids
            if k:
                prev = chain.steps[k - 1]
                assert step.src_image == prev.tgt_image
                assert step.from_state == prev.to_state and step.target.position == prev.target.position
    demo = sample_chain(4)
    for a, b in zip(demo, demo[1:]):
        assert b.src.tobytes() == a.tgt.tobytes()


def test_workers_do_not_change_output(tmp_path):
    one, two = tmp_path / "one", tmp_path / "two"
    write_dataset(one, n=16, seed=9, n_chains=2, workers=1, progress=False)
    write_dataset(two, n=16, seed=9, n_chains=2, workers=2, progress=False)
    assert _files(one) == _files(two)


def test_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match="n must"):
        write_dataset(tmp_path, n=0)
    with pytest.raises(ValueError, match="resolution"):
        write_dataset(tmp_path, n=2, resolution=4000)


def test_cli_smoke(tmp_path):
    assert cli_main(["--n", "6", "--out", str(tmp_path / "a"), "--seed", "1", "--chains", "1", "--no-progress"]) == 0
    assert (tmp_path / "a" / "train.jsonl").is_file() and (tmp_path / "a" / "chains.jsonl").is_file()
    proc = subprocess.run([sys.executable, "-m", "reasonbrain.synthworld.cli", "--n", "4", "--out", str(tmp_path / "b"),
                           "--no-progress"], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert sum(len(load_split(tmp_path / "b", s)) for s in ("train", "val", "test")) >= 4


def test_cli_split_fractions_writes_training_data_only(tmp_path):
    assert cli_main(["--n", "8", "--out", str(tmp_path), "--seed", "3", "--chains", "0", "--split-fractions", "1", "0",
                     "0", "--no-progress"]) == 0
    assert len(load_split(tmp_path, "train")) == 8
    assert not load_split(tmp_path, "val") and not load_split(tmp_path, "test")
