"""kill -9 of a parse child: the body is parsed again on a fresh pool, nothing is lost."""

from __future__ import annotations

import asyncio
import os
import signal
import time

import orjson
import pytest
from asgiref.sync import sync_to_async

from cluster import batch, membership, sharding
from etl.config import Settings
from ingest import parsers
from ingest.exceptions import ParsePoolClosed
from ingest.models import Observation, Source, TaskRun
from ingest.pool import ParsePool
from ingest.records import to_rows
from tests.support import servers

ROWS = 150_000
BODY = orjson.dumps([{"id": f"k{i}", "price": i % 977} for i in range(ROWS)])
OPTIONS = {"key": "id", "value": "price"}


async def _kill_a_busy_child(pool: ParsePool, *, within: float = 30) -> int:
    """Wait until a child has taken a body off the queue, then SIGKILL it."""
    deadline = time.monotonic() + within
    while True:
        pids = pool.pids
        if pids and pool.inflight and pool.queued() == 0:
            os.kill(pids[0], signal.SIGKILL)
            return pids[0]
        if time.monotonic() > deadline:
            raise AssertionError("no parse was ever in flight")
        await asyncio.sleep(0.01)  # polling the pool's state, bounded by the deadline


async def test_killed_child_is_replaced_and_the_body_parsed_again() -> None:
    pool = ParsePool(1)
    await pool.start()
    try:
        parse = asyncio.ensure_future(pool.parse("json", BODY, url="http://x/", options=OPTIONS))
        killed = await _kill_a_busy_child(pool)
        result = await asyncio.wait_for(parse, timeout=60)
        assert killed not in pool.pids
        assert pool.replacements == 1
        assert result == to_rows(parsers.parse("json", BODY, url="http://x/", options=OPTIONS))
        assert len(result.rows) == ROWS
    finally:
        await pool.close()


async def test_a_parse_in_flight_when_the_pool_closes_fails_and_starts_nothing() -> None:
    pool = ParsePool(1)
    await pool.start()
    parse = asyncio.ensure_future(pool.parse("json", BODY, url="http://x/", options=OPTIONS))
    deadline = time.monotonic() + 30
    while not (pool.inflight and pool.queued() == 0):  # a child holds the body
        assert time.monotonic() < deadline, "no parse was ever in flight"
        await asyncio.sleep(0.01)  # polling the pool's state, bounded by the deadline
    await pool.close()
    with pytest.raises(ParsePoolClosed, match="shutting down"):
        await asyncio.wait_for(parse, timeout=30)
    assert pool.pids == []  # no pool was started again behind close()
    with pytest.raises(ParsePoolClosed):
        await pool.parse("json", b"[]", url="http://x/", options=OPTIONS)


class _Big:
    async def __call__(self, scope: dict[str, object], receive: object, send: object) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})  # type: ignore[operator]
        await send({"type": "http.response.body", "body": BODY})  # type: ignore[operator]


@pytest.mark.django_db(transaction=True)
async def test_run_survives_a_killed_parse_child() -> None:
    pool = ParsePool(1)
    await pool.start()
    try:
        with servers.serve(_Big()) as base:
            url = f"{base}/big.json"
            await Source.objects.acreate(
                url=url, parser="json", options=OPTIONS, shard_hash=sharding.stable_hash(url)
            )
            run = asyncio.ensure_future(
                batch.run_due(Settings.from_env(), membership.Everything(), pool=pool)
            )
            await _kill_a_busy_child(pool)
            summary = await asyncio.wait_for(run, timeout=120)
    finally:
        await pool.close()
    assert summary.failures == []
    assert pool.replacements == 1
    task_run = await TaskRun.objects.aget()
    assert (task_run.status, task_run.rows_in) == ("ok", ROWS)
    assert await sync_to_async(Observation.objects.count)() == ROWS


_EXIT_WITH_BODIES_QUEUED = """
import asyncio, sys
from ingest.exceptions import ParsePoolClosed
from ingest.pool import ParsePool

async def main() -> None:
    pool = ParsePool(1)
    await pool.start()
    body = b"[" + b"1," * 400_000 + b"1]"  # 800 kB: more than a pipe holds
    parses = [
        asyncio.ensure_future(pool.parse("json", body, url="http://x/", options={}))
        for _ in range(4)
    ]
    while pool.queued() < 2:  # bodies still waiting in the queue for the one child
        await asyncio.sleep(0.01)
    await pool.close()
    for parse in parses:
        parse.cancel()
    await asyncio.gather(*parses, return_exceptions=True)
    print("closed", flush=True)

asyncio.run(main())
"""


def test_a_process_exits_after_closing_a_pool_with_bodies_still_queued() -> None:
    """Bodies left in a closed pool's queue must not hold the interpreter's exit (a queue
    feeder thread blocked on a full pipe once hung a whole pytest run at its end)."""
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, "-c", _EXIT_WITH_BODIES_QUEUED],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "closed" in done.stdout
