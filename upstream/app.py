"""The sample upstream as a plain ASGI app: routing, ETags, gzip, latency and faults.

HEAD is answered like GET (same status and headers, ``Content-Length`` of the GET
body) without a body; other methods get 405, except ``POST /_upstream/reset``.

Every request outside ``/_upstream/`` is counted on arrival (before latency and fault
injection, so a failed attempt counts as a fetch), then delayed by ``latency_ms``, then
possibly failed: with probability ``fail_rate`` (drawn from ``random.Random(seed)``, one
draw per request) it gets, in rotation, a 500, a 429 with ``Retry-After: 1``, or the
real response cut off halfway through its declared ``Content-Length``.
"""

from __future__ import annotations

import asyncio
import collections
import functools
import gzip
import hashlib
import random
import re
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any
from urllib.parse import parse_qs

import orjson

from upstream import data

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
Headers = tuple[tuple[bytes, bytes], ...]

JSON = b"application/json"
NDJSON = b"application/x-ndjson"
HTML = b"text/html; charset=utf-8"
GZIP_MIN_BYTES = 1024
FAULTS = ("error", "throttle", "truncate")
_SHOP_PATH = re.compile(r"/shops/([1-9][0-9]*)\.html")
_DIGITS = re.compile(r"[0-9]+")


@dataclass(frozen=True, slots=True, kw_only=True)
class Rendered:
    """A response before content negotiation; 200s carry their ETag and gzip body."""

    status: int
    body: bytes
    content_type: bytes = JSON
    headers: Headers = ()
    etag: bytes | None = None
    gzipped: bytes | None = None


def ok(body: bytes, content_type: bytes = JSON) -> Rendered:
    etag = b'"' + hashlib.blake2b(body, digest_size=12).hexdigest().encode() + b'"'
    # mtime=0 keeps the compressed bytes as deterministic as the body.
    gzipped = gzip.compress(body, mtime=0) if len(body) > GZIP_MIN_BYTES else None
    return Rendered(status=200, body=body, content_type=content_type, etag=etag, gzipped=gzipped)


def error(status: int, message: str, headers: Headers = ()) -> Rendered:
    body = orjson.dumps({"error": message, "status": status})
    return Rendered(status=status, body=body, headers=headers)


def etag_matches(if_none_match: bytes, etag: bytes) -> bool:
    """RFC 9110 weak comparison, as If-None-Match requires (``W/`` prefixes ignored)."""
    for candidate in if_none_match.split(b","):
        tag = candidate.strip()
        if tag == b"*" or tag.removeprefix(b"W/") == etag:
            return True
    return False


def accepts_gzip(accept_encoding: bytes) -> bool:
    """Whether ``Accept-Encoding`` lists gzip with a non-zero quality."""
    for part in accept_encoding.lower().split(b","):
        coding, _, params = part.partition(b";")
        if coding.strip() in (b"gzip", b"x-gzip"):
            return _quality(params) > 0
    return False


def _quality(params: bytes) -> float:
    for param in params.split(b";"):
        name, _, value = param.strip().partition(b"=")
        if name == b"q":
            try:
                return float(value)
            except ValueError:
                return 0.0
    return 1.0


def _int_param(params: dict[str, list[str]], name: str, default: int) -> int | None:
    """The query parameter as a non-negative decimal int, or None when it is not one."""
    values = params.get(name)
    if not values:
        return default
    return int(values[0]) if _DIGITS.fullmatch(values[0]) else None


