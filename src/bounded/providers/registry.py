"""Provider kinds by name. A new kind is one entry here (or an entry point later)."""

from __future__ import annotations

import importlib
from collections.abc import Callable

from bounded.config.schema import ProviderConfig
from bounded.providers.base import Provider

# module:class, imported on first use so `bounded serve` never imports llama.cpp until a
# local deployment is actually called.
PROVIDER_KINDS: dict[str, str] = {
    "openai": "bounded.providers.openai:OpenAIProvider",
    "anthropic": "bounded.providers.anthropic:AnthropicProvider",
    "local": "bounded.providers.local:LocalProvider",
}


def build_provider(name: str, config: ProviderConfig) -> Provider:
    module_name, _, class_name = PROVIDER_KINDS[config.kind].partition(":")
    factory: Callable[[str, ProviderConfig], Provider] = getattr(
        importlib.import_module(module_name), class_name
    )
    return factory(name, config)
