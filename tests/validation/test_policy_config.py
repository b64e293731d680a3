"""Validation settings in bounded.yaml: every mistake named with its path, tiers' defaults
explained, and a broken edit refused by hot reload while the running config is kept."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from bounded.config.loader import ConfigError, load_config
from tests.e2e.server import ADMIN_KEY as KEY
from tests.e2e.server import BoundedServer, run_cli

SCHEMA = {"type": "object", "properties": {"total": {"type": "number"}}, "required": ["total"]}


def write(folder: Path, **feature: Any) -> Path:
    data = {
        "providers": {"up": {"kind": "openai", "base_url": "http://127.0.0.1:9/v1"}},
        "models": {"m": {"provider": "up", "model": "m"}, "n": {"provider": "up", "model": "n"}},
        "features": {"f": {"owner": "o", "route": {"targets": ["m"]}, **feature}},
    }
    path = folder / "bounded.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def problems(path: Path) -> dict[str, str]:
    with pytest.raises(ConfigError) as info:
        load_config(path)
    return {p.path: f"{p.message} | {p.hint}" for p in info.value.problems}


def test_a_schema_file_is_read_relative_to_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "schemas").mkdir()
    (tmp_path / "schemas" / "invoice.json").write_text(json.dumps(SCHEMA))
    config = load_config(write(tmp_path, output={"schema": "schemas/invoice.json"}))
    output = config.features["f"].output
    assert output is not None and output.schema_ == SCHEMA


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (None, "does not exist"),
        ("{not json", "not valid JSON"),
        (json.dumps({"type": "objekt"}), "not a valid JSON Schema"),
        (json.dumps([1]), "must be an object"),
    ],
)
def test_a_bad_schema_file_is_named(tmp_path: Path, content: str | None, expected: str) -> None:
    if content is not None:
        (tmp_path / "s.json").write_text(content)
    found = problems(write(tmp_path, output={"schema": str(tmp_path / "s.json")}))
    assert expected in found["features.f.output.schema"]


def test_guard_mistakes_are_named_with_their_path(tmp_path: Path) -> None:
    found = problems(
        write(
            tmp_path,
            guards={
                "input": [{"kind": "piii"}, {"kind": "pii", "action": "drop"}],
                "output": [{"kind": "pii", "entities": ["email", "dna"]}],
            },
        )
    )
    assert "unknown guard kind 'piii'" in found["features.f.guards.input[0].kind"]
    assert "known kinds:" in found["features.f.guards.input[0].kind"]
    assert "not an action for input" in found["features.f.guards.input[1].action"]
    assert "dna" in found["features.f.guards.output[0]"]  # the detector's own check


def test_a_threshold_out_of_range_is_named(tmp_path: Path) -> None:
    found = problems(write(tmp_path, guards={"input": [{"kind": "injection", "threshold": 1.5}]}))
    assert "less than or equal to 1" in found["features.f.guards.input[0].threshold"]


def test_restore_and_groundedness_only_where_they_mean_something(tmp_path: Path) -> None:
    found = problems(
        write(
            tmp_path,
            guards={
                "retrieved": [{"kind": "pii", "restore": True, "action": "redact"}],
                "output": [{"kind": "groundedness", "min_score": 0.5}],
            },
        )
    )
    assert "restore applies to input" in found["features.f.guards.retrieved[0].restore"]
    assert "retrieved sources" in found["features.f.guards.output[0]"]


def test_a_cascade_needs_something_to_judge_by(tmp_path: Path) -> None:
    found = problems(write(tmp_path, route={"strategy": "cascade", "targets": ["m", "n"]}))
    assert "judge" in found["features.f.route.strategy"]


def test_explain_shows_the_tier_defaults(tmp_path: Path) -> None:
    path = write(tmp_path, risk_tier="high", guards={"output": []})
    result = run_cli("config", "check", "--config", str(path), "--explain", "f")
    assert result.returncode == 0, result.stderr
    text = result.stdout
    assert "risk tier high" in text
    assert "guards on input (risk tier high): pii -> redact (restore); secrets -> block" in text
    assert "guards on output (feature): none" in text
    assert "tool calls (risk tier high): any declared tool; arguments checked" in text
    missing = run_cli("config", "check", "--config", str(path), "--explain", "nope")
    assert missing.returncode == 1
    assert "no feature named 'nope'" in missing.stderr


def test_hot_reload_refuses_a_broken_schema_and_keeps_running(tmp_path: Path) -> None:
    (tmp_path / "s.json").write_text(json.dumps(SCHEMA))
    data = {
        "server": {"reload": True},
        "providers": {"up": {"kind": "openai", "base_url": "http://127.0.0.1:9/v1"}},
        "models": {"m": {"provider": "up", "model": "m"}},
        "features": {
            "f": {
                "owner": "o",
                "route": {"targets": ["m"]},
                "output": {"schema": str(tmp_path / "s.json")},
            }
        },
    }
    with BoundedServer.start(tmp_path / "srv", data) as server:
        (tmp_path / "s.json").write_text(json.dumps(SCHEMA))  # unchanged file, fine
        config = yaml.safe_load(server.config_path.read_text())
        config["features"]["f"]["output"]["schema"] = str(tmp_path / "missing.json")
        server.config_path.write_text(yaml.safe_dump(config))
        deadline = time.monotonic() + 30
        ready: dict[str, Any] = {}
        while time.monotonic() < deadline:
            ready = httpx.get(f"{server.url}/readyz").json()
            if ready["last_reload_error"]:
                break
            time.sleep(0.1)
        assert "missing.json" in (ready["last_reload_error"] or "")
        assert ready["reloads"] == 0
        models = httpx.get(f"{server.url}/v1/models", headers={"authorization": f"Bearer {KEY}"})
        assert models.status_code == 200
        assert [m["id"] for m in models.json()["data"]] == ["m", "f"]
