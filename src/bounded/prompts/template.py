"""A prompt version's content: chat messages with ``{{variables}}``, and model parameters.

    template = PromptTemplate.parse({"system": "You help {{ customer }}.", "params": {...}})
    template.render({"customer": "Ana"})   # [{"role": "system", "content": "You help Ana."}]

Templates are Jinja2, rendered in its immutable sandbox (no attribute access to Python
internals, no mutation of the values passed in, ``range`` bounded) with strict undefined
names: a variable the request did not send is an error naming it, never an empty string
silently sent to the model. Each message is compiled once per version (the compiled
templates live as long as the version is cached); a version with no variables at all is
rendered once and reused, so a plain system prompt costs a list copy per request.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from typing import Any

import jinja2
import orjson
from jinja2 import meta
from jinja2.sandbox import ImmutableSandboxedEnvironment, SecurityError

from bounded.errors import InvalidRequest, Unprocessable

ROLES = ("system", "developer", "user", "assistant")
# Set by the request itself, or by bounded: a prompt version may not fix them.
RESERVED_PARAMS = frozenset({"model", "messages", "stream", "stream_options", "bounded"})
MAX_VARS = 256

_ENV = ImmutableSandboxedEnvironment(
    undefined=jinja2.StrictUndefined, autoescape=False, keep_trailing_newline=True
)
_UNDEFINED_NAME = re.compile(r"'([^']+)' is undefined")


class PromptFormatError(ValueError):
    """A prompt definition that cannot be stored: says where (``path``) and why."""

    def __init__(self, path: str, message: str, *, hint: str | None = None, line: int = 0):
        super().__init__(f"{path}: {message}" if path else message)
        self.path, self.message, self.hint, self.line = path, message, hint, line


class PromptVariableMissing(InvalidRequest):
    default_code = "prompt_variable_missing"


class PromptRenderError(InvalidRequest):
    default_code = "prompt_render_error"


class PromptTemplate:
    """Messages (role, Jinja2 source), default parameters and variable defaults."""

    __slots__ = ("_compiled", "_constant", "defaults", "description", "messages", "params")

    def __init__(
        self,
        messages: tuple[tuple[str, str], ...],
        params: Mapping[str, Any] | None = None,
        defaults: Mapping[str, Any] | None = None,
        description: str = "",
    ):
        self.messages = messages
        self.params = dict(params or {})
        self.defaults = dict(defaults or {})
        self.description = description
        self._compiled: list[tuple[str, jinja2.Template]] | None = None
        self._constant: list[dict[str, str]] | None = None

    # -- definition --------------------------------------------------------------------

    @classmethod
    def parse(cls, data: Any) -> PromptTemplate:
        """From a prompt file's mapping (see docs/prompts.md); PromptFormatError if wrong."""
        if not isinstance(data, Mapping):
            raise PromptFormatError("", "a prompt file must be a mapping (system:, messages:...)")
        unknown = set(data) - {"system", "messages", "params", "variables", "description"}
        if unknown:
            name = sorted(map(str, unknown))[0]
            raise PromptFormatError(
                name, "is not a prompt field", hint="fields: system, messages, params, variables"
            )
        messages: list[tuple[str, str]] = []
        system = data.get("system")
        if system is not None:
            if not isinstance(system, str):
                raise PromptFormatError("system", "must be a string (a template)")
            messages.append(("system", system))
        for i, message in enumerate(_list(data.get("messages"), "messages")):
            messages.append(_message(message, f"messages[{i}]"))
        if not messages:
            raise PromptFormatError(
                "",
                "a prompt needs a system template or at least one message",
                hint="add `system: You are ...`",
            )
        params = _mapping(data.get("params"), "params")
        check_params(params)
        defaults = _mapping(data.get("variables"), "variables")
        description = data.get("description") or ""
        if not isinstance(description, str):
            raise PromptFormatError("description", "must be a string")
        template = cls(tuple(messages), params, defaults, description)
        template.compile()  # a syntax error is found at push time, not at the first request
        return template

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> PromptTemplate:
        """From the stored form (:meth:`json`); trusted: it was parsed when pushed."""
        messages = tuple((m["role"], m["content"]) for m in data["messages"])
        return cls(messages, data.get("params"), data.get("variables"), data.get("description", ""))

    def json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "messages": [{"role": role, "content": text} for role, text in self.messages]
        }
        if self.params:
            out["params"] = self.params
        if self.defaults:
            out["variables"] = self.defaults
        if self.description:
            out["description"] = self.description
        return out

    def canonical(self) -> bytes:
        return orjson.dumps(self.json(), option=orjson.OPT_SORT_KEYS)

    @property
    def digest(self) -> str:
        return hashlib.sha256(self.canonical()).hexdigest()

    def variables(self) -> list[str]:
        """The names the templates use (some may have defaults), in a stable order."""
        names: set[str] = set()
        for _, source in self.messages:
            names |= meta.find_undeclared_variables(_ENV.parse(source))
        return sorted(names)

    # -- rendering ---------------------------------------------------------------------

    def compile(self) -> list[tuple[str, jinja2.Template]]:
        if self._compiled is None:
            compiled = []
            for i, (role, source) in enumerate(self.messages):
                try:
                    compiled.append((role, _ENV.from_string(source)))
                except jinja2.TemplateSyntaxError as exc:
                    where = "system" if i == 0 and role == "system" else f"message {i}"
                    raise PromptFormatError(
                        _field_of(self.messages, i),
                        f"template syntax error in the {where}, its line {exc.lineno}: "
                        f"{exc.message}",
                        hint="variables are written {{ name }}; blocks {% if x %}...{% endif %}",
                        line=exc.lineno,
                    ) from None
            self._compiled = compiled
            if not self.variables():
                self._constant = [{"role": r, "content": t.render()} for r, t in compiled]
        return self._compiled

    def render(self, values: Mapping[str, Any] | None = None) -> list[dict[str, str]]:
        """The messages with ``values`` (over the defaults) filled in."""
        compiled = self.compile()
        if self._constant is not None:
            return [dict(m) for m in self._constant]
        context = {**self.defaults, **(values or {})}
        out = []
        for role, template in compiled:
            try:
                out.append({"role": role, "content": template.render(context)})
            except jinja2.UndefinedError as exc:
                raise _missing(str(exc)) from None
            except SecurityError as exc:
                raise PromptRenderError(
                    f"the prompt template did something its sandbox refuses: {exc}",
                    param="bounded.vars",
                ) from None
            except Exception as exc:  # a filter on a value of the wrong type, and so on
                raise PromptRenderError(
                    f"the prompt template could not be rendered with these variables: "
                    f"{type(exc).__name__}: {exc}",
                    param="bounded.vars",
                ) from None
        return out


