"""What the chat commands read and change in the database, behind a small interface.

:class:`Store` is the shape the command handler needs; :class:`Database` is the real one
(each method one unit of work through :func:`etl.db.call`), and tests pass fakes.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from django.db import connection

from cluster import status, ticks
from etl import db
from ingest.models import Item, Observation, Quest, Source, Trade


@dataclass(frozen=True, slots=True, kw_only=True)
class Counts:
    items: int
    observations: int
    quests: int
    trades: int


@dataclass(frozen=True, slots=True, kw_only=True)
class Status:
    cluster: status.ClusterStatus
    failing: int  # every failing source, not only the ones the snapshot lists


@dataclass(frozen=True, slots=True, kw_only=True)
class SourceLine:
    url: str
    enabled: bool
    status: str  # "" until the first run ends
    error: str
    failures: int
    fetched_at: datetime | None


@dataclass(frozen=True, slots=True, kw_only=True)
class SourcePage:
    total: int  # how many matched; ``rows`` holds the first few
    rows: list[SourceLine]


@dataclass(frozen=True, slots=True, kw_only=True)
class Fetched:
    """The outcome of "fetch now" for one URL."""

    found: bool
    enabled: bool = False
    running_on: str = ""  # the node holding a live lease, if a run is in flight


class Store(Protocol):
    """What the command handler reads and changes."""

    async def counts(self) -> Counts: ...
    async def status(self, *, ttl: float) -> Status: ...
    async def sources(self, *, failing: bool, limit: int) -> SourcePage: ...
    async def fetch_now(self, url: str) -> Fetched: ...


class ClusterStore(Store, Protocol):
    """A store that can also decide which node answers a chat message."""

    async def claim_message(self, *, message_id: int, sent_at: datetime, node: str) -> bool: ...


def counts() -> Counts:
    return Counts(
        items=Item.objects.count(),
        observations=Observation.objects.count(),
        quests=Quest.objects.count(),
        trades=Trade.objects.count(),
    )


def cluster_status(*, ttl: float) -> Status:
    cluster = status.collect(ttl=ttl, runs=0, failing=0)
    return Status(cluster=cluster, failing=cluster.failing_total)


def sources(*, failing: bool, limit: int) -> SourcePage:
    rows = Source.objects.order_by("url")
    if failing:
        rows = rows.failing().order_by("-consecutive_failures", "url")
    first = rows.values_list(
        "url", "enabled", "last_status", "last_error", "consecutive_failures", "last_fetched_at"
    )[:limit]
    return SourcePage(
        total=rows.count(),
        rows=[
            SourceLine(url=url, enabled=on, status=last, error=error, failures=times, fetched_at=at)
            for url, on, last, error, times, at in first
        ],
    )


def fetch_now(url: str) -> Fetched:
    """Make the source due now (which also ends a failure backoff), if it is enabled."""
    done = Source.objects.filter(url=url).fetch_now()  # the URL is unique: one or none
    if not done:
        return Fetched(found=False)
    return Fetched(found=True, enabled=done[0].enabled, running_on=done[0].running_on)


CLAIM_PREFIX = "chat:discord:"
CLAIMS_KEPT = timedelta(days=1)


def claim_message(*, message_id: int, sent_at: datetime, node: str) -> bool:
    """True for the one node that answers this chat message (the cluster's tick table)."""
    won = ticks.claim(job=f"{CLAIM_PREFIX}{message_id}", tick=sent_at, node=node)
    if won:  # one row per message: drop those no node can still be deciding about
        with connection.cursor() as cursor:
            cursor.execute(
                "DELETE FROM cluster_jobtick WHERE job LIKE %s "
                "AND claimed_at < now() - make_interval(secs => %s)",
                [f"{CLAIM_PREFIX}%", CLAIMS_KEPT.total_seconds()],
            )
    return won


class Database:
    """The :class:`ClusterStore` backed by PostgreSQL."""

    async def counts(self) -> Counts:
        return await db.call(counts)

    async def status(self, *, ttl: float) -> Status:
        return await db.call(cluster_status, ttl=ttl)

    async def sources(self, *, failing: bool, limit: int) -> SourcePage:
        return await db.call(sources, failing=failing, limit=limit)

    async def fetch_now(self, url: str) -> Fetched:
        return await db.call(fetch_now, url)

    async def claim_message(self, *, message_id: int, sent_at: datetime, node: str) -> bool:
        return await db.call(claim_message, message_id=message_id, sent_at=sent_at, node=node)
