"""Prometheus counters of the notifier (served at ``/metrics`` by the default registry)."""

from __future__ import annotations

from prometheus_client import Counter

# Each message meets each channel once and ends in one of these, except "retried",
# which counts failed attempts that were followed by another.
SENT = "sent"
FAILED = "failed"
RETRIED = "retried"
COALESCED = "coalesced"  # held back by the rate limit and folded into a digest
DROPPED = "dropped"  # queue full, or still queued when the node stopped
OUTCOMES = (SENT, FAILED, RETRIED, COALESCED, DROPPED)

NOTIFICATIONS = Counter(
    "shardetl_notifications_total",
    "Notifications by channel and outcome",
    ["channel", "outcome"],
)
