"""Release: which arm serves this request, and with which prompt version and route.

With a canary running for the feature, a share of users is served by the candidate:
``call.arm = "canary"``, its prompt version pinned on the call (the prompt stage renders
it) and its route, if the release has one, in place of the feature's. Who is in the
canary is sticky: a hash of the release and the caller's ``x-bounded-session`` (else its
key), so one user sees one arm throughout, on every replica. The response says which:
``x-bounded-arm: stable|canary``.

With a shadow running, the user is always served by the stable arm, and a share of
requests is copied to the candidate off the request path (:mod:`bounded.releases.mirror`):
the copy is forked here, before anything downstream changes the call, and sent once the
stable answer is on its way.

A route promoted by an earlier release replaces the file's route for its feature here too.
Placed after resolve (it needs the target and the key) and before the prompt stage.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Awaitable, Callable

from bounded.gateway.call import Call, Next, Reply
from bounded.releases.service import Releases, bucket

HEADER = "x-bounded-arm"
ReleasesRef = Callable[[], Releases | None]


class ReleaseArm:
    name = "release"

    def __init__(self, releases: ReleasesRef):
        self._releases = releases

    def __call__(self, call: Call, next: Next) -> Awaitable[Reply]:
        releases = self._releases()
        if releases is None or call.target.feature is None:
            return next(call)
        state = releases.cache.fresh()
        if state is not None and call.target.name not in state.known:
            return next(call)  # no release, nothing promoted: the common case, no frame
        return self._arm(call, next, releases)

    async def _arm(self, call: Call, next: Next, releases: Releases) -> Reply:
        state = await releases.cache.current()
        name = call.target.name
        promoted = state.routes.get(name)
        if promoted is not None:
            call.target = dataclasses.replace(call.target, route=promoted)
        release = state.running.get(name)
        if release is None:
            return await next(call)
        call.release_id = release.id
        if release.mode == "canary":
            sticky = call.session_id or call.principal.key_id or call.trace_id
            if bucket(release.id, sticky) < release.share:
                call.arm = "canary"
                if release.candidate_prompt is not None:
                    call.prompt_version = release.candidate_prompt
                if release.candidate_route is not None:
                    call.target = dataclasses.replace(call.target, route=release.candidate_route)
            call.headers[HEADER] = call.arm
            return await next(call)
        # Shadow: a share of requests by trace id (not sticky: no user sees the copy).
        twin = None
        if bucket(release.id, call.trace_id) < release.share:
            twin = releases.mirror.fork(call, release)
        call.headers[HEADER] = "stable"
        try:
            return await next(call)
        except asyncio.CancelledError:
            twin = None  # the client left before anything was decided: copy nothing
            raise
        finally:
            # Sent whether the stable arm answered or failed: the arms are compared on
            # the same requests.
            if twin is not None:
                releases.mirror.send(twin, next)
