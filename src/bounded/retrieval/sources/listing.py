"""What a source lists and how an item's bytes are read.

A folder lists its files matching the globs (with size and mtime, so an untouched file is
skipped without even being read); a URL source lists its URLs. Listing a folder that does
not exist is a source error: the sync reports it and, crucially, does *not* treat the
folder's documents as deleted, so a missing network mount never empties an index.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from bounded.retrieval.config import FolderSource, Source, UrlSource
from bounded.retrieval.documents import DocumentError
from bounded.retrieval.sources.fetch import fetch
from bounded.retrieval.sources.parsers import CONTENT_TYPES, FORMATS


class SourceError(Exception):
    """A whole source could not be listed (its folder is missing, say)."""


@dataclass(frozen=True, slots=True)
class Item:
    uri: str  # the document id of a file or URL; JSON Lines records append '#id'
    source: int  # index of the source in the collection config
    source_key: str  # stable across config edits: the folder path, or 'url'
    title: str
    signature: str | None  # size and mtime for files: equal means unchanged, unread
    read: Callable[[], tuple[str, bytes]]  # (format, bytes); raises DocumentError


def list_items(index: int, source: Source) -> list[Item]:
    if isinstance(source, FolderSource):
        return list(_folder_items(index, source))
    return [_url_item(index, source, url) for url in source.urls]


def source_label(source: Source) -> str:
    return source.path if isinstance(source, FolderSource) else ", ".join(source.urls)


def source_key(source: Source) -> str:
    return f"folder:{source.path}" if isinstance(source, FolderSource) else "url"


def _folder_items(index: int, source: FolderSource) -> Iterator[Item]:
    root = Path(source.path)
    if not root.is_dir():
        what = "is not a folder" if root.exists() else "does not exist"
        raise SourceError(f"folder {source.path!r} {what} (relative to {os.getcwd()})")
    seen: set[Path] = set()
    for pattern in source.include:
        for path in sorted(root.glob(pattern)):
            if path in seen or not path.is_file():
                continue
            relative = PurePosixPath(path.relative_to(root).as_posix())
            if any(relative.match(x) for x in source.exclude):
                continue
            seen.add(path)
            try:
                stat = path.stat()
            except OSError:
                continue  # vanished between glob and stat; the next sync sees it gone
            uri = (PurePosixPath(source.path) / relative).as_posix()
            yield Item(
                uri,
                index,
                source_key(source),
                path.stem.replace("_", " ").replace("-", " "),
                f"{stat.st_size}:{stat.st_mtime_ns}",
                _file_reader(path, source.max_bytes),
            )


def _file_reader(path: Path, limit: int) -> Callable[[], tuple[str, bytes]]:
    def read() -> tuple[str, bytes]:
        fmt = FORMATS.get(path.suffix.lower())
        if fmt is None:
            raise DocumentError(f"unsupported file type {path.suffix!r}")
        try:
            size = path.stat().st_size
            if size > limit:
                raise DocumentError(f"file is {size:,} bytes; the limit is {limit:,} (max_bytes)")
            with path.open("rb") as handle:
                data = handle.read(limit + 1)
        except OSError as exc:
            raise DocumentError(f"cannot read: {exc.strerror or exc}") from None
        if len(data) > limit:
            raise DocumentError(f"file grew past the limit of {limit:,} bytes while read")
        return fmt, data

    return read


def _url_item(index: int, source: UrlSource, url: str) -> Item:
    def read() -> tuple[str, bytes]:
        response = fetch(url, source)
        fmt = CONTENT_TYPES.get(response.content_type)
        if fmt is None:
            suffix = PurePosixPath(response.url.split("?", 1)[0]).suffix.lower()
            fmt = FORMATS.get(suffix)
        if fmt is None:
            raise DocumentError(f"unsupported content type {response.content_type!r}")
        return fmt, response.body

    title = url.rstrip("/").rsplit("/", 1)[-1] or url
    return Item(url, index, "url", title, None, read)
