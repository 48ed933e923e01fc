"""Errors of the notifier."""

from __future__ import annotations

from etl.exceptions import EtlError


class NotifyError(EtlError):
    """Base of every notification error."""


class DeliveryError(NotifyError):
    """A channel could not deliver a message.

    ``retryable`` says whether trying again may help (a refused connection, a 5xx, a
    429) or not (a 4xx, a rejected login); ``retry_after`` is the server's own hint.
    """

    def __init__(self, reason: str, *, retryable: bool, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.retryable = retryable
        self.retry_after = retry_after
