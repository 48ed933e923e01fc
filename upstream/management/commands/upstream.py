"""``etl upstream``: serve the deterministic sample upstream with uvicorn.

It never touches the database, so it runs without migrations or system checks.
``--port 0`` picks a free port; the line printed once the server listens carries the
real one, so scripts can start it as a subprocess and read where it is.
"""

from __future__ import annotations

import asyncio
import logging
from argparse import ArgumentParser
from collections.abc import Callable
from typing import Any

import uvicorn
from django.core.management.base import BaseCommand, CommandError

from etl import serving
from upstream import UpstreamConfig, build_app


class _DropIncompleteResponse(logging.Filter):
    # Truncated bodies are deliberate (--fail-rate); uvicorn reports each as an error.
    def filter(self, record: logging.LogRecord) -> bool:
        return "without completing response" not in record.getMessage()


class Command(BaseCommand):
    help = "Serve the deterministic sample upstream (a fake market) over HTTP."
    requires_system_checks: list[str] = []
    requires_migrations_checks = False

    def add_arguments(self, parser: ArgumentParser) -> None:
        defaults = UpstreamConfig()
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=8800, help="0 picks a free port")
        parser.add_argument("--items", type=int, default=defaults.items)
        parser.add_argument("--shops", type=int, default=defaults.shops)
        parser.add_argument("--seed", type=int, default=defaults.seed)
        parser.add_argument("--latency-ms", type=float, default=defaults.latency_ms)
        parser.add_argument("--fail-rate", type=float, default=defaults.fail_rate)
        parser.add_argument("--trades", type=int, default=None, help="default: --items")
        parser.add_argument("--page-size", type=int, default=defaults.page_size)
        parser.add_argument("--items-per-shop", type=int, default=defaults.items_per_shop)

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            config = UpstreamConfig(
                seed=options["seed"],
                items=options["items"],
                shops=options["shops"],
                trades=options["trades"],
                page_size=options["page_size"],
                items_per_shop=options["items_per_shop"],
                latency_ms=options["latency_ms"],
                fail_rate=options["fail_rate"],
            )
        except ValueError as exc:
            raise CommandError(str(exc)) from exc
        server = uvicorn.Server(
            uvicorn.Config(
                build_app(config),
                host=options["host"],
                port=options["port"],
                log_level="warning",
                lifespan="off",
            )
        )
        # After uvicorn.Config: it (re)configures its loggers when constructed.
        logging.getLogger("uvicorn.error").addFilter(_DropIncompleteResponse())
        serving.exit_cleanly_on_signals()
        asyncio.run(serve(server, self._announce))

    def _announce(self, base_url: str) -> None:
        self.stdout.write(f"sample upstream at {base_url}/ — sources: {base_url}/sources.jsonl")
        self.stdout.flush()  # a pipe is block-buffered; whoever waits for this line needs it now


async def serve(server: uvicorn.Server, announce: Callable[[str], None]) -> None:
    """Run ``server`` until it exits, calling ``announce(base_url)`` once it listens."""
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():  # failed to start (port taken...): let its error surface
            await task
            return
        await asyncio.sleep(0.01)
    host, port = server.servers[0].sockets[0].getsockname()[:2]
    if ":" in host:
        host = f"[{host}]"
    announce(f"http://{host}:{port}")
    await task
