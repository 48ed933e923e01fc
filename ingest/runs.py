"""The record of every run: a ``TaskRun`` row, and the source's latest outcome.

A run is inserted as ``running`` before any work, so a node that dies mid-way leaves a
visible unfinished run; the source's ``next_run_at`` only moves when the run ends, so
once the lease expires the source is due again and the work is retried.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import orjson
from django.db import connection
from django.utils import timezone

from ingest.models import TaskRun

# A failed source is retried sooner than its schedule: 30 s, 60 s, 120 s … up to an hour.
RETRY_BASE_SECONDS = 30
RETRY_CAP_SECONDS = 3600

Streak = tuple[int, int] | None  # consecutive failures before and after a run; see close()


def _json(value: Any) -> dict[str, Any]:
    # Django registers a text loader for jsonb (its JSONField decodes), so raw rows hold str.
    decoded = orjson.loads(value) if isinstance(value, str | bytes) else value
    return decoded if isinstance(decoded, dict) else {}


@dataclass(frozen=True, slots=True, kw_only=True)
class Assignment:
    """A source this node may run now, with what a run needs to know about it.

    Whoever hands it out (the cluster's claim) has opened its ``TaskRun`` (``run_id``).
    """

    id: int
    url: str
    parser: str
    options: dict[str, Any]
    schedule: str
    etag: str
    last_modified: str
    cursor: int | None
    run_id: int  # the TaskRun opened with the assignment ("running" until the run ends)

    @classmethod
    def from_row(cls, row: tuple[Any, ...]) -> Assignment:
        """From ``id, url, parser, options, schedule, etag, last_modified, cursor, run_id``."""
        return cls(
            id=row[0],
            url=row[1],
            parser=row[2],
            options=_json(row[3]),
            schedule=row[4],
            etag=row[5],
            last_modified=row[6],
            cursor=row[7],
            run_id=row[8],
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class SourceReport:
    """How a source run ended, for whoever listens (notifications)."""

    url: str
    status: str
    error: str
    streak: Streak  # consecutive failures before and after the run (None: left alone)


OnFinished = Callable[[SourceReport], None]


@dataclass(slots=True, kw_only=True)
class RunTally:
    """What a run did, filled in as it goes."""

    status: str = TaskRun.Status.OK
    rows_in: int = 0
    rows_out: int = 0
    rows_rejected: int = 0
    bytes: int = 0
    attempts: int = 0
    error: str = ""
    rejections: list[dict[str, object]] = field(default_factory=list)

    def reject(self, index: int, reason: str, *, limit: int = 100) -> None:
        self.rows_rejected += 1
        if len(self.rejections) < limit:  # keep the record small; the count is exact
            self.rejections.append({"index": index, "reason": reason})


def start(*, node: str, job: str, source_id: int | None = None) -> int:
    run = TaskRun.objects.create(node=node, job=job, source_id=source_id, started_at=timezone.now())
    return run.pk


def record(*, node: str, job: str, started_at: datetime, tally: RunTally) -> None:
    """Record a run that has already finished (cron jobs)."""
    run_id = TaskRun.objects.create(node=node, job=job, started_at=started_at).pk
    finish(run_id, tally)


def finish(run_id: int, tally: RunTally, *, still_running: bool = False) -> None:
    runs = TaskRun.objects.filter(pk=run_id)
    if still_running:
        runs = runs.filter(status=TaskRun.Status.RUNNING)
    runs.update(
        finished_at=timezone.now(),
        status=tally.status,
        rows_in=tally.rows_in,
        rows_out=tally.rows_out,
        rows_rejected=tally.rows_rejected,
        bytes=tally.bytes,
        attempts=tally.attempts,
        error=tally.error[:10_000],
        rejections=tally.rejections,
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class Closing:
    """What closing a source's run needs. Given one, the loader closes the run in the
    same transaction as its last page: one commit fewer, and no moment when the rows are
    in but the run is not recorded."""

    run_id: int
    next_run_at: datetime
    tally: RunTally


@dataclass(frozen=True, slots=True, kw_only=True)
class Validators:
    """What a successful load remembers for the next fetch (and the incremental cursor)."""

    etag: str
    last_modified: str
    cursor: int | None


def finish_source(
    *, run_id: int, source_id: int, node: str, tally: RunTally, next_run_at: datetime
) -> Streak:
    """Close the run, store the source's outcome, schedule it and release our lease."""
    with connection.cursor() as cursor:
        return close(
            cursor,
            Closing(run_id=run_id, next_run_at=next_run_at, tally=tally),
            source_id=source_id,
            node=node,
        )


def close(
    cursor: Any,
    closing: Closing,
    *,
    source_id: int,
    node: str,
    validators: Validators | None = None,
) -> Streak:
    """:func:`finish_source` on ``cursor``, inside the caller's transaction if it has one;
    ``validators``: also store those (the loader closing a run with its last page).

    One statement for both. A node whose lease was taken over (or already released by
    the node that took it over) records its run but leaves the source alone: the other
    outcome counts. Returns the source's consecutive failures (before, after) this run,
    or ``None`` when the source was left alone.
    """
    tally = closing.tally
    failed = tally.status == TaskRun.Status.FAILED
    cursor.execute(
        """
        WITH run AS (
            UPDATE ingest_taskrun
            SET finished_at = now(), status = %(status)s, rows_in = %(rows)s,
                rows_out = %(rows_out)s, rows_rejected = %(rejected)s, bytes = %(bytes)s,
                attempts = %(attempts)s, error = %(run_error)s,
                rejections = %(rejections)s::jsonb
            WHERE id = %(run)s
        ),
        prev AS (SELECT consecutive_failures FROM ingest_source WHERE id = %(id)s)
        UPDATE ingest_source
        SET next_run_at = CASE
                WHEN %(failed)s THEN LEAST(%(next)s, now() + make_interval(
                    secs => LEAST(%(cap)s, %(base)s * power(2, consecutive_failures))))
                ELSE %(next)s END,
            last_status = %(status)s,
            last_error = %(error)s,
            consecutive_failures = CASE WHEN %(failed)s
                                        THEN consecutive_failures + 1 ELSE 0 END,
            rows_loaded = CASE WHEN %(status)s = 'ok' THEN %(rows)s ELSE rows_loaded END,
            last_fetched_at = CASE WHEN %(failed)s THEN last_fetched_at ELSE now() END,
            etag = CASE WHEN %(store)s THEN %(etag)s ELSE etag END,
            last_modified = CASE WHEN %(store)s THEN %(last_modified)s ELSE last_modified END,
            cursor = CASE WHEN %(store)s THEN %(cursor)s ELSE cursor END,
            lease_owner = '',
            lease_until = NULL
        WHERE id = %(id)s AND lease_owner = %(node)s
        RETURNING (SELECT consecutive_failures FROM prev), consecutive_failures
        """,
        {
            "run": closing.run_id,
            "next": closing.next_run_at,
            "status": tally.status,
            "error": tally.error[:2000],
            "run_error": tally.error[:10_000],
            "failed": failed,
            "rows": tally.rows_in,
            "rows_out": tally.rows_out,
            "rejected": tally.rows_rejected,
            "bytes": tally.bytes,
            "attempts": tally.attempts,
            "rejections": orjson.dumps(tally.rejections).decode(),
            "node": node,
            "id": source_id,
            "base": RETRY_BASE_SECONDS,
            "cap": RETRY_CAP_SECONDS,
            "store": validators is not None,
            "etag": validators.etag if validators else "",
            "last_modified": validators.last_modified if validators else "",
            "cursor": validators.cursor if validators else None,
        },
    )
    row = cursor.fetchone()
    return (row[0], row[1]) if row else None


def abandon(*, run_id: int, source_id: int, node: str, tally: RunTally) -> None:
    """Close an interrupted run and release the lease; the source stays due for retry.

    A run its last load already closed (the interruption came just after it) is left
    as it was recorded.
    """
    finish(run_id, tally, still_running=True)
    with connection.cursor() as cursor:
        cursor.execute(
            """
            UPDATE ingest_source SET lease_owner = '', lease_until = NULL
            WHERE id = %s AND lease_owner = %s
            """,
            [source_id, node],
        )
