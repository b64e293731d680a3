"""The scale-out index on a real PostgreSQL with pgvector: what only it has to prove.

Search, access labels, filters and sync behaviour run on both engines in test_search,
test_access and test_sync; here: the indexes the queries rely on, BM25 statistics that
follow every change, replicas sharing one collection, and a database that is not there.
"""

from __future__ import annotations

from pathlib import Path

import httpx
import psycopg
import pytest

from bounded.errors import StoreUnavailable
from bounded.retrieval.access import Viewer
from bounded.retrieval.engines.postgres.sql import schema_for
from tests.conftest import free_port
from tests.retrieval.conftest import Build
from tests.retrieval.helpers import folder, rows_of
from tests.threads import failures_at_once

TOPICS = {
    "keys.md": "# Keys\n\nRotate an API key by creating a new one, then revoke the old key.",
    "budgets.md": "# Budgets\n\nA hard budget refuses the call once the month's spend is used.",
    "refunds.md": "# Refunds\n\nRefunds go back to the original card within five days.",
    "outages.md": "# Outages\n\nDuring an outage the router falls back to the next provider.",
}


@pytest.fixture
def engine() -> str:
    return "pgvector"


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    root = tmp_path / "kb"
    root.mkdir()
    for name, text in TOPICS.items():
        (root / name).write_text(text)
    # Enough rows that the planner has a choice between an index and a scan.
    for i in range(60):
        (root / f"filler-{i}.md").write_text(f"# Note {i}\n\nRoutine note number {i}.")
    return root


def _collection(root: Path) -> dict[str, object]:
    return {"kb": {"sources": [folder(root)], "refresh_interval_s": None}}


def test_queries_use_the_hnsw_and_postings_indexes(build: Build, corpus: Path) -> None:
    service = build(_collection(corpus))
    assert not service.sync("kb").errors
    url = service.config.collections["kb"].store
    assert url
    schema = schema_for("kb")
    with psycopg.connect(url) as conn:
        # Forbid the sequential scan: the plan shows whether the query *can* use an index,
        # which is what matters at a million rows.
        conn.execute("SET enable_seqscan = off")
        vector = "[" + ",".join(["0.05"] * 384) + "]"
        dense = conn.execute(
            f"EXPLAIN SELECT id FROM {schema}.chunks c WHERE c.embedding IS NOT NULL "
            f"AND (c.public OR c.labels && '{{hr}}'::text[]) "
            f"ORDER BY c.embedding <=> '{vector}' LIMIT 10"
        ).fetchall()
        assert "chunks_embedding_idx" in str(dense), dense
        lexical = conn.execute(
            f"EXPLAIN SELECT chunk, tf FROM {schema}.postings WHERE lexeme = ANY('{{rotat}}')"
        ).fetchall()
        assert "postings_pkey" in str(lexical), lexical


def test_a_second_replica_sees_the_first_ones_sync(build: Build, corpus: Path) -> None:
    first = build(_collection(corpus))
    report = first.sync("kb")
    assert report.documents_indexed == len(TOPICS) + 60
    second = build(_collection(corpus))  # another process's service, same database
    hits = second.search("kb", "how do I rotate a key", viewer=Viewer.everything(), top_k=1)
    assert hits[0].chunk.doc_id.endswith("keys.md")
    assert second.status("kb")["documents"] == len(TOPICS) + 60
    # The sync state is shared too: nothing left for the second replica to do.
    again = second.sync("kb")
    assert again.documents_indexed == 0 and again.texts_embedded == 0


def test_replicas_syncing_at_once_write_each_document_once(build: Build, corpus: Path) -> None:
    services = [build(_collection(corpus)) for _ in range(3)]
    errors = failures_at_once(lambda service: service.sync("kb"), services)
    assert not errors
    rows = rows_of(services[0], "kb")
    assert len(rows["documents"]) == len(TOPICS) + 60
    assert rows["chunks"] == rows["declared_chunks"] == rows["vectors"]
    assert rows["orphans"] == 0


def test_an_unreachable_database_is_a_clear_503(build: Build, corpus: Path) -> None:
    url = f"postgresql://bounded:s3cret@127.0.0.1:{free_port()}/nowhere?connect_timeout=2"
    service = build({"kb": {**_collection(corpus)["kb"], "store": url}})
    with pytest.raises(StoreUnavailable) as caught:
        service.search("kb", "rotate", viewer=Viewer.everything())
    assert caught.value.status == 503
    assert "unreachable" in caught.value.message and "127.0.0.1" in caught.value.message
    assert "s3cret" not in caught.value.message


