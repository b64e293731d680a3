"""Prompts as versioned, owned artifacts: immutable versions, moving labels, rendering.

- ``template``: a version's content (chat messages with ``{{variables}}``, model
  parameters) and its sandboxed Jinja2 rendering
- ``files``: the prompt file format (YAML) read with file and line in every error
- ``store``: versions and labels in SQLite or PostgreSQL, with audit entries
- ``cache``: what a gateway serves, cached and kept fresh across replicas
- ``diff``: two versions side by side

See docs/prompts.md.
"""

from bounded.prompts.cache import PromptCache
from bounded.prompts.store import (
    CANDIDATE,
    LATEST,
    PRODUCTION,
    PromptNotFound,
    PromptStore,
    PromptVersion,
    Pushed,
)
from bounded.prompts.template import (
    PromptFormatError,
    PromptRenderError,
    PromptTemplate,
    PromptVariableMissing,
)

__all__ = [
    "CANDIDATE",
    "LATEST",
    "PRODUCTION",
    "PromptCache",
    "PromptFormatError",
    "PromptNotFound",
    "PromptRenderError",
    "PromptStore",
    "PromptTemplate",
    "PromptVariableMissing",
    "PromptVersion",
    "Pushed",
]
