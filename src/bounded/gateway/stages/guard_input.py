"""Input guards: the feature's policy over what the client sent, before any model sees it.

``block`` refuses the request (400 ``input_blocked``, naming the kinds found, never the
values); ``redact`` replaces values with typed placeholders (``<EMAIL_1>``) in what goes
upstream, and with ``restore: true`` puts the real values back into the reply, streamed
or not, so the model never sees them and the user never sees placeholders; ``log`` only
records the finding. Runs before context and admission, so the reservation counts the
text the model will actually get.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable
from typing import Any

from bounded.errors import InvalidRequest
from bounded.gateway.call import Call, Json, Next, Reply
from bounded.gateway.streams import closing
from bounded.validation.enforce import FeatureGuards
from bounded.validation.guards.base import ScanContext

# Texts past this are scanned off the event loop, so one large prompt cannot stall
# every other request while its guards run.
_INLINE_CHARS = 16_384


class GuardBlocked(InvalidRequest):
    default_code = "input_blocked"


class InputGuards:
    name = "guards.input"

    def __call__(self, call: Call, next: Next) -> Awaitable[Reply]:
        guards: FeatureGuards | None = call.runtime.guards.get(call.target.name)
        if guards is None or not guards.input:
            return next(call)
        return self._guarded(call, next, guards)

    async def _guarded(self, call: Call, next: Next, guards: FeatureGuards) -> Reply:
        from bounded.validation.guards.redact import Vault

        vault = call.vault = Vault()
        offset = len(call.upstream["messages"]) - len(call.body["messages"])
        messages = list(call.upstream["messages"])
        context = ScanContext("input", guards.risk_tier)
        texts = _to_scan(_texts(messages[offset:]), guards)
        if sum(len(t) for _, _, t in texts) > _INLINE_CHARS:
            await asyncio.to_thread(_guard_messages, call, guards, messages, offset, texts, context)
        else:
            _guard_messages(call, guards, messages, offset, texts, context)
        call.upstream["messages"] = messages
        reply = await next(call)
        if guards.input.restores and vault:
            _restore(reply, vault)
        return reply


def _to_scan(texts: list[_Text], guards: FeatureGuards) -> list[_Text]:
    """All but the texts of earlier messages found clean before (a system prompt, a chat's
    history): the last message is the new one and is always scanned."""
    clean = guards.clean_inputs
    if clean is None or not texts:
        return texts
    last = texts[-1][0]
    return [t for t in texts if t[0] == last or t[2] not in clean]


def _guard_messages(
    call: Call,
    guards: FeatureGuards,
    messages: list[Json],
    offset: int,
    texts: list[_Text],
    context: ScanContext,
) -> None:
    clean = guards.clean_inputs
    last = texts[-1][0] if texts else -1
    for index, part, text in texts:
        outcome = guards.input.run(text, context, call.vault)
        if not outcome.hits:
            if clean is not None and index != last:
                clean.put(text, True)
            continue
        call.guard_hits += [("input", hit) for hit in outcome.hits]
        call.flags.append("input_" + ("blocked" if outcome.blocked else "flagged"))
        if outcome.blocked is not None:
            kinds = ", ".join(sorted({f.kind for f in outcome.blocked.findings}))
            param = f"messages[{index}].content" + (f"[{part}].text" if part is not None else "")
            raise GuardBlocked(
                f"the request was refused by the {outcome.blocked.spec.kind} guard ({kinds})",
                param=param,
            )
        if outcome.text != text:
            _replace(messages, offset + index, part, outcome.text)


_Text = tuple[int, int | None, str]  # message index, part index or None, text


def _texts(messages: list[Json]) -> list[_Text]:
    """(message index, part index or None, text) of every text the client sent."""
    found: list[_Text] = []
    for i, message in enumerate(messages):
        content = message.get("content")
        if isinstance(content, str):
            found.append((i, None, content))
        elif isinstance(content, list):
            for j, part in enumerate(content):
                text = part.get("text") if isinstance(part, dict) else None
                if isinstance(text, str):
                    found.append((i, j, text))
    return found


def _replace(messages: list[Json], index: int, part: int | None, text: str) -> None:
    message = dict(messages[index])
    if part is None:
        message["content"] = text
    else:
        parts = list(message["content"])
        parts[part] = {**parts[part], "text": text}
        message["content"] = parts
    messages[index] = message


def _restore(reply: Reply, vault: Any) -> None:
    from bounded.validation.guards.redact import restore

    if reply.body is not None:
        for choice in reply.body.get("choices") or ():
            message = choice.get("message") or {}
            if isinstance(message.get("content"), str):
                message["content"] = restore(message["content"], vault)
            for tool_call in message.get("tool_calls") or ():
                function = tool_call.get("function") or {}
                if isinstance(function.get("arguments"), str):
                    function["arguments"] = restore(function["arguments"], vault)
    elif reply.chunks is not None:
        reply.chunks = _restored(reply.chunks, vault)


async def _restored(chunks: AsyncIterator[Json], vault: Any) -> AsyncIterator[Json]:
    """Placeholders put back as the stream goes, one restorer per choice: a placeholder
    split across chunks is held back only until it is whole."""
    from bounded.validation.guards.redact import Restorer

    restorers: dict[int, Any] = {}
    last: Json | None = None
    async with closing(chunks):
        async for chunk in chunks:
            last = chunk
            for choice in chunk.get("choices") or ():
                restorer = restorers.setdefault(choice.get("index", 0), Restorer(vault))
                delta = choice.get("delta") or {}
                text = delta.get("content")
                ends = bool(choice.get("finish_reason"))
                if isinstance(text, str) or ends:
                    out = restorer.feed(text or "")
                    if ends:
                        out += restorer.flush()
                    choice["delta"] = {**delta, "content": out}
            yield chunk
    leftover = {i: r.flush() for i, r in restorers.items()}
    if any(leftover.values()) and last is not None:
        # A stream that ended without a finish reason: release what was held.
        choices = [{"index": i, "delta": {"content": t}} for i, t in leftover.items() if t]
        yield {**last, "choices": choices}
