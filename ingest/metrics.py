"""Prometheus metrics of the ingest pipeline (served at ``/metrics``; docs/operations.md).

Counters and histograms live in the process and count what this node did since it
started; scrape-time gauges (due sources, leases, slot) are in ``cluster/metrics.py``.
"""

from __future__ import annotations

import prometheus_client
from prometheus_client import Counter, Histogram

from ingest import exceptions

# A `_created` twin of every counter and histogram doubles the series Prometheus stores
# and tells it nothing it needs: counter resets are detected without it.
prometheus_client.disable_created_metrics()

# Fetches run from milliseconds (a 304) to the 60 s total deadline with retries.
_FETCH_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)
_CPU_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)

RUNS = Counter(
    "shardetl_source_runs_total",
    "Source runs by outcome: ok, unchanged, failed, interrupted (released at shutdown)",
    ["status"],
)
FETCHES = Counter(
    "shardetl_fetches_total",
    "Fetches by final HTTP status (200, 304, 404 …) or failure kind (timeout, transport …)",
    ["status"],
)
FETCH_SECONDS = Histogram(
    "shardetl_fetch_seconds", "Fetch duration, retries included", buckets=_FETCH_BUCKETS
)
PARSE_SECONDS = Histogram(
    "shardetl_parse_seconds", "Parse duration in the process pool", ["parser"], buckets=_CPU_BUCKETS
)
LOAD_SECONDS = Histogram("shardetl_load_seconds", "Load transaction duration", buckets=_CPU_BUCKETS)
ROWS_LOADED = Counter("shardetl_rows_loaded_total", "Parsed rows loaded", ["kind"])
ROWS_REJECTED = Counter("shardetl_rows_rejected_total", "Rows rejected by parsers", ["parser"])
BYTES_FETCHED = Counter("shardetl_bytes_fetched_total", "Body bytes fetched (decoded)")

_FAILURE_KINDS: tuple[tuple[type[exceptions.FetchError], str], ...] = (
    (exceptions.InvalidURL, "invalid_url"),
    (exceptions.BodyTooLarge, "too_large"),
    (exceptions.DeadlineExceeded, "timeout"),
    (exceptions.TruncatedBody, "truncated"),
    (exceptions.TransportFailure, "transport"),
)


def fetch_status(error: exceptions.FetchError) -> str:
    """The ``status`` label of a failed fetch: its HTTP status, or a small fixed word."""
    if isinstance(error, exceptions.HTTPStatusFailure):
        return str(error.status)
    for kind, label in _FAILURE_KINDS:
        if isinstance(error, kind):
            return label
    return "error"
