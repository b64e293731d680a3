"""The releases a gateway serves, cached in memory and kept fresh across replicas.

    cache = ReleaseCache(ReleaseStore(db), check_every_s=1.0)
    state = await cache.current()
    state.running.get("support-answer")        # the running Release, if any
    state.routes.get("support-answer")         # a route a release promoted, if any

Releases change rarely and are read on every request, so a request costs a dict lookup:
at most once per ``check_every_s`` one request reads the one-row ``release_generation``
counter (off the event loop), and when it moved the whole state is read again. Every change
(start, promote, rollback, in any replica) bumps that counter in its own transaction, so a
decision taken by one replica is served by all the others within ``check_every_s``; one
taken in this process is seen at once (:meth:`invalidate`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field

from bounded.config.schema import RouteConfig
from bounded.releases.store import Release, ReleaseStore

log = logging.getLogger("bounded.releases")


@dataclass(frozen=True)
class ReleaseState:
    running: dict[str, Release] = field(default_factory=dict)
    routes: dict[str, RouteConfig] = field(default_factory=dict)
    # Features with a running release or a promoted route: any other passes the release
    # stage with one set lookup.
    known: frozenset[str] = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "known", frozenset(self.running) | frozenset(self.routes))


class ReleaseCache:
    def __init__(self, store: ReleaseStore, *, check_every_s: float = 1.0):
        self.store = store
        self.check_every_s = check_every_s
        self._state = ReleaseState()
        self._generation: int | None = None
        self._checked = float("-inf")
        self._lock = asyncio.Lock()
        self._checking: asyncio.Task[None] | None = None

    async def current(self) -> ReleaseState:
        if time.monotonic() - self._checked >= self.check_every_s:
            await self._refresh()
        return self._state

    def fresh(self) -> ReleaseState | None:
        """The state without awaiting (None before the first read, or after a change made
        here: then await :meth:`current`). When a check is due it runs in the background:
        requests never wait for it, nor queue behind its lock (measured: awaiting it on the
        request path cost 0.89x requests/s under load), and a decision made elsewhere is
        still served within about ``check_every_s``."""
        if self._generation is None:
            return None
        due = time.monotonic() - self._checked >= self.check_every_s
        if due and not self._check_running():
            self._checking = asyncio.get_running_loop().create_task(self._check())
        return self._state

    def _check_running(self) -> bool:
        return self._checking is not None and not self._checking.done()

    async def _check(self) -> None:
        try:
            await self._refresh()
        except Exception:  # the next request's check tries again; the old state serves
            log.exception("could not check the releases for changes")

    def invalidate(self) -> None:
        self._checked = float("-inf")
        self._generation = None

    async def _refresh(self) -> None:
        async with self._lock:  # one reader at a time; the others take its answer
            if time.monotonic() - self._checked < self.check_every_s:
                return
            generation = await asyncio.to_thread(self.store.generation)
            if generation != self._generation:
                self._state = await asyncio.to_thread(self._read)
                self._generation = generation
            self._checked = time.monotonic()

    def _read(self) -> ReleaseState:
        running = {r.feature: r for r in self.store.all_running()}
        return ReleaseState(running, self.store.routes())
