"""The ``bounded`` command line as a user runs it: real subprocesses, real files, real store."""

from __future__ import annotations

import json
import re
import shutil
import signal
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.e2e.server import BOUNDED, BoundedServer, cli_env, free_port, run_cli, write_config

ROOT = Path(__file__).parents[2]
EXAMPLE = ROOT / "examples" / "bounded.yaml"

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


def created(result: subprocess.CompletedProcess[str]) -> tuple[str, str]:
    """``(key id, plaintext)`` from the output of ``keys create`` or ``keys rotate``."""
    assert result.returncode == 0, result.stderr
    plaintext = re.search(r"\bbnd_[A-Za-z0-9_-]{40,}", result.stdout)
    key_id = re.search(r"(?:created key|new key) (\w+)", result.stdout)
    assert plaintext and key_id, result.stdout
    return key_id[1], plaintext[0]


def status_of(config_path: Path, key_id: str) -> str:
    listed = run_cli("keys", "list", "-c", str(config_path))
    row = next(line for line in listed.stdout.splitlines() if key_id in line)
    return [cell.strip() for cell in row.split("│") if cell.strip()][-1]


def test_keys_create_refuses_a_name_in_use_and_points_at_rotate(config_path: Path) -> None:
    first, _ = created(run_cli("keys", "create", "search-svc", "-c", str(config_path)))
    again = run_cli("keys", "create", "search-svc", "-c", str(config_path))
    assert again.returncode == 1
    assert "bnd_" not in again.stdout
    assert first in again.stderr and "bounded keys rotate search-svc" in again.stderr
    listed = run_cli("keys", "list", "-c", str(config_path))
    assert len([line for line in listed.stdout.splitlines() if "search-svc" in line]) == 1


def test_keys_rotate_follows_the_handbook(config_path: Path) -> None:
    """New key, same name; the old one keeps working for the grace; then it goes alone."""
    args = ("--feature", "support-answer", "--rpm", "60", "-c", str(config_path))
    old, _ = created(run_cli("keys", "create", "invoice-svc", *args))
    rotated = run_cli(
        "keys", "rotate", "invoice-svc", "--grace-minutes", "60", "-c", str(config_path)
    )
    new, _ = created(rotated)
    assert f"bounded keys revoke {old}" in rotated.stdout
    listed = run_cli("keys", "list", "-c", str(config_path))
    rows = [line for line in listed.stdout.splitlines() if "invoice-svc" in line]
    assert len(rows) == 2 and all("support-answer" in r and "active" in r for r in rows)

    # During the grace the name means two keys: revoking by it refuses and lists both ids.
    ambiguous = run_cli("keys", "revoke", "invoice-svc", "-c", str(config_path))
    assert ambiguous.returncode == 1
    assert old in ambiguous.stderr and new in ambiguous.stderr and "by id" in ambiguous.stderr
    assert status_of(config_path, old) == status_of(config_path, new) == "active"

    revoked = run_cli("keys", "revoke", old, "-c", str(config_path))
    assert revoked.returncode == 0, revoked.stderr
    assert f"revoked {old} (invoice-svc)" in revoked.stdout
    assert (status_of(config_path, old), status_of(config_path, new)) == ("revoked", "active")
    # Only the new key holds the name now, so the name works again (and means that key).
    plain = run_cli("keys", "rotate", "invoice-svc", "-c", str(config_path))
    newest, _ = created(plain)
    assert f"old key {new} revoked" in plain.stdout
    assert (status_of(config_path, new), status_of(config_path, newest)) == ("revoked", "active")


def test_keys_rotate_of_an_unknown_key_fails(config_path: Path) -> None:
    result = run_cli("keys", "rotate", "nobody", "-c", str(config_path))
    assert result.returncode == 1
    assert "no active key" in result.stderr and "bnd_" not in result.stdout


# -- finding the config -------------------------------------------------------------------


