"""Cluster-wide cron jobs run once per (job, tick) across all nodes.

Every node computes the same scheduled times (croniter with the job's name), so the
first node to insert the (job, tick) row runs it and the others skip — the approach of
procrastinate's periodic tasks, rather than a lock that the next node would take again.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from django.db import connection

KEEP = timedelta(days=7)


def claim(*, job: str, tick: datetime, node: str) -> bool:
    """True if ``node`` won the right to run ``job`` for ``tick``."""
    with connection.cursor() as cursor:
        cursor.execute(
            """
            INSERT INTO cluster_jobtick (job, tick, node, claimed_at)
            VALUES (%s, %s, %s, now()) ON CONFLICT (job, tick) DO NOTHING RETURNING id
            """,
            [job, tick, node],
        )
        won = cursor.fetchone() is not None
        if won:  # keep the table small: old ticks are of no use
            cursor.execute(
                "DELETE FROM cluster_jobtick WHERE job = %s AND tick < %s", [job, tick - KEEP]
            )
        return won
