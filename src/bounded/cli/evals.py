"""``bounded eval``: run promptfoo suites through the gateway, gate them, keep the runs.

    bounded eval run promptfooconfig.yaml --target support-answer -j 8 --html report.html
    bounded eval run suite.yaml --baseline ev_20261202... --repeat 3     # judge noise
    bounded eval list [--feature F]
    bounded eval show RUN

Exit codes of ``run``: 0 the gate passed, 100 it failed (``PROMPTFOO_FAILED_TEST_EXIT_CODE``
replaces it), 1 the suite is broken (file, line and a hint printed; nothing stored).
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import typer
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from bounded.cli.common import ConfigOption, err, load, out

eval_app = typer.Typer(help="Eval suites (promptfoo configs as written) and their runs.")


def register(app: typer.Typer) -> None:
    app.add_typer(eval_app, name="eval")


def _suite_error(exc: Exception) -> None:
    from bounded.evals.errors import SuiteError

    assert isinstance(exc, SuiteError)
    where = exc.where()
    err.print(
        f"[bold red]suite error[/]{' in ' + escape(where) if where else ''}: {escape(exc.message)}"
    )
    if exc.hint:
        err.print(f"  [dim]hint:[/] {escape(exc.hint)}")


def _writable(path: Path | None, flag: str) -> None:
    if path is not None and not path.parent.exists():
        err.print(
            f"[red]{flag} {escape(str(path))}: folder {escape(str(path.parent))} does not exist[/]"
        )
        raise typer.Exit(1)


@eval_app.command("run")
def run(
    suite: Path = typer.Argument(..., help="promptfooconfig.yaml (or bounded's suite format)"),
    target: str | None = typer.Option(None, help="feature or model every provider runs against"),
    prompt_version: str | None = typer.Option(
        None, "--prompt-version", help="prompt version to render"
    ),
    output: Path | None = typer.Option(
        None, "--output", "-o", help="JSON report (promptfoo shape)"
    ),
    junit: Path | None = typer.Option(None, "--junit", help="JUnit XML report"),
    html: Path | None = typer.Option(None, "--html", help="self-contained HTML report"),
    baseline: str | None = typer.Option(None, help="run id or report .json to compare with"),
    repeat: int = typer.Option(1, min=1, max=20, help="grade judged assertions N times"),
    jobs: int = typer.Option(4, "-j", "--max-concurrency", min=1, max=256, help="cases at once"),
    url: str | None = typer.Option(None, help="a running gateway (default: one in this process)"),
    api_key: str | None = typer.Option(None, envvar="BOUNDED_API_KEY", help="key for --url"),
    no_store: bool = typer.Option(False, "--no-store", help="do not keep the run in the store"),
    config: Path | None = ConfigOption,
) -> None:
    """Run a suite through the gateway; exit 0 if the gate passes, 100 if not, 1 if broken."""
    from bounded.evals.errors import SuiteError
    from bounded.evals.service import EvalRequest, execute, prepare
    from bounded.store.db import Database

    for path, flag in ((output, "--output"), (junit, "--junit"), (html, "--html")):
        _writable(path, flag)
    if url is not None and not api_key:
        err.print("[red]--url needs a key[/]: pass --api-key or set BOUNDED_API_KEY")
        raise typer.Exit(1)
    cfg = load(config)[1]
    db = Database.open(cfg.server.store)
    req = EvalRequest(
        suite, cfg, db, target, prompt_version, repeat, jobs, url, api_key, baseline, not no_store
    )
    try:
        prepared = prepare(req)
    except SuiteError as exc:
        _suite_error(exc)
        raise typer.Exit(1) from None
    total = len(prepared[0].cases) * len(prepared[0].prompts) * len(prepared[0].providers)
    progress = Progress(
        TextColumn("[bold]eval[/]"), BarColumn(), MofNCompleteColumn(),
        TextColumn("[green]{task.fields[ok]} ✓[/] [red]{task.fields[bad]} ✗[/]"),
        TimeElapsedColumn(), console=err, transient=False,
    )  # fmt: skip
    counts = {"ok": 0, "bad": 0}
    with progress:
        task = progress.add_task("cases", total=total, ok=0, bad=0)

        def tick(result: Any) -> None:
            counts["ok" if result.passed else "bad"] += 1
            progress.update(task, advance=1, ok=counts["ok"], bad=counts["bad"])

        outcome = asyncio.run(execute(req, prepared, tick))
    db.close()
    _write_reports(outcome, output, junit, html)
    _summary(outcome)
    raise typer.Exit(outcome.verdict.exit_code)


def _write_reports(
    outcome: Any, output: Path | None, junit: Path | None, html: Path | None
) -> None:
    from bounded.evals.reports.html import html_report
    from bounded.evals.reports.junit import junit_xml

    if output is not None:
        output.write_text(json.dumps(outcome.report, indent=2, default=str) + "\n", "utf-8")
    if junit is not None:
        name = outcome.suite.description or str(outcome.suite.path)
        junit.write_text(junit_xml(name, outcome.results), "utf-8")
    if html is not None:
        html.write_text(html_report(outcome.report, outcome.baseline_results), "utf-8")


def _summary(outcome: Any) -> None:
    b = outcome.report["bounded"]
    s = outcome.report["results"]["stats"]
    failed = [r for r in outcome.report["results"]["results"] if not r["success"]]
    if failed:
        table = Table("failing case", "provider", "reason", title="failures")
        for r in failed[:20]:
            name = r["testCase"]["description"] or json.dumps(r["vars"])[:60]
            reason = r["error"] or r["gradingResult"]["reason"]
            table.add_row(escape(name), escape(r["provider"]["label"]), escape(str(reason)[:160]))
        out.print(table)
        if len(failed) > 20:
            out.print(f"[dim]... and {len(failed) - 20} more[/]")
    out.print(
        f"run [bold]{b['run_id']}[/]: {s['successes']} passed, {s['failures']} failed, "
        f"{s['errors']} errors ({b['pass_rate']:.1%}); cost ${b['cost_usd']:.6f}; "
        f"p95 {b['latency_p95_ms']:.0f} ms"
        + (f"; judge spread ±{b['judge_spread'] * 100:.1f} pts" if b["repeat"] > 1 else "")
    )
    base = b.get("baseline")
    if base:
        out.print(
            f"vs {base['run_id']}: {base['baseline_pass_rate']:.1%} → {base['pass_rate']:.1%}; "
            f"{len(base['newly_failing'])} newly failing, "
            f"{len(base['newly_passing'])} newly passing"
            + (
                f" ({len(base['within_judge_noise'])} within judge noise)"
                if base["within_judge_noise"]
                else ""
            )
        )
        for key in base["newly_failing"][:10]:
            out.print(f"  [red]✗ newly failing[/] {escape(key)}")
        for key in base["newly_passing"][:10]:
            out.print(f"  [green]✓ newly passing[/] {escape(key)}")
    gate = b["gate"]
    if gate["passed"]:
        out.print("[bold green]gate passed[/]")
    else:
        out.print(f"[bold red]gate failed[/] (exit {outcome.verdict.exit_code}):")
        for reason in gate["reasons"]:
            out.print(f"  [red]✗[/] {escape(reason)}")


@eval_app.command("list")
def list_runs(
    feature: str | None = typer.Option(None, help="only runs of this feature"),
    limit: int = typer.Option(20, min=1, max=1000),
    config: Path | None = ConfigOption,
) -> None:
    """The newest eval runs in the store."""
    from bounded.evals.store import list_runs as runs
    from bounded.store.db import Database

    db = Database.open(load(config)[1].server.store)
    table = Table("run", "when (UTC)", "suite", "feature", "prompt", "pass rate", "gate", "cost $")
    for r in runs(db, feature, limit):
        when = time.strftime("%Y-%m-%d %H:%M", time.gmtime(r.created_at))
        table.add_row(
            r.id, when, escape(r.suite), r.feature or "-", r.prompt_version or "-",
            f"{r.pass_rate:.1%} ({r.successes}/{r.successes + r.failures + r.errors})",
            "[green]pass[/]" if r.passed else "[red]fail[/]", f"{r.cost_usd:.6f}",
        )  # fmt: skip
    out.print(table)


@eval_app.command("show")
def show(
    run_id: str = typer.Argument(..., metavar="RUN"),
    as_json: bool = typer.Option(False, "--json", help="the run's cases as JSON"),
    config: Path | None = ConfigOption,
) -> None:
    """One run: its gate, and each case's verdict."""
    from bounded.evals.store import get_run, run_cases
    from bounded.store.db import Database

    db = Database.open(load(config)[1].server.store)
    run_row = get_run(db, run_id)
    if run_row is None:
        err.print(f"[red]no eval run {escape(run_id)!r}[/]; `bounded eval list` shows the runs")
        raise typer.Exit(1)
    cases = run_cases(db, run_id)
    if as_json:
        out.print_json(json.dumps({"run": run_row.summary, "cases": cases}, default=str))
        return
    gate = run_row.summary["gate"]
    out.print(
        f"[bold]{run_row.id}[/] {escape(run_row.suite)} · feature {run_row.feature or '-'} · "
        f"{run_row.pass_rate:.1%} · gate "
        + ("[green]passed[/]" if gate["passed"] else "[red]failed[/]")
    )
    for reason in gate["reasons"]:
        out.print(f"  [red]✗[/] {escape(reason)}")
    table = Table("", "case", "provider", "score", "reason")
    for c in cases:
        name = c["testCase"]["description"] or json.dumps(c["vars"])[:60]
        mark = "[green]✓[/]" if c["success"] else "[red]✗[/]"
        reason = c["error"] or c["gradingResult"]["reason"]
        table.add_row(mark, escape(name), escape(c["provider"]["label"]), f"{c['score']:.2f}",
                      escape(str(reason)[:120]))  # fmt: skip
    out.print(table)


@eval_app.command("add-from-trace")
def add_from_trace(
    trace_id: str = typer.Argument(..., metavar="TRACE_ID"),
    suite: Path = typer.Option(..., "--suite", help="tests YAML (a list) or promptfoo config"),
    config: Path | None = ConfigOption,
) -> None:
    """Append a case made from a real request: its input, its answer as the reference,
    and its feature's validators as assertions."""
    from bounded.evals.errors import SuiteError
    from bounded.evals.from_trace import append_case, case_from_trace

    cfg = load(config)[1]
    try:
        case = case_from_trace(cfg, trace_id)
        append_case(suite, case)
    except SuiteError as exc:
        _suite_error(exc)
        raise typer.Exit(1) from None
    kinds = ", ".join(a["type"] for a in case["assert"])
    out.print(
        f"[green]✓[/] appended {escape(case['description'])} to {escape(str(suite))} ({kinds})"
    )