def run_in(folder: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """``bounded ARGS...`` run from ``folder``, as a user in that directory types it."""
    return subprocess.run(
        [*BOUNDED, *args],
        capture_output=True,
        text=True,
        cwd=folder,
        env=cli_env(**env),
        timeout=60,
        check=False,
    )


def test_without_a_config_the_error_names_every_place_looked_at(tmp_path: Path) -> None:
    result = run_in(tmp_path, "models")
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    for place in ("--config", "$BOUNDED_CONFIG", "./bounded.yaml", "./examples/bounded.yaml"):
        assert place in result.stderr, result.stderr


def test_config_is_found_in_order(tmp_path: Path, config_path: Path) -> None:
    here = tmp_path / "here"
    here.mkdir()
    (here / "bounded.yaml").write_text(config_path.read_text())
    shutil.copytree(ROOT / "examples" / "schemas", here / "examples" / "schemas")
    local = run_in(here, "config", "check")
    assert local.returncode == 0, local.stderr
    assert "bounded.yaml:" in local.stdout
    from_env = run_in(here, "config", "check", BOUNDED_CONFIG=str(EXAMPLE))
    assert from_env.returncode == 0 and str(EXAMPLE) in from_env.stdout
    missing = run_in(here, "config", "check", BOUNDED_CONFIG=str(tmp_path / "nope.yaml"))
    assert missing.returncode == 2
    assert "file not found" in missing.stderr and "BOUNDED_CONFIG" in missing.stderr


def test_a_checkout_finds_the_example_config(tmp_path: Path) -> None:
    """From the root of a clone, the README's commands work without --config."""
    checkout = tmp_path / "clone"
    (checkout / "examples").mkdir(parents=True)
    (checkout / "pyproject.toml").write_text((ROOT / "pyproject.toml").read_text())
    (checkout / "examples" / "bounded.yaml").write_text(EXAMPLE.read_text())
    shutil.copytree(ROOT / "examples" / "schemas", checkout / "examples" / "schemas")
    result = run_in(checkout, "models")
    assert result.returncode == 0, result.stderr
    assert "smollm2-135m-instruct" in result.stdout
    assert "config: examples/bounded.yaml" in result.stderr
    # The same folder without the project file is not a checkout: nothing is guessed.
    (checkout / "pyproject.toml").write_text('[project]\nname = "other"\n')
    assert run_in(checkout, "models").returncode == 2


# -- spend ------------------------------------------------------------------------------------


def test_spend_by_every_grouping_the_report_has(config_path: Path) -> None:
    for group in ("feature", "team", "model", "key"):
        result = run_cli("spend", "--by", group, "-c", str(config_path))
        assert result.returncode == 0, result.stderr
        assert f"by {group}" in result.stdout
    as_json = run_cli("spend", "--by", "key", "--json", "-c", str(config_path))
    assert as_json.returncode == 0, as_json.stderr
    assert set(json.loads(as_json.stdout)) == {"period", "since", "until", "key"}
    unknown = run_cli("spend", "--by", "keys", "-c", str(config_path))
    assert unknown.returncode == 2 and "feature|team|model|key" in unknown.stderr


# -- search -----------------------------------------------------------------------------------


def test_search_reports_query_time_apart_from_loading(config_path: Path) -> None:
    # The example's folder source is relative to where bounded runs: the checkout's root.
    synced = run_in(ROOT, "index", "sync", "handbook", "-c", str(config_path))
    assert synced.returncode == 0, synced.stderr
    found = run_in(ROOT, "search", "handbook", "rotate an API key", "-c", str(config_path))
    assert found.returncode == 0, found.stderr
    assert "Rotating a key" in found.stdout
    timing = re.search(r"in ([\d.]+) ms \(hybrid, warm\); loading .* took (\d+) ms", found.stdout)
    assert timing, found.stdout
    # Loading the ONNX model takes far longer than a warm query over three documents.
    assert float(timing[1]) < float(timing[2])


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


def test_spend_by_key_names_the_key(server: BoundedServer) -> None:
    key_id, key = created(server.cli("keys", "create", "spend-bot"))
    # One token from the local model: the smallest call the ledger records.
    hello = [{"role": "user", "content": "hi"}]
    body = json.dumps({"model": "support-answer", "messages": hello, "max_tokens": 1}).encode()
    request = urllib.request.Request(
        f"{server.base_url}/chat/completions",
        data=body,
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=60) as resp:
        assert resp.status == 200
    result = server.cli("spend", "--by", "key")
    assert result.returncode == 0, result.stderr
    row = next(line for line in result.stdout.splitlines() if key_id in line)
    assert "spend-bot" in row
    as_json = json.loads(server.cli("spend", "--by", "key", "--json").stdout)
    assert {"group": key_id, "name": "spend-bot"}.items() <= as_json["key"][0].items()


def test_serve_stops_cleanly_on_sigterm(server: BoundedServer) -> None:
    started = time.monotonic()
    # uvicorn shuts down gracefully, then re-raises the signal: -SIGTERM is a clean exit.
    assert server.stop() in {0, -signal.SIGTERM}  # -SIGKILL would mean it hung
    assert time.monotonic() - started < 10
    assert "Traceback" not in server.output()
