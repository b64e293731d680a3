"""One worker of ``bounded serve --workers N``: a whole gateway on its own socket.

It reads the config afresh (a reload since start-up counts), asks the owner for budgets,
rate limits and ledger writes where the supervisor says so, shares its circuit breakers
through the owner (``breakers``), and runs uvicorn exactly as one-process ``bounded serve``
does. Everything else is its own, as it would be in a replica: the upstream connection
pools, the live latency averages behind ``least-latency``, the loaded local model (lazily,
on first use), the config watcher.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from bounded.config.loader import load_config
from bounded.economics.accountant import Accountant
from bounded.economics.ledger import Ledger
from bounded.errors import BoundedError
from bounded.gateway.app import Gateway
from bounded.gateway.server import build_gateway, run_uvicorn
from bounded.workers.breakers import BreakerShare
from bounded.workers.plan import worker_socket
from bounded.workers.remote import OwnerLink, RemoteAccountant, RemoteLedger

if TYPE_CHECKING:
    from bounded.workers.plan import Plan

log = logging.getLogger("bounded.workers")


class WorkerGateway(Gateway):
    """A gateway whose routers' breakers are mirrors of the owner's (after each reload too)."""

    share: BreakerShare | None = None
    link: OwnerLink | None = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.share is not None:
            self.share.share(self.runtime.router.breakers)

    async def _warm(self) -> None:
        await super()._warm()
        if self.link is not None:
            try:
                await self.link.connect()
            except BoundedError as exc:  # the first request will try again, and say so
                log.warning("%s", exc.message)

    async def reload(self) -> bool:
        # No await between the swap inside and this: no request sees unshared breakers.
        swapped = await super().reload()
        if swapped and self.share is not None:
            self.share.share(self.runtime.router.breakers)
        return swapped


def serve_worker(plan: Plan) -> None:
    config = load_config(plan.config_path)
    accountant: Accountant | None = None
    ledger: Ledger | None = None
    gateway_class: type[Gateway] = Gateway
    if plan.owner_socket is not None:
        link = OwnerLink(plan.owner_socket)
        accountant = RemoteAccountant(link) if plan.owner_accountant else None
        ledger = RemoteLedger(link) if plan.owner_ledger else None
        share = BreakerShare(link.post)
        link.on_breaker = share.on_state
        gateway_class = type("SharedGateway", (WorkerGateway,), {"share": share, "link": link})
    gateway, _ = build_gateway(
        plan.config_path,
        config,
        accountant=accountant,
        ledger=ledger,
        dev_key=plan.dev_key,
        migrate=False,
        gateway_class=gateway_class,
    )
    run_uvicorn(gateway, config, sockets=[worker_socket(plan.host, plan.port)])
