"""The prompt versions a gateway serves, cached in memory and kept fresh across replicas.

    prompts = PromptCache(PromptStore(db), check_every_s=1.0)
    version = await prompts.production("support-answer")     # None: the feature has none
    version = await prompts.version("support-answer", 4)     # a release arm's pin

A version never changes, so a pinned one is cached for good. Which version is
``production`` can change in any replica (``bounded prompt label``, a rollback), so those
are cached against the store's generation counter, a single row every change bumps: at
most once per ``check_every_s`` a request reads it (off the event loop) and, when it moved,
the production map is dropped and refilled on demand. A change made through this process
is seen at once; one made elsewhere within ``check_every_s``. Between checks a request
costs one dict lookup.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict

from bounded.prompts.store import PRODUCTION, PromptStore, PromptVersion

log = logging.getLogger("bounded.prompts")

MAX_PINNED = 1024


class PromptCache:
    def __init__(self, store: PromptStore, *, check_every_s: float = 1.0):
        self.store = store
        self.check_every_s = check_every_s
        self._production: dict[str, PromptVersion | None] = {}
        self._pinned: OrderedDict[tuple[str, int], PromptVersion] = OrderedDict()
        self._generation: int | None = None
        self._checked = float("-inf")
        self._lock = asyncio.Lock()
        self._checking: asyncio.Task[None] | None = None

    async def production(self, feature: str) -> PromptVersion | None:
        await self._fresh()
        try:
            return self._production[feature]
        except KeyError:
            pass
        found = await asyncio.to_thread(self.store.find, feature, PRODUCTION)
        self._production[feature] = found
        return found

    def known_without(self, feature: str) -> bool:
        """True when it is known that ``feature`` has no production version: the prompt
        stage then passes the request on without awaiting anything. A due check runs in
        the background (see :meth:`bounded.releases.cache.ReleaseCache.fresh`); until it
        has run, what was known serves, as between checks."""
        due = time.monotonic() - self._checked >= self.check_every_s
        if due and self._generation is not None and not self._check_running():
            self._checking = asyncio.get_running_loop().create_task(self._check())
        return feature in self._production and self._production[feature] is None

    def _check_running(self) -> bool:
        return self._checking is not None and not self._checking.done()

    async def _check(self) -> None:
        try:
            await self._fresh()
        except Exception:  # the next request's check tries again
            log.exception("could not check the prompt versions for changes")

    async def version(self, feature: str, number: int) -> PromptVersion:
        key = (feature, number)
        cached = self._pinned.get(key)
        if cached is not None:
            return cached
        found = await asyncio.to_thread(self.store.get, feature, number)
        self._pinned[key] = found
        if len(self._pinned) > MAX_PINNED:
            self._pinned.popitem(last=False)
        return found

    def invalidate(self) -> None:
        """Forget which versions are in production (after a change made here)."""
        self._production.clear()
        self._checked = float("-inf")

    async def _fresh(self) -> None:
        if time.monotonic() - self._checked < self.check_every_s:
            return
        async with self._lock:  # one check at a time; the others wait for its answer
            if time.monotonic() - self._checked < self.check_every_s:
                return
            generation = await asyncio.to_thread(self.store.generation)
            if generation != self._generation:
                self._production.clear()
                self._generation = generation
            self._checked = time.monotonic()
