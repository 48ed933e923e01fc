"""Leases on sources: claim due sources of our shard, renew them, release them.

The claim is one statement (``UPDATE … FROM (SELECT … FOR UPDATE SKIP LOCKED)``) so two
nodes never claim the same row, even while they disagree about who owns what. Times come
from the database's clock so nodes with skewed clocks still agree on expiry.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from django.db import connection
from django.db.models import Q
from django.db.models.functions import Now

from cluster import membership
from ingest import runs
from ingest.models import Source


def db_now() -> datetime:
    """The database's clock, which every node agrees on."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT now()")
        row = cursor.fetchone()
        assert row is not None
        now: datetime = row[0]
        return now


def claim_due(
    *,
    node: str,
    view: membership.Ownership,
    limit: int,
    lease_seconds: float,
    due_before: datetime | None = None,
) -> list[runs.Assignment]:
    """Lease up to ``limit`` due sources that ``view`` gives ``node``; most overdue first.

    ``due_before`` bounds "due" to a moment in the past: a one-shot pass uses its own
    start so that a source whose schedule comes round during the pass is not run twice.
    """
    if limit <= 0:
        return []
    owned, params = membership.ownership_sql(view, node)
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            WITH claimed AS (
                UPDATE ingest_source s
                SET lease_owner = %(node)s,
                    lease_until = now() + make_interval(secs => %(lease)s)
                FROM (
                    SELECT id FROM ingest_source
                    WHERE enabled
                      AND (next_run_at IS NULL
                           OR next_run_at <= LEAST(now(), COALESCE(%(due_before)s, now())))
                      AND (lease_until IS NULL OR lease_until < now() OR lease_owner = '')
                      AND {owned}
                    ORDER BY next_run_at NULLS FIRST, id
                    LIMIT %(limit)s
                    FOR UPDATE SKIP LOCKED
                ) due
                WHERE s.id = due.id
                RETURNING s.id, s.url, s.parser, s.options, s.schedule, s.etag,
                          s.last_modified, s.cursor
            ), opened AS (
                -- The run is recorded in the same statement: one round trip, and a node
                -- that dies right after the claim still leaves an unfinished run behind.
                INSERT INTO ingest_taskrun (node, job, source_id, started_at, status, rows_in,
                    rows_out, rows_rejected, bytes, attempts, error, rejections)
                SELECT %(node)s, 'source:' || parser, id, now(), 'running', 0, 0, 0, 0, 0,
                       '', '[]'::jsonb
                FROM claimed
                RETURNING id, source_id
            )
            SELECT c.id, c.url, c.parser, c.options, c.schedule, c.etag, c.last_modified,
                   c.cursor, o.id
            FROM claimed c JOIN opened o ON o.source_id = c.id
            """,
            {
                **params,
                "node": node,
                "lease": lease_seconds,
                "limit": limit,
                "due_before": due_before,
            },
        )
        rows = cursor.fetchall()
    claimed = [runs.Assignment.from_row(row) for row in rows]
    claimed.sort(key=lambda c: c.id)
    return claimed


def renew(*, node: str, ids: Sequence[int], lease_seconds: float) -> list[int]:
    """Extend our leases on ``ids``; return the ids we still hold."""
    if not ids:
        return []
    with connection.cursor() as cursor:
        cursor.execute(
            """
            UPDATE ingest_source SET lease_until = now() + make_interval(secs => %s)
            WHERE lease_owner = %s AND id = ANY(%s) RETURNING id
            """,
            [lease_seconds, node, list(ids)],
        )
        return [row[0] for row in cursor.fetchall()]


def release_all(*, node: str) -> int:
    """Drop every lease ``node`` holds (shutdown); the sources become claimable at once."""
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE ingest_source SET lease_owner = '', lease_until = NULL WHERE lease_owner = %s",
            [node],
        )
        released: int = cursor.rowcount
        return released


def held_q(node: str) -> Q:
    """Sources whose lease ``node`` holds now, by the database clock ("" holds none)."""
    return Q(lease_owner=node, lease_until__gt=Now()) & ~Q(lease_owner="")


def held(*, node: str) -> int:
    """How many source leases ``node`` holds now."""
    return Source.objects.filter(held_q(node)).count()
