"""``/`` on every node: the cluster's status as one server-rendered page.

No front-end build and no external asset: one Django template with inline CSS and an
inline SVG chart computed here. The page refreshes itself with a ``<meta refresh>``
every :data:`REFRESH_SECONDS` (``?refresh=N`` for another interval, ``?refresh=0`` for none).
It is public like ``/healthz``, so it shows nothing secret: no settings, and URLs and
error texts pass through :func:`etl.text.redact` (credentials, token-like query parameters).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.http import HttpRequest, HttpResponse
from django.template import loader

from cluster import runtime, status
from etl import config, db, text
from ingest.models import TaskRun

REFRESH_SECONDS = 15
REFRESH_RANGE = (5, 3600)  # a chosen interval is kept within this: the page costs queries
ERROR_CHARS = 400  # of a failing source's last error; the admin has the full text
RUN_ERROR_CHARS = 160


@dataclass(frozen=True, slots=True, kw_only=True)
class Snapshot:
    cluster: status.ClusterStatus
    due: list[status.SourceLine]
    failing: list[status.SourceLine]
    minutes: list[status.Minute]
    top: list[status.TopItem]


def snapshot(*, ttl: float) -> Snapshot:
    """Everything the page shows (sync: run it through ``etl.db.call``)."""
    cluster = status.collect(ttl=ttl, runs=15, failing=0)
    return Snapshot(
        cluster=cluster,
        due=status.due_sources(now=cluster.now, limit=10),
        failing=status.failing_sources(limit=10),
        minutes=status.rows_per_minute(now=cluster.now, minutes=60),
        top=status.top_items(limit=10),
    )


def ago(seconds: float) -> str:
    """A short human duration: ``4s``, ``3m 20s``, ``5m``, ``2h 5m``, ``3d 4h``."""
    s = max(0, round(seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        big, small, units = s // 60, s % 60, ("m", "s")
    elif s < 86400:
        big, small, units = s // 3600, s % 3600 // 60, ("h", "m")
    else:
        big, small, units = s // 86400, s % 86400 // 3600, ("d", "h")
    return f"{big}{units[0]} {small}{units[1]}" if small else f"{big}{units[0]}"


def took(seconds: float) -> str:
    """A run's duration: tenths of a second when short, else as :func:`ago`."""
    return f"{seconds:.1f}s" if seconds < 10 else ago(seconds)


def _until(then: datetime | None, now: datetime) -> str:
    if then is None:
        return "now (never fetched)"
    delta = (then - now).total_seconds()
    return f"in {ago(delta)}" if delta > 0 else f"{ago(-delta)} ago"


def _nodes(snap: status.ClusterStatus, me: str) -> list[dict[str, Any]]:
    return [
        {
            "name": n.name,
            "me": n.name == me,
            "mode": n.mode,
            "slot": "-" if n.slot is None else n.slot,
            "count": "-" if n.node_count is None else n.node_count,
            "heartbeat": ago(n.heartbeat_age),
            "alive": n.alive,
            "runs": n.runs_last_minute,
            "rows": n.rows_last_minute,
            "errors": n.errors_last_minute,
        }
        for n in snap.nodes
    ]


def _shards(snap: status.ClusterStatus) -> list[dict[str, Any]]:
    largest = max(snap.shard_sizes.values(), default=0) or 1
    owners: dict[int, list[str]] = {}
    for n in snap.nodes:
        if n.alive and n.slot is not None and n.node_count == snap.node_count:
            owners.setdefault(n.slot, []).append(n.name)
    return [
        {
            "slot": slot,
            "size": snap.shard_sizes.get(slot, 0),
            "width": round(100 * snap.shard_sizes.get(slot, 0) / largest, 1),
            "owners": ", ".join(owners.get(slot, [])) or "nobody alive",
        }
        for slot in range(snap.node_count)
    ]


def _source(line: status.SourceLine, now: datetime, overdue_before: datetime) -> dict[str, Any]:
    error = text.redact(line.last_error)
    return {
        "url": text.redact(line.url),
        "parser": line.parser,
        "enabled": line.enabled,
        "failures": line.consecutive_failures,
        "error": error[:ERROR_CHARS] + ("…" if len(error) > ERROR_CHARS else ""),
        "next": _until(line.next_run_at, now),
        "overdue": line.next_run_at is not None and line.next_run_at < overdue_before,
        "lease": line.lease_owner,
    }


