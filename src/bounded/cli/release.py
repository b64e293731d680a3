"""``bounded release start|status|promote|rollback``: shadow and canary releases.

    bounded release start support-answer --candidate 4 --canary 5%
    bounded release start support-answer --candidate candidate --route route.yaml --shadow 100%
    bounded release status [support-answer] [--json]
    bounded release promote support-answer          # or rollback: by hand, at once
    bounded release answers support-answer [--limit N] [--json]   # a shadow's answer pairs

State lives in the store named in bounded.yaml, so these work with the gateway stopped and
every replica serves the change within a second. A running gateway's evaluator decides on
its own when the feature's ``release`` rules allow; promote and rollback here are the
person's override, recorded in the audit log like the automatic decisions.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import typer
import yaml
from pydantic import ValidationError
from rich.markup import escape
from rich.table import Table

from bounded.audit.log import actor_from_env
from bounded.cli.common import ConfigOption, err, out
from bounded.cli.release_common import _fail, _feature, _open, release_app
from bounded.config.schema import BoundedConfig, RouteConfig
from bounded.errors import BoundedError


def register(app: typer.Typer) -> None:
    app.add_typer(release_app, name="release")


def parse_share(value: str, flag: str) -> float:
    """``5%``, ``5`` or ``100%``: a percentage of traffic."""
    text = value.strip().removesuffix("%").strip()
    try:
        pct = float(text)
    except ValueError:
        _fail(f"{flag} {value!r} is not a percentage", f"write it like {flag} 5%")
    if not 0 < pct <= 100:
        _fail(f"{flag} {value!r} is out of range", "a share above 0% and at most 100%")
    return pct / 100


def read_route(path: Path, cfg: BoundedConfig) -> RouteConfig:
    """A route file: the fields of a feature's ``route`` (``targets``, ``strategy``...),
    at the top level or under ``route:``."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        _fail(f"{path}: {exc.strerror or exc}", "give the path of a YAML route file")
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark is not None else str(path)
        _fail(f"{where}: not valid YAML ({getattr(exc, 'problem', exc)})")
    if isinstance(data, dict) and isinstance(data.get("route"), dict):
        data = data["route"]
    if not isinstance(data, dict):
        _fail(f"{path}: a route is a mapping", "for example: targets: [gpt-4o-mini, smollm2]")
    try:
        route = RouteConfig.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = ".".join(str(p) for p in first["loc"]) or "<root>"
        _fail(f"{path}: {loc}: {first['msg']}", "the fields of a feature's route in bounded.yaml")
    unknown = [t for t in route.targets if t not in cfg.models]
    if unknown:
        _fail(
            f"{path}: targets name no model: {', '.join(unknown)}",
            f"models in the config: {', '.join(cfg.models) or 'none'}",
        )
    return route


@release_app.command("start")
def start(
    feature: str = typer.Argument(..., help="the feature (as in bounded.yaml)"),
    candidate: str | None = typer.Option(
        None, "--candidate", help="prompt version to release: a number or a label"
    ),
    route: Path | None = typer.Option(None, "--route", help="a YAML route for the candidate"),
    shadow: str | None = typer.Option(None, "--shadow", help="mirror this share, e.g. 100%"),
    canary: str | None = typer.Option(None, "--canary", help="serve this share, e.g. 5%"),
    config: Path | None = ConfigOption,
) -> None:
    """Start a shadow or canary release of FEATURE's candidate."""
    if (shadow is None) == (canary is None):
        _fail("give exactly one of --shadow PCT and --canary PCT")
    if candidate is None and route is None:
        _fail("nothing to release", "give --candidate PROMPT_VERSION, --route FILE, or both")
    mode = "shadow" if shadow is not None else "canary"
    share = parse_share(shadow or canary or "", f"--{mode}")
    with _open(config) as (cfg, store):
        _start(cfg, store, feature, candidate, route, mode, share)


def _start(
    cfg: BoundedConfig,
    store: Any,
    feature: str,
    candidate: str | None,
    route: Path | None,
    mode: str,
    share: float,
) -> None:
    from bounded.releases.gate import gate_required, passing_run

    _feature(cfg, feature)
    candidate_route = read_route(route, cfg) if route is not None else None
    version = None
    if candidate is not None:
        try:
            version = store.prompts.get(feature, candidate).version
        except BoundedError as exc:
            _fail(exc.message, f"push one with `bounded prompt push {feature} FILE`")
    gate = None
    spec = cfg.features[feature]
    if gate_required(spec, mode):
        gate = passing_run(store.db, feature, version)
        if gate is None:
            why = "risk tier high" if spec.risk_tier == "high" else "release.require_eval"
            _fail(
                f"{feature!r} needs a passing eval run of prompt version {version} before a "
                f"canary ({why})",
                f"bounded eval run SUITE --target {feature} --prompt-version {version}; "
                "or start with --shadow, which users never see",
            )
    try:
        release = store.start(
            feature,
            mode=mode,
            share=share,
            candidate_prompt=version,
            route=candidate_route,
            actor=actor_from_env(),
            gate=gate,
        )
    except BoundedError as exc:
        _fail(exc.message)
    what = f"prompt version {version}" if version is not None else "the feature's prompt"
    if candidate_route is not None:
        what += f" on route {', '.join(candidate_route.targets)}"
    out.print(
        f"release [bold]{release.id}[/] of {escape(feature)}: {mode} {share:.0%}, {escape(what)}"
        f" against prompt version {release.stable_prompt}"
    )