def check_params(params: Mapping[str, Any]) -> None:
    """Model parameters are checked against the chat request schema, as a request's are."""
    from bounded.gateway.api_schema import check_chat

    reserved = sorted(set(params) & RESERVED_PARAMS)
    if reserved:
        raise PromptFormatError(
            f"params.{reserved[0]}",
            "is set by the request, not by a prompt",
            hint="params are model parameters: temperature, max_tokens, top_p, stop, ...",
        )
    probe = {"model": "m", "messages": [{"role": "user", "content": "x"}], **params}
    try:
        check_chat(probe)
    except Unprocessable as exc:
        raise PromptFormatError(
            f"params.{exc.param}" if exc.param else "params", exc.message
        ) from None


def _missing(message: str) -> PromptVariableMissing:
    match = _UNDEFINED_NAME.search(message)
    if match is None:  # an attribute or key of a value that it does not have
        return PromptVariableMissing(
            f"the prompt template needs a value the request did not send: {message}",
            param="bounded.vars",
        )
    name = match.group(1)
    return PromptVariableMissing(
        f"the prompt template needs the variable {name!r}; send it in the request body as "
        f'"bounded": {{"vars": {{"{name}": ...}}}} (the OpenAI SDK: extra_body=)',
        param=f"bounded.vars.{name}",
    )


def _field_of(messages: tuple[tuple[str, str], ...], index: int) -> str:
    if messages and messages[0][0] == "system" and index == 0:
        return "system"
    offset = 1 if messages and messages[0][0] == "system" else 0
    return f"messages[{index - offset}].content"


def _message(data: Any, path: str) -> tuple[str, str]:
    if not isinstance(data, Mapping) or set(data) - {"role", "content"}:
        raise PromptFormatError(path, "must be a mapping with role and content")
    role, content = data.get("role"), data.get("content")
    if role not in ROLES:
        raise PromptFormatError(f"{path}.role", f"must be one of {', '.join(ROLES)}")
    if not isinstance(content, str):
        raise PromptFormatError(f"{path}.content", "must be a string (a template)")
    return role, content


def _list(value: Any, path: str) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise PromptFormatError(path, "must be a list")
    return value


def _mapping(value: Any, path: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping) or not all(isinstance(k, str) for k in value):
        raise PromptFormatError(path, "must be a mapping with string keys")
    return dict(value)
