"""Helpers for stages that wrap a stream of chunks."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
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


async def then_last(
    chunks: AsyncIterator[dict[str, Any]],
    make: Callable[[dict[str, Any]], dict[str, Any]],
) -> AsyncIterator[dict[str, Any]]:
    """The stream as it was, then one more chunk made from its last (before ``[DONE]``):
    how citations and the validation summary reach a streaming client."""
    last: dict[str, Any] | None = None
    async with closing(chunks):
        async for chunk in chunks:
            last = chunk
            yield chunk
    if last is not None:
        yield make(last)
