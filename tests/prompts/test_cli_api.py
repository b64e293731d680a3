"""`bounded prompt ...` on a real store, and GET /v1/prompts/{feature}."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import httpx
import yaml
from typer.testing import CliRunner

from bounded.cli.main import app
from bounded.gateway.app import Gateway
from bounded.prompts import PromptStore
from bounded.store.db import Database
from tests.conftest import ADMIN_KEY, make_config

PROMPT = """\
system: |
  You help {{ customer }}.
  Be brief.
params:
  temperature: 0.2
"""


def setup(tmp_path: Path) -> tuple[Path, str]:
    url = f"sqlite:///{tmp_path / 'b.db'}"
    data = {
        "server": {"store": url},
        "providers": {
            "up": {"kind": "openai", "base_url": "http://127.0.0.1:9/v1", "api_key": "x"}
        },
        "models": {"m1": {"provider": "up", "model": "stub"}},
        "features": {
            "support": {"owner": "ana", "route": {"targets": ["m1"]}, "prompt": {"system": "Hi."}}
        },
    }
    path = tmp_path / "bounded.yaml"
    path.write_text(yaml.safe_dump(data))
    return path, url


def run(path: Path, *args: str) -> Any:
    return CliRunner().invoke(
        app, ["prompt", *args, "--config", str(path)], env={"BOUNDED_ACTOR": "ana"}
    )


def test_push_label_list_show_diff_render(tmp_path: Path) -> None:
    path, url = setup(tmp_path)
    file = tmp_path / "support.yaml"
    file.write_text(PROMPT)
    pushed = run(path, "push", "support", str(file), "-m", "with the customer's name")
    assert pushed.exit_code == 0, pushed.output
    assert "support v2" in pushed.output and "customer" in pushed.output
    again = run(path, "push", "support", str(file))
    assert again.exit_code == 0 and "unchanged" in again.output

    listed = run(path, "list", "support")
    assert "bounded.yaml" in listed.output and "with the customer's name" in listed.output
    diff = run(path, "diff", "support")  # production (v1, from bounded.yaml) vs latest
    assert "-system: Hi." in diff.output and "+  You help {{ customer }}." in diff.output

    label = run(path, "label", "support", "2", "production")
    assert label.exit_code == 0 and "was v1" in label.output
    shown = run(path, "show", "support", "--json")
    assert json.loads(shown.output)["version"] == 2
    rendered = run(path, "render", "support", "--var", "customer=Ana")
    assert json.loads(rendered.output)[0]["content"] == "You help Ana.\nBe brief.\n"
    missing = run(path, "render", "support")
    assert missing.exit_code == 1 and "'customer'" in missing.output

    db = Database.open(url)
    assert PromptStore(db).labels("support") == {"latest": 2, "production": 2}
    db.close()


def test_bad_input_exits_1_and_stores_nothing(tmp_path: Path) -> None:
    path, url = setup(tmp_path)
    broken = tmp_path / "broken.yaml"
    broken.write_text("system: |\n  Hi {{ name\n")
    result = run(path, "push", "support", str(broken))
    assert result.exit_code == 1
    assert f"{broken}:2" in result.output and "hint" in result.output
    good = tmp_path / "good.yaml"
    good.write_text(PROMPT)
    assert run(path, "push", "nosuch", str(good)).exit_code == 1
    assert run(path, "push", "support", str(tmp_path / "absent.yaml")).exit_code == 1
    assert run(path, "label", "support", "5", "production").exit_code == 1
    assert run(path, "label", "support", "1", "Not A Label").exit_code == 1
    db = Database.open(url)
    store = PromptStore(db)
    assert [v.version for v in store.versions("support")] == [1]  # only bounded.yaml's
    assert store.features() == ["support"]
    db.close()


def test_http_api(tmp_path: Path) -> None:
    path, url = setup(tmp_path)
    db = Database.open(url)
    gw = Gateway(make_config(yaml.safe_load(path.read_text()), url), db=db, admin_key=ADMIN_KEY)
    _, plaintext = gw.keys.create("app", features=["*"])

    async def get(route: str, key: str) -> httpx.Response:
        transport = httpx.ASGITransport(app=gw.app())
        async with httpx.AsyncClient(transport=transport, base_url="http://gw") as client:
            return await client.get(route, headers={"authorization": f"Bearer {key}"})

    ok = asyncio.run(get("/v1/prompts/support", ADMIN_KEY))
    assert ok.status_code == 200, ok.text
    body = ok.json()
    assert body["labels"] == {"latest": 1, "production": 1}
    assert body["version"]["template"]["messages"] == [{"role": "system", "content": "Hi."}]
    assert body["versions"][0]["author"] == "bounded.yaml"
    missing = asyncio.run(get("/v1/prompts/support?version=7", ADMIN_KEY))
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "prompt_not_found"
    assert asyncio.run(get("/v1/prompts/nosuch", ADMIN_KEY)).status_code == 404
    assert asyncio.run(get("/v1/prompts/support", plaintext)).status_code == 403
    db.close()
