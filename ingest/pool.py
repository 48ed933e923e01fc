"""The parse process pool: the event loop never parses.

A thin owner of an ``aiomultiprocess.Pool``. Two things it adds:

* Errors keep their meaning. aiomultiprocess returns a child's exception as a traceback
  string, so the child entry point returns a :class:`Failure` value instead of raising.
* A killed child fails nothing. aiomultiprocess replaces a dead worker but the task it
  held never completes, so every waiter watches the pool's death count; when a child
  dies the whole pool is replaced (a child killed while holding the shared queue's lock
  would wedge its siblings) and the in-flight bodies are parsed again. A body that kills
  its worker ``max_attempts`` times fails its run with :class:`ParseWorkerDied`.

This module is imported by the children, so it must not import Django.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import ctypes.util
import functools
import logging
import multiprocessing.managers
import os
import queue
import signal
import threading
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import aiomultiprocess
import aiomultiprocess.pool
import aiomultiprocess.types

from ingest import parsers
from ingest.exceptions import ParseError, ParsePoolClosed, ParseWorkerDied
from ingest.records import Rows, to_rows

log = logging.getLogger(__name__)

_PR_SET_PDEATHSIG = 1  # linux/prctl.h


@dataclass(frozen=True, slots=True, kw_only=True)
class Failure:
    """A parse that failed in the child, with the reason for ``TaskRun.error``."""

    reason: str


async def parse_in_child(
    name: str, body: bytes, url: str, options: dict[str, Any]
) -> Rows | Failure:
    """Pool entry point (runs in a child process); returns the compact row form."""
    try:
        return to_rows(parsers.parse(name, body, url=url, options=options))
    except ParseError as exc:
        return Failure(reason=str(exc))
    except Exception as exc:  # noqa: BLE001 - a parser bug fails this body, not the node
        return Failure(reason=f"parser {name!r} crashed: {type(exc).__name__}: {exc}")


def die_with_parent(parent: int) -> None:
    """Child initializer: exit when the node that started us is gone.

    A node killed with SIGKILL runs no cleanup, and its children would poll their queue
    for ever. Linux can deliver a signal on the parent's death; elsewhere (and as a
    backstop) a thread watches for the child being re-parented.
    """
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:  # it died before prctl took effect
        os._exit(0)

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1.0)
        os._exit(0)

    threading.Thread(target=watch, name="die-with-parent", daemon=True).start()


def _adopt_manager() -> None:
    # aiomultiprocess starts one multiprocessing manager process per parent (its
    # get_manager() singleton) without an initializer; start it ourselves so that it,
    # too, dies with the node.
    if aiomultiprocess.core._manager is None:
        manager = multiprocessing.managers.SyncManager(ctx=aiomultiprocess.core.context)
        manager.start(die_with_parent, (os.getpid(),))
        aiomultiprocess.core._manager = manager


# aiomultiprocess moves work and results by polling: an idle child looks at its queue
# every 5 ms, the parent drains results every 5 ms and each waiter looks for its result
# every 5 ms. That put ~10 ms on every 1 ms parse and kept an idle node busy. The two
# classes below keep its queues, processes and protocol and replace the polls with
# waits: on the queue's pipe becoming readable (the event loop's add_reader) and on a
# future per task.

_LIVENESS = 0.05  # seconds between the parent's checks for dead children


def _wake_on_readable(pipe: Any, event: asyncio.Event) -> Callable[[], object]:
    """Set ``event`` whenever the queue ``pipe`` has data to read; return the undo."""
    loop = asyncio.get_running_loop()
    fd = pipe._reader.fileno()  # multiprocessing.Queue's receiving end
    loop.add_reader(fd, event.set)
    return functools.partial(loop.remove_reader, fd)


class _Worker(aiomultiprocess.pool.PoolWorker):
    """A pool child that sleeps until work arrives instead of polling for it."""

    async def run(self) -> None:
        ready = asyncio.Event()
        undo = _wake_on_readable(self.tx, ready)
        pending: dict[asyncio.Future[Any], Any] = {}
        completed, running = 0, True
        try:
            while running or pending:
                if self.ttl and completed >= self.ttl:
                    running = False
                ready.clear()  # level-triggered: unread data sets it again at once
                while running and len(pending) < self.concurrency:
                    try:
                        task = self.tx.get_nowait()
                    except queue.Empty:
                        break
                    if task is None:
                        running = False
                        break
                    tid, func, args, kwargs = task
                    pending[asyncio.ensure_future(func(*args, **kwargs))] = tid
                if not pending:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(ready.wait(), timeout=1.0)
                    continue
                done, _ = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
                for future in done:
                    tid = pending.pop(future)
                    result, tb = None, None
                    try:
                        result = future.result()
                    except BaseException as exc:  # noqa: BLE001 - sent back, as aiomultiprocess does
                        if self.exception_handler is not None:
                            self.exception_handler(exc)
                        tb = traceback.format_exc()
                    self.rx.put_nowait((tid, result, tb))
                    completed += 1
        finally:
            undo()


class _CountingPool(aiomultiprocess.Pool):
    """An aiomultiprocess pool that counts workers it had to replace, with waits for
    polls (see above)."""

    def __init__(self, **kwargs: Any) -> None:
        self.created = 0
        self._waiters: dict[Any, asyncio.Future[None]] = {}
        super().__init__(**kwargs)

    @property
    def deaths(self) -> int:
        return self.created - self.process_count

    def create_worker(self, qid: Any) -> Any:
        self.created += 1
        tx, rx = self.queues[qid]
        process = _Worker(
            tx,
            rx,
            self.maxtasksperchild,
            self.childconcurrency,
            initializer=self.initializer,
            initargs=self.initargs,
            loop_initializer=self.loop_initializer,
            exception_handler=self.exception_handler,
        )
        process.start()
        return process

    async def loop(self) -> None:
        ready = asyncio.Event()
        undo = [_wake_on_readable(rx, ready) for _, rx in self.queues.values()]
        try:
            while self.processes or self.running:
                for process in list(self.processes):  # replace dead children
                    if not process.is_alive():
                        qid = self.processes.pop(process)
                        if self.running:
                            self.processes[self.create_worker(qid)] = qid
                ready.clear()
                for _, rx in self.queues.values():
                    while True:
                        try:
                            task_id, value, tb = rx.get_nowait()
                        except queue.Empty:
                            break
                        self.finish_work(task_id, value, tb)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(ready.wait(), timeout=_LIVENESS)
        finally:
            for remove in undo:
                remove()

    def finish_work(self, task_id: Any, value: Any, tb: Any) -> None:
        super().finish_work(task_id, value, tb)
        waiter = self._waiters.pop(task_id, None)
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def results(self, tids: Sequence[Any]) -> Sequence[Any]:
        values = []
        for tid in tids:
            if tid not in self._results:
                waiter = asyncio.get_running_loop().create_future()
                self._waiters[tid] = waiter
                try:
                    await waiter
                finally:
                    self._waiters.pop(tid, None)
            value, tb = self._results.pop(tid)
            if tb is not None:
                raise aiomultiprocess.types.ProxyException(tb)
            values.append(value)
        return values


class ParsePool:
    """Parse bodies in ``workers`` child processes; see the module docstring."""

    def __init__(self, workers: int, *, max_attempts: int = 3, poll: float = 0.02) -> None:
        self.workers = workers
        self.max_attempts = max_attempts
        self.poll = poll
        self.replacements = 0
        self.inflight = 0
        self._pool: _CountingPool | None = None
        self._lock = asyncio.Lock()
        self._closed = False  # for good: a parse still waiting must not start a new pool

    def _new_pool(self) -> _CountingPool:
        # childconcurrency=1: parsing is CPU-bound, two parses in one child only queue.
        _adopt_manager()
        return _CountingPool(
            processes=self.workers,
            childconcurrency=1,
            maxtasksperchild=0,
            initializer=die_with_parent,
            initargs=(os.getpid(),),
        )

    async def start(self) -> None:
        if self._closed:
            raise ParsePoolClosed("the parse pool is closed: the node is shutting down")
        if self._pool is None:
            self._pool = self._new_pool()

    @property
    def pids(self) -> list[int]:
        """Process ids of the live children (tests kill one)."""
        if self._pool is None:
            return []
        return [p.pid for p in self._pool.processes if p.pid is not None and p.is_alive()]

    def queued(self) -> int:
        """Bodies submitted but not yet picked up by a child (approximate)."""
        if self._pool is None:
            return 0
        return sum(tx.qsize() for tx, _ in self._pool.queues.values())

    async def parse(self, name: str, body: bytes, *, url: str, options: dict[str, Any]) -> Rows:
        """Parse ``body`` in a child; raise ParseError or ParseWorkerDied on failure."""
        self.inflight += 1
        try:
            return await self._parse(name, body, url=url, options=options)
        finally:
            self.inflight -= 1

    async def _parse(self, name: str, body: bytes, *, url: str, options: dict[str, Any]) -> Rows:
        for attempt in range(1, self.max_attempts + 1):
            await self.start()
            pool = self._pool
            assert pool is not None
            outcome = await self._attempt(pool, (name, body, url, options))
            if isinstance(outcome, Rows):
                return outcome
            if isinstance(outcome, Failure):
                raise ParseError(outcome.reason)
            if self._closed:
                raise ParsePoolClosed(f"the parse pool closed while parsing {url}: shutting down")
            log.warning("parse worker died during %s (attempt %d); replacing pool", url, attempt)
            await self._replace(pool)
        raise ParseWorkerDied(
            f"the parse worker died {self.max_attempts} times while parsing {url}"
        )

    async def _attempt(
        self, pool: _CountingPool, args: tuple[str, bytes, str, dict[str, Any]]
    ) -> Rows | Failure | None:
        deaths = pool.deaths
        task = asyncio.ensure_future(pool.apply(parse_in_child, args))
        try:
            while True:
                done, _ = await asyncio.wait({task}, timeout=self.poll)
                if done:
                    result: Rows | Failure = task.result()
                    return result
                if pool.deaths > deaths or pool is not self._pool:
                    return None  # a child died: this body may have died with it
        finally:
            if not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    async def _replace(self, old: _CountingPool) -> None:
        async with self._lock:
            if self._pool is not old:
                return  # another waiter already replaced it
            self._pool = self._new_pool()
            self.replacements += 1
        await self._shut(old)

    async def _shut(self, pool: _CountingPool) -> None:
        pool.terminate()
        try:
            await asyncio.wait_for(pool.join(), timeout=5)
        except TimeoutError:
            for process in list(pool.processes):
                process.kill()
        for tx, rx in pool.queues.values():
            for pipe in (tx, rx):
                # Whatever is still buffered was for children that are gone. Without this
                # the interpreter's exit joins the queue's feeder thread, which blocks for
                # ever writing a large body into a pipe no one reads any more.
                pipe.cancel_join_thread()
                pipe.close()

    async def close(self) -> None:
        """Stop the children for good (in-flight parses fail with ParsePoolClosed)."""
        self._closed = True
        if self._pool is not None:
            pool, self._pool = self._pool, None
            await self._shut(pool)
