"""ASGI entry point: Django for HTTP, the node runtime for the lifespan.

``uvicorn etl.asgi:application`` and ``etl node`` serve the same thing: the runtime
(scheduler, parse pool, HTTP client) starts with the lifespan's startup and drains on
its shutdown, which uvicorn triggers on SIGTERM/SIGINT.
"""

from __future__ import annotations

import gc
import logging
import os
from typing import Any

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "etl.settings")

from django.core.asgi import get_asgi_application

django_app = get_asgi_application()

from django.urls import get_resolver  # noqa: E402

# Import the URLconf (admin, GraphQL schema) now, not on the first request: building it
# on the event loop stalls a busy node for seconds, long enough to miss heartbeats.
get_resolver().url_patterns  # noqa: B018

from cluster.runtime import NodeRuntime  # noqa: E402 - models need the app registry
from etl import node, security  # noqa: E402

log = logging.getLogger(__name__)


def settle() -> None:
    """Take everything built at start-up out of the cyclic garbage collector's sight.

    Django, strawberry's schema and the runtime leave a few hundred thousand long-lived
    objects; every full collection walked them all, and a GraphQL request allocates
    enough to trigger one every few requests: its p95 was 3-4x its median. Frozen, they
    are never scanned again (the standard advice for long-running servers).
    """
    gc.collect()
    gc.freeze()


async def _lifespan(receive: Any, send: Any) -> None:
    runtime: NodeRuntime | None = None
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            try:
                security.check_node_settings()
                runtime = node.build()
                await runtime.start()
                settle()
            except Exception as exc:
                log.exception("node failed to start")
                await send({"type": "lifespan.startup.failed", "message": str(exc)})
                return
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            if runtime is not None:
                await runtime.stop()
            await send({"type": "lifespan.shutdown.complete"})
            return


async def application(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Django for ``http``; the node runtime for ``lifespan``."""
    if scope["type"] == "lifespan":
        await _lifespan(receive, send)
    else:
        await django_app(scope, receive, send)
