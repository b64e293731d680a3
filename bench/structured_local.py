"""A schema-bound feature on the embedded local model: how often is the answer valid?

    .venv/bin/python bench/structured_local.py [--prompts 50] [--feature ticket-triage]

Runs ``examples/bounded.yaml``'s ``ticket-triage`` (SmolLM2-135M through llama.cpp, its
output schema turned into a grammar, one repair allowed) in-process over support tickets
written here, and prints the share of answers valid on the first try, after a repair,
after an escalation, and failed, with the latency of each. ``--no-grammar`` sends the
schema only in the prompt (the feature's own ``response_format`` left out), to see what
the grammar buys. The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
KEY = "bench-structured-key-0123456789"

SUBJECTS = [
    ("billing", "I was charged twice for my subscription this month"),
    ("billing", "the invoice shows the wrong VAT number for my company"),
    ("billing", "my refund for order 5531 has not arrived after two weeks"),
    ("shipping", "the parcel tracking has not moved in six days"),
    ("shipping", "the box arrived crushed and the lamp inside is broken"),
    ("shipping", "can you deliver to a pick-up point instead of my home"),
    ("account", "I cannot log in since I changed my phone"),
    ("account", "please delete my account and all my data"),
    ("account", "the password reset email never arrives"),
    ("product", "the blender makes a burning smell after two minutes"),
    ("product", "which charger fits the X200 headphones"),
    ("product", "the app crashes when I open the settings page"),
    ("other", "do you have a job opening for a warehouse manager"),
]
TONES = [
    "Hi, {s}. Thanks.",
    "URGENT: {s}!! I need this fixed today.",
    "Hello team, quick question: {s}?",
    "{s}. This is the third time I write about it and I am very unhappy.",
]


def tickets(n: int) -> list[tuple[str, str]]:
    out = []
    i = 0
    while len(out) < n:
        category, subject = SUBJECTS[i % len(SUBJECTS)]
        tone = TONES[(i // len(SUBJECTS)) % len(TONES)]
        out.append((category, tone.format(s=subject[0].upper() + subject[1:])))
        i += 1
    return out


async def run(args: argparse.Namespace) -> dict[str, Any]:
    sys.path.insert(0, str(ROOT))
    from bounded.config.loader import load_config
    from bounded.gateway.app import Gateway
    from bounded.store.db import Database

    config = load_config(ROOT / "examples" / "bounded.yaml")
    store = Path(tempfile.mkdtemp()) / "bench.db"
    server = config.server.model_copy(update={"store": f"sqlite:///{store}", "reload": False})
    config = config.model_copy(update={"server": server, "collections": {}})
    if args.feature == "ticket-triage":
        feature = config.features["ticket-triage"].model_copy(update={"retrieval": None})
        config = config.model_copy(update={"features": {"ticket-triage": feature}})
    gateway = Gateway(config, db=Database.open(config.server.store), admin_key=KEY)
    statuses: Counter[str] = Counter()
    latency: dict[str, list[float]] = {}
    right = 0
    transport = httpx.ASGITransport(app=gateway.app())
    async with (
        httpx.AsyncClient(transport=transport, base_url="http://bench", timeout=600) as client,
        gateway._lifespan(None),  # type: ignore[arg-type]
    ):
        for i, (category, text) in enumerate(tickets(args.prompts)):
            body: dict[str, Any] = {
                "model": args.feature,
                "messages": [{"role": "user", "content": text}],
                "temperature": 0,
            }
            if args.no_grammar:
                body["response_format"] = {"type": "text"}
            started = time.perf_counter()
            resp = await client.post(
                "/v1/chat/completions", json=body, headers={"authorization": f"Bearer {KEY}"}
            )
            took = time.perf_counter() - started
            status = resp.headers.get("x-bounded-validation", f"http {resp.status_code}")
            statuses[status] += 1
            latency.setdefault(status, []).append(took)
            if resp.status_code == 200:
                answer = json.loads(_strip(resp.json()["choices"][0]["message"]["content"]))
                right += answer.get("category") == category
            print(f"{i + 1:3d}/{args.prompts} {status:9s} {took:5.1f}s", file=sys.stderr)
    n = args.prompts
    figures = {
        "prompts": n,
        "grammar": not args.no_grammar,
        **{
            f"share_{s}": round(statuses[s] / n, 3)
            for s in ("passed", "repaired", "escalated", "failed")
        },
        "share_other": round(sum(v for k, v in statuses.items() if k.startswith("http")) / n, 3),
        "category_accuracy": round(right / n, 3),
        **{f"p50_s_{s}": round(statistics.median(v), 2) for s, v in latency.items() if v},
    }
    return figures


def _strip(text: str) -> str:
    text = text.strip()
    if text.startswith("```"):
        text = text.strip("`").removeprefix("json").strip()
    return text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prompts", type=int, default=50)
    parser.add_argument("--feature", default="ticket-triage")
    parser.add_argument("--no-grammar", action="store_true")
    args = parser.parse_args()
    figures = asyncio.run(run(args))
    for key, value in figures.items():
        print(f"{key:24s} {value}")
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
