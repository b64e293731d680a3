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


def test_an_unreachable_index_database_is_one_clear_line(tmp_path: Path) -> None:
    import subprocess
    import sys

    from tests.conftest import free_port

    store = f"postgresql://bounded:s3cret@127.0.0.1:{free_port()}/kb?connect_timeout=2"
    path = tmp_path / "bounded.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "server": {"store": f"sqlite:///{tmp_path / 'bounded.db'}"},
                "collections": {
                    "kb": {"store": store, "sources": [{"kind": "folder", "path": str(tmp_path)}]}
                },
            }
        )
    )
    entry = "from bounded.cli.main import main; main()"
    run = subprocess.run(
        [sys.executable, "-c", entry, "index", "status", "-c", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 1
    assert "error" in run.stderr and "unreachable" in run.stderr and "127.0.0.1" in run.stderr
    assert "Traceback" not in run.stderr + run.stdout and "s3cret" not in run.stderr
