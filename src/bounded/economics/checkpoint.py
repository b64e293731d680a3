"""The SQLite ledger's WAL, checkpointed from a thread of its own and kept bounded."""

from __future__ import annotations

import logging
import sqlite3
import threading

from bounded.store.db import Database
from bounded.store.urls import sqlite_path

log = logging.getLogger("bounded.ledger")


class Checkpointer:
    """Moves the WAL back into the database file from a thread of its own.

    SQLite's automatic checkpoint runs inside whichever commit crosses the threshold, which
    put a periodic multi-millisecond stall on one unlucky request. Here the serving
    connection never checkpoints; this thread does a PASSIVE checkpoint (never blocks
    writers) about once a second on its own connection.

    A PASSIVE checkpoint copies the WAL back but never rewinds it: SQLite starts the log
    over only when a writer finds it completely copied, and under steady traffic a commit
    always lands first. Measured: 830 MB of WAL after 40,000 requests, and every commit
    slower as it grew. So once the log passes ``restart_frames``, the PASSIVE pass is
    followed by a RESTART, which waits for the commit in progress, copies the few frames
    written since and rewinds the log; ``journal_size_limit`` then trims the file. The
    serving connection waits for it (a few milliseconds, rarely) rather than fail.
    """

    RESTART_FRAMES = 8192  # about 32 MB of 4 KB pages
    SIZE_LIMIT = 64 * 1024 * 1024

    def __init__(self, path: str, interval_s: float, restart_frames: int = RESTART_FRAMES):
        self._path = path
        self._interval_s = interval_s
        self._restart_frames = restart_frames
        self._stop = threading.Event()
        self._conn: sqlite3.Connection | None = None
        self._thread = threading.Thread(
            target=self._run, name="bounded-wal-checkpoint", daemon=True
        )

    @classmethod
    def start(cls, db: Database, interval_s: float = 1.0) -> Checkpointer:
        db.execute("PRAGMA wal_autocheckpoint=0")
        db.execute(f"PRAGMA journal_size_limit={cls.SIZE_LIMIT}")
        checkpointer = cls(str(sqlite_path(db.url)), interval_s)
        checkpointer._thread.start()
        return checkpointer

    def checkpoint(self) -> tuple[int, bool]:
        """One pass: frames in the log before it, and whether the log was rewound."""
        if self._conn is None:
            self._conn = sqlite3.connect(self._path, timeout=10, check_same_thread=False)
        _, frames, _ = self._conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        if frames < self._restart_frames:
            return frames, False
        busy, _, _ = self._conn.execute("PRAGMA wal_checkpoint(RESTART)").fetchone()
        return frames, not busy

    def _run(self) -> None:
        try:
            while not self._stop.wait(self._interval_s):
                try:
                    self.checkpoint()
                except sqlite3.Error:
                    log.warning("WAL checkpoint failed; will retry", exc_info=True)
        finally:
            if self._conn is not None:
                self._conn.close()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
