"""The webhook channel: a JSON POST that Slack and Discord incoming webhooks accept.

Slack reads ``text``, Discord reads ``content`` (2,000 characters at most) and both
ignore keys they do not know, so one body serves both, and the facts ride along under
``shardetl`` for anything else (a generic receiver, an automation tool).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, ClassVar

import httpx

import etl
from etl import text
from etl.notify.config import WebhookConfig
from etl.notify.events import Message
from etl.notify.exceptions import DeliveryError
from ingest import retry

DISCORD_MAX = 2000


def payload(message: Message) -> dict[str, Any]:
    """The JSON body for ``message``."""
    return {
        "content": text.cut(message.text, DISCORD_MAX),
        "text": message.text,
        # Discord: an error text holding "@everyone" must not ping a whole server.
        "allowed_mentions": {"parse": []},
        "shardetl": {
            "event": message.kind,
            "subject": message.subject,
            "node": message.node,
            "at": message.at.isoformat(),
            "fields": message.fields,
        },
    }


@dataclass(kw_only=True)
class WebhookChannel:
    config: WebhookConfig
    timeout: float = 10.0
    transport: httpx.AsyncBaseTransport | None = None  # tests pass httpx.MockTransport
    name: ClassVar[str] = "webhook"
    _client: httpx.AsyncClient | None = field(default=None, init=False)

    def describe(self) -> str:
        return self.config.describe()

    def _http(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = httpx.AsyncClient(
                transport=self.transport,
                timeout=self.timeout,
                headers={"user-agent": f"shardetl/{etl.__version__}"},
            )
        return self._client

    async def send(self, message: Message) -> None:
        try:
            response = await self._http().post(self.config.url, json=payload(message))
        except httpx.HTTPError as exc:
            # The exception's text, never the URL: it holds the webhook's secret token.
            raise DeliveryError(f"{type(exc).__name__}: {exc}", retryable=True) from None
        if response.is_success:
            return
        status = response.status_code
        raise DeliveryError(
            f"HTTP {status}: {text.one_line(response.text, 200)}",
            retryable=status in {408, 429} or status >= 500,
            retry_after=retry.retry_after(response.headers, now=datetime.now(UTC)),
        )

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None
