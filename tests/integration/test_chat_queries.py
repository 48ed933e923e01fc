"""The chat commands' database side that the SSH tests do not reach."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from cluster import leases
from cluster.models import JobTick
from etl.chat import queries
from ingest.models import Source

pytestmark = pytest.mark.django_db(transaction=True)


def test_one_node_of_the_cluster_claims_each_chat_message() -> None:
    sent = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
    wins = [
        queries.claim_message(message_id=1234, sent_at=sent, node=node)
        for node in ("node-a", "node-b", "node-c")
    ]
    assert wins == [True, False, False]
    assert queries.claim_message(message_id=1235, sent_at=sent, node="node-b")  # another message
    assert JobTick.objects.get(job="chat:discord:1234").node == "node-a"


def test_old_claims_are_pruned_but_cron_ticks_are_not() -> None:
    old = leases.db_now() - timedelta(days=2)
    JobTick.objects.create(job="chat:discord:1", tick=old, node="n")
    JobTick.objects.create(job="aggregate", tick=old, node="n")
    JobTick.objects.update(claimed_at=old)  # auto_now_add: set afterwards
    # Claimed now, sent long ago (a message delivered late): kept, still decided.
    assert queries.claim_message(message_id=2, sent_at=old, node="n")
    assert sorted(JobTick.objects.values_list("job", flat=True)) == [
        "aggregate",
        "chat:discord:2",
    ]


def test_fetch_now_names_the_node_running_the_source(make_source: Any) -> None:
    later = leases.db_now() + timedelta(hours=1)
    make_source(
        "http://up.test/busy.json",
        next_run_at=later,
        lease_owner="node-b",
        lease_until=leases.db_now() + timedelta(minutes=1),
    )
    make_source(
        "http://up.test/stale.json",
        next_run_at=later,
        lease_owner="node-dead",
        lease_until=leases.db_now() - timedelta(minutes=1),
    )
    busy = queries.fetch_now("http://up.test/busy.json")
    assert busy == queries.Fetched(found=True, enabled=True, running_on="node-b")
    stale = queries.fetch_now("http://up.test/stale.json")  # an expired lease runs nothing
    assert stale == queries.Fetched(found=True, enabled=True, running_on="")
    assert Source.objects.get(url="http://up.test/stale.json").next_run_at <= leases.db_now()
    assert queries.fetch_now("http://up.test/none.json") == queries.Fetched(found=False)


def test_fetch_now_leaves_a_disabled_source_alone(make_source: Any) -> None:
    later = leases.db_now() + timedelta(hours=1)
    make_source("http://up.test/off.json", next_run_at=later, enabled=False, consecutive_failures=4)
    off = queries.fetch_now("http://up.test/off.json")
    assert off == queries.Fetched(found=True, enabled=False, running_on="")
    source = Source.objects.get(url="http://up.test/off.json")
    assert (source.enabled, source.next_run_at) == (False, later)


def test_failing_sources_come_most_failing_first(make_source: Any) -> None:
    make_source("http://up.test/a", last_status="failed", consecutive_failures=1, last_error="a")
    make_source("http://up.test/b", last_status="failed", consecutive_failures=5, last_error="b")
    make_source("http://up.test/c", last_status="ok")
    page = queries.sources(failing=True, limit=10)
    assert page.total == 2
    assert [(row.url, row.failures, row.error) for row in page.rows] == [
        ("http://up.test/b", 5, "b"),
        ("http://up.test/a", 1, "a"),
    ]
    everything = queries.sources(failing=False, limit=2)
    assert everything.total == 3
    assert [row.url for row in everything.rows] == ["http://up.test/a", "http://up.test/b"]
