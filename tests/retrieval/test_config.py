"""bounded.yaml: collections and a feature's retrieval, checked with paths and hints."""

from __future__ import annotations

import pytest

from bounded.config.loader import ConfigError, parse_config

BASE = """
providers: {local: {kind: local}}
models: {smollm2: {provider: local, model: smollm2-135m-instruct}}
collections:
  handbook:
    sources:
      - {kind: folder, path: docs, labels: [staff]}
      - {kind: url, urls: ["https://example.com/faq.html"]}
    chunking: {max_tokens: 120, overlap_tokens: 20}
features:
  support-answer:
    owner: support
    route: {targets: [smollm2]}
    retrieval: {collection: handbok, top_k: 4, max_context_tokens: 900}
"""


def test_unknown_collection_and_bad_chunking_are_explained() -> None:
    broken = BASE.replace("overlap_tokens: 20", "overlap_tokens: 200")
    with pytest.raises(ConfigError) as caught:
        parse_config(broken, env={})
    problems = {p.path: p for p in caught.value.problems}
    assert (
        "did you mean 'handbook'" in problems["features.support-answer.retrieval.collection"].hint
    )
    assert "collections.handbook.chunking.overlap_tokens" in problems


def test_a_valid_collection_loads() -> None:
    config = parse_config(BASE.replace("handbok", "handbook"), env={})
    collection = config.collections["handbook"]
    assert collection.sources[0].labels == ("staff",)
    assert config.features["support-answer"].retrieval is not None
    with pytest.raises(ConfigError) as caught:
        parse_config(BASE.replace("kind: url", "kind: ftp"), env={})
    assert any("sources" in p.path for p in caught.value.problems)


def test_the_gateway_hook_opens_nothing_without_collections_and_keeps_the_service() -> None:
    from bounded.retrieval.hooks import open_service

    bare = parse_config("providers: {}\n", env={})
    assert open_service(bare) is None
    config = parse_config(BASE.replace("handbok", "handbook"), env={})
    service = open_service(config)
    assert service is not None and service.names == ["handbook"]
    assert open_service(config, previous=service) is service  # reload keeps it
    assert open_service(bare, previous=service) is None


def test_a_collection_store_must_be_sqlite_or_postgresql() -> None:
    valid = BASE.replace("handbok", "handbook")
    at = "    chunking:"
    scaled = valid.replace(at, "    store: postgresql://db.internal/bounded\n" + at)
    assert parse_config(scaled, env={}).collections["handbook"].store == (
        "postgresql://db.internal/bounded"
    )
    wrong = valid.replace(at, "    store: mysql://db.internal/bounded\n" + at)
    with pytest.raises(ConfigError) as caught:
        parse_config(wrong, env={})
    problem = next(p for p in caught.value.problems if p.path == "collections.handbook.store")
    assert "sqlite:///" in problem.message and "pgvector" in problem.message
