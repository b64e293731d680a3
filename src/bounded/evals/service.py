"""One eval run from start to stored verdict: what ``bounded eval run`` does.

    outcome = await execute(EvalRequest(Path("promptfooconfig.yaml"), config=cfg, db=db))
    outcome.verdict.exit_code        # 0 pass, 100 fail

Everything that can make the suite unrunnable (YAML, unknown assertion or provider, a
missing file://, a bad CSV header, an unknown baseline) raises :class:`SuiteError` before
the first call, and nothing is stored unless the whole run finished.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bounded.config.schema import BoundedConfig
from bounded.evals.client import Gateway, in_process
from bounded.evals.errors import SuiteError
from bounded.evals.gate import Comparison, Verdict, compare, decide, stats
from bounded.evals.model import Suite
from bounded.evals.reports.json_report import report as build_report
from bounded.evals.runner import CaseResult, preflight, run_suite
from bounded.evals.settings import EvalGate
from bounded.evals.store import get_run, new_run_id, run_cases, save_run
from bounded.evals.suite import load_suite
from bounded.store.db import Database


@dataclass(slots=True)
class EvalRequest:
    suite_path: Path
    config: BoundedConfig
    db: Database
    target: str | None = None
    prompt_version: str | None = None
    repeat: int = 1
    concurrency: int = 4
    url: str | None = None
    api_key: str | None = None
    baseline: str | None = None
    store: bool = True


@dataclass(slots=True)
class EvalOutcome:
    run_id: str
    suite: Suite
    results: list[CaseResult]
    report: dict[str, Any]
    verdict: Verdict
    comparison: Comparison | None
    baseline_results: dict[str, dict[str, Any]] | None


def prepare(req: EvalRequest) -> tuple[Suite, dict[str, dict[str, Any]] | None]:
    """Load and check everything before the first call."""
    suite = load_suite(req.suite_path, target=req.target)
    preflight(suite, req.config)
    return suite, load_baseline(req.db, req.baseline) if req.baseline else None


def load_baseline(db: Database, ref: str) -> dict[str, dict[str, Any]]:
    """A baseline is a stored run id or a JSON report file (bounded's or promptfoo's)."""
    path = Path(ref)
    if path.suffix == ".json" and path.is_file():
        try:
            rows = json.loads(path.read_text(encoding="utf-8"))["results"]["results"]
        except (ValueError, KeyError, TypeError) as exc:
            raise SuiteError(
                f"{ref} is not an eval report: {exc}",
                file=ref,
                hint="pass a run id from `bounded eval list` or a --output file",
            ) from None
        return {_key(r): r for r in rows}
    if get_run(db, ref) is None:
        raise SuiteError(
            f"no eval run {ref!r} in the store",
            hint="`bounded eval list` shows the stored runs; or pass a report .json file",
        )
    return {_key(r): r for r in run_cases(db, ref)}


def _key(row: dict[str, Any]) -> str:
    mine = (row.get("bounded") or {}).get("key")
    if mine:
        return str(mine)
    # a promptfoo report: the same parts bounded's keys are made of
    case = row.get("testCase") or {}
    test = case.get("description") or json.dumps(row.get("vars") or {}, sort_keys=True)
    prompt = (row.get("prompt") or {}).get("label")
    return f"{test} | {prompt} | {(row.get('provider') or {}).get('label')}"


def _feature(suite: Suite, config: BoundedConfig) -> str | None:
    targets = {p.target for p in suite.providers if not p.echo}
    if len(targets) == 1:
        (only,) = targets
        return only if only in config.features else None
    return None


@contextlib.asynccontextmanager
async def _gateway(req: EvalRequest, session: str) -> AsyncIterator[Gateway]:
    if req.url is not None:
        async with Gateway(req.url, req.api_key or "", session) as gateway:
            yield gateway
        return
    with in_process(req.config, req.db) as (url, key):
        async with Gateway(url, key, session) as gateway:
            yield gateway


async def execute(
    req: EvalRequest,
    prepared: tuple[Suite, dict[str, dict[str, Any]] | None] | None = None,
    on_result: Callable[[CaseResult], None] | None = None,
) -> EvalOutcome:
    suite, baseline = prepared or prepare(req)
    run_id = new_run_id()
    created, started = time.time(), time.perf_counter()
    async with _gateway(req, f"eval:{run_id}") as gateway:
        results = await run_suite(
            suite,
            gateway,
            judge_model=req.config.evals.judge,
            repeat=max(1, req.repeat),
            concurrency=req.concurrency,
            prompt_version=req.prompt_version,
            on_result=on_result,
        )
    s = stats(results)
    comparison = (
        compare(results, req.baseline or "", {k: bool(v["success"]) for k, v in baseline.items()})
        if baseline is not None
        else None
    )
    feature = _feature(suite, req.config)
    rules: EvalGate | None = req.config.features[feature].eval if feature else None
    verdict = decide(s, comparison, rules)
    meta = {
        "created_at": created,
        "duration_ms": (time.perf_counter() - started) * 1000,
        "suite": str(req.suite_path),
        "feature": feature,
        "target": req.target or ",".join(sorted({p.target for p in suite.providers})),
        "prompt_version": req.prompt_version,
        "repeat": max(1, req.repeat),
        "concurrency": req.concurrency,
        "url": req.url,
    }
    report = build_report(run_id, suite, results, s, verdict, comparison, meta)
    if req.store:
        save_run(req.db, report)
    return EvalOutcome(run_id, suite, results, report, verdict, comparison, baseline)
