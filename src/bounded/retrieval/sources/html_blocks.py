"""HTML to blocks with the standard library's parser: headings, paragraphs, lists, code.

Scripts, styles, navigation and forms are dropped: they are page furniture, not content.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser

from bounded.retrieval.documents import Block

_SKIP = {"script", "style", "noscript", "nav", "footer", "form", "svg", "head", "template"}
_BLOCK = {
    "p",
    "div",
    "section",
    "article",
    "main",
    "blockquote",
    "li",
    "tr",
    "dd",
    "dt",
    "table",
    "ul",
    "ol",
    "br",
    "hr",
    "figcaption",
    "header",
    "aside",
}
_HEADINGS = {"h1": 1, "h2": 2, "h3": 3, "h4": 4, "h5": 5, "h6": 6}
_VOID = {
    "br",
    "hr",
    "img",
    "input",
    "meta",
    "link",
    "area",
    "base",
    "col",
    "embed",
    "source",
    "track",
    "wbr",
}


class _Extractor(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.blocks: list[Block] = []
        self.title = ""
        self._text: list[str] = []
        self._skip = 0
        self._in_title = False
        self._pre = 0
        self._heading: int | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "title":
            self._in_title = True
        elif tag in _SKIP:
            if tag not in _VOID:
                self._skip += 1
        elif tag == "pre":
            self._flush()
            self._pre += 1
        elif tag in _HEADINGS:
            self._flush()
            self._heading = _HEADINGS[tag]
        elif tag in _BLOCK and not self._pre:
            self._flush()
            if tag == "li":
                self._text.append("- ")

    def handle_endtag(self, tag: str) -> None:
        if tag == "title":
            self._in_title = False
        elif tag in _SKIP:
            self._skip = max(0, self._skip - 1)
        elif tag == "pre" and self._pre:
            self._pre -= 1
            code = "".join(self._text).strip("\n")
            self._text = []
            if code.strip():
                self.blocks.append(Block("code", code))
        elif tag in _HEADINGS and self._heading is not None:
            text = _squash("".join(self._text))
            self._text = []
            if text:
                self.blocks.append(Block("heading", text, self._heading))
            self._heading = None
        elif tag in _BLOCK and not self._pre:
            self._flush()

    def handle_data(self, data: str) -> None:
        if self._in_title:
            self.title += data
        elif not self._skip:
            self._text.append(data)

    def _flush(self) -> None:
        if self._pre or self._heading is not None:
            return
        text = _squash("".join(self._text))
        self._text = []
        if text and text != "-":
            self.blocks.append(Block("list" if text.startswith("- ") else "paragraph", text))


def _squash(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


def parse_html(text: str) -> tuple[str, list[Block]]:
    parser = _Extractor()
    parser.feed(text)
    parser.close()
    parser._flush()
    # Consecutive list items read better, and chunk better, as one list block.
    merged: list[Block] = []
    for block in parser.blocks:
        if block.kind == "list" and merged and merged[-1].kind == "list":
            merged[-1] = Block("list", merged[-1].text + "\n" + block.text)
        else:
            merged.append(block)
    return _squash(parser.title), merged
