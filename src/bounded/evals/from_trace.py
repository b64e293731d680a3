"""A case from real traffic: ``bounded eval add-from-trace TRACE_ID --suite FILE``.

The trace's stored text (redacted by the telemetry writer; kept only for features whose
``telemetry.store_text`` allows it, until ``text_retention_days``) gives the case: the last
user message as the ``input`` var, the answer as the reference (``metadata.reference``
and a ``similar`` assertion), and the feature's validators as assertions (an output schema
becomes ``is-json`` with that schema). Request vars (``bounded.vars``) are not in traces,
so a templated prompt's other vars must be filled in by hand.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from bounded.config.schema import BoundedConfig
from bounded.evals.errors import SuiteError


def case_from_trace(config: BoundedConfig, trace_id: str) -> dict[str, Any]:
    from bounded.telemetry.store import TraceRepository, open_trace_store, trace_store_url

    db = open_trace_store(trace_store_url(config.server.store), create=False)
    if db is None:
        raise SuiteError("no traces stored yet", hint="traces are written by `bounded serve`")
    try:
        repo = TraceRepository(db)
        requests = repo.requests(trace_id)
        texts = [t for t in repo.texts(trace_id) if t.get("prompt") and t.get("completion")]
    finally:
        db.close()
    if not requests:
        raise SuiteError(f"no trace {trace_id!r}", hint="the x-bounded-trace-id of a response")
    if not texts:
        raise SuiteError(
            f"trace {trace_id!r} has no stored text",
            hint="its feature stores none (high risk, or telemetry.store_text: false), or "
            "its text_retention_days ran out",
        )
    feature = requests[0].get("feature")
    text = texts[-1]
    case: dict[str, Any] = {
        "description": f"from trace {trace_id}",
        "vars": {"input": last_user_message(str(text["prompt"]))},
        "metadata": {"trace_id": trace_id, "feature": feature, "reference": text["completion"]},
        "assert": [{"type": "similar", "value": text["completion"], "threshold": 0.8}],
    }
    spec = config.features.get(feature) if feature else None
    if spec is not None and spec.output is not None and isinstance(spec.output.schema_, dict):
        case["assert"].append({"type": "is-json", "value": spec.output.schema_})
    return case


def last_user_message(prompt: str) -> str:
    """The stored prompt is ``role: content`` lines, one message after another."""
    start = prompt.rfind("user: ")
    if start < 0:
        return prompt
    body = prompt[start + len("user: ") :]
    end = body.find("\nassistant: ")
    return body if end < 0 else body[:end]


def append_case(suite: Path, case: dict[str, Any]) -> None:
    """Append to a tests file (a YAML list) as text, so its comments stay; a promptfoo
    config gets the case in its ``tests`` list (rewritten: its comments are lost)."""
    if not suite.exists() or not suite.read_text(encoding="utf-8").strip():
        suite.write_text(yaml.safe_dump([case], sort_keys=False, allow_unicode=True), "utf-8")
        return
    data = yaml.safe_load(suite.read_text(encoding="utf-8"))
    if data is None or isinstance(data, list):  # None: only comments so far
        text = suite.read_text(encoding="utf-8")
        block = yaml.safe_dump([case], sort_keys=False, allow_unicode=True)
        suite.write_text(text + ("" if text.endswith("\n") else "\n") + block, "utf-8")
        return
    if isinstance(data, dict) and isinstance(data.get("tests", []), list):
        data.setdefault("tests", []).append(case)
        suite.write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True), "utf-8")
        return
    raise SuiteError(
        f"{suite} is neither a list of tests nor a config with a tests list",
        file=suite,
        hint="point --suite at the YAML file its tests: file:// names",
    )
