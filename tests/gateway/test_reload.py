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
