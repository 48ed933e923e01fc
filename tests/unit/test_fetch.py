"""ingest.fetch against httpx.MockTransport: no sockets, no real sleeping."""

from __future__ import annotations

import asyncio
import datetime as dt
import gzip
import random
import tracemalloc
import zlib
from collections.abc import AsyncIterator, Callable, Coroutine
from email.utils import format_datetime

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ingest import retry
from ingest.exceptions import (
    BodyTooLarge,
    DeadlineExceeded,
    FetchError,
    HTTPStatusFailure,
    InvalidURL,
    TransportFailure,
    TruncatedBody,
)
from ingest.fetch import Fetcher, FetchLimits, FetchResult, user_agent, validate_url

URL = "http://upstream.test/api/items/"
UA = user_agent("1.2.3", "node-a")
Handler = (
    Callable[[httpx.Request], httpx.Response]
    | Callable[[httpx.Request], Coroutine[None, None, httpx.Response]]
)


class Sleeps:
    """An injected sleep that records the delays asked for and returns at once."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, delay: float) -> None:
        self.delays.append(delay)


Answer = Callable[[], httpx.Response] | Exception


class Script:
    """A MockTransport handler answering from a list (the last answer repeats)."""

    def __init__(self, *answers: Answer) -> None:
        self.answers = list(answers)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        answer = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        if isinstance(answer, Exception):
            raise answer
        return answer()


class Parts(httpx.AsyncByteStream):
    """A body arriving in the given chunks, as a socket would deliver it."""

    def __init__(self, parts: list[bytes]) -> None:
        self.parts = parts

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for part in self.parts:
            yield part


def reply(
    status: int = 200,
    body: bytes = b"",
    headers: dict[str, str] | None = None,
    *,
    parts: list[bytes] | None = None,
) -> Callable[[], httpx.Response]:
    """A fresh, unread response per request (httpx.Response(content=...) is pre-read)."""

    def build() -> httpx.Response:
        head = dict(headers or {})
        stream: httpx.AsyncByteStream
        if parts is None:
            stream = httpx.ByteStream(body)
            head.setdefault("content-length", str(len(body)))
        else:
            stream = Parts(parts)
        return httpx.Response(status, headers=head, stream=stream)

    return build


def ok(body: bytes = b"hello", **headers: str) -> Callable[[], httpx.Response]:
    return reply(200, body, {k.replace("_", "-"): v for k, v in headers.items()})


def make_fetcher(handler: Handler, sleeps: Sleeps | None = None, **limits: object) -> Fetcher:
    return Fetcher(
        limits=FetchLimits(**limits),  # type: ignore[arg-type]
        user_agent=UA,
        transport=httpx.MockTransport(handler),
        sleep=sleeps or Sleeps(),
        rng=random.Random(1234),
    )


async def fetch(
    handler: Handler, url: str = URL, sleeps: Sleeps | None = None, **limits: object
) -> FetchResult:
    async with make_fetcher(handler, sleeps, **limits) as fetcher:
        return await fetcher.fetch(url)


# -- identity and conditional GET ------------------------------------------------------


async def test_sends_user_agent_and_accept_encoding() -> None:
    script = Script(ok())
    result = await fetch(script)
    request = script.requests[0]
    assert request.headers["User-Agent"] == "shardetl/1.2.3 (node node-a)"
    assert request.headers["Accept-Encoding"] == "gzip, deflate"
    assert "If-None-Match" not in request.headers
    assert result.body == b"hello"
    assert result.status == 200
    assert result.attempts == 1
    assert not result.not_modified


async def test_conditional_headers_and_validators_returned() -> None:
    validators = {"etag": '"v2"', "last-modified": "Tue, 01 Oct 2024 10:00:00 GMT"}
    script = Script(reply(200, b"hello", validators))
    async with make_fetcher(script) as fetcher:
        result = await fetcher.fetch(
            URL, etag='"v1"', last_modified="Mon, 30 Sep 2024 10:00:00 GMT"
        )
    request = script.requests[0]
    assert request.headers["If-None-Match"] == '"v1"'
    assert request.headers["If-Modified-Since"] == "Mon, 30 Sep 2024 10:00:00 GMT"
    assert result.etag == '"v2"'
    assert result.last_modified == "Tue, 01 Oct 2024 10:00:00 GMT"


async def test_unsendable_validator_is_dropped_not_fatal() -> None:
    script = Script(ok())
    async with make_fetcher(script) as fetcher:
        await fetcher.fetch(URL, etag='"bad\nvalue"', last_modified="Mön")
    assert "If-None-Match" not in script.requests[0].headers
    assert "If-Modified-Since" not in script.requests[0].headers


async def test_304_keeps_the_validators_it_was_given() -> None:
    script = Script(reply(304))
    async with make_fetcher(script) as fetcher:
        result = await fetcher.fetch(URL, etag='"v1"', last_modified="Mon, 30 Sep 2024 GMT")
        stats = fetcher.stats
    assert result.not_modified
    assert result.status == 304
    assert result.body == b""
    assert result.etag == '"v1"'
    assert result.last_modified == "Mon, 30 Sep 2024 GMT"
    assert stats == {"requests": 1, "retries": 0, "not_modified": 1, "bytes": 0}


async def test_304_prefers_repeated_validators() -> None:
    script = Script(reply(304, headers={"etag": '"v3"'}))
    async with make_fetcher(script) as fetcher:
        result = await fetcher.fetch(URL, etag='"v1"')
    assert result.etag == '"v3"'


# -- retries and backoff ---------------------------------------------------------------


async def test_500_then_200_backs_off_once_within_jitter() -> None:
    sleeps = Sleeps()
    script = Script(reply(500), ok(b"fine"))
    async with make_fetcher(script, sleeps, backoff_base=0.5) as fetcher:
        result = await fetcher.fetch(URL)
        stats = fetcher.stats
    assert result.body == b"fine"
    assert result.attempts == 2
    assert len(sleeps.delays) == 1
    assert 0.0 <= sleeps.delays[0] <= 0.5
    assert stats == {"requests": 2, "retries": 1, "not_modified": 0, "bytes": 4}


async def test_429_honours_retry_after_seconds() -> None:
    sleeps = Sleeps()
    script = Script(reply(429, headers={"Retry-After": "7"}), ok())
    result = await fetch(script, sleeps=sleeps, backoff_base=0.1)
    assert result.attempts == 2
    assert sleeps.delays == [7.0]


async def test_503_retry_after_http_date_is_relative_to_date_header_and_capped() -> None:
    served_at = dt.datetime(2024, 10, 1, 12, 0, 0, tzinfo=dt.UTC)
    headers = {
        "Date": format_datetime(served_at, usegmt=True),
        "Retry-After": format_datetime(served_at + dt.timedelta(hours=2), usegmt=True),
    }
    sleeps = Sleeps()
    script = Script(reply(503, headers=headers), ok())
    await fetch(script, sleeps=sleeps, backoff_base=0.1, retry_after_cap=42.0)
    assert sleeps.delays == [42.0]


async def test_retry_after_http_date_within_cap() -> None:
    served_at = dt.datetime(2020, 1, 1, tzinfo=dt.UTC)  # far past: only relative to Date
    headers = {
        "Date": format_datetime(served_at, usegmt=True),
        "Retry-After": format_datetime(served_at + dt.timedelta(seconds=12), usegmt=True),
    }
    sleeps = Sleeps()
    await fetch(Script(reply(429, headers=headers), ok()), sleeps=sleeps)
    assert sleeps.delays == [12.0]


async def test_retry_after_ignored_on_500() -> None:
    sleeps = Sleeps()
    script = Script(reply(500, headers={"Retry-After": "50"}), ok())
    await fetch(script, sleeps=sleeps, backoff_base=0.1)
    assert sleeps.delays[0] <= 0.1


async def test_404_is_not_retried() -> None:
    sleeps = Sleeps()
    script = Script(reply(404))
    with pytest.raises(HTTPStatusFailure, match="404") as caught:
        await fetch(script, sleeps=sleeps)
    assert caught.value.status == 404
    assert URL in str(caught.value)
    assert len(script.requests) == 1
    assert sleeps.delays == []


async def test_exhausted_retries_report_last_status() -> None:
    sleeps = Sleeps()
    script = Script(reply(502), reply(500), reply(503))
    with pytest.raises(HTTPStatusFailure, match="gave up after 3 attempts") as caught:
        await fetch(script, sleeps=sleeps, retries=2)
    assert caught.value.status == 503
    assert URL in str(caught.value)
    assert len(script.requests) == 3
    assert len(sleeps.delays) == 2


async def test_backoff_windows_grow_and_are_capped() -> None:
    sleeps = Sleeps()
    script = Script(reply(500))
    with pytest.raises(HTTPStatusFailure):
        await fetch(script, sleeps=sleeps, retries=6, backoff_base=1.0, backoff_cap=8.0)
    # The same seed replays the jitter draws: window = min(cap, base * 2**retry).
    rng = random.Random(1234)
    expected = [rng.uniform(0, w) for w in (1.0, 2.0, 4.0, 8.0, 8.0, 8.0)]
    assert sleeps.delays == pytest.approx(expected)
    assert all(d <= 8.0 for d in sleeps.delays)


def test_backoff_is_full_jitter_over_the_window() -> None:
    rng = random.Random(7)
    draws = [retry.backoff(3, base=0.5, cap=30.0, rng=rng) for _ in range(2000)]
    assert 0.0 <= min(draws) < 0.4
    assert 3.6 < max(draws) <= 4.0
    assert retry.backoff(10_000, base=0.5, cap=30.0, rng=rng) <= 30.0


def test_retry_after_rejects_nonsense() -> None:
    now = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
    assert retry.retry_after({}, now=now) is None
    assert retry.retry_after({"retry-after": "soon"}, now=now) is None
    assert retry.retry_after({"retry-after": "-5"}, now=now) is None
    past = format_datetime(now - dt.timedelta(minutes=1), usegmt=True)
    assert retry.retry_after({"retry-after": past}, now=now) == 0.0


async def test_transport_errors_are_retried_then_reported() -> None:
    sleeps = Sleeps()
    script = Script(httpx.ConnectError("connection refused"))
    with pytest.raises(TransportFailure, match="connection refused") as caught:
        await fetch(script, sleeps=sleeps, retries=2)
    assert URL in str(caught.value)
    assert len(script.requests) == 3


async def test_read_timeout_is_retried_then_deadline() -> None:
    script = Script(httpx.ReadTimeout("timed out"), ok())
    assert (await fetch(script)).attempts == 2
    with pytest.raises(DeadlineExceeded, match="ReadTimeout"):
        await fetch(Script(httpx.ReadTimeout("timed out")), retries=1)


# -- URLs and redirects ----------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "ftp://upstream.test/file",
        "file:///etc/passwd",
        "javascript:alert(1)",
        "data:text/plain,hello",
        "/api/items/",
        "//upstream.test/api/",
        "http:///no-host",
        "http://upstream.test:99999/",
        "http://upstream.test:port/",
        "",
    ],
)
async def test_invalid_urls_are_refused_before_any_request(url: str) -> None:
    with pytest.raises(InvalidURL):
        validate_url(url)
    script = Script(ok())
    with pytest.raises(InvalidURL):
        await fetch(script, url=url)
    assert script.requests == []


@pytest.mark.parametrize("url", ["http://a.test/", "HTTPS://A.test:8443/x?q=1", "http://[::1]:8/"])
def test_valid_urls_are_returned_unchanged(url: str) -> None:
    assert validate_url(url) == url


async def test_redirect_to_other_scheme_is_a_fetch_error() -> None:
    script = Script(reply(302, headers={"Location": "ftp://elsewhere.test/x"}))
    with pytest.raises(HTTPStatusFailure, match="non-http") as caught:
        await fetch(script)
    assert caught.value.status == 302


async def test_too_many_redirects_is_a_fetch_error() -> None:
    def loop(request: httpx.Request) -> httpx.Response:
        return reply(301, headers={"Location": "/again"})()

    with pytest.raises(HTTPStatusFailure, match="redirects") as caught:
        await fetch(loop, max_redirects=2)
    assert caught.value.status == 301


async def test_final_url_after_redirect() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/old":
            return reply(308, headers={"Location": "/new"})()
        return ok(b"moved")()

    result = await fetch(handler, url="http://upstream.test/old")
    assert result.url == "http://upstream.test/new"
    assert result.body == b"moved"


# -- body size and decoding ------------------------------------------------------------


async def test_declared_length_over_cap_fails_without_retry() -> None:
    sleeps = Sleeps()
    script = Script(reply(200, b"x" * 2048))
    with pytest.raises(BodyTooLarge, match="declares 2048") as caught:
        await fetch(script, sleeps=sleeps, max_body_bytes=1024)
    assert URL in str(caught.value)
    assert len(script.requests) == 1
    assert sleeps.delays == []


async def test_streamed_body_over_cap_without_length() -> None:
    script = Script(reply(parts=[b"x" * 600, b"y" * 600]))
    with pytest.raises(BodyTooLarge):
        await fetch(script, max_body_bytes=1000)


async def test_body_exactly_at_cap_is_fine() -> None:
    script = Script(reply(parts=[b"x" * 500, b"y" * 500]))
    assert len((await fetch(script, max_body_bytes=1000)).body) == 1000


PAYLOAD = b"".join(b'{"key": "item-%d", "price": %d}\n' % (i, i * 7) for i in range(5000))


def deflate(data: bytes, wbits: int) -> bytes:
    compressor = zlib.compressobj(wbits=wbits)
    return compressor.compress(data) + compressor.flush()


@pytest.mark.parametrize(
    ("coding", "encoded"),
    [
        ("gzip", gzip.compress(PAYLOAD)),
        ("x-gzip", gzip.compress(PAYLOAD)),
        ("deflate", deflate(PAYLOAD, zlib.MAX_WBITS)),
        ("deflate", deflate(PAYLOAD, -zlib.MAX_WBITS)),
        ("identity", PAYLOAD),
        ("gzip, identity", gzip.compress(PAYLOAD)),
    ],
)
async def test_decodes_bodies(coding: str, encoded: bytes) -> None:
    # Byte-sized first chunks exercise the deflate header sniffing across chunk edges.
    parts = [
        encoded[:1],
        encoded[1:3],
        *(encoded[i : i + 997] for i in range(3, len(encoded), 997)),
    ]
    script = Script(reply(headers={"Content-Encoding": coding}, parts=parts))
    async with make_fetcher(script) as fetcher:
        result = await fetcher.fetch(URL)
        stats = fetcher.stats
    assert result.body == PAYLOAD
    assert stats["bytes"] == len(PAYLOAD)


async def test_concatenated_gzip_members() -> None:
    encoded = gzip.compress(b"first,") + gzip.compress(b"second")
    script = Script(ok(encoded, **{"content-encoding": "gzip"}))
    assert (await fetch(script)).body == b"first,second"


async def test_decoded_cap_applies_to_gzip() -> None:
    bomb = gzip.compress(b"\0" * 5_000_000)
    script = Script(ok(bomb, **{"content-encoding": "gzip"}))
    with pytest.raises(BodyTooLarge, match="over the cap of 100000"):
        await fetch(script, max_body_bytes=100_000)


async def test_unknown_content_encoding_is_refused() -> None:
    script = Script(ok(b"...", **{"content-encoding": "br"}))
    with pytest.raises(FetchError, match="Content-Encoding 'br'") as caught:
        await fetch(script)
    assert type(caught.value) is FetchError
    assert len(script.requests) == 1


async def test_corrupt_gzip_is_refused() -> None:
    script = Script(ok(b"\x1f\x8b\x08\x00garbage-garbage", **{"content-encoding": "gzip"}))
    with pytest.raises(FetchError, match="corrupt gzip"):
        await fetch(script)


async def test_gzip_ending_early_is_truncated_and_retried() -> None:
    sleeps = Sleeps()
    cut = gzip.compress(PAYLOAD)[:-40]
    script = Script(ok(cut, **{"content-encoding": "gzip"}))
    with pytest.raises(TruncatedBody, match="gzip stream ended early"):
        await fetch(script, sleeps=sleeps, retries=1)
    assert len(script.requests) == 2
    assert len(sleeps.delays) == 1


async def test_empty_gzip_labelled_body_is_empty() -> None:
    script = Script(reply(200, headers={"content-encoding": "gzip"}))
    assert (await fetch(script)).body == b""


async def test_no_httpx_exception_escapes_for_a_protocol_error() -> None:
    script = Script(httpx.RemoteProtocolError("Server disconnected without sending a response."))
    with pytest.raises(TransportFailure, match="Server disconnected"):
        await fetch(script, retries=0)


async def test_closed_fetcher_refuses() -> None:
    fetcher = make_fetcher(Script(ok()))
    await fetcher.aclose()
    with pytest.raises(RuntimeError, match="closed"):
        await fetcher.fetch(URL)


@pytest.mark.parametrize(
    "bad",
    [{"concurrency": 0}, {"per_host": 0}, {"total_timeout": 0}, {"retries": -1}],
)
def test_nonsense_limits_are_refused(bad: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="FetchLimits"):
        FetchLimits(**bad)  # type: ignore[arg-type]


# -- redirect bodies -------------------------------------------------------------------


def redirect_then_ok(body: bytes, headers: dict[str, str]) -> Handler:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/old":
            return reply(302, body, {"location": "/new", **headers})()
        return ok(b"here")()

    return handler


async def test_redirect_body_is_drained_not_inflated() -> None:
    # httpx alone reads a redirect's body with aread(), gunzipping all 20 MB in one go.
    bomb = gzip.compress(bytes(20_000_000))
    handler = redirect_then_ok(bomb, {"content-encoding": "gzip"})
    tracemalloc.start()
    try:
        result = await fetch(handler, url="http://upstream.test/old", max_body_bytes=100_000)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert result.body == b"here"
    assert peak < 4_000_000, f"peak traced memory {peak} bytes"


async def test_redirect_body_over_cap_is_refused() -> None:
    handler = redirect_then_ok(b"z" * 5000, {})
    with pytest.raises(BodyTooLarge, match="redirect body"):
        await fetch(handler, url="http://upstream.test/old", max_body_bytes=1000)


# -- concurrency -----------------------------------------------------------------------


class Held:
    """An async MockTransport handler that holds requests to ``held_host`` until released."""

    def __init__(self, held_host: str) -> None:
        self.held_host = held_host
        self.release = asyncio.Event()
        self.entered: list[str] = []
        self.held = asyncio.Event()

    async def __call__(self, request: httpx.Request) -> httpx.Response:
        self.entered.append(request.url.host)
        if request.url.host == self.held_host:
            self.held.set()
            await self.release.wait()
        return ok(request.url.host.encode())()


async def settle() -> None:
    # MockTransport does no I/O: a few passes of the loop let every runnable task run.
    for _ in range(50):
        await asyncio.sleep(0)


async def test_a_busy_host_does_not_block_other_hosts() -> None:
    handler = Held("slow.test")
    async with make_fetcher(handler, per_host=1) as fetcher:
        slow = asyncio.create_task(fetcher.fetch("http://slow.test/"))
        queued = asyncio.create_task(fetcher.fetch("http://slow.test/again"))
        await handler.held.wait()
        fast = await fetcher.fetch("http://fast.test/")  # completes while slow.test is held
        await settle()
        assert handler.entered == ["slow.test", "fast.test"]  # per-host cap of 1 holds
        handler.release.set()
        await asyncio.gather(slow, queued)
    assert fast.body == b"fast.test"
    assert handler.entered == ["slow.test", "fast.test", "slow.test"]


async def test_global_cap_spans_hosts() -> None:
    handler = Held("one.test")
    async with make_fetcher(handler, concurrency=1, per_host=4) as fetcher:
        first = asyncio.create_task(fetcher.fetch("http://one.test/"))
        await handler.held.wait()
        second = asyncio.create_task(fetcher.fetch("http://two.test/"))
        await settle()
        assert handler.entered == ["one.test"]  # two.test waits for the only global slot
        handler.release.set()
        await asyncio.gather(first, second)
    assert handler.entered == ["one.test", "two.test"]


# -- decoding, property-based ----------------------------------------------------------


@st.composite
def encoded_bodies(draw: st.DrawFn) -> tuple[bytes, str, list[bytes]]:
    # Repetitive text compresses hard, so small inputs still cross inflate step edges.
    unit = draw(st.binary(min_size=1, max_size=40))
    payload = unit * draw(st.integers(0, 20_000)) + draw(st.binary(max_size=200))
    coding = draw(st.sampled_from(["gzip", "deflate-zlib", "deflate-raw", "identity"]))
    if coding == "gzip":
        encoded = gzip.compress(payload)
    elif coding == "identity":
        encoded = payload
    else:
        encoded = deflate(payload, zlib.MAX_WBITS if coding == "deflate-zlib" else -15)
    cuts = sorted(draw(st.lists(st.integers(0, len(encoded)), max_size=6)))
    parts = [encoded[a:b] for a, b in zip([0, *cuts], [*cuts, len(encoded)], strict=True)]
    return payload, coding.split("-")[0], parts


@settings(max_examples=150, deadline=None)
@given(body=encoded_bodies(), cap=st.integers(1, 400_000))
def test_decoding_matches_zlib_and_respects_the_cap(
    body: tuple[bytes, str, list[bytes]], cap: int
) -> None:
    payload, coding, parts = body
    script = Script(reply(headers={"content-encoding": coding}, parts=parts))
    if len(payload) > cap:
        with pytest.raises(BodyTooLarge):
            asyncio.run(fetch(script, max_body_bytes=cap))
    else:
        assert asyncio.run(fetch(script, max_body_bytes=cap)).body == payload
