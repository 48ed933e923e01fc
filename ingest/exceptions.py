"""Errors of the ingest pipeline; each carries a reason fit for ``TaskRun.error``."""

from __future__ import annotations

from etl.exceptions import EtlError


class IngestError(EtlError):
    """Base of every ingest error."""


class InvalidSource(IngestError):
    """A source cannot be registered (bad URL scheme, unknown parser, bad options)."""


class FetchError(IngestError):
    """The body could not be fetched."""


class InvalidURL(FetchError, InvalidSource):
    """Only absolute http:// and https:// URLs are fetched."""


class HTTPStatusFailure(FetchError):
    """The server answered with a status we do not load (after retries, if retryable)."""

    def __init__(self, message: str, *, status: int) -> None:
        super().__init__(message)
        self.status = status


class BodyTooLarge(FetchError):
    """The (decompressed) body exceeded the size cap."""


class DeadlineExceeded(FetchError):
    """The request did not complete within its total deadline."""


class TruncatedBody(FetchError):
    """The connection closed before the declared body arrived."""


class TransportFailure(FetchError):
    """Connection refused, reset, DNS failure and the like (after retries)."""


class ParseError(IngestError):
    """The body as a whole cannot be parsed (malformed JSON, wrong shape, bad options)."""


class UnknownParser(ParseError, InvalidSource):
    """No parser has that name."""


class ParseWorkerDied(IngestError):
    """The parse child process died on this body more times than we retry."""


class ParsePoolClosed(IngestError):
    """The node closed its parse pool (shutting down) before this body was parsed."""


class LoadError(IngestError):
    """The rows could not be written."""


class LeaseLost(LoadError):
    """Another node holds the source's lease now; our write was refused."""
