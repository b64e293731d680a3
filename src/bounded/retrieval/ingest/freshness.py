"""How stale is a collection: changes in its sources that the index has not taken in yet.

Cheap on purpose (it backs ``GET /v1/collections``): folders are listed and stat-ed, never
read. A file that is new, or whose size or mtime differ, is a pending change dated by its
mtime; a file gone from a folder is one dated by its last sync; an item whose last sync
failed is one dated by its first failure. URL sources cannot be checked without fetching,
so they are counted as unchecked instead.
"""

from __future__ import annotations

from dataclasses import dataclass

from bounded.retrieval.config import CollectionConfig, FolderSource
from bounded.retrieval.engines.index import CollectionIndex
from bounded.retrieval.sources.listing import SourceError, list_items, source_key


@dataclass(frozen=True, slots=True)
class Pending:
    count: int
    oldest_age_s: float | None
    unchecked: int


def pending_changes(config: CollectionConfig, index: CollectionIndex, now: float) -> Pending:
    known = index.items()
    dates: dict[str, float] = {}
    unchecked = 0
    listed: set[str] = set()
    failed: set[str] = set()
    for i, source in enumerate(config.sources):
        if not isinstance(source, FolderSource):
            unchecked += 1
            continue
        try:
            items = list_items(i, source)
        except SourceError:
            failed.add(source_key(source))
            continue
        for item in items:
            listed.add(item.uri)
            state = known.get(item.uri)
            # The stored signature carries a settings fingerprint after a "|".
            if state is None or (state.signature or "").split("|")[0] != item.signature:
                size_mtime = (item.signature or "0:0").split(":")
                dates[item.uri] = int(size_mtime[1]) / 1e9
    for uri, state in known.items():
        if state.error is not None and state.error_since is not None:
            dates[uri] = min(state.error_since, dates.get(uri, now))
        elif (
            state.source.startswith("folder:") and state.source not in failed and uri not in listed
        ):
            dates[uri] = state.synced_at or now
    oldest = round(max(0.0, now - min(dates.values())), 3) if dates else None
    return Pending(len(dates), oldest, unchecked)
