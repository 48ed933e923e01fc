"""The node runtime: HTTP client, parse pool, source dispatcher, cron scheduler.

It starts and stops with the ASGI lifespan (``etl.asgi``). Shutdown (SIGTERM through
uvicorn) stops claiming, lets in-flight runs finish for ``ETL_DRAIN_SECONDS``, interrupts
what is left (those runs release their leases, so another node picks the sources up at
once) and releases every lease this node still holds.

What the surfaces add (notifications, chat) is plugged in from above through
:class:`Hooks`: the runtime tells them how runs end and when it starts and stops, and
never imports them (the composition root, ``etl.node``, wires them).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import etl
from cluster import identity, jobs, leases, membership, scheduler, ticks, watchdog
from etl import db, logs
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


Service = Callable[[], Awaitable[None]]


@dataclass(kw_only=True)
class Hooks:
    """What the layers above plug into a node (``etl.node`` fills these in)."""

    source_finished: list[runs.OnFinished] = field(default_factory=list)
    job_finished: list[jobs.OnJob] = field(default_factory=list)
    starting: list[Service] = field(default_factory=list)  # before the first claim
    started: list[Service] = field(default_factory=list)  # once the node runs
    stopping: list[Service] = field(default_factory=list)  # first thing on shutdown
    stopped: list[Service] = field(default_factory=list)  # after the drain

    def source_run(self, report: runs.SourceReport) -> None:
        for hook in self.source_finished:
            try:
                hook(report)
            except Exception:
                log.exception("a source hook failed")


async def _each(services: list[Service], what: str) -> None:
    for service in services:
        try:
            await service()
        except Exception:
            log.exception("%s hook failed", what)


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
    hooks: Hooks = field(default_factory=Hooks)
    _keeper: asyncio.Task[None] | None = None
    _ctx: pipeline.Context | None = None

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
        for service in self.hooks.starting:  # a failure here stops the start
            await service()
        fetcher = fetch.Fetcher(
            limits=fetch.limits_from(s), user_agent=fetch.user_agent(etl.__version__, self.name)
        )
        pool = ParsePool(s.parse_workers)
        await pool.start()
        self._ctx = pipeline.Context(
            node=self.name, fetcher=fetcher, pool=pool, on_finished=self.hooks.source_run
        )
        await self._beat()
        cron = scheduler.Scheduler(
            jobs=scheduler.registered() + jobs.build(s),
            tick=self.tick,
            record=self._record,
            claim=self._claim,
        )
        await _each(self.hooks.started, "start")
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
        await jobs.record(
            node=self.name,
            job=job.name,
            started=started,
            result=result,
            error=error,
            hooks=self.hooks.job_finished,
        )

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
        await _each(self.hooks.stopping, "stop")  # e.g. chat: no commands while draining
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
        await _each(self.hooks.stopped, "stop")  # e.g. notifications of the last runs
        if self._ctx is not None:
            await self._ctx.pool.close()
            await self._ctx.fetcher.aclose()
        released = await db.call(_leave, self.name)
        self.started = False
        if _current is self:
            _current = None
        log.info("stopped; released %d leases", released)
