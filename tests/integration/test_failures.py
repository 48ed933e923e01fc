"""Bad servers and bad bodies: each fails (or rejects rows of) its own source only.

One purpose-built server on 127.0.0.1 misbehaves in a different way per path; all its
paths are registered as sources and run together with a healthy control source.
"""

from __future__ import annotations

import asyncio
import gzip
from collections import Counter
from datetime import timedelta
from typing import Any

import orjson
import pytest
from asgiref.sync import sync_to_async

from cluster import batch, membership, sharding
from etl.config import Settings
from ingest import fetch
from ingest.models import Item, Observation, QuestRequirement, Source, TaskRun
from tests.support import servers

pytestmark = pytest.mark.django_db(transaction=True)

CAP = 200_000
ROWS = [{"id": f"k{i}", "title": f"T{i}", "price": i} for i in range(5)]


def _json(obj: Any) -> bytes:
    return orjson.dumps(obj)


BODIES: dict[str, bytes] = {
    "/control.json": _json(ROWS),
    "/malformed.json": b'[{"id": "a", "price": 1}, {"id": ',
    "/invalid-utf8.json": b'[{"id": "a\xff\xfe", "price": 1}]',
    "/nul.json": _json([{"id": "ok1", "price": 1}, {"id": "bad", "title": "x\u0000y", "price": 2}]),
    "/nan.json": b'[{"id": "n1", "price": NaN}, {"id": "n2", "price": "Infinity"},'
    b' {"id": "n3", "price": 3}]',
    "/dup.json": _json([{"id": "d", "price": 1}, {"id": "d", "price": 2}, {"id": "e", "price": 5}]),
    "/quests.json": _json(
        [
            {
                "key": "q1",
                "title": "Q",
                "required": [{"item": "not-loaded-yet", "quantity": 2}],
                "rewards": [],
            }
        ]
    ),
    "/big.json": _json([{"id": f"b{i}", "price": i} for i in range(20_000)]),
    "/links.html": b'<html><body><a href="/a">A</a> <a href="b?x=1">B</a> <a href="/a">A again</a>'
    b'<a name="no-href">none</a></body></html>',
}


class Misbehaving:
    """An ASGI app whose paths each misbehave differently."""

    def __init__(self) -> None:
        self.hits: Counter[str] = Counter()

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        assert scope["type"] == "http"
        path = scope["path"]
        self.hits[path] += 1
        hit = self.hits[path]
        if path in BODIES:
            await self._send(send, 200, BODIES[path])
        elif path == "/flaky-500.json":
            await self._send(send, 500 if hit == 1 else 200, b"oops" if hit == 1 else _json(ROWS))
        elif path == "/rate-limited.json":
            if hit == 1:
                await self._send(send, 429, b"slow down", [(b"retry-after", b"1")])
            else:
                await self._send(send, 200, _json(ROWS))
        elif path == "/truncated.json":
            body = _json(ROWS)
            await send(
                {
                    "type": "http.response.start",
                    "status": 200,
                    "headers": [(b"content-length", str(len(body)).encode())],
                }
            )
            await send({"type": "http.response.body", "body": body[:10], "more_body": True})
        elif path == "/bomb.json":
            bomb = gzip.compress(b"[" + b" " * 5_000_000 + b"]", compresslevel=9)
            await self._send(send, 200, bomb, [(b"content-encoding", b"gzip")])
        elif path == "/drip.json":
            await send({"type": "http.response.start", "status": 200, "headers": []})
            for _ in range(100):  # bounded: 20 s at most; the client gives up after 1 s
                await send({"type": "http.response.body", "body": b" ", "more_body": True})
                try:  # paces the drip, and notices the client hanging up
                    message = await asyncio.wait_for(receive(), timeout=0.2)
                except TimeoutError:
                    continue
                if message["type"] == "http.disconnect":
                    return
            await send({"type": "http.response.body", "body": b"[]"})
        else:
            await self._send(send, 404, b"no")

    @staticmethod
    async def _send(
        send: Any, status: int, body: bytes, headers: list[tuple[bytes, bytes]] | None = None
    ) -> None:
        await send({"type": "http.response.start", "status": status, "headers": headers or []})
        await send({"type": "http.response.body", "body": body})


