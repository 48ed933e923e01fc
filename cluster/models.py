"""Who runs what: nodes of the cluster and the record of every run."""

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
        "ingest.Source", on_delete=models.SET_NULL, null=True, blank=True, related_name="runs"
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


class JobTick(models.Model):
    """One row per (cluster-wide job, scheduled time): whoever inserts it runs the job."""

    job = models.CharField(max_length=200)
    tick = models.DateTimeField()
    node = models.CharField(max_length=200)
    claimed_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["job", "tick"], name="jobtick_once")]
