"""The schema: read-only queries, the optimizer, and the limits every node enforces.

There is no ``Mutation`` type at all, so a mutation fails validation. Every extension
is given as a factory, so each operation gets fresh instances (strawberry deprecates
shared instances).
"""

from __future__ import annotations

import functools
from typing import Any

import strawberry
import strawberry_django
from django.db.models import Count, Q
from strawberry.extensions import MaskErrors, MaxTokensLimiter, ParserCache, ValidationCache
from strawberry_django.optimizer import DjangoOptimizerExtension

from cluster import models as cluster
from etl.graphql import filters, limits, types
from ingest import models as ingest

_list = functools.partial(strawberry_django.field, field_cls=limits.CappedField)


async def _counts() -> types.Counts:
    sources = await ingest.Source.objects.aaggregate(
        total=Count("pk"), failing=Count("pk", filter=Q(last_status="failed"))
    )
    return types.Counts(
        items=await ingest.Item.objects.acount(),
        observations=await ingest.Observation.objects.acount(),
        quests=await ingest.Quest.objects.acount(),
        trades=await ingest.Trade.objects.acount(),
        sources=sources["total"],
        failing_sources=sources["failing"],
    )


@strawberry.type
class Query:
    items: list[types.Item] = _list(
        filters=filters.ItemFilter, ordering=filters.ItemOrder, pagination=True
    )
    item_stats: list[types.ItemStats] = _list(
        filters=filters.ItemStatsFilter, ordering=filters.ItemStatsOrder, pagination=True
    )
    quests: list[types.Quest] = _list(filters=filters.QuestFilter, pagination=True)
    sources: list[types.Source] = _list(filters=filters.SourceFilter, pagination=True)

    # The resolvers below build querysets without touching the database; strawberry-django
    # applies the cap and the optimizer on a thread and fetches the rows with their
    # prefetches in one more hop: two hops per field, never one per row.

    @_list()
    async def item(self, key: str) -> types.Item | None:
        found: Any = ingest.Item.objects.filter(key=key)
        return found  # strawberry-django takes the first row, or None

    @_list()
    async def trades(self, since: int | None = None, limit: int | None = None) -> list[types.Trade]:
        """Trades with ``id > since`` in id order; at most ``limit`` (capped) of them."""
        rows = ingest.Trade.objects.order_by("id")
        if since is not None:
            rows = rows.filter(id__gt=since)
        page: Any = rows[: limits.page_size(limit)]
        return page

    @_list()
    async def nodes(self) -> list[types.Node]:
        rows: Any = cluster.Node.objects.order_by("slot", "name")
        return rows

    @strawberry.field
    async def counts(self) -> types.Counts:
        """Row counts, through the async ORM (five small queries)."""
        return await _counts()


schema = strawberry.Schema(
    query=Query,
    extensions=[
        limits.IntrospectionOnlyInDebug,
        limits.DepthAndAliases,
        functools.partial(MaxTokensLimiter, max_token_count=limits.MAX_TOKENS),
        # Parsed and validated documents kept by query text (and rules): clients send
        # the same few queries again and again. Bounded, so odd queries cannot grow it.
        functools.partial(ParserCache, maxsize=256),
        functools.partial(ValidationCache, maxsize=256),
        DjangoOptimizerExtension,
        functools.partial(
            MaskErrors, should_mask_error=limits.should_mask, error_message=limits.MASKED_MESSAGE
        ),
    ],
)
