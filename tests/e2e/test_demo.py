"""The demo `make serve` runs: ``examples/bounded.yaml`` as shipped, through a real ``bounded
serve`` and the official ``openai`` SDK, with requests as a user types them (no ``max_tokens``).

Nothing here measures speed: the example's own timeouts are the bound, and they are set for a
busy two-core machine. The only short timeout is one this module sets to provoke a timeout.
"""

from __future__ import annotations

import copy
import json
import time
from collections.abc import Iterator
from importlib.util import find_spec
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from openai import OpenAI
from openai.types.chat import ChatCompletionMessageParam

from bounded.providers.local_wire import DEFAULT_MAX_TOKENS
from tests.e2e.server import ADMIN_KEY, BoundedServer

pytestmark = [
    pytest.mark.local_model,
    pytest.mark.skipif(find_spec("llama_cpp") is None, reason="needs the `local` extra"),
]

ROOT = Path(__file__).resolve().parents[2]
ROTATE: list[ChatCompletionMessageParam] = [
    {"role": "user", "content": "How do I rotate an API key?"}
]
CAPITAL: list[ChatCompletionMessageParam] = [
    {"role": "user", "content": "What is the capital of France?"}
]


def example_config() -> dict[str, Any]:
    """The shipped example, with its handbook found from wherever pytest runs."""
    data: dict[str, Any] = yaml.safe_load((ROOT / "examples" / "bounded.yaml").read_text())
    for source in data["collections"]["handbook"]["sources"]:
        if source["kind"] == "folder":
            source["path"] = str(ROOT / source["path"])
    return data


def wait_for_handbook(server: BoundedServer, timeout_s: float = 120) -> None:
    """`bounded serve` syncs the collection in the background after it is healthy; until then
    handbook-answer answers without sources. One-token requests until the citations appear."""
    deadline = time.monotonic() + timeout_s
    while True:
        reply = httpx.post(
            f"{server.base_url}/chat/completions",
            headers={"authorization": f"Bearer {ADMIN_KEY}"},
            json={"model": "handbook-answer", "messages": ROTATE, "max_tokens": 1},
            timeout=timeout_s,
        )
        assert reply.status_code == 200, reply.text
        if "x-bounded-citations" in reply.headers:
            return
        assert time.monotonic() < deadline, f"handbook not indexed in time:\n{server.output()}"
        time.sleep(0.5)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BoundedServer]:
    with BoundedServer.start(tmp_path_factory.mktemp("demo"), example_config()) as server:
        wait_for_handbook(server)
        yield server


@pytest.fixture(scope="module")
def client(server: BoundedServer) -> Iterator[OpenAI]:
    # Longer than the example's 60 s attempt timeout: the gateway, not the client, gives up.
    with OpenAI(base_url=server.base_url, api_key=ADMIN_KEY, max_retries=0, timeout=180) as client:
        yield client


def test_handbook_answer_answers_with_citations(client: OpenAI) -> None:
    raw = client.chat.completions.with_raw_response.create(model="handbook-answer", messages=ROTATE)

    assert raw.headers["x-bounded-attempts"] == "1"
    assert "keys.md" in raw.headers["x-bounded-citations"]
    reply = raw.parse()
    assert (reply.choices[0].message.content or "").strip()
    assert reply.usage is not None
    assert 0 < reply.usage.completion_tokens <= DEFAULT_MAX_TOKENS
    citations = (reply.model_extra or {})["bounded"]["citations"]
    assert citations and all(c["doc_id"].endswith(".md") for c in citations)


def test_handbook_answer_streams_with_citations(client: OpenAI) -> None:
    with client.chat.completions.create(
        model="handbook-answer", messages=ROTATE, stream=True
    ) as stream:
        chunks = list(stream)

    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text.strip()
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices]
    assert finishes[-1] in {"stop", "length"}
    last = chunks[-1]
    assert not last.choices
    assert "keys.md" in json.dumps((last.model_extra or {})["bounded"]["citations"])


def test_support_answer_answers(client: OpenAI) -> None:
    reply = client.chat.completions.create(model="support-answer", messages=CAPITAL)

    assert (reply.choices[0].message.content or "").strip()
    assert reply.usage is not None and reply.usage.completion_tokens <= DEFAULT_MAX_TOKENS


# -- a timeout on the one in-process model -------------------------------------------------


def timing_out_config() -> dict[str, Any]:
    """The example with a route timeout no reply can meet (``timed-out``), and the same with
    two attempts per target asked for explicitly (``default-retry``)."""
    data = example_config()
    shipped = data["features"]["support-answer"]
    timed_out = copy.deepcopy(shipped)
    timed_out["route"].update(timeout_s=0.001, deadline_s=60)
    default_retry = copy.deepcopy(timed_out)
    default_retry["route"]["retry"] = {"attempts": 2}
    data["features"] = {"timed-out": timed_out, "default-retry": default_retry}
    data.pop("collections")
    return data


@pytest.fixture(scope="module")
def timing_out(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BoundedServer]:
    with BoundedServer.start(tmp_path_factory.mktemp("timeout"), timing_out_config()) as server:
        yield server


def ask(server: BoundedServer, feature: str) -> httpx.Response:
    return httpx.post(
        f"{server.base_url}/chat/completions",
        headers={"authorization": f"Bearer {ADMIN_KEY}"},
        json={"model": feature, "messages": CAPITAL},
        timeout=120,
    )


def test_the_example_tries_a_timed_out_local_model_once(timing_out: BoundedServer) -> None:
    reply = ask(timing_out, "timed-out")

    assert reply.status_code == 504, reply.text
    assert reply.json()["error"]["type"] == "timeout_error"
    assert reply.headers["x-bounded-attempts"] == "1"


def test_a_local_timeout_is_not_retried_by_default(timing_out: BoundedServer) -> None:
    reply = ask(timing_out, "default-retry")

    assert reply.status_code == 504, reply.text
    assert reply.headers["x-bounded-attempts"] == "1"
