"""The notifier: a bounded queue and one worker task that sends, retries and rate-limits.

Ingest only ever calls :meth:`Notifier.emit`: synchronous, constant time, it cannot
raise and never waits. A full queue drops the event (counted, logged once per episode)
rather than slowing a run. The worker sends each message to every channel at once;
a channel that fails is retried with exponential backoff up to ``attempts`` times, and
a final failure is logged and counted, nothing more. Past the token bucket's rate the
worker stops sending single messages and coalesces everything into one digest, sent as
soon as a token frees up, so a storm of failures costs a few messages, not hundreds.

The node runtime owns the notifier: :meth:`start` in ``NodeRuntime.start``,
:meth:`stop` (drain, with a deadline) in ``NodeRuntime.stop``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

from etl.notify import events, metrics
from etl.notify.channels import Channel, send_once
from etl.notify.config import NotifyConfig
from etl.notify.ratelimit import TokenBucket

log = logging.getLogger(__name__)

Sleep = Callable[[float], Awaitable[None]]

_active: Notifier | None = None


def active() -> Notifier | None:
    """The started notifier of this process, if any (``None``: notifications are off)."""
    return _active


@dataclass(kw_only=True)
class Notifier:
    """Queue, worker, retries and rate limit; ``clock`` and ``sleep`` are injectable."""

    config: NotifyConfig
    channels: Sequence[Channel]
    node: str
    clock: Callable[[], float] = time.monotonic
    sleep: Sleep = asyncio.sleep
    _queue: asyncio.Queue[events.Event | None] = field(init=False)
    _bucket: TokenBucket = field(init=False)
    _held: events.Held = field(init=False, default_factory=events.Held)
    _task: asyncio.Task[None] | None = field(init=False, default=None)
    _loop: asyncio.AbstractEventLoop | None = field(init=False, default=None)
    _thread: int = field(init=False, default=0)
    _accepting: bool = field(init=False, default=False)
    _closing: bool = field(init=False, default=False)
    _dropping: bool = field(init=False, default=False)
    _log: logging.LoggerAdapter[logging.Logger] = field(init=False)

    def __post_init__(self) -> None:
        self._log = logging.LoggerAdapter(log, {"node": self.node})  # etl.logs: a field
        self._queue = asyncio.Queue(maxsize=self.config.queue_size)
        self._bucket = TokenBucket(
            per_minute=self.config.rate_per_minute, burst=self.config.burst, clock=self.clock
        )
        for channel in self.channels:  # every series exists from the start, at 0
            for outcome in metrics.OUTCOMES:
                metrics.NOTIFICATIONS.labels(channel.name, outcome)

    # -- the producer side: ingest -------------------------------------------------

    def emit(self, event: events.Event) -> None:
        """Queue ``event`` for sending; never blocks, never raises."""
        try:
            if self._loop is not None and threading.get_ident() != self._thread:
                self._loop.call_soon_threadsafe(self._put, event)
            else:
                self._put(event)
        except Exception:  # noqa: BLE001 - notifying must never break the caller
            self._log.exception("could not queue a notification")

    def _put(self, event: events.Event) -> None:
        if not self._accepting:
            self._count(metrics.DROPPED)
            return
        try:
            self._queue.put_nowait(event)
        except asyncio.QueueFull:
            self._count(metrics.DROPPED)
            if not self._dropping:
                self._log.warning(
                    "notification queue full (%d): dropping notifications", self.config.queue_size
                )
            self._dropping = True
        else:
            self._dropping = False

    def _count(self, outcome: str, channels: Sequence[Channel] | None = None) -> None:
        for channel in self.channels if channels is None else channels:
            metrics.NOTIFICATIONS.labels(channel.name, outcome).inc()

    # -- the consumer side: the worker ---------------------------------------------

    def start(self) -> None:
        """Start the worker on the running loop and become this process's notifier."""
        global _active
        self._loop = asyncio.get_running_loop()
        self._thread = threading.get_ident()
        self._accepting = True
        self._task = asyncio.create_task(self._work(), name="notify")
        _active = self
        self._log.info(
            "notifications on (%s) through %s",
            ", ".join(sorted(self.config.on)),
            "; ".join(channel.describe() for channel in self.channels),
        )

    async def _work(self) -> None:
        while not (self._closing and self._queue.empty()):
            # Only while events are held does the worker wake up on its own: to send
            # their digest once the bucket has a token again.
            wait = max(0.05, self._bucket.wait()) if self._held else None
            try:
                event = await asyncio.wait_for(self._queue.get(), wait)
            except TimeoutError:
                await self._guarded(self.idle())
                continue
            try:
                if event is not None:
                    await self._guarded(self.handle(event))
            finally:
                self._queue.task_done()
        if self._held:  # the last digest goes out past the limit: it is one message
            await self._guarded(self._send_digest())

    async def _guarded(self, work: Awaitable[None]) -> None:
        try:
            await work
        except Exception:  # noqa: BLE001 - the worker must outlive any one message
            self._log.exception("notification worker error")

    async def handle(self, event: events.Event) -> None:
        """Send ``event``, or hold it for the digest when the rate limit says so."""
        if self._held:
            # Already coalescing: everything joins the digest until a token frees it.
            self._hold(event)
            if self._bucket.take():
                await self._send_digest()
        elif self._bucket.take():
            await self.deliver(events.render(event, node=self.node))
        else:
            self._log.warning(
                "notifications over %g a minute: coalescing them into a digest",
                self.config.rate_per_minute,
            )
            self._hold(event)

    async def idle(self) -> None:
        """Nothing queued: send the digest of held events if the bucket allows."""
        if self._held and self._bucket.take():
            await self._send_digest()

    def _hold(self, event: events.Event) -> None:
        self._held.add(event)
        self._count(metrics.COALESCED)

    async def _send_digest(self) -> None:
        await self.deliver(events.render(self._held.take(), node=self.node))

    async def deliver(self, message: events.Message) -> dict[str, str | None]:
        """Send ``message`` through every channel; return each channel's final error."""
        errors = await asyncio.gather(*(self._send(ch, message) for ch in self.channels))
        return {ch.name: error for ch, error in zip(self.channels, errors, strict=True)}

    def backoff(self, attempt: int, retry_after: float | None) -> float:
        """Seconds before attempt ``attempt + 1``: doubling, capped, at least the hint.

        No jitter: one node sends each message, so there is no herd to spread.
        """
        cap = self.config.backoff_cap_seconds
        delay = min(cap, self.config.backoff_seconds * 2 ** (attempt - 1))
        return delay if retry_after is None else min(cap, max(delay, retry_after))

    async def _send(self, channel: Channel, message: events.Message) -> str | None:
        attempt = 0
        while True:
            attempt += 1
            failure = await send_once(channel, message, seconds=self.config.timeout_seconds)
            if failure is None:
                self._count(metrics.SENT, [channel])
                self._log.info("notification sent by %s: %s", channel.name, message.subject)
                return None
            if not failure.retryable or attempt >= self.config.attempts:
                self._count(metrics.FAILED, [channel])
                self._log.warning(
                    "notification failed: %s gave up after %d attempt(s): %s; message was %r",
                    channel.describe(),
                    attempt,
                    failure,
                    message.subject,
                )
                return str(failure)
            self._count(metrics.RETRIED, [channel])
            await self.sleep(self.backoff(attempt, failure.retry_after))

    async def stop(self) -> None:
        """Send what is queued for up to ``drain_seconds``, then drop the rest (counted)."""
        global _active
        if self._task is None:
            return
        self._closing = True
        with contextlib.suppress(asyncio.QueueFull):
            self._queue.put_nowait(None)  # wakes a worker waiting on an empty queue
        done, _ = await asyncio.wait({self._task}, timeout=self.config.drain_seconds)
        self._accepting = False
        if not done:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        self._task = None
        left = sum(self._held.counts.values())
        while not self._queue.empty():
            left += self._queue.get_nowait() is not None
        if left:
            self._log.warning("stopped with %d notification(s) unsent", left)
            for _ in range(left):
                self._count(metrics.DROPPED)
        for channel in self.channels:
            try:
                await channel.aclose()
            except Exception:  # noqa: BLE001 - closing is best effort
                self._log.debug("closing %s failed", channel.name, exc_info=True)
        if _active is self:
            _active = None
