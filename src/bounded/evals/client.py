"""The gateway an eval talks to: one started in this process (the default), or a running
one at ``--url``. Either way each case is a real ``POST /v1/chat/completions``: auth,
routing, retrieval, validation and the ledger all see it as they see product traffic.

    async with in_process(config, db) as gateway:      # or remote(url, key)
        output = await gateway.chat("support-answer", messages, {"temperature": 0})
"""

from __future__ import annotations

import contextlib
import secrets
import threading
import time
from collections.abc import Iterator
from typing import Any

import aiohttp

from bounded.config.schema import BoundedConfig
from bounded.evals.model import Output
from bounded.store.db import Database

# Provider config keys promptfoo passes to OpenAI that the chat API takes as they are.
PASSED = (
    "temperature", "max_tokens", "max_completion_tokens", "top_p", "stop", "seed",
    "frequency_penalty", "presence_penalty", "response_format", "tools", "tool_choice", "n",
)  # fmt: skip
TIMEOUT_S = 300


class Gateway:
    def __init__(self, base_url: str, api_key: str, session_id: str | None = None):
        self.base_url = base_url.rstrip("/")
        self.api_key = api_key
        self.session_id = session_id
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> Gateway:
        connector = aiohttp.TCPConnector(limit=256)
        self._session = aiohttp.ClientSession(
            connector=connector, timeout=aiohttp.ClientTimeout(total=TIMEOUT_S)
        )
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._session is not None:
            await self._session.close()

    async def chat(
        self,
        model: str,
        messages: list[dict[str, Any]],
        config: dict[str, Any] | None = None,
        prompt_version: str | None = None,
        variables: dict[str, Any] | None = None,
    ) -> Output:
        assert self._session is not None, "use `async with`"
        body: dict[str, Any] = {"model": model, "messages": messages}
        body.update({k: v for k, v in (config or {}).items() if k in PASSED})
        # The case's vars also fill a feature's versioned prompt template (the gateway's
        # prompt stage takes `bounded` out of the body before it goes upstream).
        extras: dict[str, Any] = {"vars": variables or {}}
        if prompt_version is not None:
            extras["prompt_version"] = prompt_version
        body["bounded"] = extras
        headers = {"authorization": f"Bearer {self.api_key}"}
        if self.session_id:
            headers["x-bounded-session"] = self.session_id
        started = time.perf_counter()
        try:
            async with self._session.post(
                f"{self.base_url}/v1/chat/completions", json=body, headers=headers
            ) as resp:
                data = await resp.json(content_type=None)
                latency = (time.perf_counter() - started) * 1000
                output = _output(resp.status, data, resp.headers, latency)
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            latency = (time.perf_counter() - started) * 1000
            return Output(
                error=f"gateway unreachable: {type(exc).__name__}: {exc}", latency_ms=latency
            )
        used = resp.headers.get("x-bounded-prompt-version")
        if (
            prompt_version is not None
            and output.error is None
            and not _same_version(used, prompt_version)
        ):
            # Never grade another version's answer as this one's.
            output.error = (
                f"asked for prompt version {prompt_version!r}, the gateway rendered "
                f"{used or 'none'}"
            )
        return output


def _same_version(used: str | None, wanted: str) -> bool:
    """The header carries the version's id (``feature@3`` or ``3``); --prompt-version
    may name either."""
    if used is None:
        return False
    return used == wanted or used.rsplit("@", 1)[-1].lstrip("v") == wanted.lstrip("v")


def _output(status: int, data: Any, headers: Any, latency: float) -> Output:
    trace = headers.get("x-bounded-trace-id")
    if status != 200 or not isinstance(data, dict) or "choices" not in data:
        message = (data.get("error") or {}).get("message") if isinstance(data, dict) else None
        return Output(error=f"HTTP {status}: {message or data}", latency_ms=latency, trace_id=trace)
    choice = data["choices"][0] if data["choices"] else {}
    message = choice.get("message") or {}
    usage = data.get("usage") or {}
    cached = (usage.get("prompt_tokens_details") or {}).get("cached_tokens", 0)
    citations = (data.get("bounded") or {}).get("citations") or []
    return Output(
        text=message.get("content") or "",
        finish_reason=choice.get("finish_reason"),
        tool_calls=message.get("tool_calls") or None,
        latency_ms=latency,
        cost=float(headers.get("x-bounded-cost-usd") or 0),
        tokens={
            "total": usage.get("total_tokens", 0),
            "prompt": usage.get("prompt_tokens", 0),
            "completion": usage.get("completion_tokens", 0),
            "cached": cached or 0,
        },
        trace_id=trace,
        route=headers.get("x-bounded-route"),
        contexts=[c.get("text", "") for c in citations if isinstance(c, dict) and c.get("text")],
    )


@contextlib.contextmanager
def in_process(config: BoundedConfig, db: Database) -> Iterator[tuple[str, str]]:
    """Start the gateway for this config on a loopback port, in a thread of this process;
    yield ``(base_url, key)``. The key is a one-off admin key, valid only for this
    gateway: nothing is written to the key table."""
    import socket

    import uvicorn

    from bounded.gateway.app import Gateway as App

    key = "bnd_eval_" + secrets.token_urlsafe(24)
    app = App(config, db=db, admin_key=key)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    server = uvicorn.Server(
        uvicorn.Config(
            app.app(), host="127.0.0.1", port=port, log_level="error", access_log=False,
            lifespan="on",
        )
    )  # fmt: skip
    thread = threading.Thread(target=server.run, name="bounded-eval-gateway", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the in-process gateway did not start")
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}", key
    finally:
        server.should_exit = True
        thread.join(timeout=30)
