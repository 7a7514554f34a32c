"""Which language a text is in, as far as the platform needs to know: torch-free, so the web process can choose a
model by its input (Capability.default_for) with the same check the workers use."""

from __future__ import annotations

import re

_HANGUL = re.compile(r"[\uac00-\ud7a3\u1100-\u11ff\u3130-\u318f]")
_LETTER = re.compile(r"[^\W\d_]")


def hangul_share(text: str) -> float:
    """The share of the text's letters that are Hangul (0 for a text without letters)."""
    letters = _LETTER.findall(text)
    return sum(bool(_HANGUL.match(letter)) for letter in letters) / len(letters) if letters else 0.0


def is_korean(text: str) -> bool:
    return hangul_share(text) >= 0.5
