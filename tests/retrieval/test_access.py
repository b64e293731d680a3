"""Access labels, adversarially: what a key may not see, no query can reach."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request

from bounded.gateway.auth import Authenticator, Principal
from bounded.retrieval.access import Viewer
from bounded.retrieval.config import FeatureRetrieval
from bounded.retrieval.context import assemble_context_sync
from bounded.retrieval.routes import retrieval_routes
from bounded.retrieval.service import RetrievalService
from bounded.store.keys import KeyRepository
from tests.conftest import ADMIN_KEY
from tests.retrieval.conftest import ENGINES, Build
from tests.retrieval.helpers import folder

SECRET = "Salary bands for 2026: staff engineers earn 190 zorkmids and a purple bonus."
MERGER = "Merger codename Bluebird closes in March with a purple bonus for all."
MODES = ("bm25", "dense", "hybrid")


def _corpus(tmp_path: Path) -> dict[str, object]:
    public, hr = tmp_path / "public", tmp_path / "hr"
    public.mkdir()
    hr.mkdir()
    (public / "cafeteria.md").write_text("# Cafeteria\n\nThe cafeteria opens at eight.\n")
    (public / "bonus.md").write_text("# Perks\n\nEmployees may get a purple bonus sticker.\n")
    (hr / "salaries.md").write_text(f"# Salaries\n\n{SECRET}\n")
    records = [{"id": "merger", "text": MERGER, "labels": ["finance"]}]
    # Many forbidden records that match better than the one allowed document: a filter
    # applied after top-k would find nothing allowed left.
    records += [
        {"id": f"s{i}", "text": f"purple bonus purple bonus ledger {i}", "labels": ["finance"]}
        for i in range(150)
    ]
    (public / "finance.jsonl").write_text("\n".join(json.dumps(r) for r in records))
    return {"sources": [folder(public), folder(hr, labels=["hr"])]}


@pytest.fixture(params=ENGINES)
def engine(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def service(build: Build, tmp_path: Path) -> RetrievalService:
    svc = build({"docs": _corpus(tmp_path)})
    report = svc.sync("docs")
    assert not report.errors
    return svc


def _ids(
    svc: RetrievalService, query: str, viewer: Viewer, mode: str, top_k: int = 100
) -> list[str]:
    hits = svc.search("docs", query, viewer=viewer, mode=mode, top_k=top_k)  # type: ignore[arg-type]
    return [h.chunk.doc_id for h in hits]


def test_exact_query_for_a_forbidden_document_returns_nothing_from_it(
    service: RetrievalService,
) -> None:
    for viewer in (Viewer.public(), Viewer.of("ops"), Viewer.of("finance")):
        for mode in MODES:
            found = _ids(service, SECRET, viewer, mode)
            assert not any("salaries" in d for d in found), (viewer, mode, found)
    for mode in MODES:
        assert not any("finance.jsonl" in d for d in _ids(service, MERGER, Viewer.of("hr"), mode))
        # Naming the document in a filter does not open it either.
        assert _ids(service, SECRET, Viewer.public(), mode) is not None
        filtered = service.search(
            "docs",
            SECRET,
            viewer=Viewer.public(),
            mode=mode,  # type: ignore[arg-type]
            filters={"doc_id": [d for d in _all_ids(service) if "salar" in d]},
        )
        assert filtered == []


def test_the_right_labels_and_admin_see_it(service: RetrievalService) -> None:
    for mode in MODES:
        assert _ids(service, SECRET, Viewer.of("hr"), mode, 3)[0].endswith("salaries.md")
        assert _ids(service, SECRET, Viewer.everything(), mode, 3)[0].endswith("salaries.md")
        assert _ids(service, MERGER, Viewer.of("finance"), mode, 3)[0].endswith("#merger")


def test_access_is_applied_before_top_k_not_after(service: RetrievalService) -> None:
    # 150 forbidden records outrank the allowed one; it must still come back, first.
    for mode in MODES:
        found = _ids(service, "purple bonus", Viewer.public(), mode, top_k=2)
        assert found and found[0].endswith("bonus.md"), (mode, found)
        assert all("finance" not in d for d in found)


def test_context_for_a_key_without_the_label_cites_nothing_forbidden(
    service: RetrievalService,
) -> None:
    retrieval = FeatureRetrieval(collection="docs", top_k=5, max_context_tokens=800)
    messages = [{"role": "user", "content": "What are the salary bands for staff engineers?"}]
    assembled = assemble_context_sync(service, retrieval, messages, Viewer.of("ops"))
    assert "zorkmids" not in json.dumps(assembled.messages)
    assert all("salaries" not in c.hit.chunk.doc_id for c in assembled.citations)
    allowed = assemble_context_sync(service, retrieval, messages, Viewer.of("hr"))
    assert "zorkmids" in json.dumps(allowed.messages)


@pytest.fixture
async def client(
    service: RetrievalService, keys: KeyRepository
) -> AsyncIterator[httpx.AsyncClient]:
    auth = Authenticator(keys, ADMIN_KEY, None)

    def authenticate(request: Request) -> Principal:
        return auth.authenticate(request.headers.get("authorization"), None)

    app = Starlette(routes=retrieval_routes(lambda: service, authenticate))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
        yield http


async def test_http_search_applies_the_key_teams(
    client: httpx.AsyncClient, keys: KeyRepository
) -> None:
    _, ops = keys.create("ops-bot", teams=["ops"])
    _, hr = keys.create("hr-bot", teams=["hr"])
    body = {"query": SECRET, "top_k": 50, "mode": "hybrid"}
    seen_by_ops = await client.post(
        "/v1/collections/docs/search", json=body, headers={"authorization": f"Bearer {ops}"}
    )
    assert seen_by_ops.status_code == 200
    assert not any("salaries" in h["doc_id"] for h in seen_by_ops.json()["data"])
    seen_by_hr = await client.post(
        "/v1/collections/docs/search", json=body, headers={"authorization": f"Bearer {hr}"}
    )
    assert seen_by_hr.json()["data"][0]["doc_id"].endswith("salaries.md")
    assert "x-bounded-trace-id" in seen_by_hr.headers


async def test_http_errors_are_openai_shaped(
    client: httpx.AsyncClient, keys: KeyRepository
) -> None:
    _, key = keys.create("reader", teams=["ops"])
    auth = {"authorization": f"Bearer {key}"}
    no_key = await client.post("/v1/collections/docs/search", json={"query": "x"})
    assert no_key.status_code == 401 and no_key.json()["error"]["type"] == "authentication_error"
    unknown = await client.post("/v1/collections/nope/search", json={"query": "x"}, headers=auth)
    assert unknown.status_code == 404 and "docs" in unknown.json()["error"]["message"]
    for bad in (
        {"query": ""},
        {"query": "x", "top_k": 0},
        {"query": "x", "mode": "magic"},
        {"query": "x", "filters": {"a": {"$ne": 1}}},
        {"query": "x", "mmr_lambda": 2},
    ):
        response = await client.post("/v1/collections/docs/search", json=bad, headers=auth)
        assert response.status_code == 422, bad
    broken = await client.post("/v1/collections/docs/search", content=b"{not json", headers=auth)
    assert broken.status_code == 400
    forbidden = await client.post("/v1/collections/docs/sync", headers=auth)
    assert forbidden.status_code == 403
    listing = await client.get("/v1/collections", headers=auth)
    (entry,) = listing.json()["data"]
    assert entry["name"] == "docs" and entry["documents"] == 154
    assert "error_details" not in entry  # paths of failures are for the admin only
    admin = {"authorization": f"Bearer {ADMIN_KEY}"}
    synced = await client.post("/v1/collections/docs/sync", headers=admin)
    assert synced.status_code == 200
    assert synced.json()["items_unchanged"] == 4 and synced.json()["documents_indexed"] == 0


def _all_ids(svc: RetrievalService) -> list[str]:
    return [
        h.chunk.doc_id
        for h in svc.search(
            "docs", "salary bands zorkmids", mode="bm25", viewer=Viewer.everything(), top_k=100
        )
    ]


def test_labels_added_in_the_config_apply_at_the_next_sync(build: Build, tmp_path: Path) -> None:
    root = tmp_path / "memos"
    root.mkdir()
    (root / "memo.md").write_text("# Memo\n\nThe layoffs are planned for the spring.\n")
    open_memo = build({"memos": {"sources": [folder(root)]}})
    open_memo.sync("memos")
    assert _ids_in(open_memo, "layoffs spring", Viewer.public())
    open_memo.close()
    # The file is untouched; only bounded.yaml now says the folder is for hr.
    closed = build({"memos": {"sources": [folder(root, labels=["hr"])]}})
    closed.sync("memos")
    for mode in MODES:
        assert _ids_in(closed, "layoffs spring", Viewer.public(), mode) == []
        assert _ids_in(closed, "layoffs spring", Viewer.of("hr"), mode)


def _ids_in(svc: RetrievalService, query: str, viewer: Viewer, mode: str = "bm25") -> list[str]:
    hits = svc.search("memos", query, viewer=viewer, mode=mode)  # type: ignore[arg-type]
    return [h.chunk.doc_id for h in hits]
