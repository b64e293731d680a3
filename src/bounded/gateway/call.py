"""One request on its way through the gateway, and the stages it passes.

A stage is one small async callable: it gets the call and the rest of the path, and
returns the reply. It may work before handing on (auth, parse, admit), after (settle,
attach citations), around it (retry a repair, record a failure), or instead of it (a
cache hit, a refusal). The request path is a list of stages; the same list serves JSON
and SSE, because a reply is either a body or a stream of chunks and a stage that cares
about the difference wraps the stream.

    class Shout:
        name = "shout"

        async def __call__(self, call: Call, next: Next) -> Reply:
            reply = await next(call)
            if reply.body is not None:
                reply.body["choices"][0]["message"]["content"] += "!"
            return reply

    pipeline = Pipeline([Authenticate(auth), ..., Shout(), Route()])
    reply = await pipeline(call)

A stage with nothing to do for a call (no guards on this feature, no release running)
hands it on without a frame of its own: a plain ``def`` that returns ``next(call)``, the
awaitable of the rest, and keeps its real work in a coroutine it returns otherwise::

    def __call__(self, call: Call, next: Next) -> Awaitable[Reply]:
        if not self.applies(call):
            return next(call)
        return self._work(call, next)

Why: a request is suspended and resumed at every upstream read and write, and each resume
passes through every coroutine still waiting on the stack. A dozen stages that merely
``await next(call)`` made each resume a dozen levels deep; under load that cost more than
the stages' own checks (measured in docs/validation.md: requests/s 0.80x of the inline
handler before, see the figures there after).

Why this shape: Starlette's ``(scope, receive, send)`` taught that one tiny interface
composes better than hooks. Wrapping providers (``Settled(Routed(...))``) was the other
candidate, but half the path (auth, parse, resolve, context) is not provider-shaped, and
output validation must re-enter the route; a stage that gets ``next`` can call it again.
"""

from __future__ import annotations

import asyncio
import copy
import functools
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Protocol

from starlette.requests import Request

from bounded.economics.accountant import Hold
from bounded.economics.ledger import MAX_SESSION_CHARS
from bounded.economics.usage import Usage
from bounded.gateway.auth import Principal
from bounded.gateway.runtime import Runtime, Target
from bounded.routing.router import RouteTrace
from bounded.telemetry.spans import new_trace_id

Json = dict[str, Any]
MAX_CLIENT_ID_CHARS = MAX_SESSION_CHARS  # an x-bounded-session longer than this: 400


@dataclass(slots=True)
class Reply:
    """What a stage returns: a JSON ``body``, or ``chunks`` of an SSE stream."""

    body: Json | None = None
    chunks: AsyncIterator[Json] | None = None


