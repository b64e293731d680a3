"""Prompts and assertion values are Nunjucks templates in promptfoo; Jinja2 reads the same
``{{ var }}`` / ``{% if %}`` syntax. Unknown vars render empty, as in Nunjucks; ``dump``
is Nunjucks' JSON filter."""

from __future__ import annotations

import json
from functools import lru_cache
from typing import Any

import jinja2

_env = jinja2.Environment(autoescape=False, keep_trailing_newline=True)
_env.filters["dump"] = lambda v, indent=None: json.dumps(v, indent=indent)


@lru_cache(maxsize=1024)
def _compiled(source: str) -> jinja2.Template:
    return _env.from_string(source)


def check(source: str) -> str | None:
    """A syntax error in the template, with its line, or None."""
    try:
        _compiled(source)
    except jinja2.TemplateSyntaxError as exc:
        return f"line {exc.lineno}: {exc.message}"
    return None


def render(source: str, variables: dict[str, Any]) -> str:
    if "{" not in source:
        return source
    return _compiled(source).render(**variables)


def render_value(value: Any, variables: dict[str, Any]) -> Any:
    if isinstance(value, str):
        return render(value, variables)
    if isinstance(value, list):
        return [render_value(v, variables) for v in value]
    return value


def messages(prompt: str, variables: dict[str, Any]) -> list[dict[str, Any]]:
    """A rendered prompt as chat messages: chat-format JSON as written, else one user turn."""
    text = render(prompt, variables)
    stripped = text.strip()
    if stripped.startswith("["):
        try:
            parsed = json.loads(stripped)
        except ValueError:
            parsed = None
        if isinstance(parsed, list) and all(isinstance(m, dict) and "role" in m for m in parsed):
            return parsed
    return [{"role": "user", "content": text}]
