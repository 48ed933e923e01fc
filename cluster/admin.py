"""Admin for nodes: written by the nodes themselves, so read-only here.

A node's row can be deleted (to forget a dead node at once instead of after
``membership.FORGET_AFTER``); a live node simply writes it again on its next heartbeat.
"""

from __future__ import annotations

from datetime import timedelta

from django.contrib import admin
from django.db.models import BooleanField, ExpressionWrapper, Q, QuerySet
from django.db.models.functions import Now
from django.http import HttpRequest
from django.utils import timezone

from cluster.models import Node
from etl import config
from etl.admin import ReadOnlyAdmin


@admin.register(Node)
class NodeAdmin(ReadOnlyAdmin):
    list_display = (
        "name",
        "alive",
        "slot",
        "node_count",
        "mode",
        "version",
        "heartbeat_age",
        "started_at",
    )
    list_filter = ("mode",)
    search_fields = ("name",)
    ordering = ("slot", "name")

    @admin.display(description="heartbeat", ordering="-heartbeat_at")
    def heartbeat_age(self, obj: Node) -> str:
        age = (timezone.now() - obj.heartbeat_at).total_seconds()
        return f"{age:.1f}s ago"

    def get_queryset(self, request: HttpRequest) -> QuerySet[Node]:
        # Alive as the status page says it: heartbeat within ETL_NODE_TTL by the database
        # clock, read once per page rather than once per row.
        ttl = timedelta(seconds=config.settings().node_ttl)
        return (
            super()
            .get_queryset(request)
            .annotate(
                is_alive=ExpressionWrapper(
                    Q(heartbeat_at__gte=Now() - ttl), output_field=BooleanField()
                )
            )
        )

    @admin.display(description="alive", boolean=True)
    def alive(self, obj: Node) -> bool:
        return bool(obj.is_alive)  # type: ignore[attr-defined]
