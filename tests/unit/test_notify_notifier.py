"""The notifier's queue, retries and rate limit, on a fake clock and fake channels."""

from __future__ import annotations

import asyncio
import logging
import threading
from dataclasses import dataclass, field
from typing import ClassVar

import pytest
from prometheus_client import REGISTRY

from etl import notify
from etl.notify import events
from etl.notify.config import NotifyConfig
from etl.notify.exceptions import DeliveryError
from etl.notify.notifier import Notifier
from etl.notify.ratelimit import TokenBucket
from tests.support.fakeclock import Clock


@dataclass
class FakeChannel:
    """Raises the queued errors first, then delivers; optionally blocks until released."""

    name: ClassVar[str] = "fake"
    errors: list[Exception] = field(default_factory=list)
    sent: list[events.Message] = field(default_factory=list)
    hold: asyncio.Event | None = None
    entered: asyncio.Event = field(default_factory=asyncio.Event)
    delivered: asyncio.Event = field(default_factory=asyncio.Event)
    closed: bool = False

    def describe(self) -> str:
        return "fake channel"

    async def send(self, message: events.Message) -> None:
        self.entered.set()
        if self.hold is not None:
            await self.hold.wait()
        if self.errors:
            raise self.errors.pop(0)
        self.sent.append(message)
        self.delivered.set()

    async def aclose(self) -> None:
        self.closed = True


def count(outcome: str) -> float:
    value = REGISTRY.get_sample_value(
        "shardetl_notifications_total", {"channel": "fake", "outcome": outcome}
    )
    return value or 0.0


def counts() -> dict[str, float]:
    return {o: count(o) for o in ("sent", "failed", "retried", "coalesced", "dropped")}


def delta(before: dict[str, float]) -> dict[str, float]:
    return {o: n - before[o] for o, n in counts().items() if n != before[o]}


def failure(n: int = 1) -> events.RunFailed:
    return events.RunFailed(url=f"http://up.test/{n}.json", error="HTTP 404")


def make(channel: FakeChannel, clock: Clock, **config: object) -> Notifier:
    return Notifier(
        config=NotifyConfig(**config),  # type: ignore[arg-type]
        channels=[channel],
        node="n1",
        clock=clock,
        sleep=clock.sleep,
    )


# -- the token bucket -------------------------------------------------------------


def test_token_bucket_allows_a_burst_then_the_rate() -> None:
    clock = Clock()
    bucket = TokenBucket(per_minute=6, burst=3, clock=clock)  # a token every 10 s
    assert [bucket.take() for _ in range(4)] == [True, True, True, False]
    assert bucket.wait() == pytest.approx(10)
    clock.now += 5
    assert not bucket.take()
    assert bucket.wait() == pytest.approx(5)
    clock.now += 5
    assert bucket.take()
    clock.now += 3600  # a long quiet spell refills to the burst, not beyond
    assert [bucket.take() for _ in range(4)] == [True, True, True, False]


def test_a_zero_rate_means_no_limit() -> None:
    bucket = TokenBucket(per_minute=0, burst=1, clock=Clock())
    assert all(bucket.take() for _ in range(1000))
    assert bucket.wait() == 0


# -- retries ----------------------------------------------------------------------


async def test_a_retryable_failure_is_retried_with_doubling_backoff() -> None:
    clock = Clock()
    channel = FakeChannel(
        errors=[DeliveryError("503", retryable=True), DeliveryError("conn reset", retryable=True)]
    )
    notifier = make(channel, clock, attempts=4, backoff_seconds=1.0)
    before = counts()
    assert await notifier.deliver(events.render(failure(), node="n1")) == {"fake": None}
    assert clock.slept == [1.0, 2.0]
    assert len(channel.sent) == 1
    assert delta(before) == {"retried": 2, "sent": 1}


