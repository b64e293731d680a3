"""The ``bounded`` command line as a user runs it: real subprocesses, real files, real store."""

from __future__ import annotations

import re
import signal
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.e2e.server import BoundedServer, free_port, run_cli, write_config

EXAMPLE = Path(__file__).parents[2] / "examples" / "bounded.yaml"

# Five mistakes a user makes, one per kind the loader knows about.
BROKEN = """\
server:
  prot: 8080                               # typo of 'port'
providers:
  openai:
    kind: openai
    base_url: https://api.openai.com/v1
    api_key: ${BOUNDED_E2E_SURELY_UNSET}   # never exported
models:
  gpt-4o-mini: {provider: openai, model: gpt-4o-mini}
features:
  support-answer:
    owner: support-team
    route:
      strategy: fastest                    # not a strategy
      targets: [gpt-4o-mini, gpt-4o-mni]   # typo of a model name
  invoice-extract:
    owner: finance
    rout: {targets: [gpt-4o-mini]}         # typo of 'route'
"""


@pytest.fixture(scope="module")
def example() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(EXAMPLE.read_text())
    return data


@pytest.fixture(scope="module")
def config_path(tmp_path_factory: pytest.TempPathFactory, example: dict[str, Any]) -> Path:
    """The example bounded.yaml with its store moved into a temp folder."""
    return write_config(tmp_path_factory.mktemp("cli"), example)


@pytest.fixture(scope="module")
def broken_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("broken") / "bounded.yaml"
    path.write_text(BROKEN)
    return path


@pytest.fixture(scope="module")
def server(config_path: Path) -> Iterator[BoundedServer]:
    server = BoundedServer.spawn(config_path, free_port())
    try:
        yield server
    finally:
        server.stop()


def problems(stderr: str) -> dict[str, str]:
    """``{yaml path: the problem's text, hint included}`` from the friendly listing."""
    found: dict[str, str] = {}
    for block in re.split(r"^\s*✗\s*", stderr, flags=re.MULTILINE)[1:]:
        path, _, rest = block.partition(": ")
        found[path.strip()] = " ".join(rest.split())
    return found


# -- config check ---------------------------------------------------------------------------


def test_config_check_accepts_the_example() -> None:
    result = run_cli("config", "check", "-c", str(EXAMPLE))
    assert result.returncode == 0, result.stderr
    example = yaml.safe_load(EXAMPLE.read_text())
    counts = [len(example[k]) for k in ("providers", "models", "features")]
    assert "{} provider(s), {} model(s), {} feature(s)".format(*counts) in result.stdout


def test_config_check_lists_every_problem_with_its_path_and_a_hint(broken_path: Path) -> None:
    result = run_cli("config", "check", "-c", str(broken_path))
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    found = problems(result.stderr)
    expected = {
        "server.prot": "did you mean 'port'",
        "providers.openai.api_key": "BOUNDED_E2E_SURELY_UNSET",
        "features.support-answer.route.strategy": "least-latency",
        "features.support-answer.route.targets[1]": "did you mean 'gpt-4o-mini'",
        "features.invoice-extract.rout": "did you mean 'route'",
    }
    for path, words in expected.items():
        assert path in found, f"{path} not listed in:\n{result.stderr}"
        assert "hint:" in found[path], f"{path} has no hint:\n{result.stderr}"
        assert words in found[path], f"{path}: {found[path]!r} lacks {words!r}"


def test_config_check_on_a_missing_file_says_so() -> None:
    result = run_cli("config", "check", "-c", "/nonexistent/bounded.yaml")
    assert result.returncode == 2
    assert "file not found" in result.stderr
    assert "Traceback" not in result.stderr


# -- keys -------------------------------------------------------------------------------------


