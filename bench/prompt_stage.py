"""The prompt stage's cost per request, against what resolve did before it existed.

    .venv/bin/python bench/prompt_stage.py [--requests N]

Runs the real ``RenderPrompt`` stage on a real store (SQLite in a temporary folder) for:

* ``before``: prepending bounded.yaml's system prompt to a copy of the body, as resolve
  did before prompt versions (the baseline);
* ``constant``: the production version of a feature whose prompt has no variables (what
  every existing config gets: its prompt.system as version 1);
* ``vars``: a version with three variables and a conditional, rendered per request;
* ``check``: the store's generation counter read (what a replica pays once a second,
  off the event loop), and the same through ``asyncio.to_thread`` as the stage does it.

Prints microseconds per request and the ratios to ``before``. Compare ratios, not
absolute numbers, on a shared machine.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from bounded.gateway.call import Reply
from bounded.gateway.stages.prompt import RenderPrompt
from bounded.prompts import PromptCache, PromptStore, PromptTemplate
from bounded.store.db import Database

SYSTEM = "You are the support assistant for bounded. Answer in one short paragraph."
VARS_TEMPLATE = {
    "system": "You help {{ customer }} with {{ product }}.{% if plan == 'pro' %} Offer a call."
    "{% endif %} Answer in one short paragraph.",
    "params": {"temperature": 0.2},
}
BODY = {"model": "f", "messages": [{"role": "user", "content": "How do I rotate a key?"}]}
REPLY = Reply(body={})


async def _next(call: Any) -> Reply:
    return REPLY


def _call(feature: str, extras: dict[str, Any] | None) -> Any:
    body = dict(BODY, bounded=extras) if extras else BODY
    return SimpleNamespace(
        upstream=dict(body),
        target=SimpleNamespace(feature=True, name=feature),
        prompt_version=None,
        headers={},
    )


async def _stage(stage: RenderPrompt, feature: str, extras: Any, n: int) -> float:
    await stage(_call(feature, extras), _next)  # warm: the first lookup fills the cache
    start = time.perf_counter()
    for _ in range(n):
        await stage(_call(feature, extras), _next)
    return (time.perf_counter() - start) / n * 1e6


async def _before(n: int) -> float:
    start = time.perf_counter()
    for _ in range(n):
        call = _call("f", None)
        system = {"role": "system", "content": SYSTEM}
        call.upstream = {**BODY, "messages": [system, *BODY["messages"]]}
        await _next(call)
    return (time.perf_counter() - start) / n * 1e6


async def main(n: int) -> None:
    with tempfile.TemporaryDirectory() as folder:
        db = Database.open(f"sqlite:///{Path(folder) / 'b.db'}")
        store = PromptStore(db)
        store.seed_from_config("constant", SYSTEM)
        store.push("vars", PromptTemplate.parse(VARS_TEMPLATE), author="bench")
        cache = PromptCache(store)  # check_every_s=1.0, as a gateway runs it
        stage = RenderPrompt(lambda: cache)
        extras = {"vars": {"customer": "Ana", "product": "bounded", "plan": "pro"}}
        before = await _before(n)
        constant = await _stage(stage, "constant", None, n)
        with_vars = await _stage(stage, "vars", extras, n)
        start = time.perf_counter()
        for _ in range(2000):
            store.generation()
        check = (time.perf_counter() - start) / 2000 * 1e6
        start = time.perf_counter()
        for _ in range(500):
            await asyncio.to_thread(store.generation)
        threaded = (time.perf_counter() - start) / 500 * 1e6
        db.close()
    print(f"requests per case: {n}")
    print(f"before (resolve prepended prompt.system): {before:8.2f} us/request")
    print(
        f"constant production version:             {constant:8.2f} us/request"
        f"  (+{constant - before:.2f} us, {constant / before:.1f}x)"
    )
    print(
        f"version with 3 variables rendered:       {with_vars:8.2f} us/request"
        f"  (+{with_vars - before:.2f} us, {with_vars / before:.1f}x)"
    )
    print(f"generation check (SQLite, inline):       {check:8.2f} us, once per second")
    print(f"generation check via asyncio.to_thread:  {threaded:8.2f} us, once per second")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=50_000)
    asyncio.run(main(parser.parse_args().requests))
