"""Who is in the cluster, and which node runs each tick of a cluster-wide job."""

from __future__ import annotations

from django.db import models


class Node(models.Model):
    name = models.CharField(max_length=200, unique=True)
    slot = models.IntegerField(null=True, blank=True)
    node_count = models.IntegerField(null=True, blank=True)
    mode = models.CharField(max_length=20, default="static")
    version = models.CharField(max_length=40, blank=True, default="")
    started_at = models.DateTimeField(auto_now_add=True)
    heartbeat_at = models.DateTimeField()

    def __str__(self) -> str:
        return self.name


class JobTick(models.Model):
    """One row per (cluster-wide job, scheduled time): whoever inserts it runs the job."""

    job = models.CharField(max_length=200)
    tick = models.DateTimeField()
    node = models.CharField(max_length=200)
    claimed_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["job", "tick"], name="jobtick_once")]
