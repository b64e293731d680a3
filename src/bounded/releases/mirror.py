"""Shadow traffic: a copy of a live request sent to the candidate, off the request path.

    mirror = Mirror(max_in_flight=64)
    mirror.send(call, release, rest)     # returns at once; the copy runs in the background

The copy is a fork of the call taken before the rest of the path ran (so the prompt stage,
guards and validation run on it afresh), marked ``arm = "shadow"``, pinned to the
candidate's prompt version and route, and always non-streamed: nobody reads its answer as
it comes. It runs the same stages as the original (input guards, context, validation,
settle, admit, route), so its ledger row carries everything the stable one does, under
the same trace id: the two answers side by side, and the candidate's cost attributed to
the release (``arm = 'shadow'``). It is traced on its own too: a second trace row under the
same trace id, with the candidate's answer text where the feature's telemetry policy stores
text (``bounded release answers`` reads the pairs). Its headers, guard hits and flags are its
own: nothing of it reaches the client's response.

A shadow must never slow or crowd the live traffic it copies: beyond ``max_in_flight``
copies at once, new ones are dropped (and counted), not queued.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging

from bounded.gateway.call import Call, Next, in_background
from bounded.releases.store import Release

log = logging.getLogger("bounded.releases")


class Mirror:
    def __init__(self, max_in_flight: int = 64):
        self.max_in_flight = max_in_flight
        self.in_flight = 0
        self.sent = 0
        self.dropped = 0
        self.failed = 0

    def fork(self, call: Call, release: Release) -> Call:
        """The shadow copy of ``call``, as it stands now (before the rest of the path)."""
        twin = call.fork()
        twin.arm = "shadow"
        twin.release_id = release.id
        twin.headers = {}
        twin.guard_hits = []
        twin.vault = None
        twin._cleanups = []
        twin._closed = False
        # Its own trace (same trace id, arm shadow), begun by the next stage it reaches and
        # written when it closes, answer text included where the feature's policy keeps
        # text: sharing the live request's recorder would add its spans to a trace already
        # written, and keep no answer of its own.
        twin.spans = None
        twin.stream = twin.wants_usage = False
        upstream = dict(twin.upstream)
        upstream.pop("stream", None)
        upstream.pop("stream_options", None)
        twin.upstream = upstream
        if release.candidate_prompt is not None:
            twin.prompt_version = release.candidate_prompt
        if release.candidate_route is not None:
            twin.target = dataclasses.replace(call.target, route=release.candidate_route)
        return twin

    def send(self, twin: Call, rest: Next) -> bool:
        if self.in_flight >= self.max_in_flight:
            self.dropped += 1
            return False
        self.in_flight += 1
        self.sent += 1
        in_background(self._run(twin, rest))
        return True

    async def _run(self, twin: Call, rest: Next) -> None:
        try:
            reply = await rest(twin)
            if reply.chunks is not None:  # a stage streamed anyway: drain it to settle
                async for _ in reply.chunks:
                    pass
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # its ledger row says how it failed; the user saw nothing
            self.failed += 1
            log.info("shadow copy of %s failed: %s", twin.trace_id, type(exc).__name__)
        finally:
            self.in_flight -= 1
            twin.close()