def test_bm25_weighs_rare_words_and_its_statistics_follow_every_change(
    build: Build, tmp_path: Path
) -> None:
    root = tmp_path / "zoo"
    root.mkdir()
    for i in range(20):
        (root / f"purple-{i}.md").write_text(
            f"# Paint {i}\n\nPurple paint, purple walls, purple {i}."
        )
    (root / "quokka.md").write_text("# Animals\n\nThe quokka is a small marsupial, not purple.")
    service = build({"zoo": {"sources": [folder(root)], "refresh_interval_s": None}})
    service.sync("zoo")
    top = service.search("zoo", "purple quokka", viewer=Viewer.everything(), mode="bm25", top_k=3)
    # One rare word beats three common ones: what BM25's idf does and ts_rank does not.
    assert top[0].chunk.doc_id.endswith("quokka.md")

    url = service.config.collections["zoo"].store
    assert url

    def totals() -> tuple[int, float, int, float]:
        schema = schema_for("zoo")
        with psycopg.connect(url) as conn:
            kept = conn.execute(f"SELECT chunks, length FROM {schema}.totals").fetchone()
            real = conn.execute(
                f"SELECT count(*), coalesce(sum(length), 0) FROM {schema}.chunks"
            ).fetchone()
            # Every word's kept document frequency equals its postings, deletions included.
            wrong = conn.execute(
                f"SELECT count(*) FROM {schema}.lexicon l FULL JOIN (SELECT lexeme, count(*) "
                f"AS n FROM {schema}.postings GROUP BY lexeme) p USING (lexeme) "
                "WHERE coalesce(l.df, 0) <> coalesce(p.n, 0)"
            ).fetchone()
        assert kept and real and wrong == (0,)
        return int(kept[0]), float(kept[1]), int(real[0]), float(real[1])

    chunks, length, real_chunks, real_length = totals()
    assert (chunks, length) == (real_chunks, real_length) and chunks == 21 and length > 0
    (root / "purple-3.md").write_text("# Paint 3\n\nNow green, a much longer text about green.")
    (root / "purple-4.md").unlink()
    service.sync("zoo")
    chunks, length, real_chunks, real_length = totals()
    assert chunks == real_chunks == 20 and length == pytest.approx(real_length)


def test_a_bm25_only_collection_gains_vectors_when_given_a_model(
    build: Build, corpus: Path
) -> None:
    lexical_only = build({"kb": {**_collection(corpus)["kb"], "embedding": "none"}})
    lexical_only.sync("kb")
    paraphrase = "I want my money back after buying something"
    hits = lexical_only.search("kb", "rotate key", viewer=Viewer.everything(), top_k=1)
    assert hits[0].chunk.doc_id.endswith("keys.md")
    lexical_only.close()

    with_model = build(_collection(corpus))  # same schema, embedding now the default
    report = with_model.sync("kb")
    assert report.texts_embedded == len(TOPICS) + 60  # every chunk, now with a vector
    hits = with_model.search("kb", paraphrase, viewer=Viewer.everything(), mode="dense", top_k=1)
    assert hits[0].chunk.doc_id.endswith("refunds.md")


async def test_one_database_down_does_not_hide_the_other_collections(
    build: Build, corpus: Path, tmp_path: Path
) -> None:
    from starlette.applications import Starlette

    from bounded.gateway.auth import Principal
    from bounded.retrieval.routes import retrieval_routes

    down = f"postgresql://bounded@127.0.0.1:{free_port()}/nowhere?connect_timeout=2"
    service = build(
        {
            "kb": _collection(corpus)["kb"],
            "archive": {"store": down, "sources": [folder(tmp_path)]},
        }
    )
    service.sync("kb")
    admin = Principal(key_id="admin", name="admin", admin=True)
    app = Starlette(routes=retrieval_routes(lambda: service, lambda request: admin))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
        listed = await http.get("/v1/collections")
        assert listed.status_code == 200
        by_name = {c["name"]: c for c in listed.json()["data"]}
        assert by_name["kb"]["documents"] == len(TOPICS) + 60
        assert by_name["archive"]["error"]["code"] == "store_unavailable"
        searched = await http.post("/v1/collections/archive/search", json={"query": "rotate"})
        assert searched.status_code == 503
        assert searched.json()["error"]["code"] == "store_unavailable"
