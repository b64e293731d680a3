"""The SQLite ledger's write-ahead log stays bounded under steady writes.

A PASSIVE checkpoint copies the log back but never rewinds it while commits keep coming:
before the fix the log grew without end (830 MB after 40,000 requests) and every commit
got slower. The checkpointer now rewinds it once it passes a size.
"""

from __future__ import annotations

import itertools
import sqlite3
import threading
import time
from pathlib import Path

from bounded.economics.ledger import Checkpointer
from bounded.store.db import Database


def test_the_log_is_rewound_while_commits_keep_coming(tmp_path: Path) -> None:
    path = tmp_path / "ledger.db"
    Database.open(f"sqlite:///{path}").close()  # migrated, WAL mode
    writer = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=10)
    writer.execute("PRAGMA journal_mode=WAL")
    writer.execute("PRAGMA wal_autocheckpoint=0")
    stop = threading.Event()
    errors: list[BaseException] = []

    def write() -> None:
        try:
            while not stop.is_set():
                writer.execute("BEGIN")
                writer.execute(
                    "INSERT INTO ledger (ts, trace_id, latency_ms, status) VALUES (?, ?, 1, 200)",
                    (time.time(), "t"),
                )
                writer.execute("COMMIT")
        except BaseException as exc:  # a commit refused while the log is rewound
            errors.append(exc)

    checkpointer = Checkpointer(str(path), interval_s=3600, restart_frames=200)
    thread = threading.Thread(target=write)
    thread.start()
    frames: list[int] = []
    rewound = 0
    try:
        deadline = time.monotonic() + 20
        while rewound < 3 and time.monotonic() < deadline:
            time.sleep(0.05)
            seen, restarted = checkpointer.checkpoint()
            frames.append(seen)
            rewound += restarted
    finally:
        stop.set()
        thread.join()
        writer.close()
    assert not errors
    assert rewound >= 3, frames
    # Rewound: the log starts over, so a later pass finds fewer frames than an earlier one.
    assert any(later < earlier for earlier, later in itertools.pairwise(frames))
