"""``etl notify-test``: one test message through every channel, one attempt each."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass

from etl.notify import events
from etl.notify.channels import Channel
from etl.notify.exceptions import DeliveryError


@dataclass(frozen=True, slots=True, kw_only=True)
class ProbeResult:
    channel: str
    description: str
    error: str | None  # None: delivered


async def probe(channels: Sequence[Channel], *, node: str, seconds: float) -> list[ProbeResult]:
    """Send a test message through each channel at once; report each outcome."""
    message = events.render(events.Probe(), node=node)

    async def one(channel: Channel) -> ProbeResult:
        error: str | None = None
        try:
            async with asyncio.timeout(seconds):
                await channel.send(message)
        except TimeoutError:
            error = f"timed out after {seconds:g} s"
        except DeliveryError as exc:
            error = str(exc)
        except Exception as exc:  # noqa: BLE001 - reported to the operator, not raised
            error = f"{type(exc).__name__}: {exc}"
        finally:
            await channel.aclose()
        return ProbeResult(channel=channel.name, description=channel.describe(), error=error)

    return list(await asyncio.gather(*(one(channel) for channel in channels)))
