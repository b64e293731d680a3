"""What a gateway holds of releases: the store, its cache, the mirror and the evaluator.

releases = Releases(db, lambda: gateway.runtime.config)
releases.start()           # in the app's lifespan: the evaluator, in the background
await releases.stop()
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
from collections.abc import Callable

from bounded.config.schema import BoundedConfig
from bounded.releases.cache import ReleaseCache
from bounded.releases.evaluator import Evaluator
from bounded.releases.mirror import Mirror
from bounded.releases.store import ReleaseStore
from bounded.store.db import Database


class Releases:
    def __init__(
        self,
        db: Database,
        config: Callable[[], BoundedConfig],
        *,
        check_every_s: float = 1.0,
        evaluate: bool = True,
        on_change: Callable[[], None] | None = None,
    ):
        self.store = ReleaseStore(db)
        self.cache = ReleaseCache(self.store, check_every_s=check_every_s)
        self.evaluator = Evaluator(self.store, config)
        self.mirror = Mirror()
        self.evaluate = evaluate
        self._on_change = on_change  # what else caches what a decision changes (prompts)
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self.evaluate and self._task is None:
            self._task = asyncio.create_task(self.evaluator.run_forever(self.changed))

    def changed(self) -> None:
        """A release was decided here: serve the decision at once, not at the next check."""
        self.cache.invalidate()
        if self._on_change is not None:
            self._on_change()

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None


def bucket(release_id: str, key: str) -> float:
    """Where ``key`` falls in [0, 1) for this release: the same key, the same arm, on every
    replica and every request (and a new release reshuffles who is in its canary)."""
    digest = hashlib.sha256(f"{release_id}:{key}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64
