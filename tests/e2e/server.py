"""Run ``bounded`` for real: a ``bounded serve`` subprocess, and the CLI as a subprocess.

    with BoundedServer.start(tmp_path, config_dict) as server:
        client = OpenAI(base_url=server.base_url, api_key=ADMIN_KEY)
        server.cli("keys", "create", "ci")       # same config, same store
        server.output()                           # everything it printed so far

Each server gets its own config file, store folder and loopback port. Its stdout and stderr go
to a file (a pipe nobody reads could fill up and block the server), read back on demand.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import yaml

ADMIN_KEY = "e2e-admin-key-0123456789abcdef"
_SCRIPT = Path(sys.executable).with_name("bounded")
# The installed console script, as users run it; `python -m bounded` where there is none.
BOUNDED = [str(_SCRIPT)] if _SCRIPT.exists() else [sys.executable, "-m", "bounded"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def cli_env(**extra: str) -> dict[str, str]:
    """The environment for a ``bounded`` subprocess: wide, colourless, deterministic output."""
    env = {k: v for k, v in os.environ.items() if k not in {"FORCE_COLOR", "BOUNDED_CONFIG"}}
    # Rich wraps at 80 columns when not on a terminal; tables would truncate ids and hints.
    env.update(COLUMNS="240", NO_COLOR="1", TERM="dumb", PYTHONUNBUFFERED="1")
    env.update(extra)
    return env


def run_cli(
    *args: str, env: dict[str, str] | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """``bounded ARGS...`` as a user types it; returns exit code, stdout and stderr."""
    return subprocess.run(
        [*BOUNDED, *args],
        capture_output=True,
        text=True,
        env=env or cli_env(),
        timeout=timeout,
        check=False,
    )


def write_config(folder: Path, data: dict[str, Any], port: int | None = None) -> Path:
    """Write ``data`` as bounded.yaml in ``folder`` with the store (and port) inside it."""
    server = {**data.get("server", {}), "store": f"sqlite:///{folder / 'store' / 'bounded.db'}"}
    if port is not None:
        server.update(host="127.0.0.1", port=port)
    path = folder / "bounded.yaml"
    path.write_text(yaml.safe_dump({**data, "server": server}, sort_keys=False))
    return path


@dataclass
class BoundedServer:
    process: subprocess.Popen[bytes]
    config_path: Path
    port: int
    log_path: Path
    ready_s: float
    _log: TextIO

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def base_url(self) -> str:
        return f"{self.url}/v1"

    @property
    def store_dir(self) -> Path:
        return self.config_path.parent / "store"

    @classmethod
    @contextlib.contextmanager
    def start(
        cls,
        folder: Path,
        data: dict[str, Any],
        *,
        admin_key: str = ADMIN_KEY,
        ready_timeout_s: float = 60,
    ) -> Iterator[BoundedServer]:
        """Write the config, spawn ``bounded serve``, wait for /healthz, stop it afterwards."""
        folder.mkdir(parents=True, exist_ok=True)
        port = free_port()
        config_path = write_config(folder, data, port)
        server = cls.spawn(config_path, port, admin_key=admin_key, ready_timeout_s=ready_timeout_s)
        try:
            yield server
        finally:
            server.stop()

    @classmethod
    def spawn(
        cls,
        config_path: Path,
        port: int,
        *,
        admin_key: str = ADMIN_KEY,
        ready_timeout_s: float = 60,
        extra_args: Sequence[str] = (),
    ) -> BoundedServer:
        log_path = config_path.with_suffix(".log")
        log = log_path.open("w", encoding="utf-8")
        started = time.monotonic()
        process = subprocess.Popen(
            [
                *BOUNDED,
                "serve",
                "--config",
                str(config_path),
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                *extra_args,
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=cli_env(BOUNDED_ADMIN_KEY=admin_key),
        )
        server = cls(process, config_path, port, log_path, 0.0, log)
        try:
            server._wait_healthy(started + ready_timeout_s)
        except BaseException:
            server.stop()
            raise
        server.ready_s = time.monotonic() - started
        return server

    def _wait_healthy(self, deadline: float) -> None:
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"bounded serve exited with {self.process.returncode}:\n{self.output()}"
                )
            try:
                with urllib.request.urlopen(f"{self.url}/healthz", timeout=2) as resp:
                    if resp.status == 200:
                        return
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"bounded serve not healthy in time:\n{self.output()}")
            time.sleep(0.05)

    def output(self) -> str:
        """Everything the server printed so far (stdout and stderr)."""
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def cli(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        """``bounded ARGS... -c CONFIG``: the CLI against this server's config and store."""
        return run_cli(*args, "--config", str(self.config_path), timeout=timeout)

    def stop(self, timeout: float = 15) -> int:
        """SIGTERM (uvicorn's graceful shutdown), then SIGKILL if it hangs; returns exit code."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=timeout)
        if not self._log.closed:
            self._log.close()
        return self.process.returncode
