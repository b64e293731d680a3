"""``bounded release answers FEATURE``: a shadow release's two answers to each request.

    bounded release answers support-answer              # the newest 10 pairs
    bounded release answers support-answer --limit 50 --json
    bounded release answers support-answer --differ      # only where the arms disagree
    bounded release answers support-answer --release 3f9a0c1d2e4b5a69

Per mirrored request: what the user got (stable) and what the candidate answered (shadow),
each with its status, validation, latency, cost, deployment and prompt version, and its
answer text where the feature's telemetry policy stores text (redacted, as stored). Read
from the store and the trace store named in bounded.yaml, so it works with the gateway
stopped.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import typer
from rich.markup import escape
from rich.table import Table

from bounded.cli.common import ConfigOption, out
from bounded.cli.release_common import _fail, _feature, _open, release_app
from bounded.errors import BoundedError

SHOWN_CHARS = 160  # of each answer in the table; --json has all of it


@release_app.command("answers")
def answers(
    feature: str = typer.Argument(..., help="the feature (as in bounded.yaml)"),
    limit: int = typer.Option(10, "--limit", "-n", help="pairs to show, newest first (1-200)"),
    release_id: str | None = typer.Option(
        None, "--release", help="a release id (default: the feature's newest shadow)"
    ),
    differ: bool = typer.Option(
        False, "--differ", help="only pairs where one arm failed validation or erred"
    ),
    as_json: bool = typer.Option(False, "--json", help="print JSON, answers in full"),
    config: Path | None = ConfigOption,
) -> None:
    """A shadow release's answers side by side: stable (what users got) and candidate."""
    from bounded.releases.answers import MAX_LIMIT, pairs_report, pick_release

    if not 1 <= limit <= MAX_LIMIT:
        _fail(f"--limit {limit} is out of range", f"a number of pairs from 1 to {MAX_LIMIT}")
    with _open(config) as (cfg, store):
        _feature(cfg, feature)
        try:
            release = pick_release(store, feature, release_id)
        except BoundedError as exc:
            _fail(exc.message, f"see `bounded release status {feature}`")
        traces = _trace_store(cfg.server.store)
        try:
            report = pairs_report(
                store.db, traces, release, cfg.features[feature], limit=limit, differ=differ
            )
        finally:
            if traces is not None:
                traces.close()
    if as_json:
        out.print_json(json.dumps(report))
        return
    _print(report)


def _trace_store(store_url: str) -> Any:
    from bounded.telemetry.store import open_trace_store, trace_store_url

    return open_trace_store(trace_store_url(store_url), create=False)


def _print(report: dict[str, Any]) -> None:
    rel = report["release"]
    route = f" on route {', '.join(rel['candidate_route'])}" if rel["candidate_route"] else ""
    out.print(
        f"[bold]{escape(report['feature'])}[/] shadow release {rel['id']} ({rel['state']}, "
        f"{rel['share']:.0%} mirrored): prompt {rel['stable_prompt']} (stable) vs "
        f"{rel['candidate_prompt'] if rel['candidate_prompt'] is not None else 'the same'}"
        f"{escape(route)} (shadow)"
    )
    policy = report["text_policy"]
    style = "dim" if policy["stored"] else "yellow"
    out.print(f"  [{style}]{escape(policy['note'])}[/]")
    if not report["data"]:
        if report["only_differing"]:
            out.print("no pair where the arms differ (validation or a 5xx) among those mirrored")
        else:
            out.print("no mirrored requests yet: send traffic to the feature through the gateway")
        return
    table = Table(
        "trace", "arm", "status", "validation", "latency", "cost", "deployment", "prompt", "answer"
    )
    for pair in report["data"]:
        when = datetime.fromtimestamp(pair["ts"], UTC).strftime("%H:%M:%S")
        label = f"{pair['trace_id'][:16]}\n[dim]{when} UTC[/]"
        for arm in ("stable", "shadow"):
            answer = pair[arm]
            if answer is None:
                table.add_row(label, arm, "-", "-", "-", "-", "-", "-", "[dim]no ledger row[/]")
            else:
                table.add_row(label, arm, *_cells(answer, policy["stored"]))
            label = ""
        table.add_section()
    out.print(table)


def _cells(answer: dict[str, Any], stored: bool) -> list[str]:
    status = str(answer["status"])
    if answer["error_class"]:
        status += f" {answer['error_class']}"
    validation = answer["validation"] or "-"
    if answer["passes"] > 1:
        validation += f" ({answer['passes']} passes)"
    text = answer.get("text")
    if text is None:
        shown = "[dim](not stored)[/]" if stored else "[dim](text not stored by policy)[/]"
    else:
        flat = " ".join(text.split())
        shown = escape(flat if len(flat) <= SHOWN_CHARS else flat[: SHOWN_CHARS - 1] + "…")
    return [
        escape(status),
        escape(validation),
        f"{answer['latency_ms']:,.0f} ms",
        f"${answer['cost_usd']:.6f}",
        escape(answer["deployment"] or "-"),
        escape(answer["prompt_version"] or "-"),
        shown,
    ]
