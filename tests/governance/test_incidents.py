"""Incidents close only with an architecture delta that the store or config confirms."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from bounded.cli.main import app
from bounded.store.db import Database


@dataclass
class Ran:
    returncode: int
    stdout: str
    stderr: str


def run_cli(*args: str) -> Ran:
    """In process (a subprocess per call would take a second each): exit code and output."""
    result = CliRunner().invoke(app, list(args))
    return Ran(result.exit_code, result.stdout, result.stderr)


def config(tmp_path: Path, guards: dict[str, Any] | None = None) -> Path:
    data = {
        "providers": {"up": {"kind": "openai", "base_url": "http://127.0.0.1:9/v1"}},
        "models": {"m": {"provider": "up", "model": "m"}},
        "features": {
            "answer": {
                "owner": "support",
                "risk_tier": "low",
                "route": {"targets": ["m"]},
                **({"guards": guards} if guards else {}),
            }
        },
        "server": {"store": f"sqlite:///{tmp_path / 'b.db'}"},
    }
    path = tmp_path / "bounded.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return config(tmp_path)


def cli(path: Path, *args: str) -> Any:
    return run_cli(*args, "-c", str(path))


def open_one(path: Path) -> str:
    result = cli(
        path, "incident", "open", "--feature", "answer", "--trace", "t-1", "--summary", "leak"
    )
    assert result.returncode == 0, result.stderr
    return str(result.stdout.split()[1])


def test_open_list_show(path: Path) -> None:
    incident = open_one(path)
    listed = json.loads(cli(path, "incident", "list", "--json").stdout)
    assert [i["id"] for i in listed] == [incident]
    assert listed[0]["opened_by"] == "support" and listed[0]["trace_id"] == "t-1"
    shown = cli(path, "incident", "show", incident)
    assert "leak" in shown.stdout and "cannot be closed until one is linked" in shown.stdout


def test_an_unknown_feature_is_refused(path: Path) -> None:
    result = cli(path, "incident", "open", "--feature", "nope", "--summary", "x")
    assert result.returncode == 1 and "no feature 'nope'" in result.stderr


def test_words_alone_do_not_close_it(path: Path) -> None:
    incident = open_one(path)
    result = cli(path, "incident", "close", incident, "--resolution", "we were careful")
    assert result.returncode == 1
    assert "no architecture delta" in result.stderr
    assert json.loads(cli(path, "incident", "show", incident, "--json").stdout)["status"] == "open"


def test_a_delta_must_be_real(path: Path, tmp_path: Path) -> None:
    incident = open_one(path)
    assert (
        "no audit log entry 999" in cli(path, "incident", "link", incident, "--audit", "999").stderr
    )
    # A guard the feature had before does not count; nor does one it does not have.
    assert cli(path, "incident", "link", incident, "--guard", "pii").returncode == 1
    assert (
        "add it to the suite"
        in cli(path, "incident", "link", incident, "--eval-case", "refund-2026").stderr
    )
    # The incident's own audit entries are not a change to the system.
    db = Database.open(f"sqlite:///{tmp_path / 'b.db'}")
    own = db.execute("SELECT id FROM audit_log WHERE action = 'incident.open'")[0]["id"]
    assert cli(path, "incident", "link", incident, "--audit", str(own)).returncode == 1


def test_closed_with_a_new_guard(path: Path, tmp_path: Path) -> None:
    incident = open_one(path)
    config(tmp_path, guards={"output": [{"kind": "pii", "action": "redact"}]})
    closed = cli(path, "incident", "close", incident, "--resolution", "redact", "--guard", "pii")
    assert closed.returncode == 0, closed.stderr
    shown = json.loads(cli(path, "incident", "show", incident, "--json").stdout)
    assert shown["status"] == "closed"
    assert [(d["kind"], d["ref"]) for d in shown["deltas"]] == [("guard", "pii")]


def test_closed_with_a_config_change_audit_entry(path: Path, tmp_path: Path) -> None:
    incident = open_one(path)
    db = Database.open(f"sqlite:///{tmp_path / 'b.db'}")
    db.execute(
        "INSERT INTO audit_log (ts, actor, action, subject, detail) VALUES (?, ?, ?, ?, ?)",
        (time.time() + 1, "ops", "config.change", "features.answer", "{}"),
    )
    entry = db.execute("SELECT MAX(id) AS id FROM audit_log")[0]["id"]
    linked = cli(path, "incident", "link", incident, "--audit", str(entry), "--note", "tier up")
    assert linked.returncode == 0, linked.stderr
    assert cli(path, "incident", "close", incident, "--resolution", "tiered").returncode == 0


def test_closed_with_a_new_eval_case(path: Path, tmp_path: Path) -> None:
    incident = open_one(path)
    db = Database.open(f"sqlite:///{tmp_path / 'b.db'}")
    db.execute(
        "INSERT INTO eval_runs (id, created_at, suite, feature, passed, successes, failures,"
        " errors, pass_rate, duration_ms, summary) VALUES ('r1', ?, 's', 'answer', 1, 1, 0, 0,"
        " 1.0, 5, '{}')",
        (time.time() + 1,),
    )
    db.execute(
        "INSERT INTO eval_cases (run_id, idx, case_key, passed, score, result)"
        " VALUES ('r1', 0, 'refund-2026', 1, 1.0, '{}')"
    )
    result = cli(path, "incident", "close", incident, "-r", "case", "--eval-case", "refund-2026")
    assert result.returncode == 0, result.stderr
