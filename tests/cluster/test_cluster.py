"""Real node processes sharing one PostgreSQL and one upstream (DESIGN.md, the cluster)."""

from __future__ import annotations

import os
import signal
import time
from collections import Counter
from typing import Any

import httpx
import pytest

from cluster import sharding
from cluster.models import JobTick
from ingest.models import Item, Observation, Quest, Source, TaskRun, Trade
from tests.cluster.conftest import Cluster, all_done, fetch_counts, register
from tests.support import processes, servers
from upstream import UpstreamConfig, build_app

SMALL = UpstreamConfig(items=1200, shops=24, seed=11, page_size=100, trades=600)


def _loaded_matches(meta: dict[str, int]) -> None:
    assert Item.objects.count() == meta["items"]
    assert Quest.objects.count() == meta["quests"]
    assert Trade.objects.count() == meta["trades"]
    assert Observation.objects.count() == meta["observations"]


QUERY = """{
  counts { items observations quests trades sources failingSources }
  items(order: {key: ASC}, pagination: {limit: 25}) {
    key name value requiredFor { quantity quest { key title } }
  }
}"""


def _graphql(url: str) -> dict[str, Any]:
    response = httpx.post(f"{url}/graphql", json={"query": QUERY}, timeout=30)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    assert "errors" not in body, body
    return body


def _three_nodes_each_fetch_their_share(cluster: Cluster, envs: dict[str, dict[str, str]]) -> None:
    with servers.serve(build_app(SMALL)) as upstream:
        meta = httpx.get(f"{upstream}/api/meta").json()
        total = register(upstream)
        for name, env in envs.items():
            cluster.start(name, **env)
        for name in envs:
            cluster.wait_started(name)
        processes.wait_for(all_done(total), timeout=120, what="every source loaded")
        answers = {name: _graphql(cluster.url(name)) for name in envs}
        codes = cluster.stop_all()
        counts = fetch_counts(upstream)

    # Any node answers any query, from the one database: the same answer everywhere.
    first = next(iter(answers.values()))
    assert first["data"]["counts"]["items"] == SMALL.items
    assert len(first["data"]["items"]) == 25
    assert all(answer == first for answer in answers.values())

    assert codes == dict.fromkeys(envs, 0)  # SIGTERM: each drained and exited 0
    assert not Source.objects.exclude(lease_owner="").exists()  # no lease left behind
    # Every source fetched exactly once, by the node that owns it.
    assert len(counts) == total
    assert set(counts.values()) == {1}
    by_node = Counter(TaskRun.objects.filter(source__isnull=False).values_list("node", flat=True))
    assert set(by_node) == set(envs)  # everyone got a share
    assert sum(by_node.values()) == total
    slots = {
        name: int(env.get("ETL_SERVER_ID", env.get("HOSTNAME", "-0").rsplit("-", 1)[1]))
        for name, env in envs.items()
    }
    for run in TaskRun.objects.filter(source__isnull=False).select_related("source"):
        assert sharding.slot_of(sharding.stable_hash(run.source.url), 3) == slots[run.node]  # type: ignore[union-attr]
    _loaded_matches(meta)


@pytest.mark.timeout(300)
def test_static_mode_three_nodes_different_hash_seeds(cluster: Cluster) -> None:
    _three_nodes_each_fetch_their_share(
        cluster,
        {
            f"static-{i}": {
                "ETL_SERVER_ID": str(i),
                "ETL_NODE_COUNT": "3",
                "PYTHONHASHSEED": str(1000 + i),
            }
            for i in range(3)
        },
    )


@pytest.mark.timeout(300)
def test_statefulset_mode_slot_from_hostname(cluster: Cluster) -> None:
    _three_nodes_each_fetch_their_share(
        cluster,
        {f"sts-{i}": {"HOSTNAME": f"shardetl-{i}", "ETL_NODE_COUNT": "3"} for i in range(3)},
    )


@pytest.mark.timeout(300)
def test_same_static_slot_twice_the_later_node_yields_and_reports(cluster: Cluster) -> None:
    slow = UpstreamConfig(items=600, shops=40, seed=5, page_size=100, trades=100, latency_ms=150)
    with servers.serve(build_app(slow)) as upstream:
        total = register(upstream)
        env = {"ETL_SERVER_ID": "0", "ETL_NODE_COUNT": "2"}
        cluster.start("first", **env)
        cluster.wait_started("first")
        cluster.start("second", **env)
        body = cluster.wait_started("second", ready=False)
        status, body = processes.wait_for(
            lambda: (s := cluster.readyz("second"))[1].get("conflicts") and s,
            timeout=30,
            what="the second node to report the conflict",
        )
        assert status == 503
        assert "holds slot 0 too" in body["conflicts"][0]
        assert cluster.readyz("first")[0] == 200  # the earlier node keeps its view
        slot0 = [s for s in Source.objects.all() if s.shard_hash % 2 == 0]
        processes.wait_for(
            lambda: (
                Source.objects.filter(pk__in=[s.pk for s in slot0], last_status="ok").count()
                == len(slot0)
            ),
            timeout=120,
            what="slot 0 loaded",
        )
        assert cluster.stop_all() == {"first": 0, "second": 0}
        counts = fetch_counts(upstream)
    assert set(counts.values()) == {1}  # nothing fetched by both
    assert not TaskRun.objects.filter(node="second", source__isnull=False).exists()
    assert len(counts) == len(slot0) < total  # slot 1 has no node: left alone


