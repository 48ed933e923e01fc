"""The shape every channel has, and the channels a configuration asks for."""

from __future__ import annotations

from typing import ClassVar, Protocol

import httpx

from etl.notify.config import NotifyConfig
from etl.notify.events import Message
from etl.notify.smtp import EmailChannel
from etl.notify.webhook import WebhookChannel


class Channel(Protocol):
    """Delivers one message or raises (``DeliveryError`` says whether to retry)."""

    name: ClassVar[str]

    def describe(self) -> str: ...

    async def send(self, message: Message) -> None: ...

    async def aclose(self) -> None: ...


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
