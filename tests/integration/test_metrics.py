"""``/metrics`` of a real ``etl node``: it parses, its counters move, its gauges are right.

The node runs with ``ETL_LOG_FORMAT=json``, so the same run also checks the log stream a
container collector reads: one JSON object a line, node and source as fields.
"""

from __future__ import annotations

import json
import subprocess
from collections import defaultdict
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from django.db.models import Sum
from django.utils import timezone
from prometheus_client import CONTENT_TYPE_LATEST
from prometheus_client.parser import text_string_to_metric_families

from cluster import leases, metrics, sharding, status
from ingest import sources
from ingest.models import Source, TaskRun
from tests.support import processes, servers

pytestmark = pytest.mark.django_db(transaction=True)

YEARLY = "0 0 1 1 *"  # within a test, a source runs once: no second run races a scrape
SLOT, COUNT = 1, 2  # the node owns half of the sources; the other half stays due

Samples = dict[str, list[tuple[dict[str, str], float]]]


def _scrape(base: str) -> Samples:
    response = httpx.get(f"{base}/metrics", timeout=10)
    assert response.status_code == 200
    assert response.headers["content-type"] == CONTENT_TYPE_LATEST
    samples: Samples = defaultdict(list)
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            samples[sample.name].append((sample.labels, sample.value))
    return samples


def _value(samples: Samples, name: str, **labels: str) -> float:
    """The sum of ``name``'s samples whose labels include ``labels`` (0 when absent)."""
    return sum(v for got, v in samples.get(name, []) if labels.items() <= got.items())


