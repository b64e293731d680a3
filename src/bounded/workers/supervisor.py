"""N gateway workers on one port, plus the owner of their shared counters.

    bounded serve --workers 2          # or server.workers: 2 | auto in bounded.yaml

The supervisor (this process) reads the config, migrates the store once, holds the port and
forks:

* the **owner** (``owner``): budgets, rate limits and, on SQLite, the ledger, for all workers,
  behind a Unix socket in a private temporary folder (mode 0700);
* **N workers**: each a full gateway (uvicorn, uvloop) with its own listening socket on the
  same port (``SO_REUSEPORT``: the kernel spreads new connections evenly over the workers,
  where one shared socket lets whichever worker wakes first take a whole burst).

It forks before it has any thread or event loop, so the children start clean; it then only
waits. A worker that dies is started again (the kernel stops sending it connections the
moment its socket closes); so is the owner, which seeds spend again from the ledger. One
SIGTERM or SIGINT (Ctrl-C) stops the workers gracefully (they finish what is in flight,
their last rows reach the owner), then the owner, which commits them.

With ``server.redis`` set the workers keep budgets and rate limits in Redis as replicas do,
and with a PostgreSQL store they write the ledger themselves; the owner runs only for what
is left (nothing, with both).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType

from bounded.config.schema import BoundedConfig
from bounded.workers.plan import Plan

# A worker that keeps dying right after it starts (this many times within the window) is
# not restarted again: the supervisor stops everything and exits 1, with the log above.
RESTART_LIMIT = 5
RESTART_WINDOW_S = 30.0
STOP_TIMEOUT_S = 20.0


def resolve_workers(value: int | str | None, config: BoundedConfig) -> int:
    """``--workers`` over ``server.workers``; ``auto`` is the cores this process may use."""
    chosen = config.server.workers if value is None else value
    if chosen == "auto":
        return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 1)
    return int(chosen)


@dataclass
class Supervisor:
    plan: Plan
    listener: socket.socket | None  # the owner's Unix socket, bound before any fork
    store_url: str
    children: dict[int, str] = field(default_factory=dict)  # pid -> "owner" | "worker"
    stopping: bool = False
    restarts: list[float] = field(default_factory=list)
    exit_code: int = 0

    def run(self) -> int:
        signal.signal(signal.SIGTERM, self._stop)
        signal.signal(signal.SIGINT, self._stop)
        if self.listener is not None:
            self._fork("owner")
        for _ in range(self.plan.workers):
            self._fork("worker")
        owner_stopped = False
        while self.children:
            try:
                pid, status = os.wait()
            except ChildProcessError:
                break
            role = self.children.pop(pid, None)
            if role is None:
                continue
            if self.stopping:
                if not owner_stopped and "worker" not in self.children.values():
                    owner_stopped = True
                    self._signal_all(signal.SIGTERM, "owner")
                continue
            self._restart(role, status)
        return self.exit_code

    def _restart(self, role: str, status: int) -> None:
        code = os.waitstatus_to_exitcode(status)
        print(f"bounded: {role} process exited ({code}); starting it again", file=sys.stderr)
        now = time.monotonic()
        self.restarts = [t for t in self.restarts if now - t < RESTART_WINDOW_S] + [now]
        if len(self.restarts) > RESTART_LIMIT:
            print(
                f"bounded: {len(self.restarts)} restarts in {RESTART_WINDOW_S:.0f}s; stopping",
                file=sys.stderr,
            )
            self.exit_code = 1
            self._stop(signal.SIGTERM, None)
            return
        self._fork(role)

    def _fork(self, role: str) -> None:
        pid = os.fork()
        if pid:
            self.children[pid] = role
            return
        code = 0
        try:
            # Its own process group: Ctrl-C reaches only the supervisor, which stops the
            # children once and in order (a second signal would make uvicorn quit at once).
            os.setpgid(0, 0)
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            signal.signal(signal.SIGINT, signal.SIG_DFL)
            if role == "owner":
                from bounded.workers.owner import serve_owner

                assert self.listener is not None
                serve_owner(
                    self.store_url,
                    self.listener,
                    accountant=self.plan.owner_accountant,
                    ledger=self.plan.owner_ledger,
                )
            else:
                if self.listener is not None:
                    self.listener.close()
                from bounded.workers.worker import serve_worker

                serve_worker(self.plan)
        except BaseException:
            import traceback

            traceback.print_exc()
            code = 1
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)  # never run the supervisor's own clean-up in a child

    def _stop(self, signum: int, frame: FrameType | None) -> None:
        if self.stopping:
            return
        self.stopping = True
        if "worker" in self.children.values():
            self._signal_all(signal.SIGTERM, "worker")
        else:
            self._signal_all(signal.SIGTERM, "owner")
        signal.signal(signal.SIGALRM, self._kill)
        signal.alarm(int(STOP_TIMEOUT_S))

    def _kill(self, signum: int, frame: FrameType | None) -> None:
        print("bounded: children did not stop in time; killing them", file=sys.stderr)
        self._signal_all(signal.SIGKILL, None)

    def _signal_all(self, signum: int, role: str | None) -> None:
        for pid, kind in list(self.children.items()):
            if role is None or kind == role:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signum)


def _warm_token_tables(config: BoundedConfig) -> None:
    """Load the token tables budgets and rate limits need here, before the fork, when the
    config has any: the workers then share one copy's pages (about 70 MB for o200k_base)
    instead of each loading its own on first use. (The tables are native memory, never
    written after loading; the counter starts no thread, so forking after it is safe.)"""
    metered = any(m.rate_limit for m in config.models.values())
    metered |= any(f.budget or f.rate_limit for f in config.features.values())
    metered |= any(t.budget or t.rate_limit for t in config.teams.values())
    if not metered:
        return
    from bounded.economics.tokens import TokenCounter, encoding_for

    models = [m.model for m in config.models.values() if m.kind == "chat"]
    TokenCounter().warm(sorted({encoding_for(model) for model in models}))


def hold_port(host: str, port: int) -> socket.socket:
    """Bind (not listen) the port with SO_REUSEPORT: it fails now, clearly, if another
    program has the port, keeps it ours while workers come and go, and tells a port of 0
    which one the workers must all take."""
    family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind(address)
    return sock


def serve_workers(
    config_path: Path, config: BoundedConfig, host: str, port: int, workers: int
) -> int:
    from bounded.gateway.auth import load_or_create_dev_key
    from bounded.gateway.banner import banner, state_dir
    from bounded.store.migrate import upgrade
    from bounded.store.urls import dialect_of
    from bounded.telemetry.store import trace_store_url

    store = config.server.store
    # Once, here: N processes migrating one file at once race ("table already exists").
    upgrade(store)
    upgrade(trace_store_url(store))  # the traces' sibling SQLite file (the same database
    # on PostgreSQL), which each worker's trace writer would otherwise create at once
    dev_key = load_or_create_dev_key(state_dir(config)) if config.server.dev_key else None
    _warm_token_tables(config)
    held = hold_port(host, port)
    port = int(held.getsockname()[1])
    accountant = not config.server.redis
    ledger = dialect_of(store) == "sqlite"
    folder = tempfile.mkdtemp(prefix="bounded-owner-") if accountant or ledger else None
    listener: socket.socket | None = None
    path: str | None = None
    if folder is not None:
        path = os.path.join(folder, "owner.sock")
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        listener.bind(path)
        listener.listen(256)
    plan = Plan(config_path, host, port, workers, path, accountant, ledger, dev_key)
    banner(config, host, port, dev_key, workers)
    try:
        return Supervisor(plan, listener, store).run()
    finally:
        held.close()
        if listener is not None:
            listener.close()
        if folder is not None:
            shutil.rmtree(folder, ignore_errors=True)
