"""The README's architecture section names files that exist, so a newcomer following one edit finds them."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def architecture_section() -> str:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    start = text.index("## How one edit flows")
    return text[start : text.index("\n## ", start + 1)]


def test_every_path_in_the_architecture_section_exists():
    """Paths resolve from the root, ``reasonbrain/`` or ``app/``; a bare file name from the folder named before it."""
    paths = [p for p in re.findall(r"`([^`\s]+)`", architecture_section()) if p.endswith((".py", "/"))]
    assert len(paths) >= 20
    bases, missing = ["", "reasonbrain", "app"], []
    for p in paths:
        found = next((ROOT / b / p for b in bases if (ROOT / b / p).exists()), None)
        if found is None:
            missing.append(p)
        elif found.is_dir():
            bases = ["", "reasonbrain", "app", str(found.relative_to(ROOT))]
    assert missing == []
