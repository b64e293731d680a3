"""``bounded index sync|status`` and ``bounded search``: collections from the command line.

The CLI reads the index files directly, as the operator: it sees every document unless
``--label`` narrows it to what a key with those teams would see.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import cast

import typer
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

from bounded.cli.common import ConfigOption, err, load, out
from bounded.config.schema import BoundedConfig

index_app = typer.Typer(help="Sync collections and show their freshness.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    """Add ``index`` and ``search`` to the main app."""
    app.add_typer(index_app, name="index")
    app.command("search")(search)


def _service(config: Path | None) -> tuple[BoundedConfig, object]:
    from bounded.retrieval.service import RetrievalService

    path, cfg = load(config)
    if not cfg.collections:
        err.print(
            f"[red]no collections in {escape(str(path))}[/]; declare some under 'collections:'"
        )
        raise typer.Exit(2)
    return cfg, RetrievalService(cfg)


@index_app.command("sync")
def sync(
    collection: str | None = typer.Argument(None, help="one collection; default: all"),
    config: Path | None = ConfigOption,
) -> None:
    """Sync sources into the index: only new or changed documents are parsed and embedded.

    Exits 1 when any document failed (the others are indexed all the same)."""
    from bounded.retrieval.ingest.sync import Progress as Step
    from bounded.retrieval.service import RetrievalService

    cfg, svc = _service(config)
    assert isinstance(svc, RetrievalService)
    names = [collection] if collection else list(cfg.collections)
    failed = False
    for name in names:
        if name not in cfg.collections:
            err.print(
                f"[red]no collection named {name!r}[/]; defined: {', '.join(cfg.collections)}"
            )
            raise typer.Exit(2)
        columns = (
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TextColumn("[dim]{task.fields[current]}"),
        )
        with Progress(*columns, console=err, transient=False) as bar:
            task = bar.add_task(name, total=None, current="listing sources")

            def step(p: Step, task: TaskID = task, bar: Progress = bar) -> None:
                bar.update(task, completed=p.done, total=p.total, current=escape(p.current[-60:]))

            report = svc.sync(name, progress=step)
        _print_report(report.as_json())
        failed = failed or bool(report.errors)
    svc.close()
    if failed:
        raise typer.Exit(1)


def _print_report(report: dict[str, object]) -> None:
    out.print(
        f"[green]✓[/] {report['collection']}: {report['documents_indexed']} indexed, "
        f"{report['documents_unchanged']} unchanged, {report['documents_deleted']} deleted, "
        f"{report['chunks_written']} chunks written, {report['texts_embedded']} embedded, "
        f"{report['items_unchanged']}/{report['items']} items untouched "
        f"in {report['duration_s']} s"
    )
    errors = report["errors"]
    assert isinstance(errors, list)
    if errors:
        table = Table("document", "error", title=f"{len(errors)} error(s); the rest is indexed")
        for e in errors:
            table.add_row(escape(e["uri"]), escape(e["error"]))
        out.print(table)


@index_app.command("status")
def status(config: Path | None = ConfigOption) -> None:
    """Documents, chunks, last sync and the age of the oldest change not yet synced."""
    from bounded.retrieval.service import RetrievalService

    cfg, svc = _service(config)
    assert isinstance(svc, RetrievalService)
    table = Table(
        "collection",
        "documents",
        "chunks",
        "last sync",
        "pending changes",
        "oldest unsynced",
        "errors",
    )
    for name in cfg.collections:
        s = svc.status(name)
        pending = str(s["pending_changes"])
        if s["unchecked_sources"]:
            pending += f" (+{s['unchecked_sources']} URL source(s) unchecked)"
        table.add_row(
            name,
            str(s["documents"]),
            str(s["chunks"]),
            _age(s["last_sync_age_s"]),
            pending,
            _age(s["oldest_unsynced_change_age_s"]),
            str(s["errors"]),
        )
    out.print(table)
    for name in cfg.collections:
        for e in svc.status(name)["error_details"]:
            out.print(f"  [red]✗[/] {name}: {escape(e['uri'])}: {escape(e['error'])}")
    svc.close()


def search(
    collection: str = typer.Argument(..., help="collection name"),
    query: str = typer.Argument(..., help="what to look for"),
    top_k: int = typer.Option(5, "--top-k", "-k", min=1, max=100),
    mode: str = typer.Option("hybrid", "--mode", "-m", help="bm25, dense or hybrid"),
    label: list[str] = typer.Option(
        [], "--label", "-l", help="see only what these labels may (repeat)"
    ),
    config: Path | None = ConfigOption,
) -> None:
    """Search a collection and print the best chunks."""
    from bounded.retrieval.access import Viewer
    from bounded.retrieval.documents import heading_path
    from bounded.retrieval.search import Mode
    from bounded.retrieval.service import RetrievalService

    if mode not in ("bm25", "dense", "hybrid"):
        err.print("[red]--mode must be bm25, dense or hybrid[/]")
        raise typer.Exit(2)
    cfg, svc = _service(config)
    assert isinstance(svc, RetrievalService)
    if collection not in cfg.collections:
        err.print(f"[red]no collection named {collection!r}[/]")
        raise typer.Exit(2)
    viewer = Viewer.of(*label) if label else Viewer.everything()
    # The first search of a process opens the index, loads the embedding model and reads
    # the vectors into memory: time it apart, so the query time is what a warm gateway sees.
    started = time.perf_counter()
    svc.search(collection, query, viewer=viewer, top_k=top_k, mode=cast(Mode, mode))
    warmed = time.perf_counter()
    hits = svc.search(collection, query, viewer=viewer, top_k=top_k, mode=cast(Mode, mode))
    took = (time.perf_counter() - warmed) * 1000
    loading = (warmed - started) * 1000
    for rank, hit in enumerate(hits, 1):
        c = hit.chunk
        where = heading_path(c.title, c.headings)
        out.print(
            f"[bold]{rank}.[/] {escape(where or c.doc_id)}  [dim]{escape(c.doc_id)} "
            f"score {hit.score:.4f}[/]"
        )
        text = c.text if len(c.text) <= 400 else c.text[:400] + "…"
        out.print(f"   {escape(text)}", highlight=False)
    out.print(
        f"[dim]{len(hits)} result(s) in {took:.1f} ms ({mode}, warm); loading the index and"
        f" model, with a first query, took {loading:.0f} ms[/]"
    )
    svc.close()


def _age(seconds: object) -> str:
    if not isinstance(seconds, int | float):
        return "-"
    if seconds < 120:
        return f"{seconds:.0f} s ago"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min ago"
    return f"{seconds / 3600:.1f} h ago"
