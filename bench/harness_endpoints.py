"""Endpoints and how to start them: the gateway configs (economics, ledger only, validated,
telemetry off), ``Endpoint`` (name, launcher, pre-built request bytes), ``Launchers`` for
the stand-in, bounded and LiteLLM proxy, and LiteLLM's own venv.
"""

from __future__ import annotations

import copy
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import yaml

from harness_procs import BENCH, HOST, ROOT, Processes, free_port, log

LITELLM_VENV = BENCH / ".venv-litellm"
ADMIN_KEY = "bnd-bench-admin-key-0123456789abcdef"
LITELLM_KEY = "sk-bench-master-key-0123456789"
PROMPT = [{"role": "user", "content": "What is the capital of France?"}]


# Economics for the bounded endpoints: requests name the feature ``bench`` (model=bench),
# routed to the priced ``gpt-test`` so every ledger row has a non-zero cost. The budget and
# the rate limit are far too large ever to refuse (1M USD a month; 10^8 rpm, 10^11 tpm).
FEATURE = "bench"
LEDGER_ONLY: dict[str, Any] = {
    "models": {"gpt-test": {"price": {"input": "0.15", "output": "0.6"}}},
    "features": {FEATURE: {"owner": "bench", "route": {"targets": ["gpt-test"]}}},
}
ECONOMICS: dict[str, Any] = {
    "models": LEDGER_ONLY["models"],
    "features": {
        FEATURE: {
            **LEDGER_ONLY["features"][FEATURE],
            "budget": {"amount_usd": 1_000_000, "period": "month", "mode": "hard"},
            "rate_limit": {"rpm": 100_000_000, "tpm": 100_000_000_000},
        }
    },
}
RATELIMIT_HEADER = "x-ratelimit-remaining-requests"
# ``--validation``: the same feature guarded as a high-risk one (input: pii redacted and
# restored, secrets blocked, injection blocked; output: pii and secrets redacted). The
# prompts pass every guard, so the figure is the price of checking, not of refusing.
VALIDATED: dict[str, Any] = {
    "models": ECONOMICS["models"],
    "features": {FEATURE: {**ECONOMICS["features"][FEATURE], "risk_tier": "high"}},
}
# ``--telemetry``: the same gateway with telemetry off (no spans, no trace store, no
# metrics), interleaved; ``bounded`` itself traces every request (sample ratio 1, stored).
NO_TELEMETRY: dict[str, Any] = {**ECONOMICS, "telemetry": {"enabled": False}}
# ``--prompt-bytes N``: benign support-ticket prose, repeated to N bytes.
FILLER = (
    "Hello, I ordered a pair of running shoes last week and they arrived in the wrong size. "
    "The box was fine and I have not worn them outside. Could you tell me how the exchange "
    "works, whether I pay for the return shipping, and how long the new pair takes? "
)


PROMPT_BYTES = 0
# ``--system-bytes N``: a fixed system prompt of N bytes before the user's message, the
# same on every request, as a feature's instructions are.
SYSTEM_BYTES = 0
SYSTEM_LINE = "You are the returns desk of a shoe shop. Be brief, polite and exact. "


