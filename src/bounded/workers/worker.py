"""One worker of ``bounded serve --workers N``: a whole gateway on its own socket.

It reads the config afresh (a reload since start-up counts), asks the owner for budgets,
rate limits and ledger writes where the supervisor says so, and runs uvicorn exactly as
one-process ``bounded serve`` does. Everything else is its own, as it would be in a
replica: the upstream connection pools, the live latency averages behind ``least-latency``,
the exact-match cache, the loaded local model (lazily, on first use), the config watcher.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from bounded.config.loader import load_config
from bounded.economics.accountant import Accountant
from bounded.economics.ledger import Ledger
from bounded.gateway.server import build_gateway, run_uvicorn
from bounded.workers.supervisor import worker_socket

if TYPE_CHECKING:
    from bounded.workers.supervisor import Plan


def serve_worker(plan: Plan) -> None:
    config = load_config(plan.config_path)
    accountant: Accountant | None = None
    ledger: Ledger | None = None
    if plan.owner_socket is not None:
        from bounded.workers.remote import OwnerLink, RemoteAccountant, RemoteLedger

        link = OwnerLink(plan.owner_socket)
        accountant = RemoteAccountant(link) if plan.owner_accountant else None
        ledger = RemoteLedger(link) if plan.owner_ledger else None
    gateway, _ = build_gateway(
        plan.config_path,
        config,
        accountant=accountant,
        ledger=ledger,
        dev_key=plan.dev_key,
        migrate=False,
    )
    run_uvicorn(gateway, config, sockets=[worker_socket(plan.host, plan.port)])
