"""``/``: the status page through Django's async client against real PostgreSQL."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import pytest
from django.conf import settings as django_settings
from django.test import AsyncClient
from django.utils import timezone

from aggregates.models import ItemStats
from cluster import leases, status
from cluster.models import Node
from ingest.models import Item, Source, TaskRun

SECRET = "status-page-tests-secret-key-7f3a9c"
ERROR = '<script>alert("pwned")</script> & 502 Bad Gateway'


@pytest.fixture
def web(settings: Any) -> Iterator[None]:
    """Django as a node serves it with DEBUG off, minus the https redirect."""
    settings.SECURE_SSL_REDIRECT = False
    # The session has no key and Django refuses to read an empty one back, so the
    # `settings` fixture cannot restore it: swap it by hand.
    saved = django_settings._wrapped.SECRET_KEY
    django_settings.SECRET_KEY = SECRET
    try:
        yield
    finally:
        django_settings.SECRET_KEY = saved


@pytest.fixture
def cluster_rows(make_source: Callable[..., Source]) -> dict[str, Any]:
    """Three nodes (one dead), sources in every state, runs in the last hour, stats."""
    now = timezone.now()
    for slot, name in enumerate(("page-node-a", "page-node-b", "page-node-c")):
        Node.objects.create(name=name, slot=slot, node_count=3, mode="static", heartbeat_at=now)
    Node.objects.filter(name="page-node-c").update(heartbeat_at=now - timedelta(minutes=5))
    failing = make_source(
        "http://upstream.test/broken.json",
        last_status="failed",
        last_error=ERROR,
        consecutive_failures=4,
        next_run_at=now + timedelta(minutes=2),
    )
    make_source("http://upstream.test/new.json")  # never fetched: due
    make_source("http://upstream.test/late.json", next_run_at=now - timedelta(minutes=30))
    make_source("http://upstream.test/fine.json", last_status="ok", next_run_at=now + timedelta(1))
    make_source(
        "https://ops:hunter2@upstream.test/private.json?api_key=abc123XYZ&page=2",
        next_run_at=now - timedelta(minutes=1),
    )
    for minutes_ago, rows in ((50, 120), (10, 300), (10, 200), (1, 40)):
        at = now - timedelta(minutes=minutes_ago)
        TaskRun.objects.create(
            node="page-node-a",
            job="source:json",
            source=failing,
            started_at=at - timedelta(seconds=2),
            finished_at=at,
            status="ok",
            rows_in=rows,
        )
    TaskRun.objects.create(
        node="page-node-b",
        job="source:items-json",
        source=failing,
        started_at=now - timedelta(seconds=30),
        finished_at=now - timedelta(seconds=29),
        status="failed",
        error=ERROR,
    )
    for key, count in (("iron-ore", 7), ("gold-bar", 12), ("copper", 3)):
        item = Item.objects.create(key=key, name=key.replace("-", " ").title())
        ItemStats.objects.create(item=item, avg=2.5, min=1, max=4, count=count, computed_at=now)
    return {"failing": failing}


@pytest.mark.django_db(transaction=True)
async def test_status_page_shows_the_cluster(web: None, cluster_rows: dict[str, Any]) -> None:
    response = await AsyncClient().get("/")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/html")
    assert response["Cache-Control"] == "no-store"
    html = response.content.decode()

    assert '<meta name="viewport"' in html
    assert '<meta http-equiv="refresh" content="15">' in html
    # The three nodes; the one whose heartbeat is 5 minutes old is dead.
    nodes = re.findall(r'<td class="nodename">([^<]+)</td>\s*<td><span class="badge (\w+)">', html)
    assert nodes == [("page-node-a", "alive"), ("page-node-b", "alive"), ("page-node-c", "dead")]
    # The failing source with its error, escaped: the markup is shown, never run.
    assert "http://upstream.test/broken.json" in html
    assert "&lt;script&gt;alert(&quot;pwned&quot;)&lt;/script&gt; &amp; 502 Bad Gateway" in html
    assert "<script>alert" not in html
    assert "<script" not in html  # no script at all: the page refreshes with a meta tag
    # Due sources: never fetched first; 30 minutes late is overdue.
    due = html[html.index('id="due"') : html.index('id="shards"')]
    assert due.index("new.json") < due.index("late.json")
    assert "overdue" in due[due.index("late.json") :]
    # Rows per minute: an inline SVG with one bar per minute, 660 rows in the last hour.
    assert "<svg" in html
    assert html.count('<rect class="bar"') == 60
    assert "660 rows in 5 runs" in html
    assert "peak 500/min" in html
    # Top items by count.
    top = html[html.index('id="top"') :]
    assert top.index("Gold Bar") < top.index("Iron Ore") < top.index("Copper")
    # Shard sizes: one line per slot of N=3, adding up to every source.
    shard = r'<div class="num">(\d+)</div>\s*<div class="owners">'
    sizes = [int(n) for n in re.findall(shard, html)]
    assert len(sizes) == 3
    assert sum(sizes) == 5


@pytest.mark.django_db(transaction=True)
async def test_status_page_shows_no_secret(web: None, cluster_rows: dict[str, Any]) -> None:
    html = (await AsyncClient().get("/")).content.decode()
    assert SECRET not in html
    assert "postgresql://" not in html
    assert django_settings.DATABASES["default"]["NAME"] not in html
    # Credentials in a source URL and token-like parameters are masked, the rest is kept.
    assert "hunter2" not in html
    assert "abc123XYZ" not in html
    assert "https://***@upstream.test/private.json?api_key=***&amp;page=2" in html


@pytest.mark.django_db(transaction=True)
async def test_status_page_refresh_can_be_slowed_or_stopped(web: None) -> None:
    slow = (await AsyncClient().get("/?refresh=120")).content.decode()
    assert '<meta http-equiv="refresh" content="120">' in slow
    still = (await AsyncClient().get("/?refresh=0")).content.decode()
    assert 'http-equiv="refresh"' not in still
    assert "auto-refresh off" in still


@pytest.mark.django_db(transaction=True)
async def test_status_page_renders_an_empty_cluster(web: None) -> None:
    response = await AsyncClient().get("/")
    assert response.status_code == 200
    html = response.content.decode()
    assert "No node has sent a heartbeat yet." in html
    assert "No source is failing." in html
    assert html.count('<rect class="bar"') == 60  # sixty empty minutes, still a chart


@pytest.mark.django_db(transaction=True)
def test_rows_per_minute_buckets_by_finish_minute(make_source: Callable[..., Source]) -> None:
    source = make_source("http://upstream.test/a.json")
    now = leases.db_now()
    minute = now.replace(second=0, microsecond=0)
    for finished, rows in (
        (minute - timedelta(minutes=3) + timedelta(seconds=5), 10),
        (minute - timedelta(minutes=3) + timedelta(seconds=50), 5),
        (minute + timedelta(seconds=1), 7),
        (minute - timedelta(minutes=61), 1000),  # out of the window
    ):
        TaskRun.objects.create(
            node="n",
            job="source:json",
            source=source,
            started_at=finished,
            finished_at=finished,
            status="ok",
            rows_in=rows,
        )
    TaskRun.objects.create(  # a cluster-wide job: not a load
        node="n", job="aggregate", started_at=now, finished_at=now, status="ok", rows_in=99
    )
    minutes = status.rows_per_minute(now=now, minutes=60)
    assert len(minutes) == 60
    assert minutes[-1].start == minute
    assert (minutes[-1].rows, minutes[-1].runs) == (7, 1)
    assert (minutes[-4].rows, minutes[-4].runs) == (15, 2)
    assert sum(m.rows for m in minutes) == 22


@pytest.mark.django_db(transaction=True)
def test_etl_status_data_counts_every_failing_source(make_source: Callable[..., Source]) -> None:
    for i in range(12):
        make_source(f"http://upstream.test/f{i}.json", last_status="failed", last_error="boom")
    snapshot = status.collect(ttl=15, failing=10)
    assert len(snapshot.failing) == 10
    assert snapshot.failing_total == 12
