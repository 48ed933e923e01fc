"""``etl notify-test``: one test message through every channel, one attempt each."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass

from etl.notify import events
from etl.notify.channels import Channel, send_once


@dataclass(frozen=True, slots=True, kw_only=True)
class ProbeResult:
    channel: str
    description: str
    error: str | None  # None: delivered


async def probe(channels: Sequence[Channel], *, node: str, seconds: float) -> list[ProbeResult]:
    """Send a test message through each channel at once; report each outcome."""
    message = events.render(events.Probe(), node=node)

    async def one(channel: Channel) -> ProbeResult:
        try:
            failure = await send_once(channel, message, seconds=seconds)
        finally:
            await channel.aclose()
        error = None if failure is None else str(failure)
        return ProbeResult(channel=channel.name, description=channel.describe(), error=error)

    return list(await asyncio.gather(*(one(channel) for channel in channels)))
