"""ingest.fetch against real sockets on 127.0.0.1: uvicorn apps and raw asyncio servers."""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
import tracemalloc
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from ingest.exceptions import (
    BodyTooLarge,
    DeadlineExceeded,
    HTTPStatusFailure,
    TransportFailure,
    TruncatedBody,
)
from ingest.fetch import Fetcher, FetchLimits, user_agent
from tests.support import servers

UA = user_agent("0.0.0", "itest")
Headers = list[tuple[str, str]]
Reply = tuple[int, Headers, bytes | list[bytes]]
Scope = dict[str, Any]


class Sleeps:
    """Records backoff delays and returns at once: retries are the behaviour, not waiting."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, delay: float) -> None:
        self.delays.append(delay)


def fetcher(sleep: Callable[[float], Awaitable[None]] | None = None, **limits: Any) -> Fetcher:
    return Fetcher(
        limits=FetchLimits(**limits),
        user_agent=UA,
        sleep=sleep or Sleeps(),
        rng=random.Random(99),
    )


def asgi(handler: Callable[[Scope], Awaitable[Reply]]) -> Callable[..., Awaitable[None]]:
    """A bare ASGI app from ``handler(scope) -> (status, headers, body or chunks)``."""

    async def app(scope: Scope, receive: Any, send: Any) -> None:
        assert scope["type"] == "http"
        status, headers, body = await handler(scope)
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [(k.encode(), v.encode()) for k, v in headers],
            }
        )
        chunks = [body] if isinstance(body, bytes) else body
        for i, chunk in enumerate(chunks):
            more = i < len(chunks) - 1
            await send({"type": "http.response.body", "body": chunk, "more_body": more})

    return app


@contextlib.contextmanager
def serve(handler: Callable[[Scope], Awaitable[Reply]]) -> Iterator[str]:
    with servers.serve(asgi(handler)) as url:
        yield url


def request_header(scope: Scope, name: str) -> str:
    wanted = name.lower().encode()
    return next((v.decode() for k, v in scope["headers"] if k == wanted), "")


# -- raw TCP servers for byte-level misbehaviour ---------------------------------------


@dataclass
class RawServer:
    url: str
    connections: int = 0
    tasks: set[asyncio.Task[Any]] = field(default_factory=set)


RawHandler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


@contextlib.asynccontextmanager
async def raw_server(handle: RawHandler) -> AsyncIterator[RawServer]:
    """An asyncio TCP server on 127.0.0.1 that reads one request head, then runs ``handle``.

    Every connection is closed and every handler task finished when the block ends.
    """
    state = RawServer(url="")

    async def on_connect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        state.tasks.add(task)
        state.connections += 1
        try:
            await reader.readuntil(b"\r\n\r\n")
            await handle(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass  # the client went away, which is what several tests make it do
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    server = await asyncio.start_server(on_connect, "127.0.0.1", 0)
    state.url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    try:
        yield state
    finally:
        server.close()
        for task in state.tasks:
            task.cancel()
        await asyncio.gather(*state.tasks, return_exceptions=True)
        await server.wait_closed()


# -- conditional GET and retries -------------------------------------------------------


async def test_conditional_get_round_trip() -> None:
    etag, modified = '"rev-7"', "Tue, 01 Oct 2024 10:00:00 GMT"
    seen: list[tuple[str, str]] = []

    async def handler(scope: Scope) -> Reply:
        seen.append((request_header(scope, "if-none-match"), request_header(scope, "user-agent")))
        validators = [("etag", etag), ("last-modified", modified)]
        if request_header(scope, "if-none-match") == etag:
            return 304, validators, b""
        return 200, [*validators, ("content-type", "application/json")], b'{"items": []}'

    with serve(handler) as base:
        async with fetcher() as client:
            first = await client.fetch(f"{base}/api/items/")
            second = await client.fetch(
                f"{base}/api/items/", etag=first.etag, last_modified=first.last_modified
            )
            stats = client.stats
    assert (first.status, first.body, first.etag, first.last_modified) == (
        200,
        b'{"items": []}',
        etag,
        modified,
    )
    assert second.not_modified
    assert (second.body, second.etag, second.last_modified) == (b"", etag, modified)
    assert seen == [("", UA), (etag, UA)]
    assert stats["not_modified"] == 1


async def test_429_with_retry_after_is_honoured_with_a_real_wait() -> None:
    calls = 0

    async def handler(scope: Scope) -> Reply:
        nonlocal calls
        calls += 1
        if calls == 1:
            return 429, [("retry-after", "1")], b"slow down"
        return 200, [], b"thanks"

    with serve(handler) as base:
        # The one real sleep of this suite: waiting out Retry-After is the behaviour.
        async with fetcher(asyncio.sleep, backoff_base=0.01, retry_after_cap=1.0) as client:
            result = await client.fetch(f"{base}/")
    assert result.body == b"thanks"
    assert result.attempts == 2
    assert 0.9 <= result.elapsed < 5.0


async def test_500_then_200() -> None:
    calls = 0

    async def handler(scope: Scope) -> Reply:
        nonlocal calls
        calls += 1
        return (500, [], b"oops") if calls == 1 else (200, [], b"ok")

    sleeps = Sleeps()
    with serve(handler) as base:
        async with fetcher(sleeps) as client:
            result = await client.fetch(f"{base}/x")
    assert (result.status, result.body, result.attempts) == (200, b"ok", 2)
    assert len(sleeps.delays) == 1


async def test_connection_refused_is_a_transport_failure() -> None:
    url = f"http://127.0.0.1:{servers.free_port()}/"  # nothing listens there
    sleeps = Sleeps()
    async with fetcher(sleeps, retries=1) as client:
        with pytest.raises(TransportFailure, match="gave up after 2 attempts") as caught:
            await client.fetch(url)
    assert url in str(caught.value)
    assert len(sleeps.delays) == 1


# -- byte-level misbehaviour -----------------------------------------------------------


async def test_truncated_body_is_retried_then_reported() -> None:
    async def cut_short(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n" + b"x" * 10)
        await writer.drain()  # then close: 90 declared bytes never come

    sleeps = Sleeps()
    async with raw_server(cut_short) as server, fetcher(sleeps, retries=2) as client:
        with pytest.raises(TruncatedBody, match="gave up after 3 attempts") as caught:
            await client.fetch(f"{server.url}/data")
    assert server.url in str(caught.value)
    assert server.connections == 3
    assert len(sleeps.delays) == 2


async def test_slow_drip_hits_the_total_deadline() -> None:
    async def drip(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n")
        # A byte every 0.2 s keeps a per-read timeout of 5 s happy for ever; the pace is
        # the misbehaviour under test. It stops when the client hangs up.
        while not reader.at_eof():
            writer.write(b"x")
            await writer.drain()
            await asyncio.sleep(0.2)

    started = time.monotonic()
    async with raw_server(drip) as server:
        async with fetcher(retries=1, total_timeout=1.0, read_timeout=5.0) as client:
            with pytest.raises(DeadlineExceeded, match="total deadline of 1 s") as caught:
                await client.fetch(f"{server.url}/drip")
        assert server.connections == 2
    assert time.monotonic() - started < 5.0
    assert "gave up after 2 attempts" in str(caught.value)


# -- size caps -------------------------------------------------------------------------


async def test_body_over_cap_declared_and_streamed() -> None:
    async def handler(scope: Scope) -> Reply:
        if scope["path"] == "/declared":
            return 200, [("content-length", str(3 * 2**20))], [b"a" * 2**20] * 3
        return 200, [], [b"b" * 2**20] * 3  # chunked: no length up front

    sleeps = Sleeps()
    with serve(handler) as base:
        async with fetcher(sleeps, max_body_bytes=2**20) as client:
            with pytest.raises(BodyTooLarge, match="declares"):
                await client.fetch(f"{base}/declared")
            with pytest.raises(BodyTooLarge, match="over the cap"):
                await client.fetch(f"{base}/streamed")
            stats = client.stats
    assert sleeps.delays == []  # too large is final, not retried
    assert stats["requests"] == 2


def gzip_bomb(inflated: int) -> bytes:
    """Gzip of ``inflated`` zero bytes, built a slice at a time to keep the test lean."""
    packer = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    zeros = bytes(2**20)
    parts = [packer.compress(zeros) for _ in range(inflated // len(zeros))]
    return b"".join([*parts, packer.flush()])


async def test_gzip_bomb_is_stopped_at_the_cap_without_inflating_it() -> None:
    bomb = gzip_bomb(64 * 2**20)
    assert len(bomb) < 200_000

    async def handler(scope: Scope) -> Reply:
        headers = [("content-encoding", "gzip"), ("content-length", str(len(bomb)))]
        return 200, headers, bomb

    with serve(handler) as base:
        async with fetcher(max_body_bytes=2**20) as client:
            tracemalloc.start()
            try:
                started = time.monotonic()
                with pytest.raises(BodyTooLarge, match="over the cap"):
                    await client.fetch(f"{base}/bomb")
                took = time.monotonic() - started
                _, peak = tracemalloc.get_traced_memory()
            finally:
                tracemalloc.stop()
    assert peak < 10 * 2**20, f"peak traced memory {peak} bytes"
    assert took < 5.0


# -- redirects -------------------------------------------------------------------------


async def test_redirect_chains_of_five_pass_and_six_fail() -> None:
    async def handler(scope: Scope) -> Reply:
        path = scope["path"]
        if path == "/ftp":
            return 302, [("location", "ftp://127.0.0.1/file")], b""
        hops = int(path.rsplit("/", 1)[-1])
        if hops == 0:
            return 200, [], b"arrived"
        return 302, [("location", f"/hop/{hops - 1}")], b"moving on"

    with serve(handler) as base:
        async with fetcher(max_redirects=5) as client:
            result = await client.fetch(f"{base}/hop/5")
            with pytest.raises(HTTPStatusFailure, match="more than 5 redirects") as too_many:
                await client.fetch(f"{base}/hop/6")
            with pytest.raises(HTTPStatusFailure, match="non-http") as other_scheme:
                await client.fetch(f"{base}/ftp")
    assert (result.body, result.url) == (b"arrived", f"{base}/hop/0")
    assert too_many.value.status == 302
    assert f"{base}/hop/6" in str(too_many.value)
    assert other_scheme.value.status == 302


# -- concurrency -----------------------------------------------------------------------


class Turnstile:
    """Holds every request until the test lets one through; counts what it holds.

    Nothing but the test releases a request, so a client that ignored its per-host cap
    would pile all its requests up here and ``peak`` would show it. Create it on the test's
    loop; ``enter``/``leave`` run on the server thread's loop.
    """

    def __init__(self) -> None:
        self.in_flight = 0
        self.peak = 0
        self._test_loop = asyncio.get_running_loop()
        self._arrivals: asyncio.Queue[None] = asyncio.Queue()
        self._seen = 0
        self._server_loop: asyncio.AbstractEventLoop | None = None
        self._passes: asyncio.Semaphore | None = None

    async def enter(self) -> None:
        if self._passes is None:
            self._server_loop = asyncio.get_running_loop()
            self._passes = asyncio.Semaphore(0)
        self.in_flight += 1
        self.peak = max(self.peak, self.in_flight)
        self._test_loop.call_soon_threadsafe(self._arrivals.put_nowait, None)
        await self._passes.acquire()

    def leave(self) -> None:
        self.in_flight -= 1

    async def wait_for_arrivals(self, count: int) -> None:
        async with asyncio.timeout(10):
            while self._seen < count:
                await self._arrivals.get()
                self._seen += 1

    def let_one_through(self) -> None:
        assert self._server_loop is not None
        assert self._passes is not None
        self._server_loop.call_soon_threadsafe(self._passes.release)


async def test_per_host_concurrency_cap() -> None:
    turnstile = Turnstile()
    total, cap = 10, 2

    async def handler(scope: Scope) -> Reply:
        await turnstile.enter()
        try:
            return 200, [], scope["path"].encode()
        finally:
            turnstile.leave()

    with serve(handler) as base:
        async with fetcher(per_host=cap, concurrency=16) as client:
            fetches = asyncio.gather(*(client.fetch(f"{base}/{i}") for i in range(total)))
            try:
                for released in range(total):
                    # Each release frees one client slot, so exactly one more request comes.
                    await turnstile.wait_for_arrivals(min(total, released + cap))
                    assert turnstile.in_flight <= cap
                    turnstile.let_one_through()
                async with asyncio.timeout(10):
                    results = await fetches
            finally:
                if not fetches.done():  # a failed assertion must not leave fetches running
                    fetches.cancel()
                    await asyncio.gather(fetches, return_exceptions=True)
    assert sorted(r.body for r in results) == sorted(f"/{i}".encode() for i in range(total))
    assert turnstile.peak == cap
