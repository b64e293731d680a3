"""What the gateway calls, importable without numpy or the embedding model.

    self.retrieval = open_service(config)                              # Gateway.__init__
    self.retrieval = open_service(config, previous=self.retrieval)     # Gateway.reload

A config without collections never imports the index, numpy or onnxruntime, so a plain
``pip install bounded`` gateway starts as before.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from bounded.config.schema import BoundedConfig

if TYPE_CHECKING:
    from bounded.retrieval.service import RetrievalService


def open_service(
    config: BoundedConfig, previous: RetrievalService | None = None
) -> RetrievalService | None:
    """The service for ``config``; on reload the previous one is kept (open index files,
    loaded model, vector matrices) and adopts the new config."""
    if not config.collections:
        if previous is not None:
            previous.close()
        return None
    if previous is not None:
        previous.update(config)
        return previous
    from bounded.retrieval.service import RetrievalService

    return RetrievalService(config)
