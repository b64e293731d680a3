"""`bounded index sync|status` and `bounded search` as a user types them."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from bounded.cli.main import app


@pytest.fixture
def config(tmp_path: Path) -> Path:
    root = tmp_path / "kb"
    root.mkdir()
    (root / "keys.md").write_text("# Keys\n\nRotate an API key by creating a new one.\n")
    (root / "hr.md").write_text("---\nlabels: [hr]\n---\n# Pay\n\nPay day is the 25th.\n")
    (root / "broken.pdf").write_bytes(b"%PDF-1.4 nothing else")
    path = tmp_path / "bounded.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "server": {"store": f"sqlite:///{tmp_path / 'state' / 'bounded.db'}"},
                "collections": {"kb": {"sources": [{"kind": "folder", "path": str(root)}]}},
            }
        )
    )
    return path


def test_sync_status_and_search(config: Path) -> None:
    runner = CliRunner()
    first = runner.invoke(app, ["index", "sync", "kb", "-c", str(config)])
    assert first.exit_code == 1  # one document failed; the others are indexed
    assert "2 indexed" in first.output and "broken.pdf" in first.output
    assert "corrupt PDF" in first.output

    again = runner.invoke(app, ["index", "sync", "-c", str(config)])
    assert "0 indexed" in again.output and "0 embedded" in again.output

    status = runner.invoke(app, ["index", "status", "-c", str(config)])
    assert status.exit_code == 0
    assert "kb" in status.output and "broken.pdf" in status.output

    found = runner.invoke(app, ["search", "kb", "rotate key", "-k", "1", "-c", str(config)])
    assert found.exit_code == 0 and "Keys" in found.output and "Rotate an API key" in found.output
    hidden = runner.invoke(
        app, ["search", "kb", "pay day", "--mode", "bm25", "--label", "ops", "-c", str(config)]
    )
    assert "25th" not in hidden.output and "0 result(s)" in hidden.output
    shown = runner.invoke(app, ["search", "kb", "pay day", "--label", "hr", "-c", str(config)])
    assert "25th" in shown.output

    unknown = runner.invoke(app, ["index", "sync", "nope", "-c", str(config)])
    assert unknown.exit_code == 2
