"""Operational endpoints: liveness, readiness and metrics (the status page: etl.status_page)."""

from __future__ import annotations

from django.db import connection
from django.http import HttpRequest, HttpResponse, JsonResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from cluster import metrics as cluster_metrics
from cluster import runtime
from etl import db


async def healthz(request: HttpRequest) -> HttpResponse:
    """The process and its event loop answer."""
    return JsonResponse({"status": "ok"})


def _database_ok() -> bool:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        return True
    except Exception:  # noqa: BLE001 - any failure means "not ready"
        return False


async def readyz(request: HttpRequest) -> HttpResponse:
    """Ready when the database answers, the runtime has started and the node agrees on N."""
    db_ok = await db.probe(_database_ok)
    node = runtime.current()
    body: dict[str, object] = {"database": db_ok, "runtime": node is not None and node.started}
    ready = db_ok and node is not None and node.ready
    if node is not None:
        body.update(
            slot=node.view.slot,
            node_count=node.view.count,
            conflicts=list(node.view.conflicts),
            warnings=list(node.view.warnings),
        )
    return JsonResponse(body, status=200 if ready else 503)


async def metrics(request: HttpRequest) -> HttpResponse:
    """Prometheus text: the process's counters plus gauges taken now (docs/operations.md)."""
    scrape = await cluster_metrics.scrape(runtime.current())
    return HttpResponse(generate_latest(scrape), content_type=CONTENT_TYPE_LATEST)