def _filled(line: str, size: int) -> str:
    return (line * (size // len(line) + 1))[:size]


def _prompt() -> list[dict[str, str]]:
    messages = PROMPT
    if PROMPT_BYTES:
        text = _filled(FILLER, PROMPT_BYTES)
        messages = [{"role": "user", "content": text + " " + PROMPT[0]["content"]}]
    if SYSTEM_BYTES:
        messages = [{"role": "system", "content": _filled(SYSTEM_LINE, SYSTEM_BYTES)}, *messages]
    return messages


@dataclass
class Launched:
    proc: subprocess.Popen[bytes]
    port: int
    log_path: Path
    db_path: Path | None = None


@dataclass
class Endpoint:
    """One way of reaching the stand-in: a name, how to start its server, how to call it.

    ``launch(workdir, upstream_port)`` starts the server and returns it; the ``direct``
    endpoint has no server of its own and reuses the stand-in's process.
    """

    name: str
    label: str
    launch: Callable[[Path, int], Launched] | None
    model: str = "gpt-test"
    api_key: str | None = None
    health_path: str = "/healthz"
    expect_headers: tuple[str, ...] = ()  # checked on one response before measuring
    # filled in while running
    port: int = 0
    pid: int = 0
    log_path: Path | None = None
    startup_s: list[float] = field(default_factory=list)
    health_s: list[float] = field(default_factory=list)
    rss_start_mb: float = 0.0
    rss_after_mb: float = 0.0
    peak_rss_mb: float = 0.0
    ledger_db: Path | None = None  # bounded's SQLite store, read back after the run
    headers_seen: dict[str, str] = field(default_factory=dict)
    ledger: dict[str, Any] = field(default_factory=dict)

    def request_bytes(self, *, stream: bool) -> bytes:
        body: dict[str, Any] = {"model": self.model, "messages": _prompt(), "max_tokens": 16}
        if stream:
            body["stream"] = True
            body["stream_options"] = {"include_usage": True}
        payload = orjson.dumps(body)
        head = (
            f"POST /v1/chat/completions HTTP/1.1\r\nhost: {HOST}:{self.port}\r\n"
            "content-type: application/json\r\naccept: */*\r\n"
            f"content-length: {len(payload)}\r\n"
        )
        if self.api_key:
            head += f"authorization: Bearer {self.api_key}\r\n"
        return head.encode() + b"\r\n" + payload

    def get_bytes(self, path: str) -> bytes:
        head = f"GET {path} HTTP/1.1\r\nhost: {HOST}:{self.port}\r\n"
        if self.api_key:
            head += f"authorization: Bearer {self.api_key}\r\n"
        return head.encode() + b"\r\n"


class Launchers:
    """Start the three kinds of server; each writes its config and log into ``workdir``."""

    def __init__(self, procs: Processes, prefill: int = 0):
        """``prefill``: traces and ledger rows each bounded's stores hold before it starts
        (``harness_prefill.py``: the stores of a gateway that has served a while)."""
        self.procs = procs
        self.prefill = prefill
        self.python = ROOT / ".venv" / "bin" / "python"
        if not self.python.exists():
            self.python = Path(sys.executable)

    def standin(self, workdir: Path) -> Launched:
        port = free_port()
        log_path = workdir / "standin.log"
        proc = self.procs.spawn(
            [
                str(self.python),
                str(BENCH / "standin_upstream.py"),
                "--host",
                HOST,
                "--port",
                str(port),
            ],
            log_path=log_path,
        )
        return Launched(proc, port, log_path)

    def bounded(
        self,
        name: str = "bounded",
        extra_config: dict[str, Any] | None = None,
        src: Path | None = None,
    ) -> Callable[[Path, int], Launched]:
        """A bounded gateway; ``extra_config`` is deep-merged into the base config. ``src``
        (a folder holding the ``bounded`` package) runs that copy instead of the installed
        one, e.g. a scratch copy with a change to compare against."""

        def launch(workdir: Path, upstream_port: int) -> Launched:
            port = free_port()
            state = workdir / f"{name}-state"
            state.mkdir(exist_ok=True)
            config: dict[str, Any] = {
                "server": {
                    "host": HOST,
                    "port": port,
                    "store": f"sqlite:///{state}/bounded.db",
                    "reload": False,
                    "dev_key": False,
                },
                "providers": {
                    "standin": {
                        "kind": "openai",
                        "base_url": f"http://{HOST}:{upstream_port}/v1",
                        "api_key": "x",
                    }
                },
                "models": {"gpt-test": {"provider": "standin", "model": "stub-model"}},
            }
            config = _merge(config, extra_config or {})
            path = workdir / f"{name}.yaml"
            path.write_text(yaml.safe_dump(config, sort_keys=False))
            env = {"BOUNDED_ADMIN_KEY": ADMIN_KEY}
            if src is not None:
                env["PYTHONPATH"] = os.pathsep.join(
                    p for p in (str(src.resolve()), os.environ.get("PYTHONPATH")) if p
                )
            log_path = workdir / f"{name}.log"
            if self.prefill:
                log(f"   prefilling {name}'s stores with {self.prefill:,} traces and ledger rows")
                subprocess.run(
                    [str(self.python), str(BENCH / "harness_prefill.py"),
                     config["server"]["store"], str(self.prefill)],
                    env={**os.environ, **env}, check=True,
                )  # fmt: skip
            proc = self.procs.spawn(
                [
                    str(self.python),
                    "-m",
                    "bounded",
                    "serve",
                    "--config",
                    str(path),
                    "--port",
                    str(port),
                ],
                log_path=log_path,
                env=env,
            )
            return Launched(proc, port, log_path, state / "bounded.db")

        return launch

    def litellm(self, workdir: Path, upstream_port: int) -> Launched:
        return self.litellm_workers(1, "litellm")(workdir, upstream_port)

    def litellm_workers(self, workers: int, name: str) -> Callable[[Path, int], Launched]:
        """LiteLLM proxy with ``--num_workers workers``; ``name`` names its config and log."""

        def launch(workdir: Path, upstream_port: int) -> Launched:
            port = free_port()
            config = {
                "model_list": [
                    {
                        "model_name": "gpt-test",
                        "litellm_params": {
                            "model": "openai/stub-model",
                            "api_base": f"http://{HOST}:{upstream_port}/v1",
                            "api_key": "x",
                        },
                    }
                ],
                "general_settings": {"master_key": LITELLM_KEY},
            }
            path = workdir / f"{name}.yaml"
            path.write_text(yaml.safe_dump(config, sort_keys=False))
            log_path = workdir / f"{name}.log"
            argv = [str(LITELLM_VENV / "bin" / "litellm"), "--config", str(path)]
            argv += ["--host", HOST, "--port", str(port), "--num_workers", str(workers)]
            env = {"LITELLM_LOCAL_MODEL_COST_MAP": "True", "LITELLM_TELEMETRY": "False"}
            return Launched(self.procs.spawn(argv, log_path=log_path, env=env), port, log_path)

        return launch


def _merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def ensure_litellm() -> str:
    """Create bench/.venv-litellm with ``litellm[proxy]`` on first use; return its version."""
    exe = LITELLM_VENV / "bin" / "litellm"
    pip = LITELLM_VENV / "bin" / "pip"
    if not exe.exists():
        python = shutil.which("python3.11") or sys.executable
        if not pip.exists():
            log(f">> creating {LITELLM_VENV.relative_to(ROOT)} with {python} (first use only)")
            subprocess.run([python, "-m", "venv", str(LITELLM_VENV)], check=True)
        log(">> pip install 'litellm[proxy]' into it (a few minutes; progress below)")
        subprocess.run(
            [str(pip), "install", "--progress-bar", "off", "litellm[proxy]"],
            check=True,
            stdout=sys.stderr,
        )
        log(">> LiteLLM installed")
    out = subprocess.run(
        [
            str(LITELLM_VENV / "bin" / "python"),
            "-c",
            "import importlib.metadata as m; print(m.version('litellm'))",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    return out.stdout.strip()
