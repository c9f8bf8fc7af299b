"""One normalisation of instruction text, shared by the referring parser and the model's text side.

The user's original text is what is stored and shown; only what the parser and the encoders read is normalised:
Unicode compatibility forms (NFKC), typographic quotes, dashes and ellipses as ASCII, whitespace collapsed, lower
case. ``normalize_instruction("  What  if the ICE CUBE…  ")`` -> ``"what if the ice cube..."``.
"""

from __future__ import annotations

import unicodedata

_ASCII = str.maketrans({
    "\u2018": "'", "\u2019": "'", "\u201a": "'", "\u201b": "'", "\u2032": "'", "`": "'",
    "\u201c": '"', "\u201d": '"', "\u201e": '"', "\u00ab": '"', "\u00bb": '"',
    "\u2010": "-", "\u2011": "-", "\u2012": "-", "\u2013": "-", "\u2014": "-", "\u2015": "-", "\u2212": "-",
    "\u00a0": " ", "\u2009": " ", "\u202f": " ",
})


def normalize_instruction(text: str) -> str:
    """NFKC, ASCII punctuation, collapsed whitespace, lower case (see the module docstring)."""
    if not isinstance(text, str):
        raise ValueError(f"instruction must be a string, got {type(text).__name__}")
    text = unicodedata.normalize("NFKC", text).translate(_ASCII).replace("\u2026", "...")
    return " ".join(text.split()).lower()
