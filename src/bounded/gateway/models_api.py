"""What ``GET /v1/models`` lists: the features, chat models and embedding models a key
may use, in OpenAI's model shape with bounded's details under ``bounded``."""

from __future__ import annotations

from typing import Any

from bounded.gateway.auth import Principal
from bounded.gateway.runtime import Runtime


def model_list(runtime: Runtime, principal: Principal) -> list[dict[str, Any]]:
    data: list[dict[str, Any]] = []
    for name, target in runtime.targets.items():
        if principal.may_use(target):
            data.append(
                _entry(
                    name,
                    target.feature.owner if target.feature else "bounded",
                    kind="feature" if target.feature else "model",
                    targets=list(target.route.targets),
                )
            )
    for name in runtime.embedding_targets:
        if principal.may_embed(name):
            data.append(_entry(name, "bounded", kind="embedding"))
    return data


def _entry(name: str, owner: str, **bounded: Any) -> dict[str, Any]:
    return {"id": name, "object": "model", "created": 0, "owned_by": owner, "bounded": bounded}
