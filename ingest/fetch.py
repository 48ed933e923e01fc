"""Fetch one source URL: the node's single shared ``httpx.AsyncClient`` with its limits.

Data flow step 3 (DESIGN.md): global and per-host concurrency caps, a total deadline per
attempt, a cap on *decoded* body bytes, conditional GET, retries with full-jitter backoff and
``Retry-After``. Every failure leaves ``fetch()`` as an ``ingest.exceptions.FetchError``.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

import httpx

from etl.config import Settings
from ingest import decoding, retry
from ingest.exceptions import (
    BodyTooLarge,
    DeadlineExceeded,
    HTTPStatusFailure,
    InvalidURL,
    TruncatedBody,
)

logger = logging.getLogger(__name__)

# A request extension (carried over to redirect requests) where the response hook records
# each redirect status, so a redirect failure can report the status that caused it.
_HOPS = "shardetl.redirect_statuses"


@dataclass(frozen=True, slots=True, kw_only=True)
class FetchLimits:
    """Every knob of the fetcher; the defaults suit one node of a small cluster."""

    concurrency: int = 16
    per_host: int = 4
    max_body_bytes: int = 32 * 1024 * 1024
    connect_timeout: float = 5.0
    read_timeout: float = 15.0
    total_timeout: float = 60.0
    retries: int = 3
    backoff_base: float = 0.5
    backoff_cap: float = 30.0
    retry_after_cap: float = 60.0
    max_redirects: int = 5

    def __post_init__(self) -> None:
        # These come from the environment; a zero here would deadlock, not fail.
        for name in ("concurrency", "per_host", "max_body_bytes"):
            if getattr(self, name) < 1:
                raise ValueError(f"FetchLimits.{name} must be at least 1")
        for name in ("connect_timeout", "read_timeout", "total_timeout"):
            if getattr(self, name) <= 0:
                raise ValueError(f"FetchLimits.{name} must be positive")
        if self.retries < 0 or self.max_redirects < 0:
            raise ValueError("FetchLimits.retries and max_redirects cannot be negative")


@dataclass(frozen=True, slots=True, kw_only=True)
class FetchResult:
    """A fetched body (2xx) or the news that it did not change (304)."""

    url: str
    status: int
    body: bytes
    etag: str
    last_modified: str
    attempts: int
    elapsed: float

    @property
    def not_modified(self) -> bool:
        return self.status == 304


def limits_from(settings: Settings) -> FetchLimits:
    """The limits a node's environment asks for (``ETL_HTTP_CONCURRENCY`` etc.)."""
    return FetchLimits(
        concurrency=settings.http_concurrency,
        per_host=settings.per_host_concurrency,
        max_body_bytes=settings.max_body_bytes,
    )


def user_agent(version: str, node_name: str) -> str:
    """The User-Agent every request carries, so upstream operators know who calls."""
    return f"shardetl/{version} (node {node_name})"


def validate_url(url: str) -> str:
    """Return ``url`` if it is an absolute http(s) URL with a host; raise ``InvalidURL``."""
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL as exc:
        raise InvalidURL(f"invalid URL {url!r}: {exc}") from exc
    if parsed.scheme not in ("http", "https"):
        raise InvalidURL(f"only absolute http:// and https:// URLs are fetched, not {url!r}")
    if not parsed.host:
        raise InvalidURL(f"URL has no host: {url!r}")
    if parsed.port is not None and not 0 < parsed.port < 65536:
        raise InvalidURL(f"URL has an invalid port: {url!r}")
    return url


