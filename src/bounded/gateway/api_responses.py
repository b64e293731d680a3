"""The shapes bounded answers with, for ``/openapi.json`` (requests: :mod:`.api_schema`).

These describe; they are not used to build replies (those are the providers' own dicts,
passed on), so they are open: a provider's extra fields are allowed everywhere.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class _Open(BaseModel):
    model_config = ConfigDict(extra="allow")


class ErrorDetail(_Open):
    message: str
    type: str = Field(description="invalid_request_error, authentication_error, ...")
    param: str | None = Field(description="the request field at fault, when one is")
    code: str | None


class ErrorBody(_Open):
    """Every error, whatever its status."""

    error: ErrorDetail


class Usage(_Open):
    prompt_tokens: int
    completion_tokens: int = 0
    total_tokens: int


class Citation(_Open):
    index: int
    doc_id: str
    chunk_id: str
    title: str | None = None
    source: str | None = None
    score: float | None = None


class BoundedExtras(_Open):
    citations: list[Citation] | None = Field(None, description="features with retrieval")


class AssistantMessage(_Open):
    role: Literal["assistant"]
    content: str | None
    tool_calls: list[dict[str, Any]] | None = None


class Choice(_Open):
    index: int
    message: AssistantMessage
    finish_reason: str | None


class ChatCompletion(_Open):
    id: str
    object: Literal["chat.completion"]
    created: int
    model: str = Field(description="the feature or model alias the client named")
    choices: list[Choice]
    usage: Usage | None = None
    bounded: BoundedExtras | None = None


class ChunkChoice(_Open):
    index: int
    delta: dict[str, Any]
    finish_reason: str | None = None


class ChatCompletionChunk(_Open):
    """One ``data:`` event of a stream; the stream ends with ``data: [DONE]``, or with an
    error body if it failed after its first token."""

    id: str | None = None
    object: Literal["chat.completion.chunk"]
    created: int
    model: str
    choices: list[ChunkChoice]
    usage: Usage | None = None
    bounded: BoundedExtras | None = None


class Embedding(_Open):
    object: Literal["embedding"]
    index: int
    embedding: list[float] | str = Field(description="floats, or base64 of float32s")


class EmbeddingList(_Open):
    object: Literal["list"]
    data: list[Embedding]
    model: str
    usage: Usage


class Model(_Open):
    id: str
    object: Literal["model"]
    created: int
    owned_by: str
    bounded: dict[str, Any] = Field(
        description="kind (feature, model, embedding), targets (as served: a route a release"
        " promoted replaces the file's, and route_from says release)"
    )


class ModelList(_Open):
    object: Literal["list"]
    data: list[Model]


class OutcomeRecorded(_Open):
    trace_id: str
    outcome: Literal["success", "failure"]
    linked_calls: int


class SearchHits(_Open):
    object: Literal["list"]
    collection: str
    mode: str
    data: list[dict[str, Any]]


class GuardResult(_Open):
    guard: str
    action: str
    triggered: bool
    score: float | None
    findings: list[dict[str, Any]] = Field(description="kind, start, end, score; no values")


class GuardsReport(_Open):
    object: Literal["guards.check"]
    place: str
    action: str = Field(description="the strongest action of the guards that fired")
    allowed: bool
    text: str | None = Field(description="the text as a model would get it, if redacted")
    results: list[GuardResult]


class Anything(_Open):
    """A JSON object (spend reports, collection status, sync reports, health)."""
