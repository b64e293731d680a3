"""Hybrid search finds what either side alone misses; MMR diversifies; filters narrow."""

from __future__ import annotations

from pathlib import Path

import pytest

from bounded.retrieval.access import Viewer
from bounded.retrieval.refresher import refresh_due
from bounded.retrieval.service import RetrievalService
from tests.retrieval.conftest import ENGINES, Build
from tests.retrieval.helpers import folder

DOCS = {
    "refunds.md": "---\nteam: billing\n---\n# Refunds\n\nRefunds go back to the original payment "
    "method within five days of the request.",
    "errors.md": "---\nteam: platform\n---\n# Error codes\n\nE4471 means the upstream certificate "
    "expired; renew it and reload.",
    "shipping.md": "---\nteam: logistics\n---\n# Shipping\n\nParcels leave the warehouse within "
    "three working days.",
    "holidays.md": "# Holidays\n\nThe office closes between Christmas and New Year.",
    "cats-1.md": "# Cats\n\nCats sleep for most of the day, often sixteen hours.",
    "cats-2.md": "# Cats\n\nCats sleep for most of the day, often sixteen hours.",
    "cats-3.md": "# Cats\n\nCats sleep for most of the day, often sixteen hours.",
    "kittens.md": "# Kittens\n\nKittens nap between bursts of play in the afternoon.",
    "passwords.md": "# Passwords\n\nReset a forgotten password from the sign-in page.",
}


