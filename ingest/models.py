"""What is ingested: sources, the rows their parsers produce, and the record of every run."""

from __future__ import annotations

from dataclasses import dataclass

from django.db import connections, models
from django.db.models.functions import Now


class SourceQuerySet(models.QuerySet["Source"]):
    def failing(self) -> SourceQuerySet:
        """Sources whose latest run failed."""
        return self.filter(last_status=TaskRun.Status.FAILED)

    @dataclass(frozen=True, slots=True, kw_only=True)
    class Fetched:
        """What :meth:`fetch_now` did to one source."""

        url: str
        enabled: bool  # False: left as it was, not made due
        running_on: str  # the node holding a live lease, "" if none: that run reschedules it

    def fetch_now(self) -> list[Fetched]:
        """Make these sources due now, which also ends any failure backoff.

        A disabled source is left alone: an operator disabled it on purpose, and only
        enabling it brings it back. "Now" is the database's clock, the one the claim
        (``cluster.leases``) compares ``next_run_at`` with, and what each source was
        (enabled, leased) is read by the same statement that changes it.
        """
        ids = list(self.values_list("pk", flat=True))
        if not ids:
            return []
        with connections[self.db].cursor() as cursor:
            cursor.execute(
                """
                UPDATE ingest_source
                SET next_run_at = CASE WHEN enabled THEN now() ELSE next_run_at END
                WHERE id = ANY(%s)
                RETURNING url, enabled,
                          CASE WHEN lease_owner <> '' AND lease_until > now()
                               THEN lease_owner ELSE '' END
                """,
                [ids],
            )
            rows = cursor.fetchall()
        return [self.Fetched(url=url, enabled=on, running_on=node) for url, on, node in rows]


def due_q(now: object | None = None) -> models.Q:
    """Never fetched, or next run at or before ``now`` (the database clock if not given)."""
    return models.Q(next_run_at__isnull=True) | models.Q(
        next_run_at__lte=Now() if now is None else now
    )


class Source(models.Model):
    """A URL with a parser and a cron schedule; owned by the node whose slot matches."""

    objects = SourceQuerySet.as_manager()

    url = models.TextField(unique=True)
    parser = models.CharField(max_length=64)
    schedule = models.CharField(max_length=120, default="H * * * *")
    options = models.JSONField(default=dict, blank=True)
    # A stable hash of the URL: a non-negative bigint, so mod(shard_hash, N) is a slot
    # (cluster.sharding; filled in at registration through ingest.sources' placement hook).
    shard_hash = models.BigIntegerField(db_index=True, editable=False)
    enabled = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    # scheduling and leases
    next_run_at = models.DateTimeField(null=True, blank=True, db_index=True)
    lease_owner = models.CharField(max_length=200, blank=True, default="")
    lease_until = models.DateTimeField(null=True, blank=True)

    # conditional GET and incremental state
    etag = models.TextField(blank=True, default="")
    last_modified = models.TextField(blank=True, default="")
    cursor = models.BigIntegerField(null=True, blank=True)

    # outcome of the latest run
    last_status = models.CharField(max_length=20, blank=True, default="")
    last_error = models.TextField(blank=True, default="")
    last_fetched_at = models.DateTimeField(null=True, blank=True)
    rows_loaded = models.BigIntegerField(default=0)
    consecutive_failures = models.IntegerField(default=0)

    class Meta:
        indexes = [models.Index(fields=["enabled", "next_run_at"], name="source_due_idx")]

    def __str__(self) -> str:
        return self.url


class Item(models.Model):
    key = models.TextField(unique=True)
    name = models.TextField()
    image = models.TextField(blank=True, default="")
    value = models.FloatField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return self.key


class Observation(models.Model):
    """A value of an item seen by a source; one per (source, item), replaced per run."""

    # Indexed with its value (Meta.indexes), which serves the foreign key too.
    item = models.ForeignKey(
        Item, on_delete=models.CASCADE, related_name="observations", db_index=False
    )
    # Indexed by the unique (source, item) constraint already: a second index would only
    # slow every load down.
    source = models.ForeignKey(
        Source, on_delete=models.CASCADE, related_name="observations", db_index=False
    )
    value = models.FloatField()
    observed_at = models.DateTimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["source", "item"], name="observation_source_item")
        ]
        # (item, value) rather than (item): an item's min or max is one index probe,
        # which lets the incremental aggregation pass re-read an extreme it may have
        # lost without reading all of the item's observations.
        indexes = [models.Index(fields=["item", "value"], name="observation_item_value")]


class Quest(models.Model):
    key = models.TextField(unique=True)
    title = models.TextField()
    image = models.TextField(blank=True, default="")
    text = models.TextField(blank=True, default="")

    def __str__(self) -> str:
        return self.key


class QuestLink(models.Model):
    """An item a quest requires or rewards; kept by key until the item is loaded."""

    item_key = models.TextField()
    quantity = models.IntegerField()

    class Meta:
        abstract = True


class QuestRequirement(QuestLink):
    quest = models.ForeignKey(Quest, on_delete=models.CASCADE, related_name="required")
    item = models.ForeignKey(
        Item, on_delete=models.SET_NULL, null=True, blank=True, related_name="required_for"
    )

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["quest", "item_key"], name="questreq_quest_key")
        ]
        indexes = [
            models.Index(
                fields=["item_key"], condition=models.Q(item__isnull=True), name="questreq_dangling"
            )
        ]


class QuestReward(QuestLink):
    quest = models.ForeignKey(Quest, on_delete=models.CASCADE, related_name="rewards")
    item = models.ForeignKey(
        Item, on_delete=models.SET_NULL, null=True, blank=True, related_name="reward_for"
    )

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["quest", "item_key"], name="questrew_quest_key")
        ]
        indexes = [
            models.Index(
                fields=["item_key"], condition=models.Q(item__isnull=True), name="questrew_dangling"
            )
        ]


class Trade(models.Model):
    id = models.BigIntegerField(primary_key=True)
    item_key = models.TextField()
    item = models.ForeignKey(
        Item, on_delete=models.SET_NULL, null=True, blank=True, related_name="trades"
    )
    source = models.ForeignKey(Source, on_delete=models.CASCADE, related_name="trades")
    price = models.FloatField()
    quantity = models.IntegerField()
    traded_at = models.DateTimeField()

    class Meta:
        indexes = [
            models.Index(
                fields=["item_key"], condition=models.Q(item__isnull=True), name="trade_dangling"
            )
        ]


class TaskRun(models.Model):
    """One run of a job or a source; unfinished (``finished_at`` null) while running."""

    class Status(models.TextChoices):
        RUNNING = "running"
        OK = "ok"
        UNCHANGED = "unchanged"
        FAILED = "failed"
        SKIPPED = "skipped"

    node = models.CharField(max_length=200)
    job = models.CharField(max_length=200)
    source = models.ForeignKey(
        Source, on_delete=models.SET_NULL, null=True, blank=True, related_name="runs"
    )
    started_at = models.DateTimeField(db_index=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.RUNNING)
    rows_in = models.IntegerField(default=0)
    rows_out = models.IntegerField(default=0)
    rows_rejected = models.IntegerField(default=0)
    bytes = models.BigIntegerField(default=0)
    attempts = models.IntegerField(default=0)
    error = models.TextField(blank=True, default="")
    rejections = models.JSONField(default=list, blank=True)

    class Meta:
        indexes = [models.Index(fields=["source", "-started_at"], name="taskrun_source_idx")]
