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
