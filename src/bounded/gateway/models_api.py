"""What ``GET /v1/models`` lists: the features, chat models and embedding models a key
may use, in OpenAI's model shape with bounded's details under ``bounded``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from bounded.config.schema import RouteConfig
from bounded.gateway.auth import Principal
from bounded.gateway.runtime import Runtime


def model_list(
    runtime: Runtime, principal: Principal, promoted: Mapping[str, RouteConfig] | None = None
) -> list[dict[str, Any]]:
    """``promoted``: routes a release promoted (they replace the file's, as served)."""
    data: list[dict[str, Any]] = []
    for name, target in runtime.targets.items():
        if principal.may_use(target):
            route = (promoted or {}).get(name) if target.feature else None
            data.append(
                _entry(
                    name,
                    target.feature.owner if target.feature else "bounded",
                    kind="feature" if target.feature else "model",
                    targets=list((route or target.route).targets),
                    **({"route_from": "release"} if route is not None else {}),
                )
            )
    for name in runtime.embedding_targets:
        if principal.may_embed(name):
            data.append(_entry(name, "bounded", kind="embedding"))
    return data


def _entry(name: str, owner: str, **bounded: Any) -> dict[str, Any]:
    return {"id": name, "object": "model", "created": 0, "owned_by": owner, "bounded": bounded}
