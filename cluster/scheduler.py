"""The talk's cron registry, done right.

``@cron("H * * * *")`` registers an async job. :class:`Scheduler` ticks about once a
second; a job is due when its ``next_run_at`` has come and its previous run has
finished, so one job never overlaps itself. Next times come from croniter with the job's
name as ``hash_id``, so ``H`` spreads jobs. Every run is recorded (a ``TaskRun`` in the
node) and an exception in a job is logged and recorded, never fatal to the loop.

A cluster-wide job (``cluster_wide=True``) runs once per scheduled tick across the
cluster: before running, the node claims the tick (``cluster.ticks``) and skips it if
another node got there first.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from ingest import schedule

log = logging.getLogger(__name__)

JobFn = Callable[[], Awaitable[Any]]
# record(job, started, what the job returned, the exception it raised)
Recorder = Callable[["Job", datetime, Any, BaseException | None], Awaitable[None]]
# claim(job, tick) -> True if this node runs a cluster-wide job for that tick
Claimer = Callable[["Job", datetime], Awaitable[bool]]


@dataclass(slots=True, kw_only=True)
class Job:
    name: str
    spec: str
    fn: JobFn
    cluster_wide: bool = False
    next_run_at: datetime | None = None
    running: bool = False
    runs: int = 0
    failures: int = 0


_registry: dict[str, Job] = {}


def cron(
    spec: str, *, name: str | None = None, cluster_wide: bool = False
) -> Callable[[JobFn], JobFn]:
    """Register the decorated coroutine function as a job running on ``spec``."""
    schedule.validate(spec)

    def register(fn: JobFn) -> JobFn:
        job_name = name or f"{fn.__module__}.{fn.__qualname__}"
        _registry[job_name] = Job(name=job_name, spec=spec, fn=fn, cluster_wide=cluster_wide)
        return fn

    return register


def registered() -> list[Job]:
    """Fresh copies of the registered jobs (each scheduler keeps its own state)."""
    return [
        Job(name=j.name, spec=j.spec, fn=j.fn, cluster_wide=j.cluster_wide)
        for j in _registry.values()
    ]


async def _no_record(job: Job, started: datetime, result: Any, error: BaseException | None) -> None:
    return None


async def _always(job: Job, tick: datetime) -> bool:
    return True


def _utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(kw_only=True)
class Scheduler:
    """Runs jobs when due; ``clock`` is injected for tests."""

    jobs: list[Job]
    tick: float = 1.0
    clock: Callable[[], datetime] = _utcnow
    record: Recorder = _no_record
    claim: Claimer = _always
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)

    def due(self, now: datetime) -> list[Job]:
        return [
            job
            for job in self.jobs
            if not job.running and (job.next_run_at is None or job.next_run_at <= now)
        ]

    def step(self, now: datetime) -> list[Job]:
        """Start every due job; return the ones started."""
        started = []
        for job in self.due(now):
            if job.next_run_at is None:
                # First sight of the job: schedule it rather than run it at start-up.
                job.next_run_at = schedule.next_run(job.spec, now, job.name)
                continue
            job.running = True
            task = asyncio.create_task(self._run(job, job.next_run_at), name=f"cron:{job.name}")
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
            started.append(job)
        return started

    async def _run(self, job: Job, tick: datetime) -> None:
        error: BaseException | None = None
        result: Any = None
        started = self.clock()
        try:
            if job.cluster_wide and not await self.claim(job, tick):
                log.debug("cron job %s for %s runs on another node", job.name, tick)
                return
            result = await job.fn()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            error = exc
            job.failures += 1
            log.exception("cron job %s failed", job.name)
        finally:
            job.running = False
            job.next_run_at = schedule.next_run(job.spec, self.clock(), job.name)
        job.runs += 1
        try:
            await self.record(job, started, result, error)
        except Exception:
            log.exception("could not record the run of cron job %s", job.name)

    async def run(self, stop: asyncio.Event) -> None:
        """Tick until ``stop`` is set, then wait for running jobs to finish."""
        while not stop.is_set():
            self.step(self.clock())
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=self.tick)
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
