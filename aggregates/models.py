"""Aggregates recomputed from observations by the aggregation pass."""

from __future__ import annotations

from django.db import models


class ItemStats(models.Model):
    item = models.OneToOneField("ingest.Item", on_delete=models.CASCADE, related_name="stats")
    avg = models.FloatField()
    min = models.FloatField()
    max = models.FloatField()
    count = models.IntegerField()
    computed_at = models.DateTimeField()

    class Meta:
        verbose_name_plural = "item stats"


class DirtyItem(models.Model):
    """An item whose observations changed since the last aggregation pass.

    Statement-level triggers on ``ingest_observation`` (migration 0002) insert these in
    the same transaction as any change — the loader's, the admin's, a cascade — and the
    incremental pass takes them (``DELETE … RETURNING``) in the same snapshot as it reads
    observations, so a change is either in this pass or left for the next, never lost.
    No foreign key: the item may be gone by the time the pass runs, which is fine.
    """

    item_id = models.BigIntegerField(primary_key=True)
