"""Bytes to documents: Markdown, plain text, HTML, PDF and JSON Lines.

Every failure is a :class:`DocumentError` with a message a person can act on ("not UTF-8 at
byte 812", "corrupt PDF: ..."); JSON Lines reports a bad line and keeps the good ones.
"""

from __future__ import annotations

import io
import re
from collections.abc import Iterator
from typing import Any

import orjson
import yaml

from bounded.retrieval.config import JsonlFields
from bounded.retrieval.documents import Block, BlockKind, DocumentError, ItemError, ParsedDocument
from bounded.retrieval.sources.html_blocks import parse_html

FORMATS = {
    ".md": "markdown",
    ".markdown": "markdown",
    ".txt": "text",
    ".text": "text",
    ".html": "html",
    ".htm": "html",
    ".pdf": "pdf",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
}
CONTENT_TYPES = {
    "text/markdown": "markdown",
    "text/x-markdown": "markdown",
    "text/plain": "text",
    "text/html": "html",
    "application/xhtml+xml": "html",
    "application/pdf": "pdf",
    "application/jsonl": "jsonl",
    "application/x-ndjson": "jsonl",
}
_FENCE = re.compile(r"^(\s{0,3})(`{3,}|~{3,})")
_ATX = re.compile(r"^\s{0,3}(#{1,6})\s+(.*?)\s*#*\s*$")
_SETEXT = re.compile(r"^\s{0,3}(=+|-+)\s*$")
_LIST = re.compile(r"^\s*(?:[-*+]|\d+[.)])\s+")


def parse(
    fmt: str, data: bytes, doc_id: str, title: str, fields: JsonlFields
) -> Iterator[ParsedDocument | ItemError]:
    """Documents of one item; a JSON Lines file may interleave per-line errors."""
    if fmt == "jsonl":
        yield from _parse_jsonl(data, doc_id, fields)
        return
    if fmt == "pdf":
        yield _parse_pdf(data, doc_id, title)
        return
    text = decode_text(data)
    if fmt == "html":
        found_title, blocks = parse_html(text)
        yield ParsedDocument(doc_id, found_title or title, blocks)
    elif fmt == "markdown":
        yield _parse_markdown(text, doc_id, title)
    else:
        yield ParsedDocument(doc_id, title, _paragraphs(text))


def decode_text(data: bytes) -> str:
    if b"\x00" in data[:8192]:
        raise DocumentError("binary file (NUL bytes), not text")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DocumentError(
            f"not valid UTF-8 at byte {exc.start} ({exc.reason}); re-save the file as UTF-8"
        ) from None


def _paragraphs(text: str) -> list[Block]:
    return [Block("paragraph", p.strip()) for p in re.split(r"\n\s*\n", text) if p.strip()]


def _parse_markdown(text: str, doc_id: str, fallback_title: str) -> ParsedDocument:
    meta, text = _front_matter(text)
    blocks: list[Block] = []
    lines = text.split("\n")
    buffer: list[str] = []

    def flush() -> None:
        if buffer:
            body = "\n".join(buffer).strip()
            if body:
                blocks.append(Block(_kind_of(body), body))
            buffer.clear()

    i = 0
    while i < len(lines):
        line = lines[i]
        fence = _FENCE.match(line)
        if fence:
            flush()
            marker = fence.group(2)
            code: list[str] = []
            i += 1
            while i < len(lines) and not lines[i].strip().startswith(marker):
                code.append(lines[i])
                i += 1
            blocks.append(Block("code", "\n".join(code)))
        elif heading := _ATX.match(line):
            flush()
            blocks.append(Block("heading", heading.group(2), len(heading.group(1))))
        elif buffer and len(buffer) == 1 and _SETEXT.match(line) and not _LIST.match(buffer[0]):
            title = buffer.pop()
            flush()
            blocks.append(Block("heading", title.strip(), 1 if line.strip()[0] == "=" else 2))
        elif not line.strip():
            flush()
        else:
            buffer.append(line)
        i += 1
    flush()
    first_h1 = next((b.text for b in blocks if b.kind == "heading" and b.level == 1), None)
    title = str(meta.pop("title", None) or first_h1 or fallback_title)
    labels = meta.pop("labels", None) or meta.pop("access", None) or ()
    if isinstance(labels, str):
        labels = [labels]
    metadata = {k: v for k, v in meta.items() if isinstance(v, str | int | float | bool)}
    return ParsedDocument(doc_id, title, blocks, metadata, tuple(str(x) for x in labels))


def _kind_of(body: str) -> BlockKind:
    if body.startswith("|"):
        return "table"
    return "list" if _LIST.match(body) else "paragraph"


def _front_matter(text: str) -> tuple[dict[str, Any], str]:
    if not text.startswith("---\n"):
        return {}, text
    end = text.find("\n---", 4)
    if end < 0:
        return {}, text
    try:
        meta = yaml.safe_load(text[4:end])
    except yaml.YAMLError as exc:
        raise DocumentError(f"invalid front matter: {exc}") from None
    if not isinstance(meta, dict):
        return {}, text
    rest = text[end + 4 :]
    return {str(k): v for k, v in meta.items()}, rest.split("\n", 1)[1] if "\n" in rest else ""


def _parse_pdf(data: bytes, doc_id: str, title: str) -> ParsedDocument:
    from pypdf import PdfReader
    from pypdf.errors import PyPdfError

    if not data.lstrip()[:5] == b"%PDF-":
        raise DocumentError("corrupt PDF: no %PDF- header")
    try:
        reader = PdfReader(io.BytesIO(data), strict=False)
        if reader.is_encrypted:
            raise DocumentError("encrypted PDF: no text without the password")
        pages = [page.extract_text() or "" for page in reader.pages]
        info_title = reader.metadata.get("/Title") if reader.metadata else None
    except DocumentError:
        raise
    except (PyPdfError, ValueError, KeyError, TypeError, AttributeError, OSError) as exc:
        raise DocumentError(f"corrupt PDF: {exc or type(exc).__name__}") from None
    blocks = [b for page in pages for b in _paragraphs(page)]
    if not blocks:
        raise DocumentError("PDF has no extractable text (a scan? run OCR first)")
    return ParsedDocument(doc_id, str(info_title or title), blocks)


def _parse_jsonl(
    data: bytes, doc_id: str, fields: JsonlFields
) -> Iterator[ParsedDocument | ItemError]:
    text = decode_text(data)
    seen: set[str] = set()
    for number, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        where = f"{doc_id}:{number}"
        try:
            record = orjson.loads(line)
        except orjson.JSONDecodeError as exc:
            yield ItemError(where, f"line {number}: invalid JSON ({exc})")
            continue
        if not isinstance(record, dict):
            yield ItemError(where, f"line {number}: expected a JSON object")
            continue
        body = record.get(fields.text)
        if not isinstance(body, str):
            yield ItemError(where, f"line {number}: no string field {fields.text!r}")
            continue
        key = str(record.get(fields.id, number))
        if key in seen:
            yield ItemError(where, f"line {number}: duplicate {fields.id} {key!r}; kept the first")
            continue
        seen.add(key)
        title = record.get(fields.title) if fields.title else None
        labels = record.get(fields.labels) if fields.labels else None
        labels = [labels] if isinstance(labels, str) else labels or []
        metadata = {f: record[f] for f in fields.metadata if f in record}
        yield ParsedDocument(
            f"{doc_id}#{key}",
            str(title or ""),
            _paragraphs(body),
            metadata,
            tuple(str(x) for x in labels),
        )
