"""One source, one run: fetch → parse (process pool) → load → record.

:func:`run_source` never raises for a bad body or a bad server: the run is recorded as
failed with its reason and the node carries on. Only cancellation (shutdown) escapes,
after the run has been recorded as interrupted and the lease released.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from etl import db, logs
from ingest import fetch, loader, metrics, runs, schedule
from ingest.exceptions import FetchError, IngestError
from ingest.models import TaskRun
from ingest.pool import ParsePool

log = logging.getLogger(__name__)

INCREMENTAL = {"trades-json"}


def _utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True, kw_only=True)
class Context:
    """What a run needs from the node: its name, HTTP client, parse pool and clock."""

    node: str
    fetcher: fetch.Fetcher
    pool: ParsePool
    clock: Callable[[], datetime] = field(default=_utcnow)
    max_pages: int = 100  # incremental sources: pages fetched in one run at most
    check_lease: bool = True
    on_finished: runs.OnFinished | None = None  # told how every run ended


def with_since(url: str, since: int | None) -> str:
    """``url`` with its ``since`` query parameter set to the source's cursor."""
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k != "since"]
    query.append(("since", str(since or 0)))
    return urlunsplit(parts._replace(query=urlencode(query)))


def _next_run(ctx: Context, source: runs.Assignment) -> datetime:
    return schedule.next_run(source.schedule, ctx.clock(), source.url)


async def _one_page(
    ctx: Context, source: runs.Assignment, cursor: int | None, tally: runs.RunTally
) -> tuple[bool, int | None, loader.LoadOutcome | None]:
    """Fetch, parse and load one body; return (more pages follow, new cursor, the load).

    A source that is not incremental has one page: its load closes the run as well.
    """
    incremental = source.parser in INCREMENTAL
    url = with_since(source.url, cursor) if incremental else source.url
    started = time.perf_counter()
    try:
        fetched = await ctx.fetcher.fetch(
            url,
            etag="" if incremental else source.etag,
            last_modified="" if incremental else source.last_modified,
        )
    except FetchError as exc:
        metrics.FETCHES.labels(metrics.fetch_status(exc)).inc()
        raise
    finally:
        metrics.FETCH_SECONDS.observe(time.perf_counter() - started)
    metrics.FETCHES.labels(str(fetched.status)).inc()
    tally.attempts += fetched.attempts
    tally.bytes += len(fetched.body)
    metrics.BYTES_FETCHED.inc(len(fetched.body))
    if fetched.not_modified:
        tally.status = TaskRun.Status.UNCHANGED
        return False, cursor, None

    started = time.perf_counter()
    parsed = await ctx.pool.parse(source.parser, fetched.body, url=url, options=source.options)
    seen = int(parsed.meta.get("max_seen_id") or 0)
    if seen > (parsed.next_cursor or 0):
        # Rejected rows at the end of a page still move the cursor past them; otherwise
        # a page of bad rows would be asked for again for ever. They are recorded below.
        parsed = dataclasses.replace(parsed, next_cursor=seen)
    metrics.PARSE_SECONDS.labels(source.parser).observe(time.perf_counter() - started)
    for rejection in parsed.rejected:
        tally.reject(rejection.index, rejection.reason)
    metrics.ROWS_REJECTED.labels(source.parser).inc(len(parsed.rejected))

    started = time.perf_counter()
    outcome = await db.load(
        loader.load,
        loader.Batch(
            source_id=source.id,
            node=ctx.node,
            result=parsed,
            etag=fetched.etag,
            last_modified=fetched.last_modified,
            check_lease=ctx.check_lease,
            closing=None
            if incremental
            else runs.Closing(
                run_id=source.run_id,
                next_run_at=_next_run(ctx, source),
                tally=dataclasses.replace(tally),
            ),
        ),
    )
    metrics.LOAD_SECONDS.observe(time.perf_counter() - started)
    metrics.ROWS_LOADED.labels(parsed.kind).inc(outcome.rows_in)
    tally.rows_in += outcome.rows_in
    tally.rows_out += outcome.rows_out
    more = incremental and parsed.more and outcome.cursor != cursor
    return more, outcome.cursor, outcome


async def run_source(ctx: Context, source: runs.Assignment) -> runs.RunTally:
    """Run one claimed source to the end and record it; see the module docstring."""
    with logs.context(node=ctx.node, source=source.url):  # fields of every log line below
        return await _run_source(ctx, source)


async def _run_source(ctx: Context, source: runs.Assignment) -> runs.RunTally:
    run_id = source.run_id
    tally = runs.RunTally()
    last: loader.LoadOutcome | None = None
    try:
        cursor = source.cursor
        for _page in range(ctx.max_pages):
            more, cursor, last = await _one_page(ctx, source, cursor, tally)
            if not more:
                break
    except asyncio.CancelledError:
        tally.status = TaskRun.Status.FAILED
        tally.error = "interrupted: node shutting down; the source is released for retry"
        metrics.RUNS.labels("interrupted").inc()
        log.info("interrupted by shutdown; releasing the lease")
        await asyncio.shield(
            db.load(runs.abandon, run_id=run_id, source_id=source.id, node=ctx.node, tally=tally)
        )
        raise
    except IngestError as exc:
        tally.status = TaskRun.Status.FAILED
        tally.error = f"{type(exc).__name__}: {exc}"
        log.warning("run failed: %s", tally.error)
    except Exception as exc:  # one source's bug must not stop the node
        tally.status = TaskRun.Status.FAILED
        tally.error = f"internal error: {type(exc).__name__}: {exc}"
        log.exception("internal error")
    else:
        log.info(
            "%s rows_in=%d rows_out=%d rejected=%d bytes=%d",
            tally.status,
            tally.rows_in,
            tally.rows_out,
            tally.rows_rejected,
            tally.bytes,
        )
    metrics.RUNS.labels(tally.status).inc()
    if last is not None and last.closed and tally.status == TaskRun.Status.OK:
        streak = last.streak  # the load closed the run in its transaction
    else:
        streak = await db.load(
            runs.finish_source,
            run_id=run_id,
            source_id=source.id,
            node=ctx.node,
            tally=tally,
            next_run_at=_next_run(ctx, source),
        )
    if ctx.on_finished is not None:
        ctx.on_finished(
            runs.SourceReport(url=source.url, status=tally.status, error=tally.error, streak=streak)
        )
    return tally