class UpstreamApp:
    """One sample upstream; request counters and the fault sequence live per instance."""

    def __init__(self, config: data.UpstreamConfig, market: data.Market | None = None) -> None:
        self.config = config
        self.market = market if market is not None else data.Market(config)
        self.requests: collections.Counter[str] = collections.Counter()
        self._fault_rng = random.Random(config.seed)
        self._faults = 0
        moment = datetime(2025, 12, 31, tzinfo=UTC) + timedelta(seconds=config.seed % 86400)
        self._last_modified = format_datetime(moment, usegmt=True).encode()
        # Bounded: 2,000 shop pages or 200 item pages must never all sit in memory.
        self._render = functools.lru_cache(maxsize=256)(self._render_uncached)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        method: str = scope["method"]
        path: str = scope["path"]
        query = scope["query_string"].decode("latin-1")
        headers = dict(scope["headers"])
        if path.startswith("/_upstream/"):
            await self._respond(send, method, headers, self._control(method, path))
            return
        self.requests[f"{path}?{query}" if query else path] += 1
        if self.config.latency_ms:
            await asyncio.sleep(self.config.latency_ms / 1000)
        fault = self._draw_fault()
        if fault == "error":
            rendered = error(500, "injected failure")
        elif fault == "throttle":
            rendered = error(429, "injected throttle", ((b"retry-after", b"1"),))
        else:
            # Only sources.jsonl depends on Host; keep it out of the others' cache keys.
            host = _host(scope, headers) if path == "/sources.jsonl" else ""
            rendered = self._render(method in ("GET", "HEAD"), path, query, host)
        if fault == "truncate":
            await self._truncate(send, method, rendered)
        else:
            await self._respond(send, method, headers, rendered)

    def _draw_fault(self) -> str | None:
        if self.config.fail_rate <= 0 or self._fault_rng.random() >= self.config.fail_rate:
            return None
        kind = FAULTS[self._faults % len(FAULTS)]
        self._faults += 1
        return kind

    def _control(self, method: str, path: str) -> Rendered:
        if path == "/_upstream/requests":
            if method not in ("GET", "HEAD"):
                return error(405, "method not allowed", ((b"allow", b"GET, HEAD"),))
            return ok(orjson.dumps(dict(self.requests), option=orjson.OPT_SORT_KEYS))
        if path == "/_upstream/reset":
            if method != "POST":
                return error(405, "method not allowed", ((b"allow", b"POST"),))
            self.requests.clear()
            return ok(orjson.dumps({"reset": True}))
        return error(404, "not found")

    def _render_uncached(self, readable: bool, path: str, query: str, host: str) -> Rendered:
        handler = self._handler(path, query, host)
        if handler is None:
            return error(404, "not found")
        if not readable:
            return error(405, "method not allowed", ((b"allow", b"GET, HEAD"),))
        try:
            return handler()
        except LookupError as exc:
            return error(404, str(exc))
        except ValueError as exc:
            return error(400, str(exc))

    def _handler(self, path: str, query: str, host: str) -> Callable[[], Rendered] | None:
        market = self.market
        params = parse_qs(query, keep_blank_values=True)
        if path == "/api/items/":
            page = _int_param(params, "page", 1)
            if page is None:
                return lambda: error(404, "page must be a positive integer")
            return lambda: ok(market.items_page_body(page))
        if path == "/api/quests/":
            return lambda: ok(market.quests_body)
        if path == "/api/trades/":
            since = _int_param(params, "since", 0)
            limit = _int_param(params, "limit", data.DEFAULT_TRADES_LIMIT)
            if since is None or limit is None:
                return lambda: error(400, "since and limit must be non-negative integers")
            return lambda: ok(market.trades_body(since=since, limit=limit))
        if path == "/api/meta":
            return lambda: ok(market.meta_body())
        if path == "/sources.jsonl":
            return lambda: ok(market.sources_body(f"http://{host}"), NDJSON)
        if match := _SHOP_PATH.fullmatch(path):
            number = int(match[1])
            return lambda: ok(market.shop_body(number), HTML)
        return None

    async def _respond(
        self, send: Send, method: str, headers: dict[bytes, bytes], rendered: Rendered
    ) -> None:
        status, body = rendered.status, rendered.body
        out = [(b"content-type", rendered.content_type), *rendered.headers]
        if rendered.gzipped is not None:
            out.append((b"vary", b"Accept-Encoding"))
        if rendered.etag is not None:
            out += [(b"etag", rendered.etag), (b"last-modified", self._last_modified)]
            if etag_matches(headers.get(b"if-none-match", b""), rendered.etag):
                status, body = 304, b""
                out = [h for h in out if h[0] != b"content-type"]
        gzipped = rendered.gzipped if status == 200 else None
        if gzipped and accepts_gzip(headers.get(b"accept-encoding", b"")):
            body = gzipped
            out.append((b"content-encoding", b"gzip"))
        if status != 304:
            out.append((b"content-length", str(len(body)).encode()))
        await send({"type": "http.response.start", "status": status, "headers": out})
        await send({"type": "http.response.body", "body": b"" if method == "HEAD" else body})

    async def _truncate(self, send: Send, method: str, rendered: Rendered) -> None:
        body = b"" if method == "HEAD" else rendered.body
        headers = [
            (b"content-type", rendered.content_type),
            (b"content-length", str(len(body)).encode()),
        ]
        await send({"type": "http.response.start", "status": rendered.status, "headers": headers})
        half = body[: len(body) // 2]
        await send({"type": "http.response.body", "body": half, "more_body": True})
        # Returning with the response incomplete makes uvicorn close the connection, so
        # the client sees fewer bytes than Content-Length promised.

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return


def _host(scope: Scope, headers: dict[bytes, bytes]) -> str:
    if host := headers.get(b"host", b"").decode("latin-1"):
        return host
    server = scope.get("server")  # HTTP/1.0 clients may send no Host
    if not server:
        return "localhost"
    host = f"[{server[0]}]" if ":" in server[0] else server[0]
    return f"{host}:{server[1]}" if server[1] else str(host)
