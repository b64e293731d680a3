"""SQL of the PostgreSQL index: its schema, and the access and filter conditions that
every ranking statement carries in its WHERE clause."""

from __future__ import annotations

import re
from typing import Any

import orjson

from bounded.retrieval.access import Viewer
from bounded.retrieval.index import Filters

# ts_rank weights, in PostgreSQL's order {D, C, B, A}: title counts twice, like FTS5's.
RANK_WEIGHTS = "{0, 0.5, 0.5, 1.0}"  # each at most 1
RANK_NORMALISATION = 1  # divide by 1 + log(length): long chunks do not win by size
EF_SEARCH_MIN = 100


def redacted(url: str) -> str:
    """The URL without its password, for error messages."""
    return re.sub(r"://([^:/@]+):[^@]*@", r"://\1:***@", url)


def schema_for(collection: str) -> str:
    name = re.sub(r"[^a-z0-9_]", "_", collection.lower())
    return ("bounded_" + name)[:63]


def schema_sql(schema: str, dimensions: int | None) -> list[str]:
    vector = f", embedding vector({dimensions})" if dimensions else ""
    statements = [
        f"CREATE SCHEMA IF NOT EXISTS {schema}",
        f"CREATE TABLE {schema}.meta (key text PRIMARY KEY, value text NOT NULL)",
        f"""CREATE TABLE {schema}.items (
            uri text PRIMARY KEY, source text NOT NULL, signature text, content_hash text,
            synced_at double precision, error text, error_since double precision)""",
        f"""CREATE TABLE {schema}.documents (
            id bigserial PRIMARY KEY, doc_id text NOT NULL UNIQUE, item text NOT NULL,
            content_hash text NOT NULL, title text NOT NULL, metadata jsonb NOT NULL,
            labels text[] NOT NULL, chunks integer NOT NULL,
            synced_at double precision NOT NULL)""",
        f"CREATE INDEX ON {schema}.documents (item)",
        f"""CREATE TABLE {schema}.chunks (
            id bigserial PRIMARY KEY,
            doc bigint NOT NULL REFERENCES {schema}.documents (id) ON DELETE CASCADE,
            doc_id text NOT NULL, position integer NOT NULL, heading text NOT NULL,
            text text NOT NULL, tokens integer NOT NULL,
            labels text[] NOT NULL, public boolean NOT NULL, metadata jsonb NOT NULL,
            tsv tsvector NOT NULL{vector})""",
        f"CREATE INDEX ON {schema}.chunks (doc)",
        f"CREATE INDEX ON {schema}.chunks USING gin (tsv)",
        f"CREATE INDEX ON {schema}.chunks USING gin (labels)",
    ]
    if dimensions:
        statements.append(
            f"CREATE INDEX ON {schema}.chunks USING hnsw (embedding vector_cosine_ops)"
        )
    return statements


def access_condition(viewer: Viewer) -> tuple[str, list[Any]]:
    if viewer.labels is None:
        return "", []
    if not viewer.labels:
        return " AND c.public", []
    return " AND (c.public OR c.labels && %s::text[])", [sorted(viewer.labels)]


def filter_condition(filters: Filters) -> tuple[str, list[Any]]:
    sql = ""
    params: list[Any] = []
    for key, value in sorted(filters.items()):
        values = value if isinstance(value, list) else [value]
        if key == "doc_id":
            sql += " AND c.doc_id = ANY(%s::text[])"
            params.append([str(v) for v in values])
        else:
            # jsonb containment per value keeps types: {"year": 2024} is not {"year": "2024"}.
            sql += " AND (" + " OR ".join(["c.metadata @> %s::jsonb"] * len(values)) + ")"
            params.extend(orjson.dumps({key: v}).decode() for v in values)
    return sql, params
