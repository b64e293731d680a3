"""Detectors by name: built-in kinds and any a user registers the same way.

    from bounded.validation.guards import registry
    registry.register("my-guard", MyDetector)        # a factory taking the options dict
    registry.build("my-guard", {"threshold": 0.8})

Built-in kinds import their module on first use, so a gateway with no guards never
loads phonenumbers or the injection model.
"""

from __future__ import annotations

import importlib
import threading
from typing import Any

from bounded.validation.guards.base import Detector, DetectorFactory, GuardConfigError

# kind -> "module:factory", imported lazily.
BUILTIN: dict[str, str] = {
    "injection": "bounded.validation.guards.injection:factory",
    "groundedness": "bounded.validation.guards.groundedness:factory",
    "pii": "bounded.validation.guards.pii:build",
    "secrets": "bounded.validation.guards.secrets:build",
}

_lock = threading.Lock()
_registered: dict[str, DetectorFactory] = {}
# The built-in factories once imported, to tell them from a user's under the same name.
_builtin_factories: dict[str, DetectorFactory] = {}


def register(kind: str, factory: DetectorFactory) -> None:
    with _lock:
        _registered[kind] = factory


def is_builtin(kind: str) -> bool:
    """Is ``kind`` one of bounded's own guards (and not replaced by a registered one)?"""
    return kind in BUILTIN and _registered.get(kind) in (None, _builtin_factories.get(kind))


def kinds() -> list[str]:
    return sorted({*BUILTIN, *_registered})


def factory_for(kind: str) -> DetectorFactory:
    found = _registered.get(kind)
    if found is not None:
        return found
    target = BUILTIN.get(kind)
    if target is None:
        raise GuardConfigError(f"unknown guard kind {kind!r}; known kinds: {', '.join(kinds())}")
    module_name, _, name = target.partition(":")
    factory: DetectorFactory = getattr(importlib.import_module(module_name), name)
    _builtin_factories[kind] = factory
    register(kind, factory)
    return factory


def build(kind: str, options: dict[str, Any] | None = None) -> Detector:
    """A detector of ``kind`` with ``options``; ``GuardConfigError`` names what is wrong."""
    return factory_for(kind)(dict(options or {}))
