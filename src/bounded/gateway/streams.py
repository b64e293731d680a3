"""Helpers for stages that wrap a stream of chunks."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any


@contextlib.asynccontextmanager
async def closing(chunks: AsyncIterator[Any]) -> AsyncIterator[None]:
    """Close the stream being wrapped when the wrapper ends, however it ends.

    A wrapper that stops early (an error, a cap, a client gone) must close what it reads
    from, or the upstream connection stays open until the garbage collector finds it.
    """
    try:
        yield
    finally:
        aclose = getattr(chunks, "aclose", None)
        if aclose is not None:
            await aclose()
