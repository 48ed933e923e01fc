"""Aggregates recomputed from observations by the aggregation pass."""

from __future__ import annotations

from django.db import models


class ItemStats(models.Model):
    """Per-item statistics over its observations; ``avg`` is ``total / count``.

    ``total`` is kept so an incremental pass can move it by what changed; see
    ``aggregates.aggregation`` on float rounding.
    """

    item = models.OneToOneField("ingest.Item", on_delete=models.CASCADE, related_name="stats")
    avg = models.FloatField()
    min = models.FloatField()
    max = models.FloatField()
    count = models.IntegerField()
    total = models.FloatField(default=0.0)
    computed_at = models.DateTimeField()

    class Meta:
        verbose_name_plural = "item stats"


class StatDelta(models.Model):
    """What one statement did to one item's observations, waiting for the next pass.

    Statement-level triggers on ``ingest_observation`` (migration 0004) append these in
    the same transaction as any change — the loader's, the admin's, a cascade. Appends
    only: concurrent loads touching the same items never wait for each other (a unique
    "dirty" row per item made them queue, and deadlock, on each other's uncommitted
    rows). The pass takes the rows it can see in the same snapshot as it reads
    observations, so a change is either in this pass or left for the next, never lost or
    counted twice. No foreign key: the item may be gone by the time the pass runs.
    """

    item_id = models.BigIntegerField()
    total = models.FloatField()  # values added minus values removed
    count = models.IntegerField()  # observations added minus removed
    added_min = models.FloatField(null=True)
    added_max = models.FloatField(null=True)
    removed_min = models.FloatField(null=True)
    removed_max = models.FloatField(null=True)