def _ready(base: str) -> bool:
    try:
        return httpx.get(f"{base}/readyz", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def _register(upstream: str) -> list[Source]:
    specs = sources.parse_specs(httpx.get(f"{upstream}/sources.jsonl").text)
    sources.register(specs)
    Source.objects.update(schedule=YEARLY)
    return list(Source.objects.all())


def test_metrics_parse_move_during_a_run_and_logs_are_json(
    upstream_url: str, tmp_path: Path
) -> None:
    name = "metrics-node"
    port = servers.free_port()
    base = f"http://127.0.0.1:{port}"
    log_path = tmp_path / "node.log"
    with log_path.open("wb") as log_file:
        node = processes.etl(
            "node",
            "--port",
            str(port),
            env={
                "ETL_NODE_NAME": name,
                "ETL_SERVER_ID": str(SLOT),
                "ETL_NODE_COUNT": str(COUNT),
                "ETL_LOG_FORMAT": "json",
            },
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
        try:
            processes.wait_for(lambda: _ready(base), timeout=60, what="readyz")
            before = _scrape(base)

            registered = _register(upstream_url)
            mine = [
                s
                for s in registered
                if sharding.slot_of(sharding.stable_hash(s.url), COUNT) == SLOT
            ]
            theirs = [
                s
                for s in registered
                if sharding.slot_of(sharding.stable_hash(s.url), COUNT) != SLOT
            ]
            assert mine
            assert theirs, "the sample upstream's sources should fall in both shards"
            # One source of the other shard was registered long ago and never fetched.
            Source.objects.filter(pk=theirs[0].pk).update(
                created_at=timezone.now() - timedelta(hours=1)
            )
            processes.wait_for(
                lambda: (
                    Source.objects.filter(pk__in=[s.pk for s in mine], last_status="ok").count()
                    == len(mine)
                ),
                timeout=60,
                what="the node's shard loaded",
            )
            after = _scrape(base)
        finally:
            code = processes.stop(node)
    assert code == 0

    # Counters moved by exactly what the node recorded.
    runs = TaskRun.objects.filter(node=name, source__isnull=False)
    assert runs.count() == len(mine)
    for metric in ("shardetl_source_runs_total", "shardetl_fetches_total"):
        assert _value(before, metric) == 0
    assert _value(after, "shardetl_source_runs_total", status="ok") == len(mine)
    assert _value(after, "shardetl_fetches_total", status="200") == len(mine)
    rows = runs.aggregate(total=Sum("rows_in"))["total"]
    assert rows > 0
    assert (
        _value(after, "shardetl_rows_loaded_total") - _value(before, "shardetl_rows_loaded_total")
        == rows
    )
    assert _value(after, "shardetl_fetch_seconds_count") == len(mine)
    assert _value(after, "shardetl_parse_seconds_count") == len(mine)
    assert _value(after, "shardetl_bytes_fetched_total") == runs.aggregate(b=Sum("bytes"))["b"]
    assert "shardetl_rows_rejected_total" in after

    # Gauges: the node's identity and view, and the sources at scrape time.
    for samples in (before, after):
        assert _value(samples, "shardetl_node_slot") == SLOT
        assert _value(samples, "shardetl_node_count") == COUNT
        assert _value(samples, "shardetl_node_ready") == 1
        [(info, one)] = samples["shardetl_node_info"]
        assert one == 1
        assert info["node"] == name
        assert info["mode"] == "static"
        assert info["version"]
        assert _value(samples, "shardetl_database_up") == 1
    assert _value(before, "shardetl_cluster_sources") == 0
    assert _value(after, "shardetl_cluster_sources") == len(registered)
    assert _value(after, "shardetl_cluster_sources_due") == len(theirs)
    assert _value(after, "shardetl_cluster_sources_overdue") == 1
    assert _value(after, "shardetl_sources_due") == 0
    assert _value(after, "shardetl_sources_overdue") == 0
    assert _value(after, "shardetl_leases_held") == 0
    assert _value(after, "shardetl_runs_in_flight") == 0

    # The log: one JSON object a line; every ingest line names its node and source.
    lines = [json.loads(line) for line in log_path.read_text().splitlines() if line.strip()]
    assert lines
    for line in lines:
        assert {"time", "level", "logger", "message"} <= line.keys(), line
    ingest = [line for line in lines if line["logger"].startswith("ingest.")]
    assert {line["source"] for line in ingest} == {s.url for s in mine}
    assert {line["node"] for line in ingest} == {name}
    assert all("source=" not in line["message"] for line in ingest)


def test_sample_counts_by_the_rules_status_and_leases_use(
    make_source: Callable[..., Source],
) -> None:
    now = leases.db_now()
    hour = timedelta(hours=1)
    # url: (fields, due, overdue); never-fetched sources are overdue from registration.
    made = {
        "new": ({}, True, False),
        "new-long-ago": ({}, True, True),
        "late": ({"next_run_at": now - hour}, True, True),
        "just-due": ({"next_run_at": now - timedelta(minutes=1)}, True, False),
        "later": ({"next_run_at": now + hour}, False, False),
        "held": (
            {"lease_owner": "me", "lease_until": now + hour, "next_run_at": now + hour},
            False,
            False,
        ),
        "expired": (
            {"lease_owner": "me", "lease_until": now - hour, "next_run_at": now + hour},
            False,
            False,
        ),
        "theirs": (
            {"lease_owner": "other", "lease_until": now + hour, "next_run_at": now + hour},
            False,
            False,
        ),
    }
    sources = {
        url: make_source(f"http://h/{url}", **fields) for url, (fields, _, _) in made.items()
    }
    Source.objects.filter(pk=sources["new-long-ago"].pk).update(created_at=now - hour)
    make_source("http://h/off", enabled=False, next_run_at=now - hour)  # counted nowhere

    def expected(column: int, slot: int | None = None) -> int:
        return sum(
            1
            for url, row in made.items()
            if row[column] and (slot is None or sources[url].shard_hash % 2 == slot)
        )

    taken = [metrics.sample(node="me", slot=slot, count=2) for slot in (0, 1)]
    for slot, got in enumerate(taken):
        assert (got.sources, got.due, got.overdue) == (len(made), expected(1), expected(2))
        assert (got.shard_due, got.shard_overdue) == (expected(1, slot), expected(2, slot))
        assert got.leases_held == leases.held(node="me") == 1
    snapshot = status.collect(ttl=15)
    assert (snapshot.due, snapshot.overdue) == (taken[0].due, taken[0].overdue)
    unplaced = metrics.sample(node="", slot=None, count=0)
    assert (unplaced.shard_due, unplaced.shard_overdue, unplaced.leases_held) == (0, 0, 0)
