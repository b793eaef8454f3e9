"""Text helpers shared by the channels: a long reply cut into messages a channel accepts.

`split_text(text, limit)` cuts at paragraph, line, sentence or word boundaries; Telegram
and WhatsApp both take 4096 characters per text message.
"""

from __future__ import annotations

import re

MAX_CHARS = 4096  # Telegram's and WhatsApp's limit for one text message
_SENTENCE_END = re.compile(r"[.!?…](?=\s)")


def split_text(text: str, limit: int = MAX_CHARS) -> list[str]:
    """Cut `text` into chunks of at most `limit` UTF-16 units (a channel's count is no larger).

    Cuts at the last paragraph break, else line break, else sentence end, else space that
    keeps the chunk at least half full; a single word longer than `limit` is cut hard.
    """
    chunks = []
    rest = text.strip()
    while rest:
        fit = _fit(rest, limit)
        if fit == len(rest):
            chunks.append(rest)
            break
        cut = _boundary(rest, fit)
        chunks.append(rest[:cut].rstrip())
        rest = rest[cut:].lstrip()
    return [c for c in chunks if c]


def _fit(text: str, limit: int) -> int:
    """The longest prefix (in code points) of `text` whose UTF-16 length is <= `limit`."""
    units = 0
    for i, ch in enumerate(text):
        units += 2 if ord(ch) > 0xFFFF else 1
        if units > limit:
            return i
    return len(text)


def _boundary(text: str, fit: int) -> int:
    window = text[:fit]
    half = fit // 2
    for sep in ("\n\n", "\n"):
        at = window.rfind(sep)
        if at >= half:
            return at + len(sep)
    ends = [m.end() for m in _SENTENCE_END.finditer(window)]
    if ends and ends[-1] >= half:
        return ends[-1]
    at = max(window.rfind(" "), window.rfind("\t"))
    if at > 0:
        return at + 1
    return fit
