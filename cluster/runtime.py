"""The node runtime: HTTP client, parse pool, source dispatcher, cron scheduler.

It starts and stops with the ASGI lifespan (``etl.asgi``). Shutdown (SIGTERM through
uvicorn) stops claiming, lets in-flight runs finish for ``ETL_DRAIN_SECONDS``, interrupts
what is left (those runs release their leases, so another node picks the sources up at
once) and releases every lease this node still holds.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import etl
from cluster import identity, leases, membership, metrics, scheduler, ticks, watchdog
from cluster.models import TaskRun
from etl import db, logs, notify
from etl.chat import service as chat
from etl.config import Settings
from ingest import fetch, pipeline, runs
from ingest.pool import ParsePool

log = logging.getLogger(__name__)

_current: NodeRuntime | None = None


def current() -> NodeRuntime | None:
    """The runtime of this process, if one has started."""
    return _current


def _leave(name: str) -> int:
    membership.leave(name)
    return leases.release_all(node=name)


def _record_job(
    node: str, job: scheduler.Job, started: datetime, result: Any, error: BaseException | None
) -> None:
    tally = result if isinstance(result, runs.RunTally) else runs.RunTally()
    if error is not None:
        tally.status = TaskRun.Status.FAILED
        tally.error = f"{type(error).__name__}: {error}"
        notify.job_failed(job=job.name, error=tally.error)  # emit is thread-safe
    metrics.JOB_RUNS.labels(job.name, tally.status).inc()
    runs.record(node=node, job=job.name, started_at=started, tally=tally)


@dataclass(kw_only=True)
class NodeRuntime:
    settings: Settings
    ident: identity.Identity
    tick: float = 1.0
    started: bool = False
    view: membership.View = field(default_factory=membership.View.nowhere)
    inflight: dict[int, asyncio.Task[runs.RunTally]] = field(default_factory=dict)
    _stop: asyncio.Event = field(default_factory=asyncio.Event)
    _wake: asyncio.Event = field(default_factory=asyncio.Event)
    _halt: asyncio.Event = field(default_factory=asyncio.Event)
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)
    _keeper: asyncio.Task[None] | None = None
    _ctx: pipeline.Context | None = None
    _notifier: notify.Notifier | None = None
    _chat: chat.Chat | None = None

    @property
    def name(self) -> str:
        return self.settings.node_name

    @property
    def ownership(self) -> membership.Ownership:
        ttl = self.settings.node_ttl
        if self.ident.mode == "dynamic":
            return membership.Dynamic(ttl=ttl)
        return membership.Static(slot=self.ident.slot, count=self.ident.node_count, ttl=ttl)

    @property
    def ready(self) -> bool:
        """Started, placed in the cluster, and in agreement with the other nodes."""
        return self.started and self.view.slot is not None and not self.view.conflicts

    async def _beat(self) -> None:
        view = await db.control(
            membership.heartbeat, name=self.name, ident=self.ident, ttl=self.settings.node_ttl
        )
        if view.conflicts and view.conflicts != self.view.conflicts:
            log.warning(
                "this node disagrees with the cluster: %s; it claims only sources no earlier "
                "node's view assigns to itself",
                "; ".join(view.conflicts),
            )
        if view.warnings and view.warnings != self.view.warnings:
            log.warning("later nodes disagree and yield to this one: %s", "; ".join(view.warnings))
        if (view.slot, view.count) != (self.view.slot, self.view.count):
            log.info("now slot %s of %d", view.slot, view.count)
        self.view = view

    async def start(self) -> None:
        global _current
        s = self.settings
        logs.set_node(self.name)
        self._notifier = notify.from_env(node=self.name)  # a bad ETL_NOTIFY_* fails here
        self._chat = await chat.start(node=self.name, node_ttl=s.node_ttl)  # ETL_SSH_*, DISCORD_*
        fetcher = fetch.Fetcher(
            limits=fetch.limits_from(s), user_agent=fetch.user_agent(etl.__version__, self.name)
        )
        pool = ParsePool(s.parse_workers)
        await pool.start()
        self._ctx = pipeline.Context(node=self.name, fetcher=fetcher, pool=pool)
        await self._beat()
        cron = scheduler.Scheduler(
            jobs=scheduler.registered(), tick=self.tick, record=self._record, claim=self._claim
        )
        if self._notifier is not None:
            self._notifier.start()
        self._keeper = asyncio.create_task(self._keepalive(), name="keepalive")
        self._tasks = [
            asyncio.create_task(self._dispatch(), name="dispatch"),
            asyncio.create_task(watchdog.Watchdog().run(self._stop), name="watchdog"),
            asyncio.create_task(cron.run(self._stop), name="cron"),
        ]
        self.started = True
        _current = self
        log.info(
            "started: slot %d of %d (%s), %d parse workers",
            self.ident.slot,
            self.ident.node_count,
            self.ident.mode,
            s.parse_workers,
        )

    async def _record(
        self, job: scheduler.Job, started: datetime, result: Any, error: BaseException | None
    ) -> None:
        await db.call(_record_job, self.name, job, started, result, error)

    async def _claim(self, job: scheduler.Job, tick: datetime) -> bool:
        return await db.call(ticks.claim, job=job.name, tick=tick, node=self.name)

    async def _dispatch(self) -> None:
        assert self._ctx is not None
        capacity = self.settings.http_concurrency
        while not self._stop.is_set():
            free = capacity - len(self.inflight)
            try:
                claimed = await db.call(
                    leases.claim_due,
                    node=self.name,
                    view=self.ownership,
                    limit=free,
                    lease_seconds=self.settings.lease_seconds,
                )
            except Exception:
                log.exception("could not claim sources")
                claimed = []
            for source in claimed:
                task = asyncio.create_task(pipeline.run_source(self._ctx, source), name=source.url)
                self.inflight[source.id] = task
                task.add_done_callback(functools.partial(self._finished, source.id))
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=self.tick)

    def _finished(self, source_id: int, task: asyncio.Task[runs.RunTally]) -> None:
        self.inflight.pop(source_id, None)
        self._wake.set()
        if not task.cancelled() and task.exception() is not None:
            # run_source records its own failures; this is the database failing under it.
            # The lease runs out and the source is retried.
            log.error(
                "run of source %d crashed",
                source_id,
                exc_info=task.exception(),
                extra={"source": task.get_name()},  # the task is named after the URL
            )

    async def _keepalive(self) -> None:
        every = max(1.0, min(self.settings.node_ttl / 3, self.settings.lease_seconds / 3))
        # Runs until the drain is over (``_halt``, not ``_stop``): draining runs keep
        # their leases and the node its slot.
        while not self._halt.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._halt.wait(), timeout=every)
            if self._halt.is_set():
                break
            began = time.monotonic()
            try:
                await self._beat()
                await db.control(
                    leases.renew,
                    node=self.name,
                    ids=list(self.inflight),
                    lease_seconds=self.settings.lease_seconds,
                )
            except Exception:
                log.exception("heartbeat failed")
            took = time.monotonic() - began
            if took > every:
                log.warning("heartbeat took %.1f s (TTL %d s)", took, self.settings.node_ttl)

    async def stop(self) -> None:
        """Drain and stop; see the module docstring."""
        global _current
        self._stop.set()
        self._wake.set()
        if self._chat is not None:  # chat sessions end first: no commands while draining
            await self._chat.close()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        pending = list(self.inflight.values())
        if pending:
            drain = self.settings.drain_seconds
            log.info("draining %d in-flight runs (up to %d s)", len(pending), drain)
            _done, late = await asyncio.wait(pending, timeout=drain)
            for task in late:
                task.cancel()
            await asyncio.gather(*late, return_exceptions=True)
        self._halt.set()
        if self._keeper is not None:
            await asyncio.gather(self._keeper, return_exceptions=True)
        if self._notifier is not None:  # after the drain: the last runs' failures go out
            await self._notifier.stop()
        if self._ctx is not None:
            await self._ctx.pool.close()
            await self._ctx.fetcher.aclose()
        released = await db.call(_leave, self.name)
        self.started = False
        if _current is self:
            _current = None
        log.info("stopped; released %d leases", released)
