"""``etl notify-test``: a test notification through every configured channel."""

from __future__ import annotations

import asyncio
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from etl import config
from etl.exceptions import ConfigError
from etl.notify import channels, probe
from etl.notify.config import NotifyConfig


class Command(BaseCommand):
    help = (
        "Send a test notification through every channel ETL_NOTIFY_* configures (mail, "
        "webhook) and report each one's success or failure; exit non-zero if any failed."
    )
    requires_system_checks: list[str] = []

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            notify_config = NotifyConfig.from_env()
            node = config.settings().node_name
        except ConfigError as exc:
            raise CommandError(str(exc)) from None
        configured = channels.build(notify_config)
        if not configured:
            raise CommandError(
                "no notification channel configured: set ETL_NOTIFY_EMAIL_TO and/or "
                "ETL_NOTIFY_WEBHOOK_URL (docs/notifications.md)"
            )
        results = asyncio.run(
            probe.probe(configured, node=node, seconds=notify_config.timeout_seconds)
        )
        for result in results:
            outcome = "ok" if result.error is None else f"FAILED: {result.error}"
            self.stdout.write(f"{result.channel} ({result.description}): {outcome}")
        failed = [result.channel for result in results if result.error is not None]
        if failed:
            raise CommandError(
                f"{len(failed)} of {len(results)} channel(s) failed: {', '.join(failed)}"
            )
