"""``bounded serve``: one gateway process, or several under the worker supervisor.

Apart from ``server`` (which builds and runs one gateway) because the supervisor's
workers import ``server``; choosing between the two here keeps imports one-way.
"""

from __future__ import annotations

import logging
from pathlib import Path

from bounded.config.loader import load_config
from bounded.gateway.banner import banner
from bounded.gateway.server import build_gateway, run_uvicorn


def serve(
    config_path: Path, host: str | None, port: int | None, workers: int | str | None = None
) -> int:
    """Serve until stopped; with more than one worker, under the supervisor. Exit code."""
    config = load_config(config_path)
    host = host or config.server.host
    port = config.server.port if port is None else port
    logging.basicConfig(
        level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    logging.getLogger("bounded").setLevel(config.server.log_level.upper())
    from bounded.workers.supervisor import resolve_workers, serve_workers

    count = resolve_workers(workers, config)
    if count > 1:
        return serve_workers(config_path, config, host, port, count)
    gateway, dev_key = build_gateway(config_path, config)
    banner(config, host, port, dev_key)
    run_uvicorn(gateway, config, host=host, port=port)
    return 0
