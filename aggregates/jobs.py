"""The aggregation pass as a cluster-wide cron job of every node."""

from __future__ import annotations

import os

from aggregates import aggregation
from cluster import scheduler
from cluster.models import TaskRun
from etl import db
from ingest.runs import RunTally

SCHEDULE = os.environ.get("ETL_AGGREGATE_SCHEDULE", "* * * * *")


def tally(result: aggregation.PassResult) -> RunTally:
    """The ``TaskRun`` figures of a pass: items recomputed in, stats rows written out."""
    if not result.ran:
        return RunTally(status=TaskRun.Status.SKIPPED, error=result.reason)
    return RunTally(rows_in=result.items, rows_out=result.changed + result.removed)


@scheduler.cron(SCHEDULE, name="aggregate", cluster_wide=True)
async def aggregate() -> RunTally:
    """Incremental pass over the items whose observations changed."""
    return tally(await db.call(aggregation.run_pass, full=False))
