"""The SQLite ledger's write-ahead log stays bounded under steady writes.

A PASSIVE checkpoint copies the log back but never rewinds it while commits keep coming:
before the fix the log grew without end (830 MB after 40,000 requests) and every commit
got slower. The checkpointer now rewinds it once it passes a size.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path

from bounded.economics.checkpoint import Checkpointer
from bounded.store.db import Database


def test_the_log_is_rewound_while_commits_keep_coming(tmp_path: Path) -> None:
    path = tmp_path / "ledger.db"
    Database.open(f"sqlite:///{path}").close()  # migrated, WAL mode
    writer = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=10)
    writer.execute("PRAGMA journal_mode=WAL")
    writer.execute("PRAGMA wal_autocheckpoint=0")
    stop = threading.Event()
    errors: list[BaseException] = []
    commits = 0

    def write() -> None:
        nonlocal commits
        try:
            while not stop.is_set():
                writer.execute("BEGIN")
                writer.execute(
                    "INSERT INTO ledger (ts, trace_id, latency_ms, status) VALUES (?, ?, 1, 200)",
                    (time.time(), "t"),
                )
                writer.execute("COMMIT")
                commits += 1
        except BaseException as exc:  # a commit refused while the log is rewound
            errors.append(exc)

    checkpointer = Checkpointer(str(path), interval_s=3600, restart_frames=200)
    thread = threading.Thread(target=write)
    thread.start()
    rewound = 0
    try:
        while commits == 0:
            time.sleep(0.01)
        first = _resets(path)
        deadline = time.monotonic() + 20
        while rewound < 3 and time.monotonic() < deadline:
            time.sleep(0.05)
            _, restarted = checkpointer.checkpoint()
            rewound += restarted
        time.sleep(0.05)  # the writer's next commit starts the log over
    finally:
        stop.set()
        thread.join()
        writer.close()
    assert not errors
    assert rewound >= 3
    # SQLite counts in the log's header each time it starts the log over; PASSIVE passes
    # alone leave it unchanged while commits keep coming (the bug: the log only grew).
    assert _resets(path) - first >= 3


def _resets(db: Path) -> int:
    """The checkpoint sequence number in the WAL header: how often the log started over."""
    header = db.with_name(db.name + "-wal").read_bytes()[:32]
    return int.from_bytes(header[12:16], "big")