@dataclass(eq=False, slots=True)
class Call:
    """Everything one request carries and gathers, from its key to its ledger row.

    Fields without a default are set by the stage that owns them (``principal`` by
    auth, ``body`` by parse, ``target`` and ``upstream`` by resolve) and read only by
    stages after it.
    """

    request: Request
    runtime: Runtime
    trace_id: str
    operation: str  # "chat" | "embeddings"
    session_id: str | None = None
    ts: float = field(default_factory=time.time)
    started: float = field(default_factory=time.perf_counter)
    principal: Principal = field(init=False)
    body: Json = field(init=False)  # as the client sent it
    target: Target = field(init=False)
    upstream: Json = field(init=False)  # as it goes to the provider
    stream: bool = False
    wants_usage: bool = False  # the client asked for stream_options.include_usage
    trace: RouteTrace = field(default_factory=RouteTrace)
    headers: dict[str, str] = field(default_factory=dict)  # added to the response
    # The prompt version to render: a release stage may pin one (a canary's candidate)
    # before the prompt stage runs; the prompt stage sets the one it rendered.
    prompt_version: int | None = None
    # The release arm (bounded.releases): stable, canary, or shadow for a mirrored copy;
    # set by the release stage, on every ledger row of the request.
    arm: str = "stable"
    release_id: str | None = None
    # -- economics: filled by admit, route and settle; becomes the ledger row ----------
    prompt_estimate: int = 0
    max_output: int = 0  # output tokens reserved for, all choices together
    hold: Hold | None = None
    deployment_holds: list[tuple[str, Hold]] = field(default_factory=list)
    deployment: str | None = None
    attempts: int = 0
    first_token_at: float | None = None
    usage: Usage | None = None
    usage_source: str = "provider"
    output_text: list[str] = field(default_factory=list)
    output_chars: int = 0
    cap_check_at: int = 0  # see Meter.output_cap_reached
    status: int = 200
    error_class: str | None = None
    cost: Decimal = Decimal(0)
    flags: list[str] = field(default_factory=list)
    # -- validation: filled by the guard and validate stages ---------------------------
    vault: Any = None  # redacted input values, to restore in the reply; memory only
    guard_hits: list[Any] = field(default_factory=list)
    sources: list[str] = field(default_factory=list)  # texts of the cited chunks
    exclude: frozenset[str] = frozenset()  # deployments whose answers were refused
    validation: str | None = None  # passed | repaired | escalated | failed
    groundedness: float | None = None
    baseline_cost: Decimal | None = None  # a cascade's answer at its route's last target
    baseline_model: Any = None  # the ModelConfig that baseline is priced at
    check: Any = None  # the check stage's Verdict on this pass's answer
    answer_text: str = ""  # the answer the check judged (for a repair's prompt)
    buffered: bool = False  # a stream read whole and replayed by the check stage
    recorded: bool = False
    streaming: bool = False  # a stream's body has started
    spans: Any = None  # telemetry: the request's span recorder, shared by its forks
    # False when the request was past telemetry.max_traces_per_s: its shadow copy, which
    # begins a trace of its own under the same id, is then past it too.
    trace_kept: bool = True
    _cleanups: list[Callable[[], None]] = field(default_factory=list)
    _closed: bool = False

    @classmethod
    def begin(cls, request: Request, runtime: Runtime, operation: str) -> Call:
        """Start a call on the current runtime; :meth:`close` must follow."""
        runtime.in_flight += 1
        call = cls(request, runtime, client_trace_id(request), operation)
        call.on_close(lambda: _leave(runtime))
        return call

    @property
    def team(self) -> str | None:
        if self.target.team:
            return self.target.team
        return self.principal.teams[0] if self.principal.teams else None

    def fork(self, *flags: str) -> Call:
        """Another upstream pass of this request (a repair, an escalation, a cascade step):
        the same request, key and trace id; its own reservation, usage and ledger row."""
        twin = copy.copy(self)
        twin.trace = RouteTrace()
        twin.headers = self.headers  # one response: stages add to the same headers
        twin.prompt_estimate = twin.max_output = 0
        twin.hold, twin.deployment_holds = None, []
        twin.deployment, twin.attempts, twin.first_token_at = None, 0, None
        twin.usage, twin.usage_source = None, "provider"
        twin.output_text, twin.output_chars, twin.cap_check_at = [], 0, 0
        twin.status, twin.error_class, twin.cost = 200, None, Decimal(0)
        twin.flags = list(flags)
        twin.started = time.perf_counter()
        twin.recorded = twin.streaming = twin.buffered = False
        twin.check, twin.answer_text, twin.baseline_model = None, "", None
        twin.upstream = dict(self.upstream)
        return twin

    def on_close(self, cleanup: Callable[[], None]) -> None:
        """Run ``cleanup`` when the response is done (sent, failed or abandoned)."""
        self._cleanups.append(cleanup)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        # Dropped once run: a cleanup that refers to this call (telemetry's does) would
        # otherwise keep the call in a reference cycle, and every request's objects would
        # wait for the cyclic garbage collector instead of being freed at once.
        cleanups, self._cleanups = self._cleanups, []
        for cleanup in reversed(cleanups):
            cleanup()


Next = Callable[[Call], Awaitable[Reply]]


class Stage(Protocol):
    name: str

    # An ``async def`` satisfies this, and so does a plain def returning ``next(call)``.
    def __call__(self, call: Call, next: Next) -> Awaitable[Reply]: ...


class Pipeline:
    """Stages linked once, at start-up: calling it runs the first with the rest as next."""

    def __init__(self, stages: Sequence[Stage]):
        self.stages = tuple(stages)
        run: Next = _end
        for stage in reversed(self.stages):
            run = _link(stage, run)
        self._run = run

    def __call__(self, call: Call) -> Awaitable[Reply]:
        return self._run(call)

    @property
    def names(self) -> list[str]:
        return [stage.name for stage in self.stages]


def _link(stage: Stage, rest: Next) -> Next:
    # A partial, not a wrapping coroutine: calling it is calling the stage, one frame per
    # stage instead of two (measured: about half the cost of passing through a stage).
    return functools.partial(stage, next=rest)


async def _end(call: Call) -> Reply:
    raise RuntimeError("the request path ended without a reply: its last stage must answer")


def _leave(runtime: Runtime) -> None:
    runtime.in_flight -= 1
    if runtime.in_flight == 0:
        runtime.retired.set()


_background: set[asyncio.Task[None]] = set()


def in_background(work: Awaitable[None]) -> None:
    """Run ``work`` after the response, holding the task until it is done (an
    unreferenced task can be garbage-collected mid-flight)."""

    async def run() -> None:
        await work

    task = asyncio.get_running_loop().create_task(run())
    _background.add(task)
    task.add_done_callback(_background.discard)


def client_trace_id(request: Request) -> str:
    """The caller's own trace id (so several calls can share one), or a new one (time
    first: :func:`~bounded.telemetry.spans.new_trace_id`)."""
    given = request.headers.get("x-bounded-trace-id")
    if given and _is_client_id(given):
        return given
    return new_trace_id()


_ID_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._:-")


def _is_client_id(value: str) -> bool:
    return 0 < len(value) <= 64 and _ID_CHARS.issuperset(value)
