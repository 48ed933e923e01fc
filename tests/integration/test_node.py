"""``etl node`` as a real subprocess: serves, ingests, exits cleanly on SIGTERM.

SIGTERM in the middle of runs (drain, release, nothing lost): test_shutdown.py.
"""

from __future__ import annotations

import httpx
import pytest

from cluster.models import Node
from ingest import sources
from ingest.models import Item, Observation, Source, Trade
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
