"""Who is in the cluster, and which sources each node may claim.

Every node heartbeats into the ``Node`` table with the slot and N it believes in.

* Static and StatefulSet modes take slot and N from the environment. If two live nodes'
  views overlap (same slot, or different N after a scale without ``ETL_NODE_COUNT``),
  the one that joined later yields: it never claims a source that an earlier live
  node's view also assigns to itself, and it reports the conflict.
* Dynamic mode computes slot and N inside the claim statement, from the live rows at
  that instant: N = live dynamic nodes, slot = rank by join time. Every node reads the
  same table with the database's clock, so views agree; a node whose heartbeat lapsed
  (paused, partitioned) ranks nowhere and claims nothing.

Either way the lease (``cluster.leases``) is what guarantees one fetch at a time; the
views only decide who does the work.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.db import connection, models
from django.db.models.functions import Coalesce, Greatest, Now

import etl
from cluster import sharding
from cluster.identity import Identity
from cluster.models import Node

FORGET_AFTER = timedelta(hours=1)  # dead nodes stay visible (alive=false) this long

_LIVE_RANK = """
    SELECT name, (row_number() OVER (ORDER BY started_at, name) - 1) AS slot,
           count(*) OVER () AS n
    FROM cluster_node
    WHERE mode = 'dynamic' AND heartbeat_at > now() - make_interval(secs => %(ttl)s)
"""


@dataclass(frozen=True, slots=True, kw_only=True)
class Everything:
    """No sharding: every source (``run-once --all-shards``)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Static:
    """``mod(shard_hash, count) = slot``, yielding to earlier live nodes that overlap."""

    slot: int
    count: int
    ttl: float


@dataclass(frozen=True, slots=True, kw_only=True)
class Dynamic:
    """Slot and N from the live dynamic nodes, computed at claim time."""

    ttl: float


Ownership = Everything | Static | Dynamic


def ownership_sql(view: Ownership, node: str) -> tuple[str, dict[str, Any]]:
    """A condition on ``ingest_source`` rows that this node may claim, with its params."""
    if isinstance(view, Everything):
        return "TRUE", {}
    if isinstance(view, Dynamic):
        sql = f"""
            (SELECT {sharding.slot_sql("ingest_source", "live.n")} = live.slot
             FROM ({_LIVE_RANK}) live WHERE live.name = %(node)s) IS TRUE
        """
        return sql, {"ttl": view.ttl, "node": node}
    sql = f"""
        {sharding.slot_sql("ingest_source", "%(count)s")} = %(slot)s
        AND NOT EXISTS (
            SELECT 1 FROM cluster_node o JOIN cluster_node me ON me.name = %(node)s
            WHERE o.name <> me.name AND o.mode <> 'dynamic'
              AND o.heartbeat_at > now() - make_interval(secs => %(ttl)s)
              AND o.node_count > 0 AND o.slot IS NOT NULL
              AND (o.started_at, o.name) < (me.started_at, me.name)
              AND {sharding.slot_sql("ingest_source", "o.node_count")} = o.slot)
    """
    return sql, {"count": view.count, "slot": view.slot, "ttl": view.ttl, "node": node}


def live_q(ttl: float) -> models.Q:
    """Nodes that heartbeated within ``ttl`` seconds (by the database clock)."""
    return models.Q(heartbeat_at__gt=Now() - timedelta(seconds=ttl))


def _largest_believed(ttl: float) -> models.QuerySet[Node, int | None]:
    # N is the largest N a live node believes in: mid-rescale, live nodes can believe in
    # different Ns, and a node not placed yet believes in none.
    return (
        Node.objects.filter(live_q(ttl), node_count__isnull=False)
        .order_by("-node_count")
        .values_list("node_count", flat=True)[:1]
    )


def cluster_size_expr(ttl: float) -> models.Expression:
    """N, the one definition, as an SQL expression: see :func:`cluster_size`."""
    # Greatest(…, 1): a row claiming 0 nodes must not turn `mod` into a division by zero.
    return Greatest(
        Coalesce(models.Subquery(_largest_believed(ttl)), models.Value(1)), models.Value(1)
    )


