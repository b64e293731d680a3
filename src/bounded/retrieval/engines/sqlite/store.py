"""The embedded index: one SQLite file per collection holding documents, chunks, an FTS5
index and the vectors (float32 BLOBs), so one transaction covers all of them.

Writes are one transaction per document (``replace_document``): its old chunks, FTS rows,
vectors and labels go and the new ones arrive together, or not at all. A sync killed with
``kill -9`` therefore leaves whole documents only; the next sync sees the missing ones by
their hash and finishes the job, with no duplicate and no orphan.

Every write bumps ``meta.generation``; readers compare it to refresh their in-memory vector
matrix and masks. Reads live in :mod:`bounded.retrieval.engines.sqlite.reads`.

    index = SqliteIndex.open("sqlite:///.bounded/collections/handbook.db")
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import numpy as np
import orjson

from bounded.retrieval.access import PUBLIC_TOKEN, acl_token
from bounded.retrieval.documents import HEADING_SEPARATOR, Chunk, ParsedDocument
from bounded.retrieval.embedding import Matrix
from bounded.retrieval.engines.index import ItemState
from bounded.retrieval.engines.sqlite.reads import IndexReads
from bounded.store.urls import sqlite_path

Migration = Callable[[sqlite3.Connection], None]


def _schema(conn: sqlite3.Connection) -> None:
    # One statement at a time: executescript() would COMMIT the migration's transaction.
    for statement in _SCHEMA.split(";"):
        if statement.strip():
            conn.execute(statement)


_SCHEMA = """
        CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
        INSERT INTO meta VALUES ('generation', '0');
        CREATE TABLE items (
            uri TEXT PRIMARY KEY, source TEXT NOT NULL, signature TEXT, content_hash TEXT,
            synced_at REAL, error TEXT, error_since REAL);
        CREATE TABLE documents (
            id INTEGER PRIMARY KEY, doc_id TEXT NOT NULL UNIQUE, item TEXT NOT NULL,
            content_hash TEXT NOT NULL, title TEXT NOT NULL, metadata TEXT NOT NULL,
            labels TEXT NOT NULL, public INTEGER NOT NULL, acl TEXT NOT NULL,
            chunks INTEGER NOT NULL, synced_at REAL NOT NULL);
        CREATE INDEX documents_item ON documents (item);
        CREATE TABLE doc_labels (label TEXT NOT NULL, doc INTEGER NOT NULL,
                                 PRIMARY KEY (label, doc)) WITHOUT ROWID;
        CREATE INDEX doc_labels_doc ON doc_labels (doc);
        -- AUTOINCREMENT: ids are never reused, so "id > last seen" finds exactly new rows.
        CREATE TABLE chunks (
            id INTEGER PRIMARY KEY AUTOINCREMENT, doc INTEGER NOT NULL,
            position INTEGER NOT NULL, heading TEXT NOT NULL, text TEXT NOT NULL,
            tokens INTEGER NOT NULL);
        CREATE INDEX chunks_doc ON chunks (doc);
        CREATE TABLE vectors (chunk INTEGER PRIMARY KEY, doc INTEGER NOT NULL,
                              vector BLOB NOT NULL);
        CREATE INDEX vectors_doc ON vectors (doc);
        CREATE VIEW chunk_fields AS
            SELECT c.id AS id, d.title AS title, c.heading AS heading, c.text AS text,
                   d.acl AS acl
            FROM chunks c JOIN documents d ON d.id = c.doc;
        -- acl holds a token per access label of the chunk's document (or the public token):
        -- access is checked by FTS5 itself, as one more term of the MATCH expression.
        CREATE VIRTUAL TABLE chunks_fts USING fts5(
            title, heading, text, acl, content='chunk_fields', content_rowid='id',
            tokenize='porter unicode61 remove_diacritics 2');
        CREATE VIRTUAL TABLE fts_terms USING fts5vocab(chunks_fts, 'row');
