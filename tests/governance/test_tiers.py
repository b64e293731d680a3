"""Owners and risk tiers: `bounded config check` fails on what a tier's controls lack."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from typer.testing import CliRunner

from bounded.cli.main import app


@dataclass
class Ran:
    returncode: int
    stdout: str
    stderr: str


def run_cli(*args: str) -> Ran:
    """In process (a subprocess per call would take a second each): exit code and output."""
    result = CliRunner().invoke(app, list(args))
    return Ran(result.exit_code, result.stdout, result.stderr)


def write(tmp_path: Path, **features: dict[str, Any]) -> Path:
    data = {
        "providers": {"up": {"kind": "openai", "base_url": "http://127.0.0.1:9/v1"}},
        "models": {"m": {"provider": "up", "model": "m"}},
        "features": {
            name: {"owner": "team-a", "route": {"targets": ["m"]}, **spec}
            for name, spec in features.items()
        },
        "server": {"store": f"sqlite:///{tmp_path / 'b.db'}"},
    }
    path = tmp_path / "bounded.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_a_feature_without_a_risk_tier_fails_the_check_with_the_fix(tmp_path: Path) -> None:
    result = run_cli("config", "check", "-c", str(write(tmp_path, plain={})))
    assert result.returncode == 1
    assert "features.plain.risk_tier" in result.stderr
    assert "add `risk_tier: low`" in result.stderr


def test_tiers_with_their_controls_pass(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        a={"risk_tier": "low"},
        b={"risk_tier": "medium"},
        c={"risk_tier": "high", "eval": {"min_pass_rate": 0.9}},
    )
    result = run_cli("config", "check", "-c", str(path))
    assert result.returncode == 0, result.stderr
    assert "3 feature(s)" in result.stdout


def test_a_high_feature_lists_every_missing_control(tmp_path: Path) -> None:
    path = write(tmp_path, risky={"risk_tier": "high", "guards": {"input": [], "output": []}})
    result = run_cli("config", "check", "-c", str(path))
    assert result.returncode == 1
    for where in ("guards.input", "guards.output", "eval"):
        assert f"features.risky.{where}" in result.stderr
    assert "eval gate before any release" in result.stderr
    # The gateway still serves such a config: the check is the gate, not the load.
    from bounded.config.loader import load_config

    assert load_config(path).features["risky"].risk_tier == "high"


def test_a_medium_feature_needs_input_guards(tmp_path: Path) -> None:
    path = write(tmp_path, mid={"risk_tier": "medium", "guards": {"input": []}})
    result = run_cli("config", "check", "-c", str(path))
    assert result.returncode == 1
    assert "features.mid.guards.input" in result.stderr
