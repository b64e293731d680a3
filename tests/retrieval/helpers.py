"""Builders for retrieval tests: real configs, real SQLite files, real PDFs."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any


def minimal_pdf(*lines: str) -> bytes:
    """A valid one-page PDF whose text pypdf extracts: written by hand, offsets and all."""
    ops = " ".join(f"({line}) Tj 0 -16 Td" for line in lines)
    stream = f"BT /F1 12 Tf 72 720 Td {ops} ET".encode()
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R "
        b"/Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    for offset in offsets:
        out += b"%010d 00000 n \n" % offset
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (
        len(objects) + 1,
        xref,
    )
    return bytes(out)


def folder(path: Path, **extra: Any) -> dict[str, Any]:
    return {"kind": "folder", "path": str(path), **extra}


def index_rows(db_file: Path) -> dict[str, Any]:
    """What a person auditing the file would count, read with a fresh connection."""
    conn = sqlite3.connect(db_file)
    try:
        docs = conn.execute("SELECT doc_id, chunks FROM documents").fetchall()
        chunk_docs = conn.execute("SELECT doc FROM chunks").fetchall()
        orphans = conn.execute(
            "SELECT count(*) FROM chunks WHERE doc NOT IN (SELECT id FROM documents)"
        ).fetchone()[0]
        orphan_vectors = conn.execute(
            "SELECT count(*) FROM vectors WHERE chunk NOT IN (SELECT id FROM chunks)"
        ).fetchone()[0]
        vectors = conn.execute("SELECT count(*) FROM vectors").fetchone()[0]
        # Raises if the FTS5 index disagrees with the chunks it indexes.
        conn.execute("INSERT INTO chunks_fts (chunks_fts) VALUES ('integrity-check')")
        return {
            "documents": {d: n for d, n in docs},
            "declared_chunks": sum(n for _, n in docs),
            "chunks": len(chunk_docs),
            "orphans": orphans,
            "orphan_vectors": orphan_vectors,
            "vectors": vectors,
        }
    finally:
        conn.close()


def _pg_rows(url: str, schema: str) -> dict[str, Any]:
    import psycopg

    with psycopg.connect(url) as conn:
        docs = conn.execute(f"SELECT doc_id, chunks FROM {schema}.documents").fetchall()
        chunks = conn.execute(f"SELECT count(*) FROM {schema}.chunks").fetchone()
        orphans = conn.execute(
            f"SELECT count(*) FROM {schema}.chunks WHERE doc NOT IN "
            f"(SELECT id FROM {schema}.documents)"
        ).fetchone()
        vectors = conn.execute(
            f"SELECT count(*) FROM {schema}.chunks WHERE embedding IS NOT NULL"
        ).fetchone()
    assert chunks and orphans and vectors
    return {
        "documents": {d: n for d, n in docs},
        "declared_chunks": sum(n for _, n in docs),
        "chunks": chunks[0],
        "orphans": orphans[0],
        "orphan_vectors": orphans[0],  # a vector is a column of its chunk row here
        "vectors": vectors[0],
    }


def rows_of(service: Any, name: str) -> dict[str, Any]:
    """``index_rows`` for whichever engine holds the collection."""
    from bounded.retrieval.engines.postgres.sql import schema_for
    from bounded.retrieval.service import collection_url
    from bounded.store.urls import sqlite_path

    url = collection_url(service.config, name)
    if url.startswith("sqlite:///"):
        return index_rows(sqlite_path(url))
    return _pg_rows(url, schema_for(name))


def chunk_ids_of(service: Any, name: str) -> dict[str, list[int]]:
    """Chunk ids per document, in id order, read from the engine directly."""
    from bounded.retrieval.engines.postgres.sql import schema_for
    from bounded.retrieval.service import collection_url
    from bounded.store.urls import sqlite_path

    url = collection_url(service.config, name)
    sql = "SELECT d.doc_id, c.id FROM {s}chunks c JOIN {s}documents d ON d.id = c.doc ORDER BY c.id"
    if url.startswith("sqlite:///"):
        conn = sqlite3.connect(sqlite_path(url))
        rows = conn.execute(sql.format(s="")).fetchall()
        conn.close()
    else:
        import psycopg

        with psycopg.connect(url) as pg:
            rows = pg.execute(sql.format(s=schema_for(name) + ".")).fetchall()
    out: dict[str, list[int]] = {}
    for doc_id, chunk_id in rows:
        out.setdefault(doc_id, []).append(chunk_id)
    return out