class Fetcher:
    """One per node: owns the ``httpx.AsyncClient`` and the concurrency limits around it.

    ``transport``, ``sleep``, ``rng`` and ``clock`` are injected so tests run against
    ``httpx.MockTransport`` without waiting and can assert the delays asked for.
    """

    def __init__(
        self,
        *,
        limits: FetchLimits,
        user_agent: str,
        transport: httpx.AsyncBaseTransport | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        rng: random.Random | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._limits = limits
        self._sleep = sleep
        self._rng = rng or random.Random()
        self._clock = clock
        self._global = asyncio.Semaphore(limits.concurrency)
        self._hosts: dict[tuple[str, str, int], _HostSlot] = {}
        self._stats = {"requests": 0, "retries": 0, "not_modified": 0, "bytes": 0}
        self._client = httpx.AsyncClient(
            transport=transport,
            limits=httpx.Limits(
                max_connections=limits.concurrency,
                max_keepalive_connections=limits.concurrency,
            ),
            timeout=httpx.Timeout(
                connect=limits.connect_timeout,
                read=limits.read_timeout,
                write=limits.read_timeout,
                pool=limits.connect_timeout,
            ),
            follow_redirects=True,
            max_redirects=limits.max_redirects,
            # br/zstd are not advertised: we decode (and cap) gzip and deflate ourselves.
            headers={"User-Agent": user_agent, "Accept-Encoding": "gzip, deflate"},
            event_hooks={"response": [self._on_response]},
        )

    async def __aenter__(self) -> Fetcher:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the pooled connections; the fetcher cannot be used afterwards."""
        await self._client.aclose()

    @property
    def stats(self) -> dict[str, int]:
        """Counters since start: requests (attempts sent), retries, not_modified, bytes
        (decoded body bytes returned)."""
        return dict(self._stats)

    async def fetch(self, url: str, *, etag: str = "", last_modified: str = "") -> FetchResult:
        """GET ``url`` with retries; conditional when ``etag``/``last_modified`` are given.

        Returns a 2xx body or a 304; raises a ``FetchError`` subclass otherwise.
        """
        validate_url(url)
        if self._client.is_closed:
            raise RuntimeError("the Fetcher is closed")
        headers = _conditional_headers(etag, last_modified)
        started = self._clock()
        attempt = 0
        while True:
            attempt += 1
            try:
                response = await self._attempt(url, headers)
            except retry.Retryable as failure:
                if attempt > self._limits.retries:
                    raise failure.give_up(url, attempt) from failure.__cause__
                await self._back_off(url, attempt, failure)
                continue
            return self._result(response, etag, last_modified, attempt, started)

    async def _attempt(self, url: str, headers: dict[str, str]) -> _Received:
        async with self._slots(url):
            self._stats["requests"] += 1
            # httpx's read timeout is per chunk: a server dripping a byte at a time would
            # hold us for ever, so the whole attempt (headers and body) gets one deadline.
            deadline = asyncio.timeout(self._limits.total_timeout)
            try:
                async with deadline:
                    return await self._exchange(url, headers)
            except TimeoutError as exc:
                if not deadline.expired():
                    raise
                reason = f"total deadline of {self._limits.total_timeout:g} s exceeded"
                raise retry.Retryable(DeadlineExceeded, reason) from exc

    async def _exchange(self, url: str, headers: dict[str, str]) -> _Received:
        hops: list[int] = []
        try:
            request = self._client.build_request("GET", url, headers=headers)
            request.extensions[_HOPS] = hops
            response = await self._client.send(request, stream=True)
        except httpx.TooManyRedirects as exc:
            message = f"more than {self._limits.max_redirects} redirects fetching {url}"
            raise HTTPStatusFailure(message, status=hops[-1] if hops else 0) from exc
        except httpx.HTTPError as exc:
            raise retry.for_error(exc, url, in_body=False) from exc
        except _RedirectRefused as exc:
            message = f"redirected to a non-http(s) URL ({exc.target}) fetching {url}"
            raise HTTPStatusFailure(message, status=exc.status) from None
        try:
            return await self._receive(response, url)
        except (httpx.HTTPError, httpx.StreamError) as exc:
            raise retry.for_error(exc, url, in_body=True) from exc
        finally:
            with contextlib.suppress(httpx.HTTPError):
                await response.aclose()

    async def _receive(self, response: httpx.Response, url: str) -> _Received:
        status = response.status_code
        if status == 304:
            return _Received(response=response, body=b"")
        again = retry.for_status(response, now=dt.datetime.now(dt.UTC))
        if again is not None:
            raise again
        if not 200 <= status < 300:
            reason = f"HTTP {status} {response.reason_phrase}".rstrip()
            raise HTTPStatusFailure(f"{reason} fetching {url}", status=status)
        cap = self._limits.max_body_bytes
        declared = _content_length(response)
        if declared is not None and declared > cap:
            raise BodyTooLarge(f"body of {url} declares {declared} bytes, over the cap of {cap}")
        decoder = decoding.BodyDecoder(
            response.headers.get("content-encoding", ""), cap=cap, url=url
        )
        # aiter_raw, not aiter_bytes: httpx would inflate a whole chunk at once, and one
        # small gzip chunk can inflate to tens of megabytes before any cap is checked.
        async for chunk in response.aiter_raw():
            decoder.feed(chunk)
        if not decoder.complete:
            raise retry.Retryable(TruncatedBody, f"{decoder.encoding} stream ended early")
        return _Received(response=response, body=decoder.body())

    async def _on_response(self, response: httpx.Response) -> None:
        if not response.has_redirect_location:
            return
        hops = response.request.extensions.get(_HOPS)
        if isinstance(hops, list):
            hops.append(response.status_code)
        # Refused here rather than left to the transport: an injected or mounted transport
        # might happily follow ftp:// or file://.
        with contextlib.suppress(httpx.InvalidURL):  # httpx reports a bad Location itself
            target = response.request.url.join(response.headers["location"])
            if target.scheme not in ("http", "https"):
                raise _RedirectRefused(str(target), response.status_code)
        # httpx reads a redirect's body with aread(), decoding it all at once: a gzip bomb
        # behind a 302 would bypass our cap. We never use that body, so drain it raw.
        if isinstance(response.stream, httpx.AsyncByteStream):
            response.stream = _DiscardedBody(
                response.stream, limit=self._limits.max_body_bytes, url=str(response.url)
            )

    async def _back_off(self, url: str, attempt: int, failure: retry.Retryable) -> None:
        limits = self._limits
        pause = retry.delay(
            attempt - 1,
            base=limits.backoff_base,
            cap=limits.backoff_cap,
            rng=self._rng,
            server_wait=failure.retry_after,
            server_wait_cap=limits.retry_after_cap,
        )
        self._stats["retries"] += 1
        logger.warning(
            "fetch %s: attempt %d failed (%s); retrying in %.2f s", url, attempt, failure, pause
        )
        await self._sleep(pause)

    def _result(
        self, received: _Received, etag: str, last_modified: str, attempts: int, started: float
    ) -> FetchResult:
        response = received.response
        if response.status_code == 304:
            self._stats["not_modified"] += 1
        self._stats["bytes"] += len(received.body)
        return FetchResult(
            url=str(response.url),
            status=response.status_code,
            body=received.body,
            # A 304 need not repeat its validators; the ones we sent are still current.
            etag=response.headers.get("etag", etag if response.status_code == 304 else ""),
            last_modified=response.headers.get(
                "last-modified", last_modified if response.status_code == 304 else ""
            ),
            attempts=attempts,
            elapsed=self._clock() - started,
        )

    @contextlib.asynccontextmanager
    async def _slots(self, url: str) -> AsyncIterator[None]:
        key = _host_key(url)
        slot = self._hosts.get(key)
        if slot is None:
            slot = self._hosts[key] = _HostSlot(asyncio.Semaphore(self._limits.per_host))
        slot.users += 1
        try:
            # Host first, then global: a queue for one busy host must not sit on global
            # slots that requests to other hosts could use.
            async with slot.semaphore, self._global:
                yield
        finally:
            slot.users -= 1
            if not slot.users:  # forget idle hosts so the table stays small
                del self._hosts[key]


@dataclass(slots=True)
class _HostSlot:
    semaphore: asyncio.Semaphore
    users: int = 0


@dataclass(frozen=True, slots=True)
class _Received:
    response: httpx.Response
    body: bytes


class _RedirectRefused(Exception):
    def __init__(self, target: str, status: int) -> None:
        super().__init__(target)
        self.target = target
        self.status = status


class _DiscardedBody(httpx.AsyncByteStream):
    """Drains a body we do not want, up to a limit, yielding nothing to decode."""

    def __init__(self, inner: httpx.AsyncByteStream, *, limit: int, url: str) -> None:
        self._inner = inner
        self._limit = limit
        self._url = url

    async def __aiter__(self) -> AsyncIterator[bytes]:
        drained = 0
        async for chunk in self._inner:
            drained += len(chunk)
            if drained > self._limit:
                raise BodyTooLarge(f"redirect body of {self._url} is over {self._limit} bytes")
        return
        yield b""  # unreachable: makes this an (empty) async generator

    async def aclose(self) -> None:
        await self._inner.aclose()


def _content_length(response: httpx.Response) -> int | None:
    value = response.headers.get("content-length", "")
    return int(value) if value.isdigit() else None


def _conditional_headers(etag: str, last_modified: str) -> dict[str, str]:
    headers = {}
    # A stored validator that cannot be sent as a header is dropped, not fatal: the
    # worst outcome is one unconditional fetch.
    if etag and _header_safe(etag):
        headers["If-None-Match"] = etag
    if last_modified and _header_safe(last_modified):
        headers["If-Modified-Since"] = last_modified
    return headers


def _header_safe(value: str) -> bool:
    return value.isascii() and value.isprintable()


def _host_key(url: str) -> tuple[str, str, int]:
    parsed = httpx.URL(url)
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    return parsed.scheme, parsed.host, port
