"""What checking a request against the schema costs: parse + depth check + validation.

    .venv/bin/python bench/request_schema.py [--bytes 1024] [--n 20000]

Target (issue 9): under 0.05 ms per request for a 1 KB body. Prints µs per body for
parsing alone, and for parsing plus the schema (the gateway's ``body`` stage); the last
line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import time

import orjson

from bounded.gateway.api_schema import check_chat
from bounded.gateway.validate import parse_json_object

TEXT = (
    "Hello, I ordered a pair of running shoes last week and they arrived in the wrong size. "
    "Could you tell me how the exchange works and how long the new pair takes? "
)


def body(size: int) -> bytes:
    tools = [
        {
            "type": "function",
            "function": {
                "name": "lookup_order",
                "description": "Find an order",
                "parameters": {
                    "type": "object",
                    "properties": {"order_id": {"type": "string"}},
                    "required": ["order_id"],
                },
            },
        }
    ]
    payload = {
        "model": "support-answer",
        "messages": [
            {"role": "system", "content": "You are a concise support assistant."},
            {"role": "user", "content": ""},
        ],
        "temperature": 0.2,
        "max_tokens": 200,
        "tools": tools,
        "stream": False,
    }
    empty = len(orjson.dumps(payload))
    payload["messages"][1]["content"] = (TEXT * (size // len(TEXT) + 1))[: max(0, size - empty)]
    return orjson.dumps(payload)


def per_call_us(fn: object, raw: bytes, n: int) -> float:
    best = float("inf")
    for _ in range(5):
        started = time.perf_counter()
        for _ in range(n):
            fn(raw)  # type: ignore[operator]
        best = min(best, (time.perf_counter() - started) / n * 1e6)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bytes", type=int, default=1024)
    parser.add_argument("--n", type=int, default=20000)
    args = parser.parse_args()
    raw = body(args.bytes)
    parse = per_call_us(parse_json_object, raw, args.n)
    full = per_call_us(lambda b: check_chat(parse_json_object(b)), raw, args.n)
    figures = {
        "body_bytes": len(raw),
        "parse_us": round(parse, 2),
        "parse_and_schema_us": round(full, 2),
        "schema_us": round(full - parse, 2),
        "target_us": 50,
        "met": full < 50,
    }
    print(
        f"{len(raw)}-byte body: parse {parse:.1f} µs, parse + schema {full:.1f} µs "
        f"(schema {full - parse:.1f} µs; target < 50 µs: {'met' if full < 50 else 'MISSED'})"
    )
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
