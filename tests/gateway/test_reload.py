"""Hot reload: an edited bounded.yaml takes effect without a restart; a broken one is refused."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx
import yaml

from bounded.gateway.app import Gateway
from bounded.store.db import Database
from tests.conftest import ADMIN_KEY, make_config, serve_in_thread

BASE: dict[str, Any] = {
    "providers": {"up": {"kind": "openai", "base_url": "http://127.0.0.1:9/v1"}},
    "models": {"m1": {"provider": "up", "model": "x"}},
    "features": {"f": {"owner": "t", "route": {"targets": ["m1"]}}},
}
AUTH = {"authorization": f"Bearer {ADMIN_KEY}"}


def write(path: Path, data: dict[str, Any], store_url: str) -> None:
    path.write_text(yaml.safe_dump({**data, "server": {"store": store_url}}))


def wait_for(predicate: Any, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.05)


def status_of(base: str, model: str) -> int:
    body = {"model": model, "messages": [{"role": "user", "content": "hi"}]}
    return httpx.post(f"{base}/v1/chat/completions", json=body, headers=AUTH).status_code


def test_edit_adds_a_feature_and_a_broken_edit_keeps_the_old_config(
    tmp_path: Path, store_url: str, db: Database
) -> None:
    path = tmp_path / "bounded.yaml"
    write(path, BASE, store_url)
    gateway = Gateway(
        make_config(BASE, store_url),
        db=db,
        admin_key=ADMIN_KEY,
        config_path=path,
        reload_interval_s=0.05,
    )
    with serve_in_thread(gateway.app()) as base:
        assert status_of(base, "g") == 404

        features = {**BASE["features"], "g": {"owner": "t", "route": {"targets": ["m1"]}}}
        write(path, {**BASE, "features": features}, store_url)
        wait_for(lambda: gateway.reloads == 1)
        assert status_of(base, "g") == 502  # resolved now; its upstream is down

        path.write_text("features: {g: {owner: t, route: {targets: [missing]}}}\n")
        wait_for(lambda: gateway.last_reload_error is not None)
        assert "features.g.route.targets[0]" in gateway.last_reload_error
        assert status_of(base, "g") == 502  # the running config is kept
        ready = httpx.get(f"{base}/readyz").json()
        assert "unknown model 'missing'" in ready["last_reload_error"]


def test_requests_in_flight_survive_a_reload(tmp_path: Path, store_url: str, db: Database) -> None:
    """A slow upstream (a stand-in) keeps a request open while the config changes under it:
    the request completes on the old runtime and the next one sees the new config."""
    import threading

    from tests.standins.faulty_upstream import FaultyUpstream, ok

    with FaultyUpstream().running() as upstream:
        upstream.always("x", ok("slow answer", delay_s=1.0))
        data = {**BASE, "providers": {"up": {"kind": "openai", "base_url": upstream.base_url}}}
        path = tmp_path / "bounded.yaml"
        write(path, data, store_url)
        gateway = Gateway(
            make_config(data, store_url),
            db=db,
            admin_key=ADMIN_KEY,
            config_path=path,
            reload_interval_s=0.05,
        )
        with serve_in_thread(gateway.app()) as base:
            results: list[httpx.Response] = []
            body = {"model": "f", "messages": [{"role": "user", "content": "hi"}]}
            slow = threading.Thread(
                target=lambda: results.append(
                    httpx.post(f"{base}/v1/chat/completions", json=body, headers=AUTH, timeout=30)
                )
            )
            slow.start()
            wait_for(lambda: upstream.count("x") == 1)  # the request is upstream now
            features = {**data["features"], "g": {"owner": "t", "route": {"targets": ["m1"]}}}
            write(path, {**data, "features": features}, store_url)
            wait_for(lambda: gateway.reloads == 1)
            slow.join(timeout=30)
            assert results[0].status_code == 200
            assert results[0].json()["choices"][0]["message"]["content"] == "slow answer"
            upstream.always("x", ok("fast"))
            assert status_of(base, "g") == 200
