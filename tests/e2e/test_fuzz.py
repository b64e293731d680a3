"""A fuzzer against the published API schema: odd bodies and headers never get a 5xx.

schemathesis reads ``GET /openapi.json`` from a real ``bounded serve`` in front of the
stand-in upstream (once on the embedded SQLite store, once on PostgreSQL) and sends
thousands of requests built from it: valid ones, and ones that break the schema on
purpose (wrong types, missing fields, odd headers, odd methods). Then the server must
still be alive and every breaker closed: bad input is the client's problem, never a
deployment's.

Seeded and bounded in time. On failure it prints the seed and schemathesis' own report,
which has a curl command per failing case. ``BOUNDED_FUZZ_SEED`` and
``BOUNDED_FUZZ_EXAMPLES`` and ``BOUNDED_FUZZ_SECONDS`` change the seed, the cases per
operation and the time spent.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import Any

import orjson
import pytest

from tests.e2e.server import ADMIN_KEY, BoundedServer, cli_env
from tests.standins.faulty_upstream import FaultyUpstream, embedded

SEED = int(os.environ.get("BOUNDED_FUZZ_SEED", "20261201"))
EXAMPLES = int(os.environ.get("BOUNDED_FUZZ_EXAMPLES", "150"))
SECONDS = int(os.environ.get("BOUNDED_FUZZ_SECONDS", "90"))  # 4,200-4,900 cases here
ST = shutil.which("st", path=str(Path(sys.executable).parent))


def config(base_url: str, handbook: Path) -> dict[str, Any]:
    return {
        "server": {"dev_key": False, "reload": False, "max_body_bytes": 65536},
        "providers": {"up": {"kind": "openai", "base_url": base_url, "api_key": "sk-standin"}},
        "models": {
            "m": {"provider": "up", "model": "m", "price": {"input": "1", "output": "2"}},
            "emb": {"provider": "up", "model": "e", "kind": "embedding"},
        },
        "features": {
            "chat": {
                "owner": "fuzz",
                "route": {"targets": ["m"], "retry": {"attempts": 1}},
                "budget": {"amount_usd": 1000},
                "rate_limit": {"rpm": 1_000_000, "tpm": 1_000_000_000},
            }
        },
        "collections": {"docs": {"sources": [{"kind": "folder", "path": str(handbook)}]}},
    }


# The fuzzer's own workaround for a CPython 3.11 race in its worker threads.
HOOKS = Path(__file__).with_name("fuzz_hooks.py")


def schemathesis(server_url: str, cwd: Path, report: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            str(ST),
            "run",
            f"{server_url}/openapi.json",
            "--checks",
            "not_a_server_error",
            "--mode",
            "all",
            "--phases",
            "examples,coverage,fuzzing",
            "--seed",
            str(SEED),
            "--max-examples",
            str(EXAMPLES),
            "--max-time",
            str(SECONDS),
            "--request-timeout",
            "20",
            "--workers",
            "4",
            "--header",
            f"Authorization: Bearer {ADMIN_KEY}",
            "--suppress-health-check",
            "all",
            "--report",
            "junit",
            "--report-dir",
            str(report),
            # Syncing re-reads the folder: not a boundary to fuzz, and slow.
            "--exclude-path",
            "/v1/collections/{name}/sync",
        ],
        capture_output=True,
        text=True,
        env=cli_env(SCHEMATHESIS_HOOKS=str(HOOKS)),
        cwd=cwd,  # schemathesis keeps its example database in the cwd
        timeout=420,
        check=False,
    )


@pytest.mark.skipif(ST is None, reason="schemathesis is not installed (a dev dependency)")
@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_fuzzed_requests_never_get_a_5xx(
    backend: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    # Both stores: PostgreSQL refuses what SQLite takes (a NUL in any text), so a value
    # the embedded default answers can be a 500 on the scale-out store.
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "a.md").write_text("# Refunds\n\nRefunds take five days.\n")
    with FaultyUpstream().running() as upstream:
        upstream.always("e", embedded())
        data = config(upstream.base_url, docs)
        if backend == "postgresql":
            data["server"]["store"] = request.getfixturevalue("postgres_url")
        with BoundedServer.start(tmp_path / "srv", data) as server:
            result = schemathesis(server.url, tmp_path, tmp_path / "report")
            alive = server.process.poll() is None
            ready = orjson.loads(urllib.request.urlopen(f"{server.url}/readyz", timeout=5).read())
            log = server.output()
    summary = result.stdout[-6000:] + result.stderr[-2000:]
    print(summary[-1500:])  # the run's totals, shown with -s
    assert result.returncode == 0, f"seed {SEED}:\n{summary}\nserver log:\n{log[-4000:]}"
    assert alive, f"seed {SEED}: bounded serve died:\n{log[-4000:]}"
    opened = {n: b for n, b in ready["breakers"].items() if b["state"] != "closed"}
    assert not opened, f"seed {SEED}: fuzzing opened breakers {opened}"
    assert "Traceback" not in log, f"seed {SEED}: the server logged a crash:\n{log[-4000:]}"
