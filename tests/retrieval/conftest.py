"""Fixtures: one real MiniLM embedder per session, services over temp folders."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from bounded.retrieval.embedding import LocalMiniLM
from bounded.retrieval.service import RetrievalService
from tests.conftest import make_config

Build = Callable[..., RetrievalService]


@pytest.fixture(scope="session")
def embedder() -> LocalMiniLM:
    # Loaded once: the real model, shared, its counters read as deltas by the tests.
    return LocalMiniLM()


@pytest.fixture
def build(tmp_path: Path, embedder: LocalMiniLM) -> Iterator[Build]:
    services: list[RetrievalService] = []

    def make(collections: dict[str, Any], **extra: Any) -> RetrievalService:
        url = f"sqlite:///{tmp_path / 'state' / 'bounded.db'}"
        config = make_config({"collections": collections, **extra}, url)
        service = RetrievalService(config, embedders={"all-minilm-l6-v2": embedder})
        services.append(service)
        return service

    yield make
    for service in services:
        service.close()
