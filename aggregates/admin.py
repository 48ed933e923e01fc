"""Admin for ``ItemStats``: view only, since every aggregation pass rewrites it."""

from __future__ import annotations

from django.contrib import admin
from django.http import HttpRequest

from aggregates.models import ItemStats
from etl.admin import ReadOnlyAdmin


@admin.register(ItemStats)
class ItemStatsAdmin(ReadOnlyAdmin):
    list_display = ("item", "item_name", "count", "avg", "min", "max", "computed_at")
    list_select_related = ("item",)
    search_fields = ("item__key", "item__name")
    ordering = ("-count", "item__key")
    fields = ("item", "count", "avg", "min", "max", "computed_at")
    show_full_result_count = False

    @admin.display(description="name", ordering="item__name")
    def item_name(self, obj: ItemStats) -> str:
        return obj.item.name

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False