def test_keys_create_list_revoke(config_path: Path) -> None:
    created = run_cli(
        "keys",
        "create",
        "billing-bot",
        "--feature",
        "support-answer",
        "--expires-in-days",
        "30",
        "-c",
        str(config_path),
    )
    assert created.returncode == 0, created.stderr
    plaintext = re.search(r"\bbnd_[A-Za-z0-9_-]{40,}", created.stdout)
    key_id = re.search(r"created key (\w+)", created.stdout)
    assert plaintext and key_id, created.stdout

    listed = run_cli("keys", "list", "-c", str(config_path))
    assert listed.returncode == 0, listed.stderr
    row = next(line for line in listed.stdout.splitlines() if "billing-bot" in line)
    assert key_id[1] in row
    assert "support-answer" in row
    assert "active" in row
    assert plaintext[0] not in listed.stdout
    assert plaintext[0][:8] in row  # the hint: enough to recognise the key, not to use it

    revoked = run_cli("keys", "revoke", "billing-bot", "-c", str(config_path))
    assert revoked.returncode == 0, revoked.stderr
    listed = run_cli("keys", "list", "-c", str(config_path))
    row = next(line for line in listed.stdout.splitlines() if "billing-bot" in line)
    assert "revoked" in row
    assert plaintext[0] not in listed.stdout

    again = run_cli("keys", "revoke", key_id[1], "-c", str(config_path))
    assert again.returncode == 1
    assert "no active key" in again.stderr


def test_keys_create_with_an_unknown_feature_fails(config_path: Path) -> None:
    result = run_cli("keys", "create", "typo", "--feature", "support-answr", "-c", str(config_path))
    assert result.returncode == 2
    assert "support-answr" in result.stderr
    assert "bnd_" not in result.stdout
    listed = run_cli("keys", "list", "-c", str(config_path))
    assert "typo" not in listed.stdout


# -- models -----------------------------------------------------------------------------------


def test_models_prints_models_and_features(config_path: Path) -> None:
    result = run_cli("models", "-c", str(config_path))
    assert result.returncode == 0, result.stderr
    smollm2 = next(line for line in result.stdout.splitlines() if "smollm2 " in line)
    assert "smollm2-135m-instruct" in smollm2 and "chat" in smollm2
    minilm = next(line for line in result.stdout.splitlines() if "minilm " in line)
    assert "all-minilm-l6-v2" in minilm and "embedding" in minilm
    feature = next(line for line in result.stdout.splitlines() if "support-answer" in line)
    assert "support-team" in feature and "ordered" in feature and "smollm2" in feature


# -- serve ------------------------------------------------------------------------------------


def test_serve_with_a_broken_config_exits_with_the_listing(broken_path: Path) -> None:
    result = run_cli("serve", "-c", str(broken_path), "--port", str(free_port()), timeout=30)
    assert result.returncode == 2
    assert "config error" in result.stderr
    assert "server.prot" in result.stderr
    assert "Traceback" not in result.stderr + result.stdout


def test_serve_becomes_ready(server: BoundedServer, capsys: pytest.CaptureFixture[str]) -> None:
    with capsys.disabled():
        print(f"\n    bounded serve: spawn -> /healthz 200 in {server.ready_s:.2f} s")
    assert server.ready_s < 15  # a sanity bound, not a benchmark
    assert f"http://127.0.0.1:{server.port}/v1" in server.output()
    with urllib.request.urlopen(f"{server.url}/readyz", timeout=5) as resp:
        assert resp.status == 200


def test_models_shows_live_breaker_state(server: BoundedServer) -> None:
    result = server.cli("models", "--url", server.url)
    assert result.returncode == 0, result.stderr
    smollm2 = next(line for line in result.stdout.splitlines() if "smollm2 " in line)
    assert "closed" in smollm2


def test_serve_stops_cleanly_on_sigterm(server: BoundedServer) -> None:
    started = time.monotonic()
    # uvicorn shuts down gracefully, then re-raises the signal: -SIGTERM is a clean exit.
    assert server.stop() in {0, -signal.SIGTERM}  # -SIGKILL would mean it hung
    assert time.monotonic() - started < 10
    assert "Traceback" not in server.output()
