"""Output schemas: what goes to the provider, how a reply is checked, how repair is asked.

    check = SchemaCheck(schema)
    problems = check.problems(reply_text)          # [] when the reply is valid JSON for it
    messages = repair_messages(messages, reply_text, problems)

A reply may wrap its JSON in a Markdown code fence (small models often do); the fence is
accepted and the JSON inside is what is checked. Nothing else is forgiven.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

import jsonschema

MAX_PROBLEMS = 5
_FENCE = re.compile(r"^\s*```(?:json|JSON)?\s*\n?(.*?)\n?\s*```\s*$", re.DOTALL)


@dataclass(frozen=True)
class SchemaCheck:
    schema: dict[str, Any]
    _validator: Any = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        cls = jsonschema.validators.validator_for(self.schema)
        object.__setattr__(self, "_validator", cls(self.schema))

    def problems(self, text: str) -> list[str]:
        """What is wrong with ``text`` as an instance of the schema (at most a few)."""
        value, error = parse_json(text)
        if error is not None:
            return [error]
        return self.problems_of(value)

    def problems_of(self, value: Any) -> list[str]:
        found = []
        for error in sorted(self._validator.iter_errors(value), key=lambda e: list(e.path)):
            where = "/".join(str(p) for p in error.absolute_path) or "(root)"
            found.append(f"{where}: {_short(error.message)}")
            if len(found) == MAX_PROBLEMS:
                break
        return found


def parse_json(text: str) -> tuple[Any, str | None]:
    fenced = _FENCE.match(text)
    if fenced:
        text = fenced.group(1)
    try:
        return json.loads(text), None
    except json.JSONDecodeError as exc:
        return None, f"not valid JSON ({exc.msg} at character {exc.pos})"
    except RecursionError:
        return None, "not valid JSON (nested too deep)"


def _short(message: str, limit: int = 200) -> str:
    return message if len(message) <= limit else message[: limit - 1] + "…"


def response_format(name: str, schema: dict[str, Any]) -> dict[str, Any]:
    """The OpenAI ``response_format`` for a schema (llama.cpp turns it into a grammar)."""
    safe = re.sub(r"[^A-Za-z0-9_-]", "_", name)[:64] or "output"
    return {"type": "json_schema", "json_schema": {"name": safe, "schema": schema}}


def repair_messages(
    messages: list[dict[str, Any]], reply: str, problems: list[str], what: str = "reply"
) -> list[dict[str, Any]]:
    """The conversation again, with the bad reply and what was wrong with it."""
    listed = "\n".join(f"- {p}" for p in problems)
    ask = (
        f"Your previous {what} was not valid:\n{listed}\n"
        "Answer again, correcting these problems. Reply with the corrected answer only."
    )
    return [*messages, {"role": "assistant", "content": reply}, {"role": "user", "content": ask}]
