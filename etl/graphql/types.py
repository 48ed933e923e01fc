"""GraphQL types of the models (DESIGN.md, "GraphQL (read-only)").

Plain fields and relations use strawberry-django's own resolvers: the optimizer turns a
query into ``select_related``/``prefetch_related`` up front, and the resolvers then read
cached rows on the event loop. The two computed fields (``Source.shard``,
``Node.alive``) are SQL annotations the optimizer adds to the same query, read back by a
tiny async resolver, so they cost neither a query nor a thread hop per row.
"""

from __future__ import annotations

import strawberry
import strawberry_django
from django.db import models
from strawberry import auto
from strawberry.types import Info

from aggregates import models as aggregates
from cluster import membership, sharding
from cluster import models as cluster
from etl import config
from etl.graphql import limits
from ingest import models as ingest

_SHARD = "gql_shard"
_ALIVE = "gql_alive"


def _shard(info: Info) -> models.Expression:
    return sharding.slot_expr(membership.cluster_size_expr(config.settings().node_ttl))


def _alive(info: Info) -> models.Expression:
    live = membership.live_q(config.settings().node_ttl)
    return models.ExpressionWrapper(live, output_field=models.BooleanField())


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
