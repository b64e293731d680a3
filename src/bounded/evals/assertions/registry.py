"""Assertion handlers by promptfoo type string (a registry, not a chain of ifs)."""

from __future__ import annotations

import importlib
from collections.abc import Callable

from bounded.evals.assertions.base import Handler

_HANDLERS: dict[str, Handler] = {}
_MODULES = ("text", "structured", "overlap", "runtime", "scripted", "judged", "grounded", "refusal")
_loaded = False


def register(*names: str) -> Callable[[Handler], Handler]:
    def add(handler: Handler) -> Handler:
        for name in names:
            _HANDLERS[name] = handler
        return handler

    return add


def _load() -> None:
    global _loaded
    if not _loaded:
        for module in _MODULES:
            importlib.import_module(f"bounded.evals.assertions.{module}")
        _loaded = True


def handler(name: str) -> Handler:
    _load()
    return _HANDLERS[name]


def known_types() -> set[str]:
    _load()
    return set(_HANDLERS) | {"assert-set"}
