"""A request's spans as one compact JSON value in its ``traces`` row (``spans_json``).

    text = encode(record.spans)          # the trace writer's thread: one orjson call per request
    spans = decode(row["spans_json"])    # readers: the API's span dicts, self times added

The shape, a list per span (positional, no key repeated per span) and times as offsets from
the request's first span so they stay short::

    {"t0": 1767225600123456789,                 # epoch ns of the first span (the root)
     "spans": [[span_id, parent_id, name, kind, status, start - t0, end - start, {attrs}],
               ...]}

Why one value and not a row per span: each span row was an insert into the table, its
primary key and its time index; a 12-span request was 13 rows and 29 b-tree inserts, and
that was most of the writer's CPU (docs/observability.md, "Measured").

``bounded.self_ms`` (a stage's time less its direct children's) is not stored: readers and
the OTLP exporter compute it from the times (:func:`self_times`), so the writer does not.
Rows written before migration 0008 have their spans in the ``spans`` table, already with
``bounded.self_ms`` and ``bounded.span.kind`` among the attributes: :func:`from_legacy`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import orjson

from bounded.telemetry.spans import Span

_OPTIONS = orjson.OPT_NON_STR_KEYS


def encode(spans: Sequence[Span]) -> str:
    t0 = spans[0].start_ns if spans else 0
    return orjson.dumps(
        {
            "t0": t0,
            "spans": [
                (s.span_id, s.parent_id, s.name, s.kind, s.status, s.start_ns - t0,
                 s.end_ns - s.start_ns, s.attributes)
                for s in spans
            ],
        },
        option=_OPTIONS,
        default=str,  # a value orjson cannot write is stored as its text, not lost
    ).decode()  # fmt: skip


def decode(text: str | bytes) -> list[dict[str, Any]]:
    """The spans of one request as ``GET /v1/traces/{id}`` shows them, in stored order."""
    data = orjson.loads(text)
    t0 = int(data["t0"])
    out = []
    for span_id, parent_id, name, kind, status, start, duration, attrs in data["spans"]:
        begin = t0 + start
        out.append(
            {
                "span_id": span_id,
                "parent_span_id": parent_id,
                "name": name,
                "kind": kind,
                "start_time_unix_nano": begin,
                "end_time_unix_nano": begin + duration,
                "duration_ms": round(duration / 1e6, 3),
                "status": status,
                "attributes": attrs,
            }
        )
    own = self_times(
        (s["span_id"], s["parent_span_id"], s["start_time_unix_nano"], s["end_time_unix_nano"])
        for s in out
    )
    for span in out:
        if "bounded.stage" in span["attributes"]:
            span["attributes"]["bounded.self_ms"] = own[span["span_id"]]
    return out


def from_legacy(row: Any) -> dict[str, Any]:
    """A row of the ``spans`` table (before 0008) as :func:`decode` gives a span."""
    attrs = orjson.loads(row["attributes"])
    start, end = int(row["start_ns"]), int(row["end_ns"])
    return {
        "span_id": row["span_id"],
        "parent_span_id": row["parent_id"],
        "name": row["name"],
        "kind": attrs.pop("bounded.span.kind", "internal"),
        "start_time_unix_nano": start,
        "end_time_unix_nano": end,
        "duration_ms": round((end - start) / 1e6, 3),
        "status": row["status"],
        "attributes": attrs,
    }


def self_times(spans: Iterable[tuple[str, str | None, int, int]]) -> dict[str, float]:
    """Each span's own milliseconds, ``(span_id, parent_id, start_ns, end_ns)`` in: its
    time less its direct children's (stages nest, so a stage's span covers the stages
    after it), rounded to microseconds."""
    spans = list(spans)
    children: dict[str | None, int] = {}
    for _, parent, start, end in spans:
        children[parent] = children.get(parent, 0) + end - start
    return {
        span_id: round(max(0, end - start - children.get(span_id, 0)) / 1e6, 3)
        for span_id, _, start, end in spans
    }
