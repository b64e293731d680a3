"""Bring one collection's index in line with its sources, reporting every failure.

    report = sync_collection("handbook", config, index, embedder, progress=print)

Per item (a file or URL): same size and mtime as last time, skip unread; same bytes (hash),
skip unparsed; otherwise parse, and per document: same hash, skip; else chunk, embed and
replace exactly that document's chunks in one transaction. Items gone from a source that
listed fine lose their documents; a source that failed to list keeps them. Any failure
becomes a line of ``report.errors`` and the sync carries on.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson

from bounded.retrieval.config import CollectionConfig
from bounded.retrieval.documents import Chunk, DocumentError, ItemError, ParsedDocument, sha256
from bounded.retrieval.embedding import Embedder
from bounded.retrieval.engines.index import CollectionIndex
from bounded.retrieval.ingest.chunking import chunk_document
from bounded.retrieval.sources.listing import (
    Item,
    SourceError,
    list_items,
    source_key,
    source_label,
)
from bounded.retrieval.sources.parsers import parse

EMBED_BATCH = 64  # chunks per embedding call; documents are still written one by one


@dataclass
class SyncReport:
    collection: str
    started_at: float = field(default_factory=time.time)
    finished_at: float | None = None
    items: int = 0
    items_unchanged: int = 0
    documents_indexed: int = 0
    documents_unchanged: int = 0
    documents_deleted: int = 0
    chunks_written: int = 0
    texts_embedded: int = 0
    errors: list[ItemError] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return {
            "collection": self.collection,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "duration_s": round((self.finished_at or time.time()) - self.started_at, 3),
            "items": self.items,
            "items_unchanged": self.items_unchanged,
            "documents_indexed": self.documents_indexed,
            "documents_unchanged": self.documents_unchanged,
            "documents_deleted": self.documents_deleted,
            "chunks_written": self.chunks_written,
            "texts_embedded": self.texts_embedded,
            "errors": [{"uri": e.uri, "error": e.message} for e in self.errors],
        }


@dataclass(frozen=True, slots=True)
class Progress:
    done: int
    total: int
    current: str


ProgressCallback = Callable[[Progress], None]


@dataclass
class _Waiting:
    item: Item
    digest: str
    keep: set[str] = field(default_factory=set)
    problems: int = 0
    outstanding: int = 0  # documents queued but not yet written
    listed: bool = False  # every document of the item has been seen


def settings_fingerprint(config: CollectionConfig) -> str:
    """What changes every chunk when edited: a new chunk size re-indexes everything."""
    return sha256(orjson.dumps([config.chunking.model_dump(), config.embedding]))[:16]


def sync_collection(
    name: str,
    config: CollectionConfig,
    index: CollectionIndex,
    embedder: Embedder | None,
    progress: ProgressCallback | None = None,
    should_stop: Callable[[], bool] = lambda: False,
) -> SyncReport:
    run = _Run(name, config, index, embedder, progress or (lambda p: None))
    listed, failed = run.list_sources()
    for item in listed:
        if should_stop():
            break
        run.sync_item(item)
    run.flush()
    if not should_stop():
        run.delete_missing(listed, failed)
    run.report.finished_at = time.time()
    index.set_meta("last_sync_at", str(run.report.finished_at))
    index.set_meta("last_sync_report", orjson.dumps(run.report.as_json()).decode())
    return run.report


class _Run:
    def __init__(
        self,
        name: str,
        config: CollectionConfig,
        index: CollectionIndex,
        embedder: Embedder | None,
        progress: ProgressCallback,
    ):
        self.config = config
        self.index = index
        self.embedder = embedder
        self.progress = progress
        self.report = SyncReport(name)
        self.known = index.items()
        self.settings = settings_fingerprint(config)
        self.done = 0
        self.total = 0
        self.pending: list[tuple[Item, ParsedDocument, list[Chunk]]] = []
        self.pending_chunks = 0
        # Items whose documents are queued: finished once the last of them is written.
        self.waiting: dict[str, _Waiting] = {}

    def list_sources(self) -> tuple[list[Item], set[str]]:
        listed: list[Item] = []
        failed: set[str] = set()
        for i, source in enumerate(self.config.sources):
            try:
                listed.extend(list_items(i, source))
            except SourceError as exc:
                self.report.errors.append(ItemError(source_label(source), str(exc)))
                failed.add(source_key(source))
        # Overlapping folders list a file twice; the first source to list it owns it.
        owners: dict[str, Item] = {}
        for item in listed:
            owners.setdefault(item.uri, item)
        unique = list(owners.values())
        self.report.items = self.total = len(unique)
        return unique, failed

    def _advance(self, current: str, steps: int = 1) -> None:
        self.done += steps
        self.progress(Progress(self.done, self.total, current))

    def sync_item(self, item: Item) -> None:
        state = self.known.get(item.uri)
        clean = state is not None and state.error is None and state.content_hash is not None
        signature = self._signature(item)
        if clean and signature is not None and state and state.signature == signature:
            self.report.items_unchanged += 1
            self._advance(item.uri)
            return
        try:
            fmt, data = item.read()
            digest = self._item_hash(item, data)
            if clean and state and state.content_hash == digest:
                self.index.finish_item(
                    item.uri,
                    item.source_key,
                    signature,
                    digest,
                    set(self.index.document_hashes(item.uri)),
                )
                self.report.items_unchanged += 1
                self._advance(item.uri)
                return
            parsed = list(parse(fmt, data, item.uri, item.title, self._source(item).jsonl))
        except DocumentError as exc:
            self._fail(item, str(exc))
            return
        self._queue_documents(item, digest, parsed)

    def _queue_documents(
        self, item: Item, digest: str, parsed: list[ParsedDocument | ItemError]
    ) -> None:
        stored = self.index.document_hashes(item.uri)
        waiting = self.waiting[item.uri] = _Waiting(item, digest)
        for doc in parsed:
            if isinstance(doc, ItemError):
                self.report.errors.append(doc)
                waiting.problems += 1
                continue
            self._decorate(item, doc)
            waiting.keep.add(doc.doc_id)
            if stored.get(doc.doc_id) == self._doc_hash(doc):
                self.report.documents_unchanged += 1
                continue
            chunks = chunk_document(doc.blocks, self.config.chunking)
            self.pending.append((item, doc, chunks))
            self.pending_chunks += len(chunks)
            waiting.outstanding += 1
            self.total += 1
            # Flushed as it goes: a 100k-line JSON Lines file is written (and resumable)
            # batch by batch, not after all of it is embedded.
            if self.pending_chunks >= EMBED_BATCH:
                self.flush()
        waiting.listed = True
        self._advance(item.uri)
        if waiting.outstanding == 0:
            self._finish(item.uri)

    def flush(self) -> None:
        if not self.pending:
            return
        batch, self.pending, self.pending_chunks = self.pending, [], 0
        matrix = None
        if self.embedder is not None:
            texts = [c.embedding_text(doc.title) for _, doc, chunks in batch for c in chunks]
            matrix = self.embedder.embed(texts)
            self.report.texts_embedded += len(texts)
        offset = 0
        for item, doc, chunks in batch:
            vectors = matrix[offset : offset + len(chunks)] if matrix is not None else None
            offset += len(chunks)
            # The stored hash carries the settings, so a new chunk size re-indexes.
            self.index.replace_document(item.uri, doc, self._doc_hash(doc), chunks, vectors)
            self.report.documents_indexed += 1
            self.report.chunks_written += len(chunks)
            self._advance(doc.doc_id)
            waiting = self.waiting[item.uri]
            waiting.outstanding -= 1
            if waiting.listed and waiting.outstanding == 0:
                self._finish(item.uri)

    def _finish(self, uri: str) -> None:
        """All of an item's documents are in: record its hash, drop documents it lost."""
        w = self.waiting.pop(uri)
        note = f"{w.problems} record(s) failed; see errors" if w.problems else None
        self.report.documents_deleted += self.index.finish_item(
            uri, w.item.source_key, self._signature(w.item), w.digest, w.keep, note
        )

    def delete_missing(self, listed: list[Item], failed: set[str]) -> None:
        present = {item.uri for item in listed}
        for uri, state in self.known.items():
            if uri not in present and state.source not in failed:
                self.report.documents_deleted += self.index.delete_item(uri)

    def _fail(self, item: Item, message: str) -> None:
        self.report.errors.append(ItemError(item.uri, message))
        self.index.item_error(item.uri, item.source_key, message)
        self._advance(item.uri)

    def _source(self, item: Item) -> Any:
        return self.config.sources[item.source]

    def _decorate(self, item: Item, doc: ParsedDocument) -> None:
        source = self._source(item)
        doc.labels = tuple(sorted({*self.config.labels, *source.labels, *doc.labels}))
        doc.metadata = {**source.metadata, **doc.metadata}

    def _fingerprint(self, item: Item) -> str:
        """The settings an item is indexed under: its source's (labels, metadata, fields),
        the collection's labels, chunking and model. Edited, they re-index the item."""
        source = self._source(item).model_dump_json()
        return sha256(orjson.dumps([source, self.config.labels, self.settings]))[:16]

    def _signature(self, item: Item) -> str | None:
        # Size and mtime, plus the fingerprint: new labels in bounded.yaml must not be
        # skipped by the "file untouched" shortcut.
        return f"{item.signature}|{self._fingerprint(item)}" if item.signature else None

    def _item_hash(self, item: Item, data: bytes) -> str:
        return hashlib.sha256(data + b"\x00" + self._fingerprint(item).encode()).hexdigest()

    def _doc_hash(self, doc: ParsedDocument) -> str:
        return sha256(f"{doc.content_hash}:{self.settings}".encode())
