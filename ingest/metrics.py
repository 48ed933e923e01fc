"""Prometheus metrics of the ingest pipeline (served at ``/metrics``)."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

RUNS = Counter("shardetl_source_runs_total", "Source runs by outcome", ["status"])
FETCH_SECONDS = Histogram("shardetl_fetch_seconds", "Fetch duration, retries included")
PARSE_SECONDS = Histogram("shardetl_parse_seconds", "Parse duration in the process pool")
LOAD_SECONDS = Histogram("shardetl_load_seconds", "Load transaction duration")
ROWS_LOADED = Counter("shardetl_rows_loaded_total", "Parsed rows loaded", ["kind"])
ROWS_REJECTED = Counter("shardetl_rows_rejected_total", "Rows rejected by parsers")
BYTES_FETCHED = Counter("shardetl_bytes_fetched_total", "Body bytes fetched (decoded)")