@pytest.fixture(params=ENGINES)
def engine(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def service(build: Build, tmp_path: Path) -> RetrievalService:
    root = tmp_path / "kb"
    root.mkdir()
    for name, text in DOCS.items():
        (root / name).write_text(text)
    svc = build({"kb": {"sources": [folder(root)], "refresh_interval_s": 3600}})
    assert not svc.sync("kb").errors
    return svc


def _top(svc: RetrievalService, query: str, mode: str = "hybrid", **kw: object) -> list[str]:
    hits = svc.search("kb", query, viewer=Viewer.everything(), mode=mode, **kw)  # type: ignore[arg-type]
    return [Path(h.chunk.doc_id).name for h in hits]


def test_hybrid_finds_the_paraphrase_and_the_exact_code(service: RetrievalService) -> None:
    # No word in common with the refunds page: lexical search alone cannot find it.
    assert "refunds.md" not in _top(
        service, "I want my cash returned after a purchase", "bm25", top_k=1
    )
    assert _top(service, "I want my cash returned after a purchase", top_k=1) == ["refunds.md"]
    # An opaque error code: the exact token is what matters.
    assert _top(service, "what does E4471 mean", top_k=1) == ["errors.md"]
    assert _top(service, "E4471", "bm25", top_k=1) == ["errors.md"]


def test_mmr_trades_duplicates_for_diversity(service: RetrievalService) -> None:
    plain = _top(service, "how long do cats sleep", top_k=3)
    assert sorted(plain) == ["cats-1.md", "cats-2.md", "cats-3.md"]
    diverse = _top(service, "how long do cats sleep", top_k=3, mmr_lambda=0.5)
    assert diverse[0].startswith("cats") and len([n for n in diverse if n.startswith("cats")]) == 1
    # lambda 1 is relevance only: the duplicates come back.
    assert sorted(_top(service, "how long do cats sleep", top_k=3, mmr_lambda=1.0)) == sorted(plain)


def test_metadata_filters_narrow_inside_the_query(service: RetrievalService) -> None:
    for mode in ("bm25", "dense", "hybrid"):
        found = _top(service, "five days", mode, top_k=5, filters={"team": "logistics"})
        assert found == ["shipping.md"], mode
        both = _top(service, "days", mode, top_k=5, filters={"team": ["logistics", "billing"]})
        assert sorted(both) == ["refunds.md", "shipping.md"], mode


ODD_KEYS = ['it"s', "a.b", "$.team", "back\\slash", "tab\there", "[0]", "ключ 🙂", "line\nbreak"]


def test_filters_match_metadata_keys_of_any_characters(build: Build, tmp_path: Path) -> None:
    # Keys come from users' sources; a quote or a dot in one must not crash or misread a filter.
    roots = {}
    for name in ("a", "b"):
        roots[name] = tmp_path / name
        roots[name].mkdir()
        (roots[name] / f"{name}.md").write_text(f"# Shipping {name}\n\nParcels leave in days.")
    svc = build(
        {
            "kb": {
                "sources": [
                    folder(roots["a"], metadata={k: "yes" for k in ODD_KEYS}),
                    folder(roots["b"], metadata={k: "no" for k in ODD_KEYS}),
                ]
            }
        }
    )
    assert not svc.sync("kb").errors
    for key in ODD_KEYS:
        for mode in ("bm25", "dense"):
            assert _top(svc, "parcels", mode, filters={key: "yes"}) == ["a.md"], (key, mode)
            assert _top(svc, "parcels", mode, filters={key: ["no"]}) == ["b.md"], (key, mode)
    # A key no document has matches nothing; it is not a path into the metadata.
    assert _top(svc, "parcels", filters={"$": "yes"}) == []
    assert _top(svc, "parcels", filters={'it"s"': "yes"}) == []
    # PostgreSQL cannot store NUL in text or jsonb, so no document there holds one.
    assert _top(svc, "parcels", filters={"a\x00b": "yes", "a.b": "yes"}) == []
    assert _top(svc, "parcels", filters={"a.b": ["yes\x00"]}) == []


def test_odd_queries_are_answered_not_crashed(service: RetrievalService) -> None:
    for query in [
        '"unbalanced',
        "NEAR(a b)",
        "col:umn*",
        "AND OR NOT",
        "the of and",
        "🙂",
        "-x",
        "nul\x00byte",
    ]:
        _top(service, query, "bm25")
        _top(service, query)


async def test_the_refresher_syncs_what_is_due_and_waits_for_the_rest(
    service: RetrievalService,
) -> None:
    last = float(service.index("kb").get_meta("last_sync_at") or 0)
    wait = await refresh_due(service)
    assert float(service.index("kb").get_meta("last_sync_at") or 0) == last  # not due yet
    assert 1.0 <= wait <= 60.0
    wait = await refresh_due(service, clock=lambda: last + 3601)
    assert float(service.index("kb").get_meta("last_sync_at") or 0) > last


@pytest.mark.parametrize("engine", ["sqlite"])
def test_bm25_in_two_halves_ranks_exactly_as_in_one_query(
    service: RetrievalService, monkeypatch: pytest.MonkeyPatch
) -> None:
    from bounded.retrieval.engines.sqlite import reads as sqlite_reads

    def bm25(query: str, viewer: Viewer) -> list[tuple[str, float]]:
        hits = service.search("kb", query, viewer=viewer, mode="bm25", top_k=20)
        return [(Path(h.chunk.doc_id).name, h.score) for h in hits]

    queries = ["cats sleep days", "kittens play afternoon office", "five days three"]
    viewers = [Viewer.everything(), Viewer.of()]
    monkeypatch.setattr(sqlite_reads, "SPLIT_MIN_CHUNKS", 10**9)
    assert service.index("kb").lexical_halves() == []
    whole = [bm25(q, v) for q in queries for v in viewers]
    monkeypatch.setattr(sqlite_reads, "SPLIT_MIN_CHUNKS", 0)  # every index counts as big
    halves = service.index("kb").lexical_halves()
    assert len(halves) == 2
    assert [bm25(q, v) for q in queries for v in viewers] == whole
    # The halves really are halves: each alone misses what lies in the other.
    index = service.index("kb")
    lower = index.lexical(["days"], Viewer.everything(), {}, 10, halves[0])
    upper = index.lexical(["days"], Viewer.everything(), {}, 10, halves[1])
    assert lower and upper and not {c for c, _ in lower} & {c for c, _ in upper}
    assert sorted(lower + upper) == sorted(index.lexical(["days"], Viewer.everything(), {}, 10))


@pytest.mark.parametrize("engine", ["sqlite"])
def test_big_index_leaves_common_words_out_of_bm25_but_keeps_the_rarest(
    build: Build, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from bounded.retrieval.engines.sqlite import reads as sqlite_reads

    root = tmp_path / "notes"
    root.mkdir()
    rare = ["alpha", "beta", "gamma", "delta"]
    for i in range(30):
        word = rare[i] if i < len(rare) else f"filler{i}"
        (root / f"n{i:02}.txt").write_text(f"The common report number {i} mentions {word}.")
    svc = build({"notes": {"sources": [folder(root)], "embedding": "none"}})
    assert not svc.sync("notes").errors

    def found(query: str) -> set[str]:
        hits = svc.search("notes", query, viewer=Viewer.everything(), mode="bm25", top_k=50)
        return {Path(h.chunk.doc_id).stem for h in hits}

    query = "common report alpha beta gamma"
    assert len(found(query)) == 30  # a small index: every word counts
    monkeypatch.setattr(sqlite_reads, "PRUNE_MIN_CHUNKS", 0)  # every index counts as big
    # "common" and "report" are in every chunk: left out, so only the rare words match.
    assert found(query) == {"n00", "n01", "n02"}
    # With three words or fewer nothing is left out, however common.
    assert len(found("common report")) == 30
    # The three rarest words are always kept: here "delta" and two of the common ones.
    hits = svc.search(
        "notes", "common report number delta", viewer=Viewer.everything(), mode="bm25"
    )
    assert Path(hits[0].chunk.doc_id).stem == "n03"
    assert len(found("common report number delta")) == 30
