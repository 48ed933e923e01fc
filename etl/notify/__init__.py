"""Notifications: mail and chat webhooks when runs fail and aggregation passes complete.

The talk's "Batch complete", grown up: configured by ``ETL_NOTIFY_*``
(docs/notifications.md), sent from a queue by a worker the node runtime owns, retried,
rate-limited, and never in the way of ingest. The hooks below are what ingest calls;
while no notifier runs (nothing configured, or not a node) each returns at once.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Concatenate, ParamSpec

from etl.notify import channels, events, rules
from etl.notify.config import NotifyConfig
from etl.notify.notifier import Notifier, active

__all__ = [
    "Notifier",
    "NotifyConfig",
    "active",
    "batch_complete",
    "from_env",
    "job_failed",
    "source_run",
]

log = logging.getLogger(__name__)

P = ParamSpec("P")


def from_env(*, node: str) -> Notifier | None:
    """The node's notifier, or ``None`` when nothing is configured.

    Raises ``ConfigError`` for a bad ``ETL_NOTIFY_*`` value, so the node fails to start.
    """
    config = NotifyConfig.from_env()
    if not config.enabled:
        return None
    return Notifier(config=config, channels=channels.build(config), node=node)


def _emit(
    rule: Callable[Concatenate[NotifyConfig, P], list[events.Event]],
    *args: P.args,
    **facts: P.kwargs,
) -> None:
    """Queue the events ``rule`` raises for ``facts`` on the running notifier, if any."""
    notifier = active()
    if notifier is None:
        return
    for event in rule(notifier.config, *args, **facts):
        notifier.emit(event)


def source_run(*, url: str, status: str, error: str, streak: tuple[int, int] | None) -> None:
    """A source run ended with ``status``; ``streak``: its failures (before, after)."""
    _emit(rules.for_run, url=url, status=status, error=error, streak=streak)


def job_failed(*, job: str, error: str) -> None:
    """A cron job (the aggregation pass) raised."""
    _emit(rules.for_job_failure, job=job, error=error)


def batch_complete(*, mode: str, items: int, changed: int, removed: int, seconds: float) -> None:
    """An aggregation pass ran: ``items`` recomputed, ``changed``/``removed`` stats rows."""
    _emit(rules.for_pass, mode=mode, items=items, changed=changed, removed=removed, seconds=seconds)
