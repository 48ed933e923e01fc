"""When to fetch again and how long to wait first: which failures are worth another
attempt, full-jitter backoff, ``Retry-After``.

No I/O and no clock of its own, so the arithmetic is tested directly and ``fetch`` stays
about moving bytes.
"""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Mapping
from email.utils import parsedate_to_datetime

import httpx

from ingest.exceptions import (
    DeadlineExceeded,
    FetchError,
    HTTPStatusFailure,
    TransportFailure,
    TruncatedBody,
)

# Statuses that say "try again later" rather than "this will never work".
RETRYABLE_STATUSES = frozenset({429, 500, 502, 503, 504})

# Only these two carry a Retry-After we trust (RFC 9110 §10.2.3 also allows it on 3xx,
# where it means something else).
RETRY_AFTER_STATUSES = frozenset({429, 503})

# 2**62 * base already dwarfs any sane cap; bounding the exponent keeps the float finite.
_MAX_EXPONENT = 62


class Retryable(Exception):
    """One attempt failed in a way the next may not; ``give_up`` makes the final error."""

    def __init__(
        self,
        kind: type[FetchError],
        reason: str,
        *,
        status: int = 0,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(reason)
        self.kind = kind
        self.reason = reason
        self.status = status
        self.retry_after = retry_after

    def give_up(self, url: str, attempts: int) -> FetchError:
        message = f"{self.reason} fetching {url} (gave up after {attempts} attempts)"
        if self.kind is HTTPStatusFailure:
            return HTTPStatusFailure(message, status=self.status)
        return self.kind(message)


def for_status(response: httpx.Response, *, now: dt.datetime) -> Retryable | None:
    """A ``Retryable`` for a "try again later" status, else ``None``."""
    status = response.status_code
    if status not in RETRYABLE_STATUSES:
        return None
    wait = retry_after(response.headers, now=now) if status in RETRY_AFTER_STATUSES else None
    reason = f"HTTP {status} {response.reason_phrase}".rstrip()
    return Retryable(HTTPStatusFailure, reason, status=status, retry_after=wait)


def for_error(exc: httpx.HTTPError | httpx.StreamError, url: str, *, in_body: bool) -> Exception:
    """What an httpx exception means for us: a ``Retryable`` or a final ``FetchError``.

    ``in_body``: the headers had arrived, so a connection that closes or resets now has cut
    the declared body short.
    """
    if in_body and isinstance(exc, httpx.RemoteProtocolError | httpx.ReadError):
        return Retryable(TruncatedBody, f"body cut short ({_describe(exc)})")
    if isinstance(exc, httpx.TimeoutException):
        return Retryable(DeadlineExceeded, _describe(exc))
    if isinstance(exc, httpx.LocalProtocolError | httpx.UnsupportedProtocol | httpx.StreamError):
        # Our side cannot send it (or a transport handed back a body already read):
        # the same request would fail the same way.
        return FetchError(f"cannot fetch {url}: {_describe(exc)}")
    if isinstance(exc, httpx.TransportError):
        return Retryable(TransportFailure, _describe(exc))
    return TransportFailure(f"{_describe(exc)} fetching {url}")


def backoff(retry: int, *, base: float, cap: float, rng: random.Random) -> float:
    """Full-jitter delay before retry number ``retry`` (0 for the first retry).

    Full jitter (uniform over the whole window) spreads a herd of clients that failed
    together better than "exponential plus a little noise" does.
    """
    window = min(cap, base * 2 ** min(retry, _MAX_EXPONENT))
    return rng.uniform(0.0, window)


def retry_after(headers: Mapping[str, str], *, now: dt.datetime) -> float | None:
    """Seconds the server asked us to wait, or ``None`` if it did not say (or said nonsense).

    An HTTP-date is measured against the response's own ``Date`` header when present, so a
    server whose clock disagrees with ours still gets the pause it meant; else against ``now``.
    """
    value = headers.get("retry-after", "").strip()
    if not value:
        return None
    if value.isdigit():
        return float(value)
    when = _http_date(value)
    if when is None:
        return None
    reference = _http_date(headers.get("date", "")) or now
    return max(0.0, (when - reference).total_seconds())


def delay(
    retry: int,
    *,
    base: float,
    cap: float,
    rng: random.Random,
    server_wait: float | None,
    server_wait_cap: float,
) -> float:
    """The pause before retry number ``retry``: our backoff, but never less than the server's
    (capped) ``Retry-After``, so a busy server is not hammered early."""
    ours = backoff(retry, base=base, cap=cap, rng=rng)
    if server_wait is None:
        return ours
    return max(ours, min(server_wait, server_wait_cap))


def _http_date(value: str) -> dt.datetime | None:
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    # "-0000" parses naive; HTTP dates are always GMT.
    return when if when.tzinfo is not None else when.replace(tzinfo=dt.UTC)


def _describe(exc: Exception) -> str:
    # Some httpx errors (a reset connection, say) have an empty message.
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
