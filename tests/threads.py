"""Run a function on several items at once, one thread each, for race tests."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from typing import TypeVar

T = TypeVar("T")


def failures_at_once(
    work: Callable[[T], object], items: Iterable[T], timeout_s: float = 60
) -> list[BaseException]:
    """Start ``work(item)`` for every item in its own thread, wait for all, and return what
    they raised (empty when none did), so the test reports every failure with its type."""
    failures: list[BaseException] = []

    def run(item: T) -> None:
        try:
            work(item)
        except BaseException as exc:  # reported to the test, with the others
            failures.append(exc)

    threads = [threading.Thread(target=run, args=(item,)) for item in items]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout_s)
    return failures
