"""Loaded into the schemathesis process (``SCHEMATHESIS_HOOKS``), not into bounded.

CPython 3.11's ``ast`` module keeps one recursion counter for the whole interpreter while
it builds a tree, so two threads parsing at once can fail with "AST constructor recursion
depth mismatch" (python/cpython#106905). schemathesis' worker threads do
parse at once: hypothesis reads the source of each lambda it describes. One lock around
``ast.parse`` makes those parses take turns; what the fuzzer sends is unchanged. It is
re-entrant: a finalizer that runs during a parse and parses too must not deadlock.
"""

from __future__ import annotations

import ast
import threading
from typing import Any

_parse = ast.parse
_lock = threading.RLock()


def _parse_in_turn(*args: Any, **kwargs: Any) -> Any:
    with _lock:
        return _parse(*args, **kwargs)


ast.parse = _parse_in_turn