EXPECTED_FAILURES = {
    "/malformed.json": "malformed JSON",
    "/invalid-utf8.json": "UTF-8",
    "/truncated.json": "TruncatedBody",
    "/big.json": "BodyTooLarge",
    "/bomb.json": "BodyTooLarge",
    "/drip.json": "DeadlineExceeded",
}


def _register(base: str) -> dict[str, Source]:
    paths = [
        *BODIES,
        "/flaky-500.json",
        "/rate-limited.json",
        "/truncated.json",
        "/bomb.json",
        "/drip.json",
    ]
    made = {}
    for path in paths:
        url = base + path
        parser, options = {
            "/quests.json": ("quests-json", {}),
            "/links.html": ("html", {"rows": "a[href]", "key": "@href", "name": "."}),
        }.get(path, ("json", {"key": "id", "name": "title", "value": "price"}))
        made[path] = Source.objects.create(
            url=url, parser=parser, options=options, shard_hash=sharding.stable_hash(url)
        )
    return made


def _runs() -> dict[str, TaskRun]:
    return {run.source.url: run for run in TaskRun.objects.select_related("source")}  # type: ignore[union-attr]


async def test_each_bad_source_fails_alone_with_its_reason() -> None:
    limits = fetch.FetchLimits(
        max_body_bytes=CAP,
        total_timeout=1.0,
        read_timeout=5.0,
        retries=1,
        backoff_base=0.01,
        backoff_cap=0.05,
        retry_after_cap=1.0,
    )
    app = Misbehaving()
    with servers.serve(app) as base:
        made = await sync_to_async(_register)(base)
        summary = await batch.run_due(Settings.from_env(), membership.Everything(), limits=limits)
    runs = await sync_to_async(_runs)()
    by_path = {url.removeprefix(base): run for url, run in runs.items()}
    assert set(by_path) == set(made)  # every source ran exactly once

    for path, reason in EXPECTED_FAILURES.items():
        run = by_path[path]
        assert run.status == "failed", path
        assert reason in run.error, (path, run.error)
        assert run.finished_at is not None
        source = await Source.objects.aget(pk=made[path].pk)
        assert source.last_status == "failed"
        assert reason in source.last_error
        assert source.consecutive_failures == 1
        # Retried after a short backoff, not only at the next scheduled time.
        assert source.next_run_at is not None
        assert source.next_run_at <= run.finished_at + timedelta(seconds=31)
        assert not await Observation.objects.filter(source=source).aexists()

    assert len(summary.failures) == len(EXPECTED_FAILURES)

    # Healthy and recovered sources loaded everything.
    for path in ("/control.json", "/flaky-500.json", "/rate-limited.json"):
        run = by_path[path]
        assert (run.status, run.rows_in) == ("ok", 5), path
        assert await Observation.objects.filter(source=made[path]).acount() == 5
    assert by_path["/flaky-500.json"].attempts == 2
    assert by_path["/rate-limited.json"].attempts == 2
    assert app.hits["/truncated.json"] == 2  # retried once, then given up

    # Row-level problems reject rows, with reasons, and keep the rest.
    nul = by_path["/nul.json"]
    assert (nul.status, nul.rows_in, nul.rows_rejected) == ("ok", 1, 1)
    assert "NUL" in nul.rejections[0]["reason"]
    nan = by_path["/nan.json"]
    assert (nan.status, nan.rows_in, nan.rows_rejected) == ("ok", 1, 2)
    assert all("non-finite" in r["reason"] for r in nan.rejections)
    dup = by_path["/dup.json"]
    assert dup.rows_rejected == 0
    values = {
        o.item.key: o.value
        async for o in Observation.objects.filter(source=made["/dup.json"]).select_related("item")
    }
    assert values == {"d": 2.0, "e": 5.0}  # the last row of a duplicated key wins

    # The generic html parser: one observation per absolute link target (value 1).
    links = {
        o.item.key: (o.item.name, o.value)
        async for o in Observation.objects.filter(source=made["/links.html"]).select_related("item")
    }
    assert links == {f"{base}/a": ("A again", 1.0), f"{base}/b?x=1": ("B", 1.0)}

    # A quest naming an item that is not loaded keeps the link by key.
    link = await QuestRequirement.objects.aget(quest__key="q1")
    assert (link.item_key, link.item_id, link.quantity) == ("not-loaded-yet", None, 2)
    assert not await Item.objects.filter(key="not-loaded-yet").aexists()
