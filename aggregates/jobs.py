"""The aggregation pass as a cluster-wide cron job of every node."""

from __future__ import annotations

import os

from prometheus_client import Counter, Histogram

from aggregates import aggregation
from cluster import scheduler
from cluster.models import TaskRun
from etl import db, notify
from ingest.runs import RunTally

SCHEDULE = os.environ.get("ETL_AGGREGATE_SCHEDULE", "* * * * *")
# A full pass re-adds every item from scratch: it also rewrites any avg whose float
# total drifted by a rounding under many incremental passes.
FULL_SCHEDULE = os.environ.get("ETL_AGGREGATE_FULL_SCHEDULE", "0 3 * * *")

PASS_SECONDS = Histogram(
    "shardetl_aggregation_seconds",
    "Duration of the aggregation passes this node ran, by mode (full, incremental)",
    ["mode"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120),
)
PASSES = Counter(
    "shardetl_aggregation_passes_total",
    "Aggregation passes this node attempted: full, incremental, skipped (another ran), failed",
    ["outcome"],
)


def tally(result: aggregation.PassResult) -> RunTally:
    """The ``TaskRun`` figures of a pass: items recomputed in, stats rows written out."""
    if not result.ran:
        return RunTally(status=TaskRun.Status.SKIPPED, error=result.reason)
    return RunTally(rows_in=result.items, rows_out=result.changed + result.removed)


async def _pass(*, full: bool) -> RunTally:
    try:
        result = await db.call(aggregation.run_pass, full=full)
    except Exception:
        PASSES.labels("failed").inc()
        raise
    if result.ran:
        PASS_SECONDS.labels(result.mode).observe(result.seconds)
        notify.batch_complete(
            mode=result.mode,
            items=result.items,
            changed=result.changed,
            removed=result.removed,
            seconds=result.seconds,
        )
    PASSES.labels(result.mode if result.ran else "skipped").inc()
    return tally(result)


@scheduler.cron(SCHEDULE, name="aggregate", cluster_wide=True)
async def aggregate() -> RunTally:
    """Incremental pass: the changes logged since the last pass."""
    return await _pass(full=False)


async def aggregate_full() -> RunTally:
    """Full pass: every item recomputed from its observations."""
    return await _pass(full=True)


# "off" where something else runs it (the Kubernetes CronJob).
if FULL_SCHEDULE.strip().lower() not in {"", "off", "none"}:
    scheduler.cron(FULL_SCHEDULE, name="aggregate-full", cluster_wide=True)(aggregate_full)
