"""Run every due source of a shard once, now (``etl run-once``, backfills, benchmarks)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field

import etl
from cluster import leases, membership, sharding
from etl import db
from etl.config import Settings
from ingest import fetch, pipeline, runs
from ingest.models import Source, due_q
from ingest.pool import ParsePool
from ingest.runs import RunTally


@dataclass(slots=True, kw_only=True)
class Summary:
    runs: int = 0
    by_status: dict[str, int] = field(default_factory=dict)
    rows_in: int = 0
    rows_rejected: int = 0
    failures: list[tuple[str, str]] = field(default_factory=list)

    def add(self, url: str, tally: RunTally) -> None:
        self.runs += 1
        self.by_status[tally.status] = self.by_status.get(tally.status, 0) + 1
        self.rows_in += tally.rows_in
        self.rows_rejected += tally.rows_rejected
        if tally.error:
            self.failures.append((url, tally.error))


def count_due(view: membership.Ownership) -> int:
    """Sources due now in ``view`` (for a progress bar; the claim decides for real)."""
    due = Source.objects.filter(due_q(), enabled=True)
    if isinstance(view, membership.Static):
        due = due.filter(sharding.shard_q(view.slot, view.count))
    return due.count()


async def run_due(
    settings: Settings,
    view: membership.Ownership,
    *,
    on_done: Callable[[str, runs.RunTally], None] | None = None,
    on_finished: runs.OnFinished | None = None,
    lease_seconds: float = 300.0,
    limits: fetch.FetchLimits | None = None,
    pool: ParsePool | None = None,
) -> Summary:
    """Claim and run sources due in ``view`` until none is due; return what happened."""
    limits = limits or fetch.limits_from(settings)
    summary = Summary()
    own_pool = pool is None
    pool = pool or ParsePool(settings.parse_workers)
    await pool.start()
    try:
        async with fetch.Fetcher(
            limits=limits, user_agent=fetch.user_agent(etl.__version__, settings.node_name)
        ) as fetcher:
            ctx = pipeline.Context(
                node=settings.node_name, fetcher=fetcher, pool=pool, on_finished=on_finished
            )
            inflight: dict[asyncio.Task[runs.RunTally], str] = {}
            started = await db.call(leases.db_now)
            while True:
                free = settings.http_concurrency - len(inflight)
                claimed = await db.call(
                    leases.claim_due,
                    node=ctx.node,
                    view=view,
                    limit=free,
                    lease_seconds=lease_seconds,
                    due_before=started,
                )
                for source in claimed:
                    inflight[asyncio.create_task(pipeline.run_source(ctx, source))] = source.url
                if not inflight:
                    break
                done, _ = await asyncio.wait(inflight, return_when=asyncio.FIRST_COMPLETED)
                for task in done:
                    url = inflight.pop(task)
                    tally = task.result()
                    summary.add(url, tally)
                    if on_done is not None:
                        on_done(url, tally)
    finally:
        if own_pool:
            await pool.close()
    return summary
