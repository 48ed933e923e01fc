"""Admin for sources (with the operator's actions) and, read-mostly, for items.

The slot column and filter use the N the live nodes believe in, read once per page.
Actions are single ``UPDATE`` statements using the database's clock, the clock the
claim statement (``cluster.leases``) compares ``next_run_at`` with; "fetch now" is
:meth:`ingest.models.SourceQuerySet.fetch_now`, the same as the chat's.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db.models import Case, F, QuerySet, Value, When
from django.http import HttpRequest, HttpResponse
from django.utils.html import format_html

from cluster import membership, sharding
from cluster.models import Node
from etl import config
from etl.admin import ReadOnlyAdmin
from ingest import parsers, sources
from ingest.exceptions import InvalidSource
from ingest.models import Item, Source, SourceQuerySet, TaskRun

_N_ATTR = "_shardetl_node_count"


def node_count(request: HttpRequest) -> int:
    """N for this request (looked up once; the filter and the column share it)."""
    n: int | None = getattr(request, _N_ATTR, None)
    if n is None:
        n = membership.cluster_size(ttl=config.settings().node_ttl)
        setattr(request, _N_ATTR, n)
    return n


class SlotFilter(admin.SimpleListFilter):
    title = "slot (shard_hash mod N)"
    parameter_name = "slot"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [(str(slot), f"slot {slot}") for slot in range(node_count(request))]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Source]) -> QuerySet[Source]:
        value = self.value()
        if value is None or not value.isdigit():
            return queryset
        return queryset.filter(sharding.shard_q(int(value), node_count(request)))


class SourceForm(forms.ModelForm):
    parser = forms.ChoiceField(choices=[(name, name) for name in parsers.NAMES])

    class Meta:
        model = Source
        fields = ("url", "parser", "schedule", "options", "enabled")

    def clean(self) -> dict[str, Any]:
        data: dict[str, Any] = super().clean() or {}
        if self.errors:
            return data
        spec = sources.SourceSpec(
            url=data["url"].strip(),
            parser=data["parser"],
            schedule=data["schedule"],
            options=data.get("options") or {},
        )
        try:
            sources.validate(spec)
        except InvalidSource as exc:
            raise forms.ValidationError(str(exc)) from None
        data["url"] = spec.url
        return data


@admin.register(Source)
class SourceAdmin(admin.ModelAdmin):
    form = SourceForm
    list_display = (
        "url",
        "parser",
        "enabled",
        "shard_hash",
        "slot",
        "last_status",
        "consecutive_failures",
        "next_run_at",
        "lease_owner",
        "last_fetched_at",
        "rows_loaded",
    )
    list_filter = ("last_status", "enabled", SlotFilter, "parser")
    search_fields = ("url",)
    ordering = ("url",)
    list_per_page = 50
    show_full_result_count = False
    actions = ("fetch_now", "disable", "enable", "reset_failures")
    readonly_fields = (
        "shard_hash",
        "created_at",
        "next_run_at",
        "lease_owner",
        "lease_until",
        "etag",
        "last_modified",
        "cursor",
        "last_status",
        "last_error",
        "last_fetched_at",
        "rows_loaded",
        "consecutive_failures",
    )
    fieldsets = (
        (None, {"fields": ("url", "parser", "schedule", "options", "enabled")}),
        (
            "state (written by the nodes)",
            {
                "fields": (
                    ("last_status", "consecutive_failures", "last_fetched_at", "rows_loaded"),
                    "last_error",
                    ("next_run_at", "lease_owner", "lease_until"),
                    ("shard_hash", "created_at"),
                    ("etag", "last_modified", "cursor"),
                )
            },
        ),
    )

    def get_queryset(self, request: HttpRequest) -> QuerySet[Source]:
        slot = sharding.slot_expr(node_count(request))
        return super().get_queryset(request).annotate(slot=slot)

    def changelist_view(
        self, request: HttpRequest, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        n = node_count(request)
        extra = {"subtitle": f"slot = shard_hash mod {n} (N as the live nodes see it)"}
        return super().changelist_view(request, {**extra, **(extra_context or {})})

    @admin.display(description="slot", ordering="slot")
    def slot(self, obj: Source) -> int | None:
        slot: int | None = getattr(obj, "slot", None)  # annotated by get_queryset
        return slot

    def save_model(self, request: HttpRequest, obj: Source, form: Any, change: bool) -> None:
        changed = set(form.changed_data)
        if not change or "url" in changed:
            obj.shard_hash = sources.shard_hash(obj.url)
            obj.etag, obj.last_modified, obj.cursor = "", "", None
        if change and changed & {"url", "parser", "options"}:
            # As `etl sources import` does: new parsing must not wait for a changed body.
            obj.etag, obj.last_modified, obj.next_run_at = "", "", None
        super().save_model(request, obj, form, change)

    @admin.action(description="Fetch now (due at once, skipping any retry backoff)")
    def fetch_now(self, request: HttpRequest, queryset: QuerySet[Source]) -> None:
        assert isinstance(queryset, SourceQuerySet)  # the admin's queryset is the model's
        done = queryset.fetch_now()
        due = [source for source in done if source.enabled]
        self.message_user(request, f"{len(due)} source(s) due now; their nodes claim them.")
        if skipped := len(done) - len(due):
            self.message_user(
                request,
                f"{skipped} disabled source(s) skipped: enable them to fetch them.",
                messages.WARNING,
            )
        if running := sum(1 for source in due if source.running_on):
            # The run in progress schedules its source when it ends, from its own outcome.
            self.message_user(
                request,
                f"{running} of them being fetched right now: left to that run.",
                messages.WARNING,
            )

    @admin.action(description="Disable (no node claims them)")
    def disable(self, request: HttpRequest, queryset: QuerySet[Source]) -> None:
        updated = queryset.update(enabled=False)
        self.message_user(
            request, f"{updated} source(s) disabled; a run already in progress finishes."
        )

    @admin.action(description="Enable")
    def enable(self, request: HttpRequest, queryset: QuerySet[Source]) -> None:
        updated = queryset.update(enabled=True)
        self.message_user(request, f"{updated} source(s) enabled.")

    @admin.action(description="Reset failures (forget the failure streak and last error)")
    def reset_failures(self, request: HttpRequest, queryset: QuerySet[Source]) -> None:
        updated = queryset.update(
            consecutive_failures=0,
            last_error="",
            last_status=Case(
                When(last_status=TaskRun.Status.FAILED, then=Value("")),
                default=F("last_status"),
            ),
        )
        self.message_user(request, f"{updated} source(s) reset.")


@admin.register(Item)
class ItemAdmin(ReadOnlyAdmin):
    """Items belong to the loader, which rewrites them on every load: view and delete only.

    Deleting one cascades to its observations; the aggregation pass sees that like any
    other change, and a source that still yields the item brings it back.
    """

    list_display = ("key", "name", "value", "updated_at")
    search_fields = ("key", "name")
    ordering = ("key",)
    show_full_result_count = False


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
