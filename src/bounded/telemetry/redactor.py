"""Redaction of stored trace text, off the gateway's interpreter when traffic is heavy.

    redactor = Redactor()
    safe = redactor.many(["user: mail me at a@b.com", ...])   # the trace writer's thread
    redactor.close()

Why a child process: the detectors are pure-Python regular expressions and hold the GIL
while they run. In the writer's thread they still took the interpreter from the event loop
for about 180 µs per trace with text (measured: redaction was four fifths of the writer's
CPU per trace), and on a busy gateway that GIL time came straight off its requests/s.
Handed to a child process a batch at a time (one pickle of a list of strings each way),
the scan runs on another core with its own interpreter.

Small batches (a quiet gateway, a test) are redacted in the thread: a child is started
only once a batch has ``min_batch`` texts, so an idle or lightly used gateway never runs
one. The child is never a way around redaction: if it cannot start, dies or times out, the
batch is redacted in the thread (and the child is started afresh for a later batch).
"""

from __future__ import annotations

import logging
import multiprocessing
import threading
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor

log = logging.getLogger("bounded.telemetry")

MIN_BATCH = 16  # texts in one batch before a child process is worth its round trip
TIMEOUT_S = 30.0


def scrub_all(texts: list[str]) -> list[str]:
    """Every text with personal data and secrets replaced (runs in the child)."""
    from bounded.validation.identifiers import scrub

    return [scrub(t) for t in texts]


class Redactor:
    def __init__(
        self,
        scrub: Callable[[str], str] | None = None,
        *,
        min_batch: int = MIN_BATCH,
        timeout_s: float = TIMEOUT_S,
    ):
        """``scrub``: a redaction of one's own, always run in the thread (tests);
        ``min_batch``: 0 never starts a child."""
        self._scrub = scrub
        self._min_batch = min_batch
        self._timeout = timeout_s
        self._pool: ProcessPoolExecutor | None = None
        self._lock = threading.Lock()
        self.in_child = 0  # texts the child redacted (for tests and the bench)

    def many(self, texts: list[str]) -> list[str]:
        if self._scrub is not None:
            return [self._scrub(t) for t in texts]
        if self._min_batch <= 0 or len(texts) < self._min_batch:
            return scrub_all(texts)
        try:
            done = self._child().submit(scrub_all, texts).result(self._timeout)
        except Exception as exc:  # a child that died or hung: never store unredacted text
            log.warning("text redaction child failed (%r); redacting in the gateway", exc)
            self._drop_child()
            return scrub_all(texts)
        if len(done) != len(texts):
            return scrub_all(texts)
        self.in_child += len(texts)
        return done

    def _child(self) -> ProcessPoolExecutor:
        with self._lock:
            if self._pool is None:
                # spawn, not fork: the gateway has threads (the loop's, the writer's), and a
                # forked copy of a threaded process may hold a lock that nobody releases.
                context = multiprocessing.get_context("spawn")
                self._pool = ProcessPoolExecutor(1, mp_context=context)
            return self._pool

    def _drop_child(self) -> None:
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)

    def close(self) -> None:
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
