"""Collections and a feature's retrieval, as declared in ``bounded.yaml``.

Example::

    collections:
      handbook:
        sources:
          - {kind: folder, path: docs/handbook, include: ["**/*.md", "**/*.pdf"]}
          - {kind: folder, path: docs/hr, labels: [hr]}          # only keys of team hr
          - {kind: url, urls: ["https://example.com/faq.html"]}
        chunking: {max_tokens: 200, overlap_tokens: 40}
        refresh_interval_s: 900
    features:
      support-answer:
        retrieval: {collection: handbook, top_k: 6, max_context_tokens: 1500}

These models import nothing but pydantic, so ``config.schema`` can use them without cycles.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

DEFAULT_INCLUDE = (
    "**/*.md",
    "**/*.markdown",
    "**/*.txt",
    "**/*.html",
    "**/*.htm",
    "**/*.pdf",
    "**/*.jsonl",
)
DEFAULT_EMBEDDING = "all-minilm-l6-v2"
# Names build_embedder() knows; kept here so config checks need not import numpy.
EMBEDDING_MODELS = (DEFAULT_EMBEDDING, "none")
MetadataValue = str | int | float | bool


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class JsonlFields(_Frozen):
    """Which fields of a JSON Lines record hold what; other fields are ignored."""

    id: str = Field("id", description="unique per file; the line number when absent")
    text: str = "text"
    title: str | None = "title"
    labels: str | None = Field("labels", description="a list of access labels, optional")
    metadata: tuple[str, ...] = Field((), description="fields copied into metadata")


class FolderSource(_Frozen):
    kind: Literal["folder"]
    path: str = Field(description="relative to the working directory, like server.store")
    include: tuple[str, ...] = DEFAULT_INCLUDE
    exclude: tuple[str, ...] = ()
    labels: tuple[str, ...] = Field((), description="access labels of every document here")
    metadata: dict[str, MetadataValue] = Field(default_factory=dict)
    jsonl: JsonlFields = JsonlFields()
    max_bytes: int = Field(50 * 1024 * 1024, gt=0, description="larger files are refused")


class UrlSource(_Frozen):
    kind: Literal["url"]
    urls: tuple[str, ...] = Field(min_length=1)
    allow_hosts: tuple[str, ...] = Field(
        (),
        description="hosts a fetch or redirect may reach ('*.example.com'); default: "
        "the hosts of urls",
    )
    allow_private: tuple[str, ...] = Field(
        (),
        description="hosts or CIDRs allowed to resolve to private, loopback or "
        "link-local addresses (refused otherwise, against SSRF)",
    )
    timeout_s: float = Field(10.0, gt=0)
    max_redirects: int = Field(5, ge=0, le=20)
    labels: tuple[str, ...] = ()
    metadata: dict[str, MetadataValue] = Field(default_factory=dict)
    jsonl: JsonlFields = JsonlFields()
    max_bytes: int = Field(20 * 1024 * 1024, gt=0)


Source = Annotated[FolderSource | UrlSource, Field(discriminator="kind")]


class ChunkingConfig(_Frozen):
    # 200 estimated tokens plus the heading line stays under MiniLM's 256-token window.
    max_tokens: int = Field(200, ge=32, le=8192)
    overlap_tokens: int = Field(40, ge=0)


class CollectionConfig(_Frozen):
    description: str = ""
    sources: tuple[Source, ...] = Field(min_length=1)
    chunking: ChunkingConfig = ChunkingConfig()
    embedding: str = Field(DEFAULT_EMBEDDING, description="'none' for BM25 only")
    refresh_interval_s: float | None = Field(
        3600.0, gt=0, description="background re-sync in `bounded serve`; null: never"
    )
    labels: tuple[str, ...] = Field((), description="access labels of every document")
    store: str | None = Field(
        None,
        description="sqlite:///path, or postgresql://... (with pgvector) to scale out; "
        "default: collections/NAME.db beside server.store",
    )

    @field_validator("store")
    @classmethod
    def _known_engine(cls, url: str | None) -> str | None:
        if url is None or url.startswith(("sqlite:///", "postgresql://", "postgres://")):
            return url
        raise ValueError(
            "a collection store is sqlite:///path/to/file.db (embedded) or "
            "postgresql://user@host/db (PostgreSQL with the pgvector extension)"
        )


class FeatureRetrieval(_Frozen):
    collection: str
    top_k: int = Field(5, ge=1, le=100)
    max_context_tokens: int = Field(1500, ge=16)
    mode: Literal["bm25", "dense", "hybrid"] = "hybrid"
    mmr_lambda: float | None = Field(
        None, ge=0, le=1, description="diversify with MMR; 1 = relevance only"
    )
    filters: dict[str, MetadataValue | list[MetadataValue]] = Field(default_factory=dict)
