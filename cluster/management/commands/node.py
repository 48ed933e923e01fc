"""``etl node [--host H] [--port P]``: one node, uvicorn serving ``etl.asgi:application``."""

from __future__ import annotations

from argparse import ArgumentParser
from typing import Any

import uvicorn
from django.core.management.base import BaseCommand, CommandError

from cluster import identity
from etl import config, notify, security, serving
from etl.chat.config import ChatSettings
from etl.exceptions import ConfigError


class Command(BaseCommand):
    help = "Run one node: GraphQL/HTTP plus the scheduler, parse pool and HTTP client."
    requires_system_checks: list[str] = []

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=8000)
        parser.add_argument("--log-level", default="info")

    def handle(self, *args: Any, **options: Any) -> None:
        try:  # fail here, with a clear message, rather than inside the lifespan
            security.check_node_settings()
            identity.resolve(config.settings())
            notify.NotifyConfig.from_env()
            ChatSettings.from_env()
        except ConfigError as exc:
            raise CommandError(str(exc)) from None
        server_config = uvicorn.Config(
            "etl.asgi:application",
            host=options["host"],
            port=options["port"],
            lifespan="on",
            log_level=options["log_level"],
            log_config=None,  # uvicorn's lines go through LOGGING too (ETL_LOG_FORMAT=json)
            access_log=False,
            server_header=False,
            timeout_graceful_shutdown=30,
        )
        server = uvicorn.Server(server_config)
        serving.exit_cleanly_on_signals()
        server.run()
        if not server.started:
            raise CommandError("the node did not start; see the log above")
