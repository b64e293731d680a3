"""A self-contained HTML page of a run (no CDN, no script): the gate's verdict, then every
case with its output beside the baseline's, failing assertions highlighted."""

from __future__ import annotations

import json
from importlib import resources
from typing import Any

import jinja2


def html_report(report: dict[str, Any], baseline: dict[str, dict[str, Any]] | None = None) -> str:
    """``report`` is the JSON report; ``baseline`` maps case keys to the baseline's results."""
    source = (resources.files(__package__) / "templates" / "report.html.j2").read_text("utf-8")
    env = jinja2.Environment(autoescape=True, trim_blocks=True, lstrip_blocks=True)
    template = env.from_string(source)
    results = report["results"]["results"]
    rows = []
    for r in results:
        key = r["bounded"]["key"]
        before = (baseline or {}).get(key)
        rows.append(
            {
                "r": r,
                "output": _text(r),
                "failed": [
                    c
                    for c in (r["gradingResult"] or {}).get("componentResults", [])
                    if not c["pass"]
                ],
                "passed_asserts": [
                    c for c in (r["gradingResult"] or {}).get("componentResults", []) if c["pass"]
                ],
                "before": before,
                "before_output": _text(before) if before else None,
                "change": _change(before, r),
            }
        )
    return template.render(
        report=report, b=report["bounded"], rows=rows, has_baseline=bool(baseline)
    )


def _text(r: dict[str, Any]) -> str:
    if r.get("error"):
        return f"[error] {r['error']}"
    output = (r.get("response") or {}).get("output")
    return output if isinstance(output, str) else json.dumps(output, indent=2)


def _change(before: dict[str, Any] | None, now: dict[str, Any]) -> str:
    if before is None:
        return ""
    if before["success"] and not now["success"]:
        return "newly failing"
    if now["success"] and not before["success"]:
        return "newly passing"
    return ""
