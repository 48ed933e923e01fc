"""Admin for nodes and runs: both are written by the nodes, so both are read-only here.

A node's row can be deleted (to forget a dead node at once instead of after
``membership.FORGET_AFTER``); a live node simply writes it again on its next heartbeat.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.contrib import admin
from django.db.models import BooleanField, ExpressionWrapper, Q, QuerySet
from django.db.models.functions import Now
from django.http import HttpRequest
from django.utils import timezone
from django.utils.html import format_html

from cluster.models import Node, TaskRun
from etl.admin import ReadOnlyAdmin
from etl.config import Settings


class NodeFilter(admin.SimpleListFilter):
    """Runs of one node, choosing among the nodes the ``Node`` table knows (small)."""

    title = "node"
    parameter_name = "node"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [
            (name, name) for name in Node.objects.order_by("name").values_list("name", flat=True)
        ]

    def queryset(self, request: HttpRequest, queryset: QuerySet[TaskRun]) -> QuerySet[TaskRun]:
        value = self.value()
        return queryset if value is None else queryset.filter(node=value)


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
        ttl = timedelta(seconds=Settings.from_env().node_ttl)
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


@admin.register(TaskRun)
class TaskRunAdmin(ReadOnlyAdmin):
    list_display = (
        "id",
        "started_at",
        "node",
        "what",
        "status_badge",
        "rows_in",
        "rows_rejected",
        "duration",
        "short_error",
    )
    # Runs pile up (one per source per schedule): no filter or date hierarchy that asks
    # for DISTINCT values of the whole table on every page.
    list_filter = ("status", NodeFilter)
    search_fields = ("source__url", "node", "job", "error")
    list_select_related = ("source",)
    ordering = ("-started_at",)
    show_full_result_count = False
    list_per_page = 50

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def get_queryset(self, request: HttpRequest) -> QuerySet[TaskRun]:
        # The change list never needs the rejection lists, which can be large.
        return super().get_queryset(request).defer("rejections")

    @admin.display(description="source / job", ordering="source__url")
    def what(self, obj: TaskRun) -> str:
        return obj.source.url if obj.source is not None else obj.job

    @admin.display(description="status", ordering="status")
    def status_badge(self, obj: TaskRun) -> str:
        colour = {"ok": "#1f8a4c", "failed": "#c62f2f", "running": "#2f6fde"}.get(
            obj.status, "#5f6b7a"
        )
        return format_html('<strong style="color: {}">{}</strong>', colour, obj.status)

    @admin.display(description="took")
    def duration(self, obj: TaskRun) -> str:
        if obj.finished_at is None:
            return "running"
        return f"{(obj.finished_at - obj.started_at).total_seconds():.2f}s"

    @admin.display(description="error")
    def short_error(self, obj: TaskRun) -> str:
        return obj.error if len(obj.error) <= 100 else obj.error[:100] + "…"