@release_app.command("status")
def status(
    feature: str | None = typer.Argument(None, help="one feature (default: all)"),
    as_json: bool = typer.Option(False, "--json", help="print JSON"),
    config: Path | None = ConfigOption,
) -> None:
    """Running releases with each signal per arm; the last decisions."""
    from bounded.releases.evaluator import Evaluator
    from bounded.releases.signals import cost_by_arm

    with _open(config) as (cfg, store):
        if feature is not None:
            _feature(cfg, feature)
        evaluator = Evaluator(store, lambda: cfg)
        report = []
        for release in store.latest(feature, limit=10):
            entry = release.json()
            if release.state == "running" and release.feature in cfg.features:
                entry["live"] = evaluator.evaluate(release).as_dict()
                entry["cost_usd_by_arm"] = cost_by_arm(store.db, release)
            report.append(entry)
    if as_json:
        out.print_json(json.dumps(report))
        return
    if not report:
        out.print("no releases" + (f" of {escape(feature)}" if feature else ""))
        return
    for entry in report:
        _print_release(entry)


def _print_release(entry: dict[str, Any]) -> None:
    started = datetime.fromtimestamp(entry["started_at"], UTC).strftime("%Y-%m-%d %H:%M:%S")
    out.print(
        f"[bold]{escape(entry['feature'])}[/] release {entry['id']}: {entry['mode']} "
        f"{entry['share']:.0%}, prompt {entry['stable_prompt']} -> {entry['candidate_prompt']}, "
        f"[bold]{entry['state']}[/] (started {started} UTC by {escape(entry['started_by'])})"
    )
    verdict = entry.get("live") or (entry.get("decision") or {}).get("verdict")
    if entry["state"] != "running" and entry.get("decision"):
        who = escape(entry.get("ended_by") or "?")
        out.print(f"  decided by {who}: {escape(verdict['reason'] if verdict else '-')}")
    elif verdict:
        out.print(f"  now: {escape(verdict['reason'])}")
    cost = entry.get("cost_usd_by_arm") or (entry.get("decision") or {}).get("cost_usd_by_arm")
    if cost:
        out.print("  cost: " + ", ".join(f"{arm} ${usd:.6f}" for arm, usd in sorted(cost.items())))
    if not verdict:
        return
    table = Table(
        "signal", "stable", "candidate", "n", "interval (cand - stable)", "allowed", "state"
    )
    for s in verdict["signals"]:
        interval = s["interval"]
        shown = "-" if interval is None else f"[{interval['low']:+.4f}, {interval['high']:+.4f}]"
        table.add_row(
            s["signal"],
            f"{s['stable']:.4g}",
            f"{s['candidate']:.4g}",
            f"{s['n_stable']} / {s['n_candidate']}",
            shown,
            f"{s['margin']:.4g}",
            s["state"],
        )
    out.print(table)


def _end(feature: str, state: str, config: Path | None) -> None:
    from bounded.releases.evaluator import Evaluator
    from bounded.releases.signals import cost_by_arm

    with _open(config) as (cfg, store):
        _feature(cfg, feature)
        release = store.running(feature)
        if release is None:
            _fail(f"{feature!r} has no release running", f"see `bounded release status {feature}`")
        evidence = {
            "automatic": False,
            "verdict": Evaluator(store, lambda: cfg).evaluate(release).as_dict(),
            "cost_usd_by_arm": cost_by_arm(store.db, release),
        }
        ended = store.end(release.id, state, actor=actor_from_env(), evidence=evidence)
    if ended is None:
        _fail(
            f"release {release.id} was decided meanwhile", f"see `bounded release status {feature}`"
        )
    verb = "promoted" if state == "promoted" else "rolled back"
    out.print(f"release {ended.id} of {escape(feature)} {verb}")


@release_app.command("promote")
def promote(
    feature: str = typer.Argument(..., help="the feature whose release to promote"),
    config: Path | None = ConfigOption,
) -> None:
    """Make the candidate production now (prompt label and route, in one step)."""
    _end(feature, "promoted", config)


@release_app.command("rollback")
def rollback(
    feature: str = typer.Argument(..., help="the feature whose release to roll back"),
    config: Path | None = ConfigOption,
) -> None:
    """Serve the stable arm only, now (routing and prompt label, in one step)."""
    _end(feature, "rolled_back", config)


def promoted_routes(cfg: BoundedConfig) -> dict[str, Any]:
    """Routes releases promoted (``{feature: PromotedRoute}``), for ``bounded models``: the
    route each feature is served with. Empty when the store has none or cannot be read
    (a store not created yet, a database down: the file's routes are then all there is)."""
    from bounded.releases.store import ReleaseStore
    from bounded.store.db import Database
    from bounded.store.urls import dialect_of, sqlite_path

    url = cfg.server.store
    if dialect_of(url) == "sqlite" and not sqlite_path(url).exists():
        return {}
    try:
        db = Database.open(url, migrate=False)
    except Exception as exc:  # the store is down: say so, show the file's routes
        err.print(f"[yellow]warning[/]: promoted routes unknown, store unreadable: {exc}")
        return {}
    try:
        return ReleaseStore(db).promoted_routes()
    except Exception:  # a store from before releases (no feature_routes table)
        return {}
    finally:
        db.close()


# `bounded release answers` lives in its own module (it registers on release_app).
from bounded.cli import release_answers as _answers  # noqa: E402, F401
