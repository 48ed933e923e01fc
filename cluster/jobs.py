"""The cluster's own cron jobs, and the one path every job run takes.

The aggregation passes run as cluster-wide jobs of every node (one pass per tick across
the cluster). Whether the in-node scheduler starts a job or ``etl aggregate`` asks for
one, it goes through :func:`run`: the job is timed, counted in the metrics, recorded
as a ``TaskRun`` and reported to the hooks (notifications) the same way.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from prometheus_client import Counter, Histogram

from aggregates import aggregation
from cluster import scheduler
from etl import db
from etl.config import Settings
from ingest import runs
from ingest.models import TaskRun

log = logging.getLogger(__name__)

AGGREGATE = "aggregate"
AGGREGATE_FULL = "aggregate-full"

JOB_RUNS = Counter(
    "shardetl_job_runs_total", "Cron job runs of this node by job and outcome", ["job", "status"]
)
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


@dataclass(frozen=True, slots=True, kw_only=True)
class JobReport:
    """How one run of a job ended, for whoever listens (notifications, the CLI)."""

    job: str
    status: str
    error: str
    result: Any  # what the job returned (an aggregation.PassResult for the passes)


OnJob = Callable[[JobReport], None]


async def _pass(*, full: bool) -> aggregation.PassResult:
    try:
        result = await db.call(aggregation.run_pass, full=full)
    except Exception:
        PASSES.labels("failed").inc()
        raise
    if result.ran:
        PASS_SECONDS.labels(result.mode).observe(result.seconds)
    PASSES.labels(result.mode if result.ran else "skipped").inc()
    return result


async def aggregate() -> aggregation.PassResult:
    """Incremental pass: the changes logged since the last pass."""
    return await _pass(full=False)


async def aggregate_full() -> aggregation.PassResult:
    """Full pass: every item recomputed from its observations."""
    return await _pass(full=True)


def _off(spec: str) -> bool:
    return spec.strip().lower() in {"", "off", "none"}


def build(settings: Settings) -> list[scheduler.Job]:
    """The cluster's jobs under ``settings`` (a schedule set to ``off`` drops its job)."""
    jobs = [
        (AGGREGATE, settings.aggregate_schedule, aggregate),
        (AGGREGATE_FULL, settings.aggregate_full_schedule, aggregate_full),
    ]
    return [
        scheduler.Job(name=name, spec=spec, fn=fn, cluster_wide=True)
        for name, spec, fn in jobs
        if not _off(spec)
    ]


def tally(result: Any, error: BaseException | None) -> runs.RunTally:
    """The ``TaskRun`` figures of a job run (for a pass: items in, stats rows out)."""
    if error is not None:
        return runs.RunTally(status=TaskRun.Status.FAILED, error=f"{type(error).__name__}: {error}")
    if isinstance(result, aggregation.PassResult):
        if not result.ran:
            return runs.RunTally(status=TaskRun.Status.SKIPPED, error=result.reason)
        return runs.RunTally(rows_in=result.items, rows_out=result.changed + result.removed)
    return result if isinstance(result, runs.RunTally) else runs.RunTally()


async def record(
    *,
    node: str,
    job: str,
    started: datetime,
    result: Any,
    error: BaseException | None,
    hooks: Sequence[OnJob] = (),
) -> JobReport:
    """Count, record and report one finished run of ``job``."""
    counted = tally(result, error)
    JOB_RUNS.labels(job, counted.status).inc()
    await db.call(runs.record, node=node, job=job, started_at=started, tally=counted)
    report = JobReport(job=job, status=counted.status, error=counted.error, result=result)
    for hook in hooks:
        try:
            hook(report)
        except Exception:
            log.exception("a job hook failed for %s", job)
    return report


async def run(name: str, *, node: str, hooks: Sequence[OnJob] = ()) -> JobReport:
    """Run the cluster job ``name`` now, outside any schedule (``etl aggregate``)."""
    fns = {AGGREGATE: aggregate, AGGREGATE_FULL: aggregate_full}
    started = datetime.now(UTC)
    result: Any = None
    error: BaseException | None = None
    try:
        result = await fns[name]()
    except Exception as exc:  # noqa: BLE001 - recorded and reported, then raised again
        error = exc
    report = await record(
        node=node, job=name, started=started, result=result, error=error, hooks=hooks
    )
    if error is not None:
        raise error
    return report
