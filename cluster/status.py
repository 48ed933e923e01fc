"""What the cluster is doing: the data behind ``etl status``, the demo view and ``/``.

Every function here is sync (a handful of queries each): async callers go through
``etl.db.call``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.db import connection
from django.db.models import Count, F, Q, Sum
from django.db.models.functions import Now

from aggregates.models import ItemStats
from cluster import leases, membership, sharding
from cluster.models import Node
from ingest.models import Source, TaskRun, due_q

OVERDUE_AFTER = timedelta(minutes=5)  # due longer than this: nobody is keeping up


def overdue_q(now: datetime | None = None) -> Q:
    """Due for longer than :data:`OVERDUE_AFTER` at ``now`` (the database clock if not given).

    A never-fetched source is overdue from the moment it was registered.
    """
    late = (Now() if now is None else now) - OVERDUE_AFTER
    return Q(next_run_at__lt=late) | Q(next_run_at__isnull=True, created_at__lt=late)


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
    failing_total: int = 0  # ``failing`` holds only the worst few


@dataclass(frozen=True, slots=True, kw_only=True)
class SourceLine:
    """A source as the status page lists it (due, overdue or failing)."""

    url: str
    parser: str
    enabled: bool
    last_status: str
    last_error: str
    consecutive_failures: int
    next_run_at: datetime | None
    last_fetched_at: datetime | None
    lease_owner: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Minute:
    """Rows loaded by the source runs that finished in one minute."""

    start: datetime
    rows: int
    runs: int


@dataclass(frozen=True, slots=True, kw_only=True)
class TopItem:
    key: str
    name: str
    count: int
    avg: float
    min: float
    max: float


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
        act: dict[str, Any] = dict(activity.get(node.name, {}))
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
    n = membership.cluster_size(ttl=ttl)
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT {sharding.slot_sql('ingest_source', '%s')}, count(*) FROM ingest_source "
            "GROUP BY 1 ORDER BY 1",
            [n],
        )
        shard_sizes = {int(slot): int(size) for slot, size in cursor.fetchall()}
    counts = Source.objects.aggregate(
        sources=Count("pk"),
        due=Count("pk", filter=Q(enabled=True) & due_q(now)),
        overdue=Count("pk", filter=Q(enabled=True) & overdue_q(now)),
        failing=Count("pk", filter=Q(last_status=TaskRun.Status.FAILED)),
    )
    return ClusterStatus(
        now=now,
        node_count=n,
        nodes=nodes,
        shard_sizes=shard_sizes,
        sources=counts["sources"],
        due=counts["due"],
        overdue=counts["overdue"],
        failing=[
            (s.url, s.last_error, s.consecutive_failures) for s in failing_sources(limit=failing)
        ]
        if failing
        else [],
        last_runs=list(TaskRun.objects.select_related("source").order_by("-started_at")[:runs]),
        failing_total=counts["failing"],
    )


_LINE_FIELDS = (
    "url",
    "parser",
    "enabled",
    "last_status",
    "last_error",
    "consecutive_failures",
    "next_run_at",
    "last_fetched_at",
    "lease_owner",
)


def due_sources(*, now: datetime, limit: int = 10) -> list[SourceLine]:
    """Enabled sources whose time has come, longest waiting first (never fetched first)."""
    rows = (
        Source.objects.filter(due_q(now), enabled=True)
        .order_by(F("next_run_at").asc(nulls_first=True), "id")
        .values(*_LINE_FIELDS)[:limit]
    )
    return [SourceLine(**row) for row in rows]


def failing_sources(*, limit: int = 10) -> list[SourceLine]:
    """Sources whose latest run failed, the longest failure streaks first."""
    rows = (
        Source.objects.failing()
        .order_by("-consecutive_failures", "url")
        .values(*_LINE_FIELDS)[:limit]
    )
    return [SourceLine(**row) for row in rows]


def rows_per_minute(*, now: datetime, minutes: int = 60) -> list[Minute]:
    """Rows loaded per minute by source runs that finished in the last ``minutes``.

    Oldest first, one entry per minute (zeros included), the current minute last.
    """
    end = now.replace(second=0, microsecond=0)
    start = end - timedelta(minutes=minutes - 1)
    with connection.cursor() as cursor:
        cursor.execute(
            """
            SELECT date_trunc('minute', finished_at) AS minute, sum(rows_in), count(*)
            FROM ingest_taskrun
            WHERE source_id IS NOT NULL AND finished_at >= %s
            GROUP BY 1
            """,
            [start],
        )
        found = {minute: (int(rows or 0), int(count)) for minute, rows, count in cursor}
    buckets = []
    for i in range(minutes):
        at = start + timedelta(minutes=i)
        rows, count = found.get(at, (0, 0))
        buckets.append(Minute(start=at, rows=rows, runs=count))
    return buckets


def top_items(*, limit: int = 10) -> list[TopItem]:
    """The items with the most observations (``ItemStats.count``), then the highest average."""
    rows = ItemStats.objects.select_related("item").order_by("-count", "-avg", "item__key")
    return [
        TopItem(key=s.item.key, name=s.item.name, count=s.count, avg=s.avg, min=s.min, max=s.max)
        for s in rows[:limit]
    ]
