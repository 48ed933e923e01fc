"""``etl node`` as a real subprocess: serves, ingests, drains on SIGTERM."""

from __future__ import annotations

import httpx
import pytest

from cluster.models import Node, TaskRun
from ingest import sources
from ingest.models import Item, Observation, Source, Trade
from ingest.upstream import UpstreamConfig, build_app
from tests.support import processes, servers

pytestmark = pytest.mark.django_db(transaction=True)


def _register(upstream: str) -> int:
    created, _ = sources.register(sources.parse_specs(httpx.get(f"{upstream}/sources.jsonl").text))
    return created


def _ready(url: str) -> bool:
    try:
        return httpx.get(f"{url}/readyz", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def test_node_ingests_everything_and_exits_cleanly_on_sigterm(upstream_url: str) -> None:
    meta = httpx.get(f"{upstream_url}/api/meta").json()
    total = _register(upstream_url)
    port = servers.free_port()
    node = processes.etl("node", "--port", str(port), env={"ETL_NODE_NAME": "node-a"})
    try:
        processes.wait_for(lambda: _ready(f"http://127.0.0.1:{port}"), timeout=60, what="readyz")
        assert httpx.get(f"http://127.0.0.1:{port}/healthz").json() == {"status": "ok"}
        processes.wait_for(
            lambda: Source.objects.filter(last_status="ok").count() == total,
            timeout=60,
            what="every source loaded",
        )
        assert Item.objects.count() == meta["items"]
        assert Trade.objects.count() == meta["trades"]
        assert Observation.objects.count() == meta["observations"]
        assert Node.objects.filter(name="node-a").exists()
        metrics = httpx.get(f"http://127.0.0.1:{port}/metrics").text
        assert "shardetl_rows_loaded_total" in metrics
    finally:
        code = processes.stop(node)
    assert code == 0
    assert not Source.objects.exclude(lease_owner="").exists()
    assert not Node.objects.filter(name="node-a").exists()


def test_sigterm_drains_in_flight_runs() -> None:
    # Every response takes 1.5 s: SIGTERM lands while runs are in flight.
    app = build_app(UpstreamConfig(items=200, shops=6, seed=3, latency_ms=1500, trades=100))
    with servers.serve(app) as upstream:
        total = _register(upstream)
        port = servers.free_port()
        node = processes.etl("node", "--port", str(port), env={"ETL_NODE_NAME": "node-d"})
        try:
            processes.wait_for(
                lambda: TaskRun.objects.filter(node="node-d", status="running").exists(),
                timeout=60,
                what="runs in flight",
            )
        finally:
            code = processes.stop(node)
        assert code == 0
        # Finished, not abandoned: drained runs completed and were recorded.
        assert not TaskRun.objects.filter(node="node-d", finished_at__isnull=True).exists()
        assert TaskRun.objects.filter(node="node-d", status="ok").count() >= 1
        assert not Source.objects.exclude(lease_owner="").exists()
        # Whatever did not start is still due, and nothing was lost.
        done = Source.objects.filter(last_status="ok").count()
        assert done + Source.objects.filter(next_run_at__isnull=True).count() == total
