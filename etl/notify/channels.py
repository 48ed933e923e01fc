"""The shape every channel has, and the channels a configuration asks for."""

from __future__ import annotations

import asyncio
import logging
from typing import ClassVar, Protocol

import httpx

from etl.notify.config import NotifyConfig
from etl.notify.events import Message
from etl.notify.exceptions import DeliveryError
from etl.notify.smtp import EmailChannel
from etl.notify.webhook import WebhookChannel

log = logging.getLogger(__name__)


class Channel(Protocol):
    """Delivers one message or raises (``DeliveryError`` says whether to retry)."""

    name: ClassVar[str]

    def describe(self) -> str: ...

    async def send(self, message: Message) -> None: ...

    async def aclose(self) -> None: ...


async def send_once(channel: Channel, message: Message, *, seconds: float) -> DeliveryError | None:
    """One attempt to send ``message`` within ``seconds``: ``None``, or why it failed.

    Never raises: a timeout or a channel's unexpected exception comes back as a
    retryable ``DeliveryError`` whose text names what happened.
    """
    try:
        async with asyncio.timeout(seconds):
            await channel.send(message)
    except DeliveryError as exc:
        return exc
    except TimeoutError:
        return DeliveryError(f"timed out after {seconds:g} s", retryable=True)
    except Exception as exc:  # a channel bug: reported, and worth a retry
        log.debug("%s raised", channel.name, exc_info=True)
        return DeliveryError(f"{type(exc).__name__}: {exc}", retryable=True)
    return None


def build(
    config: NotifyConfig, *, transport: httpx.AsyncBaseTransport | None = None
) -> list[Channel]:
    """One channel per configured destination (``transport``: the webhook's, for tests)."""
    channels: list[Channel] = []
    if config.email is not None:
        channels.append(EmailChannel(config=config.email, timeout=config.timeout_seconds))
    if config.webhook is not None:
        channels.append(
            WebhookChannel(
                config=config.webhook, timeout=config.timeout_seconds, transport=transport
            )
        )
    return channels
