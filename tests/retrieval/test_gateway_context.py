"""Through the gateway: a feature with `retrieval:` answers with numbered sources, and the
citations come back in the header, the JSON body and, for streams, a final event."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from openai import OpenAI

from tests.conftest import ADMIN_KEY
from tests.retrieval.helpers import folder

pytestmark = pytest.mark.local_model

ROTATION = (
    "Rotate an API key by creating a new key first. Deploy the new key to every service. "
    "Then revoke the old key with bounded keys revoke."
)


def config(root: Path) -> dict[str, Any]:
    return {
        "providers": {"local": {"kind": "local"}},
        "models": {
            "smollm2": {
                "provider": "local",
                "model": "smollm2-135m-instruct",
                "context_window": 2048,
            }
        },
        "collections": {"kb": {"sources": [folder(root)]}},
        "features": {
            "helpdesk": {
                "owner": "support",
                # Generous: the one local model answers on cores shared with other work.
                "route": {"targets": ["smollm2"], "timeout_s": 300, "deadline_s": 600},
                "retrieval": {"collection": "kb", "top_k": 2, "max_context_tokens": 300},
            }
        },
    }


def test_answers_carry_citations(
    gateway_factory: Any, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    root = tmp_path / "kb"
    root.mkdir()
    (root / "keys.md").write_text(f"# Keys\n\n## Rotation\n\n{ROTATION}\n")
    (root / "budgets.md").write_text("# Budgets\n\nBudgets reserve spend before a call.\n")
    question = [{"role": "user", "content": "How do I rotate an API key?"}]
    with gateway_factory(config(root)) as (url, _):
        auth = {"authorization": f"Bearer {ADMIN_KEY}"}
        report = httpx.post(f"{url}/v1/collections/kb/sync", headers=auth, timeout=300)
        assert report.status_code == 200, report.text

        client = OpenAI(base_url=f"{url}/v1", api_key=ADMIN_KEY, max_retries=0)
        request.addfinalizer(client.close)  # an unclosed client leaks its socket
        raw = client.chat.completions.with_raw_response.create(
            model="helpdesk", messages=question, max_tokens=8, temperature=0
        )
        header = raw.headers["x-bounded-citations"]
        assert "keys.md" in header
        body = json.loads(raw.text)
        citations = body["bounded"]["citations"]
        assert citations and "keys.md" in json.dumps(citations[0])
        # The sources were in the prompt the model saw: more prompt tokens than the question.
        assert body["usage"]["prompt_tokens"] > 40

        stream = client.chat.completions.create(
            model="helpdesk", messages=question, max_tokens=8, temperature=0, stream=True
        )
        chunks = [chunk.model_dump() for chunk in stream]
        last = chunks[-1]
        assert last["choices"] == []
        assert "keys.md" in json.dumps(last["bounded"]["citations"])