@pytest.mark.timeout(300)
def test_dynamic_kill9_survivors_take_over_nothing_lost(cluster: Cluster) -> None:
    big = UpstreamConfig(
        items=100_000, shops=30, seed=9, page_size=500, trades=2000, latency_ms=100
    )
    ttl, lease = 3, 6
    env = {"ETL_MEMBERSHIP": "dynamic", "ETL_NODE_TTL": str(ttl), "ETL_LEASE_SECONDS": str(lease)}
    with servers.serve(build_app(big)) as upstream:
        meta = httpx.get(f"{upstream}/api/meta").json()
        total = register(upstream)
        for i in range(3):
            cluster.start(f"dyn-{i}", **env)
        for i in range(3):
            cluster.wait_started(f"dyn-{i}")
        processes.wait_for(
            lambda: Source.objects.filter(last_status="ok").count() >= total // 4,
            timeout=120,
            what="a quarter of the ingest",
        )
        victim, _port = cluster.nodes.pop("dyn-2")
        orphans = processes.children(victim.pid)  # parse workers and their manager
        assert len(orphans) >= 3
        os.kill(victim.pid, signal.SIGKILL)
        victim.wait()
        killed_at = time.monotonic()
        orphaned = list(Source.objects.filter(lease_owner="dyn-2").values_list("pk", flat=True))
        processes.wait_for(all_done(total), timeout=180, what="every source loaded")
        if orphaned:
            # "unchanged": the victim committed the load but died before recording the
            # run; the survivor's conditional GET confirms the rows are current.
            taken_over = TaskRun.objects.filter(
                source__in=orphaned, status__in=("ok", "unchanged")
            ).exclude(node="dyn-2")
            assert taken_over.count() == len(orphaned)
        took = time.monotonic() - killed_at
        processes.wait_for(
            lambda: not any(processes.alive(pid) for pid in orphans),
            timeout=15,
            what="the killed node's child processes to exit",
        )
        assert cluster.stop_all() == {"dyn-0": 0, "dyn-1": 0}
    _loaded_matches(meta)
    assert Item.objects.values("key").distinct().count() == meta["items"]  # 0 duplicates
    assert took < ttl + lease + 60  # generous: the remaining ingest is in this too


@pytest.mark.timeout(300)
def test_dynamic_scale_3_to_4_to_2(cluster: Cluster) -> None:
    slow = UpstreamConfig(items=3000, shops=300, seed=4, page_size=100, trades=300, latency_ms=500)
    env = {
        "ETL_MEMBERSHIP": "dynamic",
        "ETL_NODE_TTL": "3",
        "ETL_LEASE_SECONDS": "6",
        # Slow on purpose: the ingest must outlast a node joining and two leaving.
        "ETL_HTTP_CONCURRENCY": "2",
    }
    with servers.serve(build_app(slow)) as upstream:
        total = register(upstream)
        for i in range(3):
            cluster.start(f"n{i}", **env)
        for i in range(3):
            cluster.wait_started(f"n{i}")
        processes.wait_for(
            lambda: {cluster.readyz(f"n{i}")[1].get("node_count") for i in range(3)} == {3},
            timeout=30,
            what="all three to agree on N=3",
        )
        processes.wait_for(
            lambda: Source.objects.filter(last_status="ok").count() >= total // 4,
            timeout=120,
            what="a quarter done",
        )
        cluster.start("n3", **env)
        cluster.wait_started("n3")
        processes.wait_for(
            lambda: cluster.readyz("n0")[1]["node_count"] == 4, timeout=30, what="N=4"
        )
        processes.wait_for(
            lambda: Source.objects.filter(last_status="ok").count() >= total // 2,
            timeout=120,
            what="half done",
        )
        assert cluster.stop("n1") == 0
        assert cluster.stop("n2") == 0
        processes.wait_for(
            lambda: cluster.readyz("n0")[1]["node_count"] == 2, timeout=30, what="N=2"
        )
        processes.wait_for(all_done(total), timeout=180, what="every source loaded")
        assert cluster.stop_all() == {"n0": 0, "n3": 0}
        counts = fetch_counts(upstream)
    assert len(counts) == total  # nothing left unowned
    assert set(counts.values()) == {1}  # nothing fetched twice within its (yearly) period
    assert TaskRun.objects.filter(node="n3", source__isnull=False).exists()  # ownership moved


@pytest.mark.timeout(300)
def test_aggregation_cron_runs_once_per_tick_across_three_nodes(cluster: Cluster) -> None:
    env = {"ETL_AGGREGATE_SCHEDULE": "* * * * * */2", "ETL_MEMBERSHIP": "dynamic"}
    for i in range(3):
        cluster.start(f"agg-{i}", **env)
    for i in range(3):
        cluster.wait_started(f"agg-{i}")
    processes.wait_for(
        lambda: TaskRun.objects.filter(job="aggregate").count() >= 5, timeout=60, what="5 passes"
    )
    assert set(cluster.stop_all().values()) == {0}
    runs = list(TaskRun.objects.filter(job="aggregate").order_by("started_at"))
    ticks = JobTick.objects.filter(job="aggregate")
    assert len(runs) == ticks.count()  # one run per claimed tick, never two
    buckets = Counter(int(run.started_at.timestamp()) // 2 for run in runs)
    assert max(buckets.values()) == 1  # at most one pass per 2-second tick
    assert all(run.status in ("ok", "skipped") for run in runs)
