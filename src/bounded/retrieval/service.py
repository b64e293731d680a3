"""One object the CLI, the HTTP routes, the refresher and context assembly share.

    service = RetrievalService(config)                # opens nothing until first use
    report = service.sync("handbook")                 # blocking; call it off the event loop
    hits = service.search("handbook", "rotate keys", viewer=Viewer.of("ops"))
    service.status("handbook")["freshness"]

Each collection has its own index: by default a SQLite file (``collections/NAME.db`` beside
``server.store``), or a schema in PostgreSQL with pgvector when its ``store`` says
``postgresql://...``. One sync at a time per process; searches run alongside a sync and see each
document switch atomically from old to new.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

from bounded.config.schema import BoundedConfig
from bounded.errors import NotFound
from bounded.retrieval.access import Viewer
from bounded.retrieval.config import CollectionConfig
from bounded.retrieval.embedding import Embedder, build_embedder
from bounded.retrieval.engines.index import CollectionIndex
from bounded.retrieval.engines.sqlite.store import SqliteIndex
from bounded.retrieval.ingest.freshness import pending_changes
from bounded.retrieval.ingest.sync import ProgressCallback, SyncReport, sync_collection
from bounded.retrieval.search import Hit, Mode, search
from bounded.store.urls import dialect_of, sqlite_path


def collection_url(config: BoundedConfig, name: str) -> str:
    collection = config.collections[name]
    if collection.store:
        return collection.store
    store = config.server.store
    base = sqlite_path(store).parent if store.startswith("sqlite:///") else Path(".bounded")
    return f"sqlite:///{base / 'collections' / f'{name}.db'}"


def open_index(url: str, name: str, dimensions: int | None) -> CollectionIndex:
    if dialect_of(url) == "postgresql":
        from bounded.retrieval.engines.postgres.store import PgIndex

        return PgIndex.open(url, name, dimensions)
    return SqliteIndex.open(url)


class RetrievalService:
    def __init__(self, config: BoundedConfig, embedders: dict[str, Embedder] | None = None):
        self.config = config
        self._indexes: dict[str, CollectionIndex] = {}
        self._embedders: dict[str, Embedder | None] = dict(embedders or {})
        self._sync_locks: dict[str, threading.Lock] = {}
        self._lock = threading.Lock()

    def update(self, config: BoundedConfig) -> None:
        """Adopt a reloaded config; indexes whose file did not move stay open."""
        with self._lock:
            old, self.config = self.config, config
            for name in list(self._indexes):
                gone = name not in config.collections
                if gone or collection_url(old, name) != collection_url(config, name):
                    self._indexes.pop(name).close()

    def close(self) -> None:
        with self._lock:
            for index in self._indexes.values():
                index.close()
            self._indexes.clear()

    @property
    def names(self) -> list[str]:
        return list(self.config.collections)

    def collection(self, name: str) -> CollectionConfig:
        try:
            return self.config.collections[name]
        except KeyError:
            known = ", ".join(self.config.collections) or "none"
            raise NotFound(
                f"no collection named {name!r}; defined: {known}", code="collection_not_found"
            ) from None

    def index(self, name: str) -> CollectionIndex:
        self.collection(name)
        embedder = self.embedder(name)
        with self._lock:
            if name not in self._indexes:
                dimensions = embedder.dimensions if embedder is not None else None
                url = collection_url(self.config, name)
                self._indexes[name] = open_index(url, name, dimensions)
            return self._indexes[name]

    def embedder(self, name: str) -> Embedder | None:
        model = self.collection(name).embedding
        with self._lock:
            if model not in self._embedders:
                self._embedders[model] = build_embedder(model)
            return self._embedders[model]

    def sync(
        self, name: str, progress: ProgressCallback | None = None, should_stop: Any = None
    ) -> SyncReport:
        config = self.collection(name)
        lock = self._sync_locks.setdefault(name, threading.Lock())
        with lock:
            return sync_collection(
                name,
                config,
                self.index(name),
                self.embedder(name),
                progress,
                should_stop or (lambda: False),
            )

    def syncing(self, name: str) -> bool:
        lock = self._sync_locks.get(name)
        return lock is not None and lock.locked()

    def search(
        self,
        name: str,
        query: str,
        *,
        viewer: Viewer,
        top_k: int = 10,
        mode: Mode = "hybrid",
        filters: dict[str, Any] | None = None,
        mmr_lambda: float | None = None,
    ) -> list[Hit]:
        return search(
            self.index(name),
            self.embedder(name),
            query,
            viewer=viewer,
            top_k=top_k,
            mode=mode,
            filters=filters,
            mmr_lambda=mmr_lambda,
        )

    def status(self, name: str, *, details: bool = True) -> dict[str, Any]:
        config = self.collection(name)
        index = self.index(name)
        stats = index.stats()
        meta = stats["meta"]
        now = time.time()
        last = float(meta["last_sync_at"]) if "last_sync_at" in meta else None
        pending = pending_changes(config, index, now)
        status: dict[str, Any] = {
            "name": name,
            "object": "collection",
            "description": config.description,
            "documents": stats["documents"],
            "chunks": stats["chunks"],
            "embedding": config.embedding,
            "refresh_interval_s": config.refresh_interval_s,
            "syncing": self.syncing(name),
            "last_sync_at": last,
            "last_sync_age_s": round(now - last, 3) if last else None,
            "pending_changes": pending.count,
            "oldest_unsynced_change_age_s": pending.oldest_age_s,
            "unchecked_sources": pending.unchecked,
            "errors": len(stats["errors"]),
        }
        if details:
            status["error_details"] = stats["errors"]
        return status
