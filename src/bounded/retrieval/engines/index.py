"""What a collection's index offers sync and search, whichever engine holds it.

Two engines implement it: :class:`~bounded.retrieval.engines.sqlite.store.SqliteIndex`
(the embedded default: FTS5 and int8-coded vectors in one SQLite file) and
:class:`~bounded.retrieval.engines.postgres.store.PgIndex` (scale-out: PostgreSQL full text
and pgvector with an HNSW index). A collection picks one by its ``store`` URL.

Every read takes the viewer and the filters and applies them inside the query, before any
ranking is cut to ``limit``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from bounded.retrieval.access import Viewer
from bounded.retrieval.documents import Chunk, ParsedDocument
from bounded.retrieval.embedding import Matrix

Filters = dict[str, Any]
Ranked = list[tuple[int, float]]  # (chunk id, score), best first
# Chunk ids from (inclusive) to (exclusive); None leaves that end open.
RowRange = tuple[int | None, int | None]
ALL_ROWS: RowRange = (None, None)


@dataclass(frozen=True, slots=True)
class ChunkRecord:
    chunk_id: int
    doc_id: str
    item: str
    title: str
    headings: tuple[str, ...]
    position: int
    text: str
    tokens: int
    metadata: dict[str, Any]
    labels: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class ItemState:
    uri: str
    source: str
    signature: str | None
    content_hash: str | None
    synced_at: float | None
    error: str | None
    error_since: float | None


class SearchableIndex(Protocol):
    def lexical(
        self,
        terms: list[str],
        viewer: Viewer,
        filters: Filters,
        limit: int,
        rows: RowRange = ALL_ROWS,
    ) -> Ranked:
        """BM25 over title, headings and text for chunks holding any of ``terms``; with
        ``rows``, only the chunks in that id range, each scored as in the whole index."""
        ...

    def lexical_halves(self) -> list[RowRange]:
        """Two id ranges that split a lexical query in even halves, where running them on
        two cores at once pays; else none."""
        ...

    def dense(
        self, query: Matrix, viewer: Viewer, filters: Filters, limit: int, one_core: bool = False
    ) -> Ranked:
        """Nearest chunks by cosine; ``one_core``: another search runs beside this one."""
        ...

    def vectors_of(self, chunk_ids: list[int]) -> tuple[list[int], Matrix]:
        """Those of ``chunk_ids`` that have a vector, and the vectors (for MMR)."""
        ...

    def chunk_records(self, ids: list[int]) -> dict[int, ChunkRecord]: ...


class CollectionIndex(SearchableIndex, Protocol):
    url: str

    def close(self) -> None: ...
    def items(self) -> dict[str, ItemState]: ...
    def document_hashes(self, item: str) -> dict[str, str]: ...
    def replace_document(
        self,
        item: str,
        doc: ParsedDocument,
        content_hash: str,
        chunks: list[Chunk],
        vectors: Matrix | None,
    ) -> None: ...
    def finish_item(
        self,
        uri: str,
        source: str,
        signature: str | None,
        content_hash: str,
        keep: set[str],
        error: str | None = None,
    ) -> int: ...
    def item_error(self, uri: str, source: str, message: str) -> None: ...
    def delete_item(self, uri: str) -> int: ...
    def set_meta(self, key: str, value: str) -> None: ...
    def get_meta(self, key: str) -> str | None: ...
    def stats(self) -> dict[str, Any]: ...
