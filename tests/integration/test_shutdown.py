"""SIGTERM during a run: a real ``etl node`` finishes or releases its work, exits 0, loses nothing.

The upstream answers slowly, so SIGTERM lands while runs are in flight. With the default
drain the runs finish; with a drain shorter than the upstream's latency they are
interrupted and their leases released. Either way the node exits 0 within its drain,
holds no lease, leaves no run open, and a second node then loads exactly what the
upstream's ``/api/meta`` declares.
"""

from __future__ import annotations

import subprocess
import time

import httpx
import pytest

from ingest import sources
from ingest.models import Source, TaskRun
from tests.support import processes, servers, tables
from upstream import Market, UpstreamConfig, build_app

pytestmark = pytest.mark.django_db(transaction=True)

YEARLY = "0 0 1 1 *"  # a source runs once per node run: "done" stays done
MARGIN = 10.0  # seconds for uvicorn, the pool and the database around the drain
INTERRUPTED = "interrupted: node shutting down"


def _register(market: Market, upstream: str) -> int:
    # The upstream's own /sources.jsonl, built in-process: over HTTP it waits its latency.
    created, _ = sources.register(sources.parse_specs(market.sources_body(upstream).decode()))
    Source.objects.update(schedule=YEARLY)
    return created


def _node(name: str, **env: str) -> tuple[subprocess.Popen[bytes], str]:
    port = servers.free_port()
    # Every source in flight at once (the upstream is one host).
    proc = processes.etl(
        "node",
        "--port",
        str(port),
        env={"ETL_NODE_NAME": name, "ETL_PER_HOST_CONCURRENCY": "16", **env},
    )
    return proc, f"http://127.0.0.1:{port}"


def _ready(base: str) -> bool:
    try:
        return httpx.get(f"{base}/readyz", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def _in_flight(name: str) -> bool:
    return (
        TaskRun.objects.filter(node=name, status="running").exists()
        and Source.objects.filter(lease_owner=name).exists()
    )


@pytest.mark.parametrize(
    ("drain", "latency_ms", "finished"),
    [
        pytest.param(15, 1500, True, id="drain-finishes-in-flight-runs"),
        pytest.param(1, 4000, False, id="drain-ends-and-releases-the-rest"),
    ],
)
def test_sigterm_mid_run_exits_0_and_a_restart_loses_nothing(
    drain: int, latency_ms: int, finished: bool
) -> None:
    config = UpstreamConfig(items=200, shops=6, seed=3, latency_ms=latency_ms, trades=100)
    market = Market(config)
    meta = market.meta()  # what /api/meta answers
    with servers.serve(build_app(config, market=market)) as upstream:
        total = _register(market, upstream)

        first, _ = _node("node-a", ETL_DRAIN_SECONDS=str(drain))
        try:
            processes.wait_for(lambda: _in_flight("node-a"), timeout=60, what="runs in flight")
            in_flight = TaskRun.objects.filter(node="node-a", status="running").count()
            first.terminate()
            sigterm = time.monotonic()
            code = first.wait(timeout=drain + MARGIN)
            took = time.monotonic() - sigterm
        finally:
            processes.stop(first)
        assert code == 0
        assert took < drain + MARGIN
        assert not Source.objects.exclude(lease_owner="").exists()
        assert not TaskRun.objects.filter(finished_at__isnull=True).exists()
        assert not TaskRun.objects.filter(status="running").exists()
        runs = TaskRun.objects.filter(node="node-a", source__isnull=False)
        interrupted = runs.filter(error__startswith=INTERRUPTED)
        if finished:  # drained: every run that was in flight completed
            assert runs.filter(status="ok").count() >= in_flight
            assert not interrupted.exists()
        else:  # released: those runs are closed as interrupted, their sources due again
            assert interrupted.count() >= in_flight
            assert (
                Source.objects.filter(
                    id__in=interrupted.values("source_id"), next_run_at__isnull=True
                ).count()
                == interrupted.count()
            )
        # Finished or still due: no source was left in between.
        done = Source.objects.filter(last_status="ok").count()
        assert done + Source.objects.filter(next_run_at__isnull=True).count() == total

        second, base = _node("node-b")
        try:
            processes.wait_for(lambda: _ready(base), timeout=60, what="the second node")
            processes.wait_for(
                lambda: Source.objects.filter(last_status="ok").count() == total,
                timeout=90,
                what="every source loaded by the second node",
            )
        finally:
            assert processes.stop(second) == 0
    loaded = tables.counts()
    assert loaded == {key: meta[key] for key in loaded}
