"""Sync: every format indexed, every bad file reported, nothing re-done or lost needlessly."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from bounded.retrieval.access import Viewer
from bounded.retrieval.embedding import LocalMiniLM
from bounded.retrieval.service import RetrievalService
from tests.retrieval.conftest import ENGINES, Build
from tests.retrieval.helpers import chunk_ids_of, folder, minimal_pdf, rows_of

ALL = Viewer.everything()


@pytest.fixture(params=ENGINES)
def engine(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def _write_corpus(root: Path) -> None:
    root.mkdir(parents=True, exist_ok=True)
    (root / "guide.md").write_text(
        "# Guide\n\nRotate an API key by creating a new one and revoking the old.\n\n"
        "## Budgets\n\nBudgets are reserved before each call.\n"
    )
    (root / "notes.txt").write_text("The quokka is a small marsupial from Rottnest Island.\n")
    (root / "page.html").write_text(
        "<html><head><title>Shipping</title></head><body><h1>Shipping</h1>"
        "<p>Parcels leave the warehouse within three days.</p></body></html>"
    )
    (root / "report.pdf").write_bytes(minimal_pdf("Quarterly report on zebra migration."))
    (root / "faq.jsonl").write_text(
        '{"id": "1", "title": "Refunds", "text": "Refunds arrive within five days."}\n'
        '{"id": "2", "title": "Returns", "text": "Returns need the original receipt."}\n'
        "this line is not json\n"
    )


def _write_bad_files(root: Path) -> None:
    (root / "broken.pdf").write_bytes(b"%PDF-1.4\n1 0 obj << /Type /Catalog >> garbage")
    (root / "binary.txt").write_bytes(b"\x00\x01\x02\x03 not text at all")
    (root / "latin1.md").write_bytes("Caf\xe9 cr\xe8me".encode("latin-1"))
    (root / "huge.txt").write_text("big " * 5000)


def _service(build: Build, root: Path, **source: object) -> RetrievalService:
    return build(
        {
            "docs": {
                "sources": [
                    folder(root, max_bytes=10_000, **source),
                    folder(root / "does-not-exist"),
                ]
            }
        }
    )


def _docs_for(service: RetrievalService, query: str, mode: str = "bm25") -> list[str]:
    hits = service.search("docs", query, viewer=ALL, top_k=5, mode=mode)  # type: ignore[arg-type]
    return [h.chunk.doc_id for h in hits]


def test_every_format_is_indexed_and_every_bad_file_is_a_clear_error(
    build: Build, tmp_path: Path
) -> None:
    root = tmp_path / "docs"
    _write_corpus(root)
    _write_bad_files(root)
    service = _service(build, root)
    report = service.sync("docs")

    errors = {e.uri.rsplit("/", 1)[-1]: e.message for e in report.errors}
    assert "corrupt PDF" in errors["broken.pdf"]
    assert "binary" in errors["binary.txt"]
    assert "not valid UTF-8 at byte 3" in errors["latin1.md"]
    assert "limit is 10,000" in errors["huge.txt"]
    assert "invalid JSON" in errors["faq.jsonl:3"]
    assert "does not exist" in errors["does-not-exist"]
    assert len(errors) == 6

    for query, name in [
        ("rotate API key", "guide.md"),
        ("quokka marsupial", "notes.txt"),
        ("parcels warehouse", "page.html"),
        ("zebra migration", "report.pdf"),
        ("refunds five days", "faq.jsonl#1"),
        ("original receipt", "faq.jsonl#2"),
    ]:
        found = _docs_for(service, query)
        assert found and found[0].endswith(name), (query, found)
    assert report.documents_indexed == 6


def test_resync_of_unchanged_documents_embeds_nothing(
    build: Build, tmp_path: Path, embedder: LocalMiniLM
) -> None:
    root = tmp_path / "docs"
    _write_corpus(root)
    service = _service(build, root)
    first = service.sync("docs")
    assert first.texts_embedded > 0
    before = rows_of(service, "docs")
    embedded = embedder.texts_embedded

    again = service.sync("docs")
    assert embedder.texts_embedded == embedded  # the model's own counter did not move
    assert again.documents_indexed == 0 and again.chunks_written == 0
    # Touched but identical bytes: read and hashed, still not parsed into new chunks.
    os.utime(root / "guide.md", ns=(1, 1))
    third = service.sync("docs")
    assert embedder.texts_embedded == embedded and third.documents_indexed == 0
    assert rows_of(service, "docs") == before


def test_a_changed_document_replaces_exactly_its_chunks(
    build: Build, tmp_path: Path, embedder: LocalMiniLM
) -> None:
    root = tmp_path / "docs"
    _write_corpus(root)
    service = _service(build, root)
    service.sync("docs")
    ids_before = chunk_ids_of(service, "docs")

    (root / "notes.txt").write_text("The numbat eats termites in Western Australia.\n")
    embedded = embedder.texts_embedded
    report = service.sync("docs")
    assert report.documents_indexed == 1 and embedder.texts_embedded == embedded + 1
    ids_after = chunk_ids_of(service, "docs")
    changed = [k for k in ids_before if ids_before[k] != ids_after.get(k)]
    assert changed == [str(root / "notes.txt")]
    assert _docs_for(service, "numbat termites")[0].endswith("notes.txt")
    assert _docs_for(service, "quokka marsupial") == []

    # One edited record of a JSON Lines file re-embeds that record only.
    faq = (root / "faq.jsonl").read_text().replace("five days", "ten working days")
    (root / "faq.jsonl").write_text(faq)
    embedded = embedder.texts_embedded
    report = service.sync("docs")
    assert report.documents_indexed == 1 and embedder.texts_embedded == embedded + 1
    assert _docs_for(service, "ten working days")[0].endswith("faq.jsonl#1")


def test_a_deleted_document_loses_its_chunks(build: Build, tmp_path: Path) -> None:
    root = tmp_path / "docs"
    _write_corpus(root)
    service = _service(build, root)
    service.sync("docs")
    (root / "notes.txt").unlink()
    report = service.sync("docs")
    assert report.documents_deleted == 1
    rows = rows_of(service, "docs")
    assert str(root / "notes.txt") not in rows["documents"]
    assert rows["chunks"] == rows["declared_chunks"] == rows["vectors"]
    assert rows["orphans"] == rows["orphan_vectors"] == 0
    assert _docs_for(service, "quokka marsupial", "hybrid") == [] or not any(
        d.endswith("notes.txt") for d in _docs_for(service, "quokka marsupial", "hybrid")
    )


def test_a_broken_update_or_a_missing_folder_keeps_what_was_indexed(
    build: Build, tmp_path: Path
) -> None:
    root = tmp_path / "docs"
    _write_corpus(root)
    service = _service(build, root)
    service.sync("docs")
    (root / "notes.txt").write_bytes(b"\xff\xfe broken \x00 bytes")
    report = service.sync("docs")
    assert any(e.uri.endswith("notes.txt") for e in report.errors)
    assert _docs_for(service, "quokka marsupial")[0].endswith("notes.txt")
    status = service.status("docs")
    assert any(e["uri"].endswith("notes.txt") for e in status["error_details"])
    assert status["pending_changes"] >= 1

    # The whole folder vanishing (an unmounted share) is not a mass deletion either.
    moved = tmp_path / "elsewhere"
    root.rename(moved)
    report = service.sync("docs")
    assert any("does not exist" in e.message for e in report.errors)
    assert report.documents_deleted == 0
    assert _docs_for(service, "zebra migration")[0].endswith("report.pdf")


def test_status_reports_freshness(build: Build, tmp_path: Path) -> None:
    root = tmp_path / "docs"
    _write_corpus(root)
    service = _service(build, root)
    fresh = service.status("docs")
    assert fresh["documents"] == 0 and fresh["last_sync_at"] is None
    assert fresh["pending_changes"] == 5
    service.sync("docs")
    synced = service.status("docs")
    assert synced["documents"] == 6 and synced["chunks"] >= 6
    assert synced["pending_changes"] == 1  # faq.jsonl: its bad line keeps it pending
    assert synced["last_sync_age_s"] is not None and synced["last_sync_age_s"] < 60
    (root / "new.md").write_text("# New\n\nA new page.\n")
    os.utime(root / "new.md", (1_000_000_000, 1_000_000_000))
    stale = service.status("docs")
    assert stale["pending_changes"] == 2
    assert stale["oldest_unsynced_change_age_s"] > 3600 * 24 * 365