def cluster_size(*, ttl: float) -> int:
    """N: the largest N a live node believes in, or 1 when no node is live."""
    return max(_largest_believed(ttl).first() or 1, 1)


@dataclass(frozen=True, slots=True, kw_only=True)
class View:
    """What a heartbeat learned: this node's slot and N, the live nodes, any conflict."""

    slot: int | None
    count: int
    live: int
    conflicts: tuple[str, ...] = ()  # with earlier nodes: this node yields, is not ready
    warnings: tuple[str, ...] = ()  # with later nodes, which yield to this one

    @classmethod
    def nowhere(cls) -> View:
        """Before the first heartbeat: no slot yet."""
        return cls(slot=None, count=0, live=0)


def _dynamic_rank(cursor: Any, name: str, ttl: float) -> tuple[int | None, int]:
    cursor.execute(
        f"SELECT slot, n FROM ({_LIVE_RANK}) live WHERE name = %(node)s",
        {"ttl": ttl, "node": name},
    )
    row = cursor.fetchone()
    return (int(row[0]), int(row[1])) if row else (None, 0)


def _disagreement(me: Node, peer: Node) -> str:
    if peer.mode == "dynamic" or me.mode == "dynamic":
        if peer.mode != me.mode:
            return f"{peer.name} runs in {peer.mode} mode, this node in {me.mode}"
        return ""
    if peer.node_count != me.node_count:
        return f"{peer.name} believes N={peer.node_count}, this node N={me.node_count}"
    if peer.slot == me.slot:
        return f"{peer.name} holds slot {peer.slot} too"
    return ""


def _conflicts(me: Node, peers: list[Node]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(conflicts this node yields on, disagreements of later nodes that yield to it)."""
    yields: list[str] = []
    prevails: list[str] = []
    for peer in peers:
        problem = _disagreement(me, peer)
        if not problem:
            continue
        mixed = peer.mode != me.mode
        earlier = (peer.started_at, peer.name) < (me.started_at, me.name)
        (yields if earlier or mixed else prevails).append(problem)
    return tuple(yields), tuple(prevails)


def heartbeat(*, name: str, ident: Identity, ttl: float) -> View:
    """Record that ``name`` is alive, with its view; return the cluster as it sees it.

    Times are the database's, as in the claim statement, so skewed clocks agree.
    """
    static = ident.mode != "dynamic"
    with connection.cursor() as cursor:
        cursor.execute(
            """
            INSERT INTO cluster_node (name, slot, node_count, mode, version, started_at,
                                      heartbeat_at)
            VALUES (%(name)s, %(slot)s, %(count)s, %(mode)s, %(version)s, now(), now())
            ON CONFLICT (name) DO UPDATE
            SET mode = EXCLUDED.mode, version = EXCLUDED.version, heartbeat_at = now()
            """,
            {
                "name": name,
                "slot": ident.slot if static else None,
                "count": ident.node_count if static else None,
                "mode": ident.mode,
                "version": etl.__version__,
            },
        )
        slot: int | None
        if static:
            slot, count = ident.slot, ident.node_count
        else:
            slot, count = _dynamic_rank(cursor, name, ttl)
        cursor.execute(
            "UPDATE cluster_node SET slot = %s, node_count = %s WHERE name = %s",
            [slot, count, name],
        )
        cursor.execute(
            "DELETE FROM cluster_node WHERE heartbeat_at < now() - make_interval(secs => %s)",
            [FORGET_AFTER.total_seconds()],
        )
    me = Node.objects.get(name=name)
    live = list(Node.objects.exclude(name=name).filter(live_q(ttl)))
    conflicts, warnings = _conflicts(me, live)
    return View(slot=slot, count=count, live=len(live) + 1, conflicts=conflicts, warnings=warnings)


def leave(name: str) -> None:
    Node.objects.filter(name=name).delete()
