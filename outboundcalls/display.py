"""Text a person reads, made from untrusted input: one line, no control or direction characters.

Anything that reaches a confirmation question or a refusal from outside (an argument as the
assistant typed it, a name from the API) goes through `one_line` first. A line break could forge
a line of the question ("Total: 0 credits"), and a bidirectional override could make a number
read backwards; both are shown as visible escapes instead, so nothing is silently lost either.
"""

from __future__ import annotations

import unicodedata
from typing import Final

__all__ = ["MAX_SHOWN", "one_line"]

MAX_SHOWN: Final = 64
# Format characters that change how the text around them is displayed: the bidirectional
# embeddings, overrides and isolates, the marks, and the zero-width joiners and spaces.
_INVISIBLE: Final = frozenset(
    "\u061c\u200b\u200c\u200d\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2060\u2066\u2067\u2068\u2069\ufeff"
)


def one_line(text: str, *, limit: int = MAX_SHOWN) -> str:
    """`text` as one visible line: controls, line breaks and direction marks escaped, cut to `limit` characters."""
    shown: list[str] = []
    for char in text:
        if char in _INVISIBLE or unicodedata.category(char) in ("Cc", "Zl", "Zp", "Cf", "Cs", "Co", "Cn"):
            shown.append(f"\\u{ord(char):04x}" if ord(char) <= 0xFFFF else f"\\U{ord(char):08x}")
        else:
            shown.append(char)
    line = "".join(shown)
    return line if len(line) <= limit else line[: limit - 3] + "..."
