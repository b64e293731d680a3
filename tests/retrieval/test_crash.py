"""kill -9 in the middle of a sync, then sync again: whole documents, no duplicate, no orphan."""

from __future__ import annotations

import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from bounded.retrieval.service import collection_url
from bounded.store.urls import sqlite_path
from tests.retrieval.conftest import Build
from tests.retrieval.helpers import folder, index_rows

# A small made-up vocabulary: every note shares words, each has one unique marker.
WORDS = [a + b for a in ("al", "be", "ga", "de", "ke", "so") for b in ("pha", "ta", "mma", "lo")]
DOCS = 240


def _write(root: Path, layout: str) -> None:
    rng = random.Random(7)
    root.mkdir()
    lines = []
    for i in range(DOCS):
        body = f"Unique marker m{i:03}x. " + " ".join(rng.choice(WORDS) for _ in range(60))
        if layout == "files":
            (root / f"doc{i:03}.md").write_text(f"# Note {i}\n\n{body}.\n")
        else:
            lines.append(json.dumps({"id": str(i), "title": f"Note {i}", "text": body}))
    if lines:  # one file holding every document: resumable record by record
        (root / "notes.jsonl").write_text("\n".join(lines))


def _documents(db_file: Path) -> int:
    if not db_file.exists():
        return 0
    try:
        conn = sqlite3.connect(f"file:{db_file}?mode=ro", uri=True, timeout=1)
        try:
            return int(conn.execute("SELECT count(*) FROM documents").fetchone()[0])
        finally:
            conn.close()
    except sqlite3.OperationalError:
        return 0  # schema not created yet


@pytest.mark.parametrize("layout", ["files", "jsonl"])
def test_kill_9_mid_sync_then_resync_leaves_no_duplicates_or_orphans(
    build: Build, tmp_path: Path, layout: str
) -> None:
    root = tmp_path / "notes"
    _write(root, layout)
    collections = {"notes": {"sources": [folder(root)]}}
    service = build(collections)
    db_file = sqlite_path(collection_url(service.config, "notes"))
    config = tmp_path / "bounded.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "server": {"store": f"sqlite:///{tmp_path}/state/bounded.db"},
                "collections": collections,
            }
        )
    )

    child = subprocess.Popen(
        [sys.executable, "-m", "bounded", "index", "sync", "notes", "--config", str(config)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ},
    )
    deadline = time.monotonic() + 60
    while _documents(db_file) < 10 and child.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    os.kill(child.pid, signal.SIGKILL)
    child.wait(timeout=10)

    done = _documents(db_file)
    assert 10 <= done < DOCS, "the kill must land mid-sync"
    partial = index_rows(db_file)  # integrity-checks FTS5 too
    assert partial["chunks"] == partial["declared_chunks"] == partial["vectors"]
    assert partial["orphans"] == partial["orphan_vectors"] == 0

    report = service.sync("notes")
    assert report.documents_indexed == DOCS - done  # resumed, not redone
    rows = index_rows(db_file)
    assert len(rows["documents"]) == DOCS
    assert rows["chunks"] == rows["declared_chunks"] == rows["vectors"]
    assert rows["orphans"] == rows["orphan_vectors"] == 0
    for marker in ("m000x", f"m{done:03}x", f"m{DOCS - 1:03}x"):
        hits = service.search("notes", marker, viewer=_everyone(), mode="bm25", top_k=5)
        assert len(hits) == 1, marker  # one document, one chunk: never a duplicate


def _everyone():  # type: ignore[no-untyped-def]
    from bounded.retrieval.access import Viewer

    return Viewer.everything()
