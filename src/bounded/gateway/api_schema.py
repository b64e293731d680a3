"""The request bodies bounded accepts, as one schema: validation and ``/openapi.json``.

Every field bounded itself reads (to route, count tokens, translate for Anthropic or the
local model, reserve budget) is typed here; every other field is ignored by validation
and passed to the provider untouched, so a new OpenAI parameter works without a bounded
release. Validation runs in pydantic-core (compiled) on the parsed body and keeps the
body as it came; only a wrong body pays for building the error.

    check_chat(body)            # raises Unprocessable naming the field, e.g.
                                # param="messages[0].content"
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from bounded.errors import Unprocessable

MAX_ID_CHARS = 256  # names, user ids, tool ids: far below any store's index limit


class _Body(BaseModel):
    # strict: "1" is not an integer and true is not a number, as in OpenAI's API.
    # ignore: unknown fields are not bounded's business; they pass through as sent.
    model_config = ConfigDict(strict=True, extra="ignore")


Name = Annotated[str, Field(max_length=MAX_ID_CHARS)]
Temperature = Annotated[float, Field(ge=0, le=2)]
PositiveInt = Annotated[int, Field(ge=1)]


class ImageUrl(_Body):
    url: str
    detail: str | None = None


class ContentPart(_Body):
    """A part of a multi-part message: ``text``, ``image_url``, ``input_audio``, ``file``..."""

    type: Annotated[str, Field(min_length=1, max_length=64)]
    text: str | None = None
    image_url: ImageUrl | None = None


class FunctionCall(_Body):
    name: Name
    arguments: str


class ToolCall(_Body):
    id: Name
    type: Literal["function"] = "function"
    function: FunctionCall


class Message(_Body):
    role: Literal["system", "developer", "user", "assistant", "tool", "function"]
    content: str | list[ContentPart] | None = Field(
        None, description="required except on an assistant message that carries tool calls"
    )
    name: Name | None = None
    tool_calls: list[ToolCall] | None = None
    tool_call_id: Name | None = None


class FunctionDefinition(_Body):
    name: Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")]
    description: str | None = None
    parameters: dict[str, Any] | None = None
    strict: bool | None = None


class Tool(_Body):
    type: Literal["function"] = "function"
    function: FunctionDefinition


class NamedFunction(_Body):
    name: Name


class ToolChoiceFunction(_Body):
    type: Literal["function"]
    function: NamedFunction


class JsonSchemaFormat(_Body):
    name: Name | None = None
    description: str | None = None
    schema_: dict[str, Any] = Field(alias="schema")
    strict: bool | None = None


class ResponseFormat(_Body):
    type: Literal["text", "json_object", "json_schema"]
    json_schema: JsonSchemaFormat | None = Field(None, description="required for json_schema")


class StreamOptions(_Body):
    include_usage: bool | None = None


class BoundedExtras(_Body):
    """bounded's own fields in a chat request (the OpenAI SDK's ``extra_body``); never
    sent upstream."""

    vars: dict[str, Any] | None = Field(
        None, description="values for the feature's prompt template variables"
    )


class ChatCompletionRequest(_Body):
    """``POST /v1/chat/completions``. ``model`` names a feature or a model alias."""

    model: Annotated[str, Field(min_length=1, max_length=MAX_ID_CHARS)]
    messages: Annotated[list[Message], Field(min_length=1)]
    stream: bool | None = None
    stream_options: StreamOptions | None = None
    max_tokens: PositiveInt | None = None
    max_completion_tokens: PositiveInt | None = None
    n: Annotated[int, Field(ge=1, le=128)] | None = None
    temperature: Temperature | None = None
    top_p: Annotated[float, Field(ge=0, le=1)] | None = None
    presence_penalty: Annotated[float, Field(ge=-2, le=2)] | None = None
    frequency_penalty: Annotated[float, Field(ge=-2, le=2)] | None = None
    seed: int | None = None
    stop: str | Annotated[list[str], Field(max_length=16)] | None = None
    tools: list[Tool] | None = None
    tool_choice: Literal["none", "auto", "required"] | ToolChoiceFunction | None = None
    parallel_tool_calls: bool | None = None
    response_format: ResponseFormat | None = None
    logprobs: bool | None = None
    top_logprobs: Annotated[int, Field(ge=0, le=20)] | None = None
    logit_bias: dict[str, float] | None = None
    user: Name | None = None
    metadata: dict[str, str] | None = None
    bounded: BoundedExtras | None = None


class EmbeddingsRequest(_Body):
    """``POST /v1/embeddings``. ``input``: text, texts, or token arrays (as LangChain sends)."""

    model: Annotated[str, Field(min_length=1, max_length=MAX_ID_CHARS)]
    input: (
        Annotated[str, Field(min_length=1)]
        | Annotated[list[Annotated[str, Field(min_length=1)]], Field(min_length=1)]
        | Annotated[list[Annotated[int, Field(ge=0)]], Field(min_length=1)]
        | Annotated[
            list[Annotated[list[Annotated[int, Field(ge=0)]], Field(min_length=1)]],
            Field(min_length=1),
        ]
    )
    encoding_format: Literal["float", "base64"] = "float"
    dimensions: PositiveInt | None = None
    user: Name | None = None


class OutcomeRequest(_Body):
    """``POST /v1/outcomes``: link a business outcome to a call or a session."""

    # No NUL: no store takes one (PostgreSQL fails the whole query), nor could a header.
    trace_id: Annotated[
        str, Field(min_length=1, max_length=MAX_ID_CHARS, pattern=r"^[^\x00]+$")
    ] = Field(description="the x-bounded-trace-id of a call, or an x-bounded-session")
    outcome: Literal["success", "failure"]
    value: float | None = None


class GuardIn(_Body):
    """A guard as in ``bounded.yaml`` (``features.*.guards``)."""

    kind: Annotated[str, Field(min_length=1, max_length=64)]
    action: Literal["allow", "log", "redact", "block", "drop", "escalate"] = "log"
    threshold: Annotated[float, Field(ge=0, le=1)] | None = None
    min_score: Annotated[float, Field(ge=0, le=1)] | None = None
    entities: list[Annotated[str, Field(max_length=64)]] | None = None


class GuardsCheckRequest(_Body):
    """``POST /v1/guards/check``: what a policy would do with a text."""

    text: str
    guards: Annotated[list[GuardIn], Field(min_length=1, max_length=32)] | None = Field(
        None, description="the guards to run; or name a feature to run its policy"
    )
    feature: Annotated[str, Field(min_length=1, max_length=MAX_ID_CHARS)] | None = None
    place: Literal["input", "retrieved", "output"] = "input"
    risk_tier: Literal["low", "medium", "high"] = "low"
    sources: Annotated[list[str], Field(max_length=64)] = Field(
        default_factory=list, description="groundedness: the texts the answer should rest on"
    )


class SearchRequest(_Body):
    """``POST /v1/collections/{name}/search``."""

    query: Annotated[str, Field(min_length=1, max_length=4096)]
    top_k: Annotated[int, Field(ge=1, le=100)] = 10
    mode: Literal["bm25", "dense", "hybrid"] = "hybrid"
    filters: dict[str, str | int | float | bool | list[str | int | float | bool]] | None = None
    mmr_lambda: Annotated[float, Field(ge=0, le=1)] | None = None


def check_chat(body: dict[str, Any]) -> None:
    _validate(ChatCompletionRequest, body)
    for i, message in enumerate(body["messages"]):
        content = message.get("content")
        if isinstance(content, list):
            for j, part in enumerate(content):
                if part["type"] == "text" and not isinstance(part.get("text"), str):
                    raise Unprocessable(
                        f"messages[{i}].content[{j}].text is required for a text part",
                        param=f"messages[{i}].content[{j}].text",
                    )
        # A message without content means nothing to a model; only an assistant turn
        # that carries tool calls may leave it out (OpenAI's own rule).
        if message.get("content") is None and not (
            message["role"] == "assistant"
            and (message.get("tool_calls") or "function_call" in message)
        ):
            raise Unprocessable(
                f"messages[{i}].content is required for a {message['role']} message",
                param=f"messages[{i}].content",
            )
    fmt = body.get("response_format")
    if fmt is not None and fmt["type"] == "json_schema" and fmt.get("json_schema") is None:
        raise Unprocessable(
            "response_format.json_schema is required when the type is json_schema",
            param="response_format.json_schema",
        )


def check_embeddings(body: dict[str, Any]) -> None:
    _validate(EmbeddingsRequest, body)


def check(model: type[BaseModel], body: dict[str, Any]) -> None:
    """Validate ``body`` against any of the request models above."""
    _validate(model, body)


def _validate(model: type[BaseModel], body: dict[str, Any]) -> None:
    try:
        model.__pydantic_validator__.validate_python(body)
    except ValidationError as exc:
        raise _unprocessable(exc) from None


# Pydantic puts the member of a union it tried into an error's location ('str',
# 'list[ContentPart]', 'constrained-str', 'ToolChoiceFunction'): not field names.
_SCALAR_TAGS = frozenset({"str", "int", "float", "bool", "none"})
_INSTANCE_OF = re.compile(r" or instance of \w+")


def _is_field(part: str) -> bool:
    return not (part in _SCALAR_TAGS or "[" in part or "-" in part or part[:1].isupper())


def param_of(loc: tuple[int | str, ...]) -> str:
    """``('messages', 0, 'content', 'str')`` -> ``messages[0].content``."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif _is_field(part):
            out += f".{part}" if out else part
    return out


def _plain(message: str) -> str:
    """Pydantic speaks Python; callers send JSON."""
    message = _INSTANCE_OF.sub("", message)
    return message.replace("valid dictionary", "JSON object").replace("valid list", "array")


def _unprocessable(exc: ValidationError) -> Unprocessable:
    errors = exc.errors(include_url=False, include_input=False)
    located = [(param_of(e["loc"]), _plain(e["msg"])) for e in errors]
    # A union reports one error per member it tried. The member that got deepest is the
    # one the caller meant (content parts, not a string); at equal depth, say them all.
    deepest = max(len(p) for p, _ in located)
    param = next(p for p, _ in located if len(p) == deepest)
    reasons = list(dict.fromkeys(m for p, m in located if p == param))
    where = f"'{param}'" if param else "request body"
    return Unprocessable(f"{where} is invalid: {'; or '.join(reasons)}", param=param or None)