"""


MIGRATIONS: list[tuple[str, Migration]] = [("0001_retrieval_index", _schema)]


def connect(url: str) -> sqlite3.Connection:
    """Open (creating) a collection file and apply the named migrations it lacks.

    The index is a file of its own, not a table set in the main store: a 100k-chunk sync
    writes hundreds of megabytes, and the ledger's writers should not queue behind it.
    """
    path = sqlite_path(url)
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=30)
    conn.row_factory = sqlite3.Row
    conn.execute("PRAGMA journal_mode=WAL")
    # NORMAL: a commit survives kill -9 (it is in the WAL); only an OS crash may lose the
    # last few, and a re-sync puts them back.
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("PRAGMA busy_timeout=30000")
    conn.execute("CREATE TABLE IF NOT EXISTS _migrations (name TEXT PRIMARY KEY, applied_at REAL)")
    for name, apply in MIGRATIONS:
        conn.execute("BEGIN IMMEDIATE")
        try:
            # Checked inside the write lock: another process may have just applied it.
            if not conn.execute("SELECT 1 FROM _migrations WHERE name = ?", (name,)).fetchone():
                apply(conn)
                conn.execute("INSERT INTO _migrations VALUES (?, ?)", (name, time.time()))
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
    return conn


class SqliteIndex(IndexReads):
    def __init__(self, conn: sqlite3.Connection, url: str):
        super().__init__(url)
        self._conn = conn
        self._lock = threading.Lock()

    @classmethod
    def open(cls, url: str) -> SqliteIndex:
        return cls(connect(url), url)

    def close(self) -> None:
        self._conn.close()
        self.close_readers()

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield self._conn
                self._conn.execute(
                    "UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key = 'generation'"
                )
                self._conn.execute("COMMIT")
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise

    # -- change detection ---------------------------------------------------------------

    def items(self) -> dict[str, ItemState]:
        with self._lock:
            rows = self._conn.execute("SELECT * FROM items").fetchall()
        return {r["uri"]: ItemState(*r) for r in rows}

    def document_hashes(self, item: str) -> dict[str, str]:
        with self._lock:
            rows = self._conn.execute(
                "SELECT doc_id, content_hash FROM documents WHERE item = ?", (item,)
            ).fetchall()
        return {r[0]: r[1] for r in rows}

    # -- writes, one transaction each ----------------------------------------------------

    def replace_document(
        self,
        item: str,
        doc: ParsedDocument,
        content_hash: str,
        chunks: list[Chunk],
        vectors: Matrix | None,
    ) -> None:
        now = time.time()
        labels = tuple(sorted(set(doc.labels)))
        acl = " ".join(acl_token(x) for x in labels) if labels else PUBLIC_TOKEN
        with self._transaction() as conn:
            row = conn.execute(
                "SELECT id FROM documents WHERE doc_id = ?", (doc.doc_id,)
            ).fetchone()
            if row is not None:
                _delete_document_rows(conn, row[0])
            cur = conn.execute(
                "INSERT INTO documents (doc_id, item, content_hash, title, metadata, labels, "
                "public, acl, chunks, synced_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    doc.doc_id,
                    item,
                    content_hash,
                    doc.title,
                    orjson.dumps(doc.metadata),
                    orjson.dumps(labels),
                    int(not labels),
                    acl,
                    len(chunks),
                    now,
                ),
            )
            doc_row = cur.lastrowid
            conn.executemany("INSERT INTO doc_labels VALUES (?, ?)", [(x, doc_row) for x in labels])
            for i, chunk in enumerate(chunks):
                heading = HEADING_SEPARATOR.join(chunk.headings)
                cur = conn.execute(
                    "INSERT INTO chunks (doc, position, heading, text, tokens) "
                    "VALUES (?, ?, ?, ?, ?)",
                    (doc_row, chunk.position, heading, chunk.text, chunk.tokens),
                )
                chunk_id = cur.lastrowid
                conn.execute(
                    "INSERT INTO chunks_fts (rowid, title, heading, text, acl) "
                    "VALUES (?, ?, ?, ?, ?)",
                    (chunk_id, doc.title, heading, chunk.text, acl),
                )
                if vectors is not None:
                    blob = np.ascontiguousarray(vectors[i], dtype=np.float32).tobytes()
                    conn.execute("INSERT INTO vectors VALUES (?, ?, ?)", (chunk_id, doc_row, blob))

    def finish_item(
        self,
        uri: str,
        source: str,
        signature: str | None,
        content_hash: str,
        keep: set[str],
        error: str | None = None,
    ) -> int:
        """Record an item as synced and drop its documents that no longer exist.

        ``error`` notes a partial success (bad lines of a JSON Lines file): the item is then
        read again next time, so the problem keeps showing until it is fixed."""
        with self._transaction() as conn:
            rows = conn.execute("SELECT id, doc_id FROM documents WHERE item = ?", (uri,))
            stale = [r[0] for r in rows.fetchall() if r[1] not in keep]
            for doc_row in stale:
                _delete_document_rows(conn, doc_row)
            conn.execute(
                "INSERT INTO items (uri, source, signature, content_hash, synced_at, error, "
                "error_since) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (uri) DO UPDATE SET "
                "source = excluded.source, signature = excluded.signature, "
                "content_hash = excluded.content_hash, synced_at = excluded.synced_at, "
                "error = excluded.error, error_since = CASE WHEN excluded.error IS NULL THEN NULL "
                "ELSE COALESCE(items.error_since, excluded.error_since) END",
                (
                    uri,
                    source,
                    signature,
                    content_hash,
                    time.time(),
                    error,
                    time.time() if error else None,
                ),
            )
        return len(stale)

    def item_error(self, uri: str, source: str, message: str) -> None:
        """Remember the failure (for status) and keep whatever was indexed before."""
        with self._transaction() as conn:
            conn.execute(
                "INSERT INTO items (uri, source, error, error_since) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (uri) DO UPDATE SET error = excluded.error, "
                "error_since = COALESCE(items.error_since, excluded.error_since)",
                (uri, source, message, time.time()),
            )

    def delete_item(self, uri: str) -> int:
        with self._transaction() as conn:
            rows = conn.execute("SELECT id FROM documents WHERE item = ?", (uri,)).fetchall()
            for row in rows:
                _delete_document_rows(conn, row[0])
            conn.execute("DELETE FROM items WHERE uri = ?", (uri,))
        return len(rows)

    def set_meta(self, key: str, value: str) -> None:
        with self._lock:
            self._conn.execute(
                "INSERT INTO meta VALUES (?, ?) "
                "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                (key, value),
            )


def _delete_document_rows(conn: sqlite3.Connection, doc_row: int) -> None:
    # External-content FTS5 forgets a row only when told its old values; they come from the
    # chunks table, which is why the FTS delete runs before the chunks go.
    conn.execute(
        "INSERT INTO chunks_fts (chunks_fts, rowid, title, heading, text, acl) "
        "SELECT 'delete', c.id, d.title, c.heading, c.text, d.acl FROM chunks c "
        "JOIN documents d ON d.id = c.doc WHERE c.doc = ?",
        (doc_row,),
    )
    conn.execute("DELETE FROM vectors WHERE doc = ?", (doc_row,))
    conn.execute("DELETE FROM chunks WHERE doc = ?", (doc_row,))
    conn.execute("DELETE FROM doc_labels WHERE doc = ?", (doc_row,))
    conn.execute("DELETE FROM documents WHERE id = ?", (doc_row,))
