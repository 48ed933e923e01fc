"""What the cluster is doing: the data behind ``etl status``, the demo view and ``/``."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.db import connection
from django.db.models import Count, Q, Sum

from cluster import leases
from cluster.models import Node, TaskRun
from ingest.models import Source

OVERDUE_AFTER = timedelta(minutes=5)  # due longer than this: nobody is keeping up


@dataclass(frozen=True, slots=True, kw_only=True)
class NodeStatus:
    name: str
    mode: str
    slot: int | None
    node_count: int | None
    heartbeat_age: float
    alive: bool
    runs_last_minute: int = 0
    rows_last_minute: int = 0
    errors_last_minute: int = 0


@dataclass(frozen=True, slots=True, kw_only=True)
class ClusterStatus:
    now: datetime
    node_count: int
    nodes: list[NodeStatus]
    shard_sizes: dict[int, int]
    sources: int
    due: int
    overdue: int
    failing: list[tuple[str, str, int]]  # url, last error, consecutive failures
    last_runs: list[TaskRun] = field(default_factory=list)


def collect(*, ttl: float, runs: int = 10, failing: int = 10) -> ClusterStatus:
    """One consistent-enough snapshot (sync; a handful of queries)."""
    now = leases.db_now()
    minute_ago = now - timedelta(minutes=1)
    activity = {
        row["node"]: row
        for row in TaskRun.objects.filter(started_at__gte=minute_ago, source__isnull=False)
        .values("node")
        .annotate(
            runs=Count("id"),
            rows=Sum("rows_in"),
            errors=Count("id", filter=Q(status=TaskRun.Status.FAILED)),
        )
    }
    nodes = []
    for node in Node.objects.order_by("slot", "name"):
        age = (now - node.heartbeat_at).total_seconds()
        act: dict[str, Any] = dict(activity.get(node.name) or {})
        nodes.append(
            NodeStatus(
                name=node.name,
                mode=node.mode,
                slot=node.slot,
                node_count=node.node_count,
                heartbeat_age=age,
                alive=age <= ttl,
                runs_last_minute=act.get("runs") or 0,
                rows_last_minute=act.get("rows") or 0,
                errors_last_minute=act.get("errors") or 0,
            )
        )
    counts = [n.node_count for n in nodes if n.alive and n.node_count]
    n = max(counts) if counts else 1
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT mod(shard_hash, %s), count(*) FROM ingest_source GROUP BY 1 ORDER BY 1", [n]
        )
        shard_sizes = {int(slot): int(size) for slot, size in cursor.fetchall()}
    due = Q(next_run_at__isnull=True) | Q(next_run_at__lte=now)
    enabled = Source.objects.filter(enabled=True)
    return ClusterStatus(
        now=now,
        node_count=n,
        nodes=nodes,
        shard_sizes=shard_sizes,
        sources=Source.objects.count(),
        due=enabled.filter(due).count(),
        overdue=enabled.filter(next_run_at__lt=now - OVERDUE_AFTER).count(),
        failing=list(
            Source.objects.filter(last_status=TaskRun.Status.FAILED)
            .order_by("-consecutive_failures", "url")
            .values_list("url", "last_error", "consecutive_failures")[:failing]
        ),
        last_runs=list(TaskRun.objects.select_related("source").order_by("-started_at")[:runs]),
    )
