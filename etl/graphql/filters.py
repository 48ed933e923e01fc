"""What clients may filter and order lists by; nothing else reaches ``WHERE``/``ORDER BY``."""

from __future__ import annotations

import strawberry
import strawberry_django
from strawberry import auto

from aggregates import models as aggregates
from ingest import models as ingest


@strawberry.input(description="Text lookups. Regular expressions are left out on purpose.")
class TextLookup:
    exact: str | None = strawberry.UNSET
    i_exact: str | None = strawberry.UNSET
    in_list: list[str] | None = strawberry.UNSET
    contains: str | None = strawberry.UNSET
    i_contains: str | None = strawberry.UNSET
    starts_with: str | None = strawberry.UNSET


# `lookups=True` gives numeric `auto` fields the library's comparison input
# (exact/inList/gt/gte/lt/lte/range); text fields take `TextLookup` above.


@strawberry_django.filter_type(ingest.Item, lookups=True)
class ItemFilter:
    key: TextLookup | None
    name: TextLookup | None
    value: auto


@strawberry_django.filter_type(aggregates.ItemStats, lookups=True)
class ItemStatsFilter:
    item: ItemFilter | None
    avg: auto
    min: auto
    max: auto
    count: auto


@strawberry_django.filter_type(ingest.Quest, lookups=True)
class QuestFilter:
    key: TextLookup | None
    title: TextLookup | None


@strawberry_django.filter_type(ingest.Source, lookups=True)
class SourceFilter:
    url: TextLookup | None
    parser: TextLookup | None
    last_status: TextLookup | None


# Order inputs are one-of objects in a list, as strawberry-django 0.93 recommends (its
# object-valued `order` argument is deprecated): `order: {count: DESC}` is a list of one
# by GraphQL's input coercion, `order: [{count: DESC}, {avg: ASC}]` sorts by both.


@strawberry_django.order_type(ingest.Item)
class ItemOrder:
    key: auto
    name: auto
    value: auto


@strawberry_django.order_type(aggregates.ItemStats)
class ItemStatsOrder:
    item: ItemOrder | None
    avg: auto
    min: auto
    max: auto
    count: auto
    computed_at: auto
