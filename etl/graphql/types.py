"""GraphQL types of the models (DESIGN.md, "GraphQL (read-only)").

Plain fields and relations use strawberry-django's own resolvers: the optimizer turns a
query into ``select_related``/``prefetch_related`` up front, and the resolvers then read
cached rows on the event loop. The two computed fields (``Source.shard``,
``Node.alive``) are SQL annotations the optimizer adds to the same query, read back by a
tiny async resolver, so they cost neither a query nor a thread hop per row.
"""

from __future__ import annotations

from datetime import timedelta

import strawberry
import strawberry_django
from django.db import models
from django.db.models.functions import Coalesce, Greatest, Now
from strawberry import auto
from strawberry.types import Info

from aggregates import models as aggregates
from cluster import models as cluster
from etl import config
from etl.graphql import limits
from ingest import models as ingest

MEMBERSHIP_WINDOW = timedelta(seconds=60)
_SHARD = "gql_shard"
_ALIVE = "gql_alive"


def cluster_size() -> models.Func:
    """N for ``Source.shard``, as SQL: the largest ``node_count`` seen in 60 s, else 1."""
    recent = cluster.Node.objects.filter(
        heartbeat_at__gte=Now() - MEMBERSHIP_WINDOW, node_count__isnull=False
    )
    largest = models.Subquery(recent.order_by("-node_count").values("node_count")[:1])
    # Greatest(…, 1): a row claiming 0 nodes must not turn `mod` into a division by zero.
    return Greatest(Coalesce(largest, models.Value(1)), models.Value(1))


def _shard(info: Info) -> models.Expression:
    return models.ExpressionWrapper(
        models.F("shard_hash") % cluster_size(), output_field=models.BigIntegerField()
    )


def _alive(info: Info) -> models.Expression:
    # ETL_NODE_TTL is read per request, as the nodes read it, not frozen at import.
    fresh = models.Q(
        heartbeat_at__gte=Now() - timedelta(seconds=config.Settings.from_env().node_ttl)
    )
    return models.ExpressionWrapper(fresh, output_field=models.BooleanField())


@strawberry_django.type(aggregates.ItemStats, field_cls=limits.CappedField)
class ItemStats:
    item: Item
    avg: auto
    min: auto
    max: auto
    count: auto
    computed_at: auto


@strawberry_django.type(ingest.Item, field_cls=limits.CappedField)
class Item:
    key: auto
    name: auto
    image: auto
    value: auto
    stats: ItemStats | None
    required_for: list[QuestRequirement]
    reward_for: list[QuestReward]


@strawberry_django.type(ingest.QuestRequirement, field_cls=limits.CappedField)
class QuestRequirement:
    quantity: auto
    item_key: auto
    item: Item | None  # None until the item is loaded
    quest: Quest


@strawberry_django.type(ingest.QuestReward, field_cls=limits.CappedField)
class QuestReward:
    quantity: auto
    item_key: auto
    item: Item | None
    quest: Quest


@strawberry_django.type(ingest.Quest, field_cls=limits.CappedField)
class Quest:
    key: auto
    title: auto
    image: auto
    text: auto
    required: list[QuestRequirement]
    rewards: list[QuestReward]


@strawberry_django.type(ingest.Trade, field_cls=limits.CappedField)
class Trade:
    id: int
    item_key: auto
    item: Item | None
    price: auto
    quantity: auto
    traded_at: auto


@strawberry_django.type(ingest.Source, field_cls=limits.CappedField)
class Source:
    url: auto
    parser: auto
    schedule: auto
    last_status: auto
    last_error: auto
    last_fetched_at: auto
    rows_loaded: auto

    @strawberry_django.field(annotate={_SHARD: _shard})
    async def shard(self, root: ingest.Source) -> int:
        """``shard_hash % N``: the slot that owns this source in the current cluster."""
        return int(getattr(root, _SHARD))


@strawberry_django.type(cluster.Node, field_cls=limits.CappedField)
class Node:
    name: auto
    slot: auto
    heartbeat_at: auto

    @strawberry_django.field(annotate={_ALIVE: _alive})
    async def alive(self, root: cluster.Node) -> bool:
        """The node heartbeated within ``ETL_NODE_TTL`` seconds."""
        return bool(getattr(root, _ALIVE))


@strawberry.type
class Counts:
    items: int
    observations: int
    quests: int
    trades: int
    sources: int
    failing_sources: int
