"""A translation stand-in behind the gateway: models answer from a phrase book, so eval
verdicts are known in advance. ``good`` knows every phrase; ``sloppy`` only French."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml
from starlette.requests import Request
from starlette.responses import Response
from typer.testing import CliRunner

PHRASES = {
    ("French", "Hello world"): "Bonjour le monde",
    ("Spanish", "Where is the library?"): "¿Dónde está la biblioteca?",
    ("Spanish", "Hello world"): "Hola mundo",
}


def _answer(model: str, prompt: str) -> str:
    for (language, text), translation in PHRASES.items():
        if language in prompt and text in prompt:
            if model == "sloppy" and language != "French":
                return "Lo siento, no sé."
            return translation
    return f"echo: {prompt}"


async def phrasebook(request: Request, body: dict[str, Any]) -> Response:
    prompt = " ".join(str(m.get("content", "")) for m in body["messages"])
    text = _answer(body["model"], prompt)
    words = len(text.split())
    payload = {
        "id": "chatcmpl-standin",
        "object": "chat.completion",
        "created": 0,
        "model": body["model"],
        "choices": [
            {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}
        ],
        "usage": {"prompt_tokens": 10, "completion_tokens": words, "total_tokens": 10 + words},
    }
    return Response(orjson.dumps(payload), media_type="application/json")


@pytest.fixture
def upstream(standin: Any) -> Any:
    standin.forget()
    for model in ("good", "sloppy"):
        standin.always(model, phrasebook)
    return standin


def bounded_yaml(tmp_path: Path, base_url: str, features: dict[str, Any] | None = None) -> Path:
    price = {"input": 1.0, "output": 2.0}
    data = {
        "server": {"store": f"sqlite:///{tmp_path / 'bounded.db'}", "reload": False},
        "providers": {"up": {"kind": "openai", "base_url": base_url, "api_key": "x"}},
        "models": {
            "gpt-4.1": {"provider": "up", "model": "good", "price": price},
            "o4-mini": {"provider": "up", "model": "sloppy", "price": price},
        },
        "features": features or {"translate": {"owner": "i18n", "route": {"targets": ["gpt-4.1"]}}},
    }
    path = tmp_path / "bounded.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


@contextlib.contextmanager
def env(**values: str | None) -> Iterator[None]:
    old = {k: os.environ.get(k) for k in values}
    try:
        for k, v in values.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def bounded(*args: str) -> Any:
    from bounded.cli.main import app

    return CliRunner().invoke(app, list(args), catch_exceptions=False)