def _runs(runs: list[TaskRun], now: datetime) -> list[dict[str, Any]]:
    rows = []
    for run in runs:
        elapsed = (run.finished_at or now) - run.started_at
        error = text.redact(run.error)
        rows.append(
            {
                "at": run.started_at.strftime("%H:%M:%S"),
                "ago": ago((now - run.started_at).total_seconds()),
                "node": run.node,
                "what": text.redact(run.source.url) if run.source is not None else run.job,
                "status": run.status,
                "rows": run.rows_in,
                "rejected": run.rows_rejected,
                "took": took(elapsed.total_seconds()) if run.finished_at else "running",
                "error": error[:RUN_ERROR_CHARS] + ("…" if len(error) > RUN_ERROR_CHARS else ""),
            }
        )
    return rows


# The chart's user units: the SVG is stretched to the page's width and a fixed height
# (preserveAspectRatio="none"), so its labels live in HTML around it and stay legible.
CHART_W, CHART_H = 600, 160


def chart(minutes: list[status.Minute]) -> dict[str, Any]:
    """Bars for rows loaded per minute, oldest left; heights scaled to the busiest minute."""
    peak = max((m.rows for m in minutes), default=0)
    step = CHART_W / max(len(minutes), 1)
    bars = []
    for i, m in enumerate(minutes):
        height = CHART_H * m.rows / peak if peak else 0.0
        if m.rows and height < 2:
            height = 2.0  # a minute with rows stays visible next to a huge peak
        bars.append(
            {
                "x": round(i * step + step * 0.1, 2),
                "y": round(CHART_H - height, 2),
                "w": round(step * 0.8, 2),
                "h": round(height, 2),
                "label": f"{m.start:%H:%M} UTC: {m.rows} rows, {m.runs} runs",
            }
        )
    return {
        "bars": bars,
        "peak": peak,
        "half": peak // 2 if peak > 1 else "",
        "total": sum(m.rows for m in minutes),
        "runs": sum(m.runs for m in minutes),
        "width": CHART_W,
        "height": CHART_H,
        "middle": CHART_H // 2,
    }


def refresh_seconds(raw: str | None) -> int:
    """The interval asked for with ``?refresh=``: 0 (off) or within :data:`REFRESH_RANGE`."""
    try:
        asked = int(raw) if raw is not None else REFRESH_SECONDS
    except ValueError:
        return REFRESH_SECONDS
    low, high = REFRESH_RANGE
    return 0 if asked <= 0 else min(max(asked, low), high)


def context(snap: Snapshot, *, me: str, refresh: int = REFRESH_SECONDS) -> dict[str, Any]:
    c = snap.cluster
    overdue_before = c.now - status.OVERDUE_AFTER
    alive = sum(1 for n in c.nodes if n.alive)
    return {
        "refresh": refresh,
        "me": me,
        "now": c.now.strftime("%Y-%m-%d %H:%M:%S UTC"),
        "n": c.node_count,
        "summary": {
            "nodes": len(c.nodes),
            "alive": alive,
            "sources": c.sources,
            "due": c.due,
            "overdue": c.overdue,
            "failing": c.failing_total,
        },
        "overdue_after": ago(status.OVERDUE_AFTER.total_seconds()),
        "nodes": _nodes(c, me),
        "shards": _shards(c),
        "failing": [_source(s, c.now, overdue_before) for s in snap.failing],
        "due": [_source(s, c.now, overdue_before) for s in snap.due],
        "runs": _runs(c.last_runs, c.now),
        "chart": chart(snap.minutes),
        "top": snap.top,
    }


async def status_page(request: HttpRequest) -> HttpResponse:
    """The cluster as this node sees it; every node serves the same page."""
    node = runtime.current()
    settings = node.settings if node is not None else config.settings()
    snap = await db.call(snapshot, ttl=settings.node_ttl)
    refresh = refresh_seconds(request.GET.get("refresh"))
    html = loader.render_to_string(
        "etl/status.html", context(snap, me=settings.node_name, refresh=refresh)
    )
    response = HttpResponse(html)
    response["Cache-Control"] = "no-store"
    return response
