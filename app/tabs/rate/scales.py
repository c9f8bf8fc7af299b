"""The Rate tab's scales: the three criteria an edit is scored on (1-5) and what each score means."""

from __future__ import annotations

# Anchors: Ins-Align as the paper defines it (how well the edited image aligns with the hypothetical
# instruction: the plausible, reasoned outcome on the right object), plus the two qualities it discusses
# alongside it (appearance consistency / identity preservation, visual plausibility). Each: (score, the short
# name on the choice, the full anchor: a tooltip on the choice and under "What the scores mean").
Anchor = tuple[int, str, str]
INS_ALIGN: list[Anchor] = [
    (1, "Not aligned", "no visible change, or a change unrelated to the instruction"),
    (2, "Barely", "something changed, but the wrong outcome or the wrong object"),
    (3, "Partly", "the right object changes, but the outcome is incomplete or only partly what the instruction "
                  "implies"),
    (4, "Mostly", "the implied outcome is clearly shown, with a minor error in extent or detail"),
    (5, "Fully", "exactly the outcome the instruction implies, on the right object, to the right extent"),
]
CONSISTENCY: list[Anchor] = [
    (1, "Different", "a different image: the scene or the main objects are not preserved"),
    (2, "Major", "large parts the instruction does not concern changed or were replaced"),
    (3, "Noticeable", "noticeable unintended changes, the scene still recognisable"),
    (4, "Minor", "small unintended changes (colour, texture) outside the edit"),
    (5, "Unchanged", "everything the instruction does not concern is unchanged"),
]
PLAUSIBILITY: list[Anchor] = [
    (1, "Broken", "noise, heavy distortion, unreadable"),
    (2, "Severe flaws", "strong artefacts or a physically impossible result"),
    (3, "Clear flaws", "clear artefacts or implausible parts, still readable"),
    (4, "Minor", "minor artefacts or slightly unnatural details"),
    (5, "Plausible", "a coherent, physically plausible photo without artefacts"),
]
# (elem_id, label, anchors), in the order the keys 1-5 score them
CRITERIA = [
    ("rate-ins", "Ins-Align: does the edit show what the instruction implies?", INS_ALIGN),
    ("rate-cons", "Consistency: is the rest of the image preserved?", CONSISTENCY),
    ("rate-plaus", "Plausibility: does the result look real and coherent?", PLAUSIBILITY),
]


def anchors_markdown() -> str:
    """Every criterion's full anchors (the accordion under the scores)."""
    parts = []
    for _, label, anchors in CRITERIA:
        rows = "\n".join(f"- **{k} · {short}**: {full}" for k, short, full in anchors)
        parts.append(f"**{label}**\n\n{rows}")
    return "\n\n".join(parts)
