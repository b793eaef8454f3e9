"""HTML mail body → plain text, with the standard library's `html.parser` only.

Good enough for what an agent reads: block elements become line breaks, list items get a
"- ", scripts, styles and the head are dropped, entities are decoded, and the content of
a `<blockquote>` is prefixed with "> " per level, so quoted history looks exactly like it
does in a plain-text reply and `ingress.smtp.quotes` can strip it the same way.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser

_SKIP = frozenset({"script", "style", "head", "title", "template", "noscript"})
_BLOCK = frozenset(
    {
        "address", "article", "aside", "blockquote", "dd", "div", "dl", "dt", "fieldset",
        "figcaption", "figure", "footer", "form", "h1", "h2", "h3", "h4", "h5", "h6", "header",
        "hr", "li", "main", "nav", "ol", "p", "pre", "section", "table", "tr", "ul",
    }
)  # fmt: skip
_PARAGRAPH = frozenset({"p", "h1", "h2", "h3", "h4", "h5", "h6", "table", "ul", "ol", "pre"})
_SPACES = re.compile(r"[ \t\r\n\f\v\u00a0]+")
_BLANK_RUNS = re.compile(r"\n{3,}")


class _Converter(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.lines: list[tuple[int, str]] = []  # (quote depth, text); "" is a blank line
        self._line: list[str] = []
        self._line_depth = 0
        self._depth = 0
        self._skip = 0
        self._pre = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _SKIP:
            self._skip += 1
        elif tag == "br":
            self._break()
        elif tag in _BLOCK:
            self._break(blank=tag in _PARAGRAPH)
            if tag == "blockquote":
                self._depth += 1
            elif tag == "pre":
                self._pre += 1
            elif tag == "li":
                self._text("- ")
        elif tag in ("td", "th") and self._line:
            self._text(" ")

    def handle_endtag(self, tag: str) -> None:
        if tag in _SKIP:
            self._skip = max(0, self._skip - 1)
        elif tag in _BLOCK:
            self._break(blank=tag in _PARAGRAPH)
            if tag == "blockquote":
                self._depth = max(0, self._depth - 1)
            elif tag == "pre":
                self._pre = max(0, self._pre - 1)

    def handle_data(self, data: str) -> None:
        if self._skip:
            return
        if self._pre:
            first, *rest = data.split("\n")
            self._text(first)
            for line in rest:
                self._break()
                self._text(line)
            return
        self._text(_SPACES.sub(" ", data))

    def _text(self, text: str) -> None:
        if not text:
            return
        if not self._line:
            self._line_depth = self._depth
            if not self._pre:
                text = text.lstrip()
                if not text:
                    return
        self._line.append(text)

    def _break(self, *, blank: bool = False) -> None:
        text = "".join(self._line).rstrip()
        if text:
            self.lines.append((self._line_depth, text))
        self._line = []
        if blank and self.lines and self.lines[-1][1]:
            self.lines.append((self._depth, ""))

    def result(self) -> str:
        self._break()
        out = []
        for depth, text in self.lines:
            prefix = "> " * depth
            out.append((prefix + text) if text else prefix.rstrip())
        return _BLANK_RUNS.sub("\n\n", "\n".join(out)).strip()


def html_to_text(html: str) -> str:
    """The readable text of an HTML document or fragment."""
    converter = _Converter()
    converter.feed(html)
    converter.close()
    return converter.result()