async def test_attempts_are_bounded_and_the_give_up_is_logged_and_counted(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = Clock()
    channel = FakeChannel(errors=[OSError("connection refused")] * 10)
    notifier = make(channel, clock, attempts=3, backoff_seconds=2.0, backoff_cap_seconds=3.0)
    before = counts()
    with caplog.at_level(logging.WARNING, logger="etl.notify.notifier"):
        result = await notifier.deliver(events.render(failure(), node="n1"))
    assert result == {"fake": "OSError: connection refused"}
    assert clock.slept == [2.0, 3.0]  # doubling, capped
    assert channel.sent == []
    assert delta(before) == {"retried": 2, "failed": 1}
    (record,) = caplog.records
    assert "gave up after 3 attempt(s)" in record.getMessage()
    assert "run failed: http://up.test/1.json" in record.getMessage()
    assert record.node == "n1"  # type: ignore[attr-defined]


async def test_a_permanent_failure_is_not_retried() -> None:
    clock = Clock()
    channel = FakeChannel(errors=[DeliveryError("SMTP 535: bad login", retryable=False)])
    notifier = make(channel, clock, attempts=5)
    before = counts()
    assert await notifier.deliver(events.render(failure(), node="n1")) == {
        "fake": "SMTP 535: bad login"
    }
    assert clock.slept == []
    assert delta(before) == {"failed": 1}


async def test_the_servers_retry_after_is_honoured_within_the_cap() -> None:
    clock = Clock()
    channel = FakeChannel(
        errors=[
            DeliveryError("HTTP 429", retryable=True, retry_after=7),
            DeliveryError("HTTP 429", retryable=True, retry_after=900),
        ]
    )
    notifier = make(channel, clock, attempts=3, backoff_seconds=1.0, backoff_cap_seconds=60)
    await notifier.deliver(events.render(failure(), node="n1"))
    assert clock.slept == [7.0, 60.0]
    assert len(channel.sent) == 1


async def test_a_hanging_channel_times_out_and_is_retried() -> None:
    clock = Clock()
    hang = FakeChannel(hold=asyncio.Event())  # never released
    notifier = make(hang, clock, attempts=2, timeout_seconds=0.05)
    result = await notifier.deliver(events.render(failure(), node="n1"))
    assert result == {"fake": "timed out after 0.05 s"}
    assert clock.slept == [1.0]


# -- the rate limit ---------------------------------------------------------------


async def test_over_the_rate_events_are_coalesced_into_one_digest() -> None:
    clock = Clock()
    channel = FakeChannel()
    notifier = make(channel, clock, rate_per_minute=6, burst=2)  # a token every 10 s
    before = counts()
    for n in range(6):
        await notifier.handle(failure(n))
    assert [m.subject for m in channel.sent] == [
        "[shardetl] run failed: http://up.test/0.json",
        "[shardetl] run failed: http://up.test/1.json",
    ]
    await notifier.idle()  # no token yet: nothing goes out
    assert len(channel.sent) == 2
    clock.now += 10
    await notifier.idle()
    digest = channel.sent[-1]
    assert digest.kind == "digest"
    assert digest.subject == "[shardetl] 4 notifications coalesced by the rate limit"
    assert "run failed: 4\n" in digest.body
    assert "http://up.test/2.json" in digest.body
    assert delta(before) == {"sent": 3, "coalesced": 4}

    # Nothing held any more: the next event waits for its own token, then goes alone.
    clock.now += 10
    await notifier.handle(
        events.BatchComplete(mode="full", items=1, changed=1, removed=0, seconds=0)
    )
    assert channel.sent[-1].subject.startswith("[shardetl] Batch complete")


async def test_while_coalescing_a_free_token_sends_the_digest_with_the_new_event() -> None:
    clock = Clock()
    channel = FakeChannel()
    notifier = make(channel, clock, rate_per_minute=6, burst=1)
    await notifier.handle(failure(1))  # sent
    await notifier.handle(failure(2))  # held
    clock.now += 10
    await notifier.handle(failure(3))  # joins the digest, which the token then sends
    assert [m.kind for m in channel.sent] == ["run_failed", "digest"]
    assert channel.sent[1].fields["run_failed"] == 2


# -- the queue and the worker -----------------------------------------------------


async def test_the_worker_sends_what_is_emitted_and_stop_drains_the_queue() -> None:
    channel = FakeChannel()
    notifier = make(channel, Clock(), rate_per_minute=0)
    notifier.start()
    try:
        assert notify.active() is notifier
        for n in range(3):
            notifier.emit(failure(n))
    finally:
        await notifier.stop()
    assert [m.fields["source"] for m in channel.sent] == [
        f"http://up.test/{n}.json" for n in range(3)
    ]
    assert channel.closed
    assert notify.active() is None


async def test_a_full_queue_drops_and_counts_and_emit_never_waits() -> None:
    channel = FakeChannel(hold=asyncio.Event())
    notifier = make(channel, Clock(), rate_per_minute=0, queue_size=2, drain_seconds=5)
    notifier.start()
    before = counts()
    try:
        notifier.emit(failure(0))
        await asyncio.wait_for(channel.entered.wait(), timeout=5)  # the worker took one
        for n in range(1, 6):  # two fit in the queue, three are dropped
            notifier.emit(failure(n))
        assert delta(before) == {"dropped": 3}
        channel.hold.set()  # type: ignore[union-attr]
    finally:
        await notifier.stop()
    assert [m.fields["source"] for m in channel.sent] == [
        f"http://up.test/{n}.json" for n in range(3)
    ]
    notifier.emit(failure(9))  # after stop: dropped, counted, no exception
    assert delta(before) == {"dropped": 4, "sent": 3}


async def test_stop_gives_up_after_the_drain_deadline_and_counts_the_rest() -> None:
    channel = FakeChannel(hold=asyncio.Event())  # never released
    notifier = make(channel, Clock(), rate_per_minute=0, drain_seconds=0.1, timeout_seconds=60)
    notifier.start()
    before = counts()
    for n in range(4):
        notifier.emit(failure(n))
    await asyncio.wait_for(channel.entered.wait(), timeout=5)  # the worker took one
    await notifier.stop()
    assert channel.sent == []
    assert delta(before) == {"dropped": 3}  # the one in flight was interrupted
    assert notify.active() is None


async def test_emit_from_another_thread_reaches_the_loop() -> None:
    channel = FakeChannel()
    notifier = make(channel, Clock(), rate_per_minute=0)
    notifier.start()
    try:
        thread = threading.Thread(target=notifier.emit, args=(failure(7),))
        thread.start()
        thread.join()
        await asyncio.wait_for(channel.delivered.wait(), timeout=5)
    finally:
        await notifier.stop()
    assert channel.sent[0].fields["source"] == "http://up.test/7.json"


async def test_hooks_are_no_ops_without_a_notifier() -> None:
    assert notify.active() is None
    notify.source_run(url="http://x.test/", status="failed", error="e", streak=(0, 1))
    notify.job_failed(job="aggregate", error="e")
    notify.batch_complete(mode="full", items=1, changed=1, removed=0, seconds=0.1)


async def test_hooks_emit_through_the_active_notifier() -> None:
    channel = FakeChannel()
    notifier = make(channel, Clock(), rate_per_minute=0, failing_after=2)
    notifier.start()
    try:
        notify.source_run(url="http://x.test/a", status="failed", error="HTTP 500", streak=(1, 2))
        notify.batch_complete(mode="incremental", items=4, changed=2, removed=0, seconds=0.5)
        notify.batch_complete(mode="incremental", items=0, changed=0, removed=0, seconds=0.1)
    finally:
        await notifier.stop()
    assert [m.kind for m in channel.sent] == ["run_failed", "failing", "aggregate"]
    assert channel.sent[1].subject == "[shardetl] source failing 2 times in a row: http://x.test/a"
