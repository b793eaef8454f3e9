"""Strip the quoted history a mail client appends to a reply, where that is safe.

What is removed:

- the trailing block of "> " lines (with blank lines among them) after the last line the
  sender wrote, together with the attribution line(s) just above it
  ("On Mon, 2 Nov 2026 at 10:00, Alice <a@example.com> wrote:", also wrapped on two lines,
  and the German, French, Spanish, Italian and Dutch forms);
- everything from an Outlook separator on ("-----Original Message-----", or a line of
  underscores followed by a "From:" header line).

What is kept: quotes *between* the sender's own lines (an inline, interleaved answer needs
them to make sense), and the whole text when stripping would leave nothing (a forward
that is all quote, or a mail whose only content looks like history).
"""

from __future__ import annotations

import re

_ATTRIBUTION_END = re.compile(
    r"\b(wrote|writes|schrieb|a écrit|escribió|ha scritto|scrisse|schreef)\b[^\n]{0,200}:\s*$",
    re.IGNORECASE,
)
_ATTRIBUTION_START = re.compile(r"^\s*(on|am|le|el|il|op)\s", re.IGNORECASE)
_OUTLOOK_SEPARATOR = re.compile(r"^\s*-{2,}\s*original message\s*-{2,}\s*$", re.IGNORECASE)
_UNDERSCORES = re.compile(r"^\s*_{20,}\s*$")
_FROM_LINE = re.compile(r"^\s*(from|von|de|da)\s*:", re.IGNORECASE)


def _quoted(line: str) -> bool:
    return line.lstrip().startswith(">")


def _trailing_quote_start(lines: list[str]) -> int | None:
    """Index where the trailing quote block (and its attribution) begins, if there is one."""
    start = len(lines)
    while start > 0 and (not lines[start - 1].strip() or _quoted(lines[start - 1])):
        start -= 1
    if not any(_quoted(line) for line in lines[start:]):
        return None
    above = start - 1
    while above >= 0 and not lines[above].strip():
        above -= 1
    if above >= 0 and _ATTRIBUTION_END.search(lines[above]):
        start = above
        if (
            above > 0
            and not _ATTRIBUTION_START.match(lines[above])
            and _ATTRIBUTION_START.match(lines[above - 1])
        ):
            start = above - 1  # "On Mon, 2 Nov 2026 at 10:00, Alice\n<a@example.com> wrote:"
    return start


def _outlook_start(lines: list[str]) -> int | None:
    for index, line in enumerate(lines):
        if _OUTLOOK_SEPARATOR.match(line):
            return index
        following = lines[index + 1] if index + 1 < len(lines) else ""
        if _UNDERSCORES.match(line) and _FROM_LINE.match(following):
            return index
    return None


def strip_quoted(text: str) -> str:
    """`text` without the quoted history it ends with; unchanged when nothing would remain."""
    lines = text.splitlines()
    cut = _outlook_start(lines)
    if cut is not None:
        lines = lines[:cut]
    cut = _trailing_quote_start(lines)
    if cut is not None:
        lines = lines[:cut]
    stripped = "\n".join(lines).strip()
    return stripped or text.strip()
