"""Prompt: the feature's prompt version, rendered, goes before the client's messages.

Which version: the one a release stage pinned on the call (``call.prompt_version``, a
canary's candidate), else the feature's ``production`` label. Its messages (system first)
are rendered with the request's ``bounded.vars`` and put before the messages the client
sent; its model parameters fill in what the request left unset (a request's own
``temperature`` wins). The version's number goes on the ledger row and in
``x-bounded-prompt-version``. A model called directly, or a feature with no version, passes
through unchanged. Product code that sends plain messages keeps working: a version without
variables needs no ``bounded`` object at all.

The ``bounded`` object is bounded's, never the provider's: it is taken out of the upstream
body on every request. Before the input guards on purpose: a value a guard would redact
is redacted in the rendered prompt too.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from bounded.errors import InvalidRequest
from bounded.gateway.call import Call, Next, Reply
from bounded.prompts.cache import PromptCache
from bounded.prompts.store import PromptVersion

HEADER = "x-bounded-prompt-version"
PromptsRef = Callable[[], PromptCache | None]


class RenderPrompt:
    name = "prompt"

    def __init__(self, prompts: PromptsRef):
        self._prompts = prompts

    def __call__(self, call: Call, next: Next) -> Awaitable[Reply]:
        extras = call.upstream.pop("bounded", None)
        pinned = extras.get("prompt_version") if isinstance(extras, dict) else None
        if pinned is not None and call.principal.admin:
            # An eval of a candidate (`bounded eval run --prompt-version V`): admin keys
            # only, so product traffic cannot pick an unreleased prompt.
            call.prompt_version = _number(pinned)
        prompts = self._prompts()
        if call.target.feature is None or prompts is None:
            return next(call)
        if call.prompt_version is None and prompts.known_without(call.target.name):
            return next(call)  # the feature has no prompt version: no frame of our own
        return self._render(call, next, prompts, extras)

    async def _render(self, call: Call, next: Next, prompts: PromptCache, extras: object) -> Reply:
        upstream = call.upstream
        feature = call.target.name
        if call.prompt_version is not None:
            version: PromptVersion | None = await prompts.version(feature, call.prompt_version)
        else:
            version = await prompts.production(feature)
        if version is None:
            return await next(call)
        values = extras.get("vars") if isinstance(extras, dict) else None
        messages = version.template.render(values)
        params = version.template.params
        if params:
            call.upstream = upstream = {**params, **upstream}
        upstream["messages"] = [*messages, *upstream["messages"]]
        call.prompt_version = version.version
        call.headers[HEADER] = version.id
        return await next(call)


def _number(value: object) -> int:
    text = str(value).rsplit("@", 1)[-1].lstrip("v")
    if isinstance(value, bool) or not text.isdigit():
        raise InvalidRequest(
            f"bounded.prompt_version must be a version number, not {value!r}",
            param="bounded.prompt_version",
        )
    return int(text)
