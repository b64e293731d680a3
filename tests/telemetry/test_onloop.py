"""Work a request leaves for telemetry runs on its event loop's thread a moment later; a
flush or close from any thread, with the loop running or stopped, still finds it all done,
and a trace queued just before the gateway closes is stored."""

from __future__ import annotations

import asyncio
import functools
import threading
import time
from collections.abc import Callable, Iterator

import pytest

from bounded.store.db import Database
from bounded.telemetry import onloop
from bounded.telemetry.onloop import OnLoop
from bounded.telemetry.store import TraceRecord, TraceRepository, TraceWriter
from tests.telemetry.test_store import _record


class Loop:
    """An event loop running in a thread of its own, as the gateway's runs beside a test."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def call(self, fn: Callable[[], object]) -> None:
        """Run ``fn`` on the loop's thread (as a callback, so inside the running loop)."""
        done = threading.Event()

        def run() -> None:
            fn()
            done.set()

        self.loop.call_soon_threadsafe(run)
        assert done.wait(5)

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


@pytest.fixture
def loop() -> Iterator[Loop]:
    running = Loop()
    yield running
    if running.thread.is_alive():
        running.stop()
    running.loop.close()


def test_work_runs_on_the_loop_after_a_delay_not_at_once(loop: Loop) -> None:
    results: list[int | None] = []
    ran: list[tuple[int, float]] = []  # (thread, when)
    later: OnLoop[int] = OnLoop(results.append)

    def work(i: int) -> Callable[[], int]:
        def run() -> int:
            ran.append((threading.get_ident(), time.monotonic()))
            return i

        return run

    offered: list[tuple[bool, float]] = []
    loop.call(lambda: offered.extend((later.offer(work(i)), time.monotonic()) for i in range(3)))
    deadline = time.monotonic() + 5
    while len(results) < 3 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert [ok for ok, _ in offered] == [True, True, True]
    assert results == [0, 1, 2]
    assert {thread for thread, _ in ran} == {loop.thread.ident}
    # Not in the request that queued it: a delay after (the response has gone by then).
    assert min(when for _, when in ran) - offered[-1][1] >= onloop.DELAY_S * 0.9


def test_off_the_loop_nothing_is_queued() -> None:
    later: OnLoop[int] = OnLoop(lambda _: None)
    assert later.offer(lambda: 1) is False and len(later) == 0


def test_run_all_from_another_thread_has_the_loop_do_everything_queued(loop: Loop) -> None:
    results: list[int | None] = []
    threads: set[int] = set()
    later: OnLoop[int] = OnLoop(results.append)

    def work(i: int) -> Callable[[], int]:
        def run() -> int:
            threads.add(threading.get_ident())
            return i

        return run

    def offer_many() -> None:
        for i in range(100):
            later.offer(work(i))

    loop.call(offer_many)
    later.run_all(timeout_s=5)  # well before DELAY_S has passed
    assert results == list(range(100))
    assert threads == {loop.thread.ident}


def test_work_left_on_a_stopped_loop_is_done_by_run_all(loop: Loop) -> None:
    results: list[int | None] = []
    later: OnLoop[int] = OnLoop(results.append)
    loop.call(lambda: [later.offer(functools.partial(int, i)) for i in range(5)])
    loop.stop()  # before the delay: its timer never fires
    assert results == []
    later.run_all(timeout_s=5)
    assert results == [0, 1, 2, 3, 4]


def test_a_failing_item_is_logged_and_the_rest_still_run(
    loop: Loop, caplog: pytest.LogCaptureFixture
) -> None:
    results: list[int | None] = []
    later: OnLoop[int] = OnLoop(results.append)

    def boom() -> int:
        raise ValueError("a bug in one trace")

    loop.call(lambda: [later.offer(w) for w in (lambda: 1, boom, lambda: 3)])
    later.run_all(timeout_s=5)
    assert results == [1, None, 3]
    assert "telemetry work left by a request failed" in caplog.text


def test_a_trace_queued_just_before_close_is_stored(loop: Loop, store_url: str) -> None:
    """The gateway's shutdown closes the writer from a thread while the loop still runs:
    a trace whose work is still waiting on the loop is made and stored, not dropped."""
    writer = TraceWriter(store_url, interval_s=60)

    def made() -> TraceRecord:
        return _record("last-one", "a", 200)

    loop.call(lambda: writer.put(made))
    writer.close()
    db = Database.open(store_url)
    try:
        (row,) = TraceRepository(db).requests("last-one")
        assert row["feature"] == "a"
    finally:
        db.close()
