"""The Django admin through Django's test client: actions change what they claim to."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import pytest
from django.conf import settings as django_settings
from django.contrib.auth.models import User
from django.db import connections
from django.test import Client
from django.utils import timezone

from aggregates.models import ItemStats
from cluster import leases, membership, sharding
from cluster.models import Node
from ingest.models import Item, Source, TaskRun

pytestmark = pytest.mark.django_db(transaction=True)

PASSWORD = "correct horse battery staple"


@pytest.fixture
def web(settings: Any) -> Iterator[None]:
    """Django as a node serves it with DEBUG off, minus the https redirect."""
    settings.SECURE_SSL_REDIRECT = False
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]  # fast
    # The session has no key and Django refuses to read an empty one back, so the
    # `settings` fixture cannot restore it: swap it by hand.
    saved = django_settings._wrapped.SECRET_KEY
    django_settings.SECRET_KEY = "admin-tests-only"
    try:
        yield
    finally:
        django_settings.SECRET_KEY = saved


@pytest.fixture
def admin(web: None) -> Client:
    """A superuser, logged in through the admin's own login form."""
    User.objects.create_superuser("ops", "ops@example.org", PASSWORD)
    client = Client()
    response = client.post("/admin/login/?next=/admin/", {"username": "ops", "password": PASSWORD})
    assert response.status_code == 302
    assert response["Location"] == "/admin/"
    return client


def _act(client: Client, action: str, *sources: Source) -> str:
    response = client.post(
        "/admin/ingest/source/",
        {"action": action, "_selected_action": [s.pk for s in sources]},
        follow=True,
    )
    assert response.status_code == 200
    return response.content.decode()


def _claim(view: membership.Ownership | None = None) -> list[int]:
    try:
        claimed = leases.claim_due(
            node="claimer", view=view or membership.Everything(), limit=100, lease_seconds=60
        )
        return [c.id for c in claimed]
    finally:
        connections.close_all()


def test_admin_needs_a_login(web: None) -> None:
    response = Client().get("/admin/ingest/source/")
    assert response.status_code == 302
    assert response["Location"].startswith("/admin/login/")


def test_source_list_shows_slot_and_filters_by_status_slot_and_url(
    admin: Client, make_source: Callable[..., Source]
) -> None:
    now = timezone.now()
    Node.objects.create(name="n0", slot=0, node_count=3, heartbeat_at=now)
    made = [make_source(f"http://upstream.test/feed/{i}.json") for i in range(12)]
    Source.objects.filter(pk=made[0].pk).update(last_status="failed", last_error="boom")

    page = admin.get("/admin/ingest/source/").content.decode()
    assert "slot = shard_hash mod 3" in page
    for source in made:
        assert source.url in page

    for slot in range(3):
        listed = admin.get(f"/admin/ingest/source/?slot={slot}").context["cl"].result_list
        expected = {s.url for s in made if sharding.slot_of(sharding.stable_hash(s.url), 3) == slot}
        assert {s.url for s in listed} == expected
        assert all(s.slot == slot for s in listed)

    failed = admin.get("/admin/ingest/source/?last_status__exact=failed").context["cl"]
    assert [s.url for s in failed.result_list] == [made[0].url]
    found = admin.get("/admin/ingest/source/?q=feed/7.json").context["cl"]
    assert [s.url for s in found.result_list] == [made[7].url]


def test_fetch_now_makes_a_backed_off_source_due_at_once(
    admin: Client, make_source: Callable[..., Source]
) -> None:
    later = timezone.now() + timedelta(minutes=30)
    backed_off = make_source(
        "http://upstream.test/a.json",
        last_status="failed",
        consecutive_failures=5,
        next_run_at=later,
    )
    untouched = make_source("http://upstream.test/b.json", next_run_at=later)
    assert _claim() == []  # neither is due

    page = _act(admin, "fetch_now", backed_off)
    assert "1 source(s) due now" in page
    backed_off.refresh_from_db()
    assert backed_off.next_run_at is not None
    assert backed_off.next_run_at <= leases.db_now()
    assert _claim() == [backed_off.pk]
    untouched.refresh_from_db()
    assert untouched.next_run_at == later


def test_fetch_now_skips_disabled_sources_and_says_so(
    admin: Client, make_source: Callable[..., Source]
) -> None:
    later = timezone.now() + timedelta(minutes=30)
    on = make_source("http://upstream.test/on.json", next_run_at=later)
    off = make_source("http://upstream.test/off.json", next_run_at=later, enabled=False)
    busy = make_source(
        "http://upstream.test/busy.json",
        next_run_at=later,
        lease_owner="node-b",
        lease_until=timezone.now() + timedelta(minutes=1),
    )

    page = _act(admin, "fetch_now", on, off, busy)
    assert "2 source(s) due now" in page
    assert "1 disabled source(s) skipped: enable them to fetch them." in page
    assert "1 of them being fetched right now" in page
    off.refresh_from_db()
    assert (off.enabled, off.next_run_at) == (False, later)  # not enabled, not made due
    on.refresh_from_db()
    assert on.next_run_at is not None
    assert on.next_run_at <= leases.db_now()

    page = _act(admin, "fetch_now", on)
    assert "skipped" not in page
    assert "being fetched" not in page


def test_disable_stops_claims_and_enable_restores_them(
    admin: Client, make_source: Callable[..., Source]
) -> None:
    off = make_source("http://upstream.test/off.json")
    on = make_source("http://upstream.test/on.json")

    assert "1 source(s) disabled" in _act(admin, "disable", off)
    off.refresh_from_db()
    assert off.enabled is False
    # Disabled sources are never claimed, whoever asks and whatever the shard.
    assert _claim() == [on.pk]
    view = membership.Static(
        slot=sharding.slot_of(sharding.stable_hash(off.url), 2), count=2, ttl=15
    )
    Source.objects.update(lease_owner="", lease_until=None)
    assert off.pk not in _claim(view)
    _act(admin, "fetch_now", off)  # skipped: fetch now never overrides a disable
    Source.objects.update(lease_owner="", lease_until=None)
    assert off.pk not in _claim()

    assert "1 source(s) enabled" in _act(admin, "enable", off)
    Source.objects.update(lease_owner="", lease_until=None)
    assert off.pk in _claim()


def test_reset_failures_forgets_the_streak(
    admin: Client, make_source: Callable[..., Source]
) -> None:
    failing = make_source(
        "http://upstream.test/bad.json",
        last_status="failed",
        last_error="HTTPStatusFailure: 500",
        consecutive_failures=9,
    )
    fine = make_source("http://upstream.test/ok.json", last_status="ok")

    assert "2 source(s) reset" in _act(admin, "reset_failures", failing, fine)
    failing.refresh_from_db()
    fine.refresh_from_db()
    assert (failing.consecutive_failures, failing.last_error, failing.last_status) == (0, "", "")
    assert fine.last_status == "ok"  # only a failed status is cleared


def test_source_added_in_the_admin_is_validated_and_sharded(admin: Client) -> None:
    form = {
        "url": "http://upstream.test/new.json",
        "parser": "json",
        "schedule": "H * * * *",
        "options": '{"key": "id"}',
        "enabled": "on",
    }
    bad = admin.post("/admin/ingest/source/add/", {**form, "schedule": "every tuesday"})
    assert bad.status_code == 200
    assert "invalid cron schedule" in bad.content.decode()
    bad = admin.post("/admin/ingest/source/add/", {**form, "url": "ftp://upstream.test/x"})
    assert "only absolute http:// and https:// URLs" in bad.content.decode()
    assert not Source.objects.exists()

    assert admin.post("/admin/ingest/source/add/", form).status_code == 302
    source = Source.objects.get()
    assert source.shard_hash == sharding.stable_hash(form["url"])

    # A new URL is a new shard and a new fetch: no stale validators are kept.
    Source.objects.filter(pk=source.pk).update(etag='"v1"', next_run_at=timezone.now())
    moved = {**form, "url": "http://upstream.test/moved.json"}
    assert admin.post(f"/admin/ingest/source/{source.pk}/change/", moved).status_code == 302
    source.refresh_from_db()
    assert source.shard_hash == sharding.stable_hash(moved["url"])
    assert (source.etag, source.next_run_at) == ("", None)


def test_runs_are_viewable_but_read_only(admin: Client, make_source: Callable[..., Source]) -> None:
    source = make_source("http://upstream.test/r.json")
    now = timezone.now()
    run = TaskRun.objects.create(
        node="n0",
        job="source:json",
        source=source,
        started_at=now,
        finished_at=now,
        status="failed",
        error="<b>boom</b>",
    )

    page = admin.get("/admin/ingest/taskrun/").content.decode()
    assert source.url in page
    assert "&lt;b&gt;boom&lt;/b&gt;" in page
    assert 'value="delete_selected"' not in page  # no bulk delete either
    detail = admin.get(f"/admin/ingest/taskrun/{run.pk}/change/")
    assert detail.status_code == 200
    assert 'name="_save"' not in detail.content.decode()

    Node.objects.create(name="n0", slot=0, node_count=1, heartbeat_at=now)
    TaskRun.objects.create(node="n1", job="aggregate", started_at=now, status="ok")
    by_node = admin.get("/admin/ingest/taskrun/?node=n0").context["cl"].result_list
    assert [r.pk for r in by_node] == [run.pk]

    assert admin.get("/admin/ingest/taskrun/add/").status_code == 403
    changed = admin.post(f"/admin/ingest/taskrun/{run.pk}/change/", {"status": "ok"})
    assert changed.status_code == 403
    assert admin.post(f"/admin/ingest/taskrun/{run.pk}/delete/", {"post": "yes"}).status_code == 403
    run.refresh_from_db()
    assert run.status == "failed"


def test_nodes_and_item_stats_are_read_only(admin: Client) -> None:
    now = timezone.now()
    node = Node.objects.create(name="n0", slot=0, node_count=1, heartbeat_at=now)
    item = Item.objects.create(key="ore", name="Iron Ore")
    stats = ItemStats.objects.create(item=item, avg=2, min=1, max=3, count=2, computed_at=now)

    nodes = admin.get("/admin/cluster/node/").content.decode()
    assert "n0" in nodes
    assert 'alt="True"' in nodes  # alive
    assert admin.get("/admin/cluster/node/add/").status_code == 403
    assert admin.post(f"/admin/cluster/node/{node.pk}/change/", {"slot": 5}).status_code == 403

    assert "Iron Ore" in admin.get("/admin/aggregates/itemstats/").content.decode()
    assert admin.get(f"/admin/aggregates/itemstats/{stats.pk}/change/").status_code == 200
    assert admin.get("/admin/aggregates/itemstats/add/").status_code == 403
    assert admin.post(f"/admin/aggregates/itemstats/{stats.pk}/delete/").status_code == 403
    assert admin.get("/admin/ingest/item/add/").status_code == 403
    assert "Iron Ore" in admin.get("/admin/ingest/item/?q=ore").content.decode()
    assert admin.post(f"/admin/ingest/item/{item.pk}/change/", {"name": "x"}).status_code == 403
    item.refresh_from_db()
    assert item.name == "Iron Ore"


def test_the_admins_css_is_served_by_the_node(web: None) -> None:
    client = Client()
    css = client.get("/static/admin/css/base.css")
    assert css.status_code == 200
    assert css["Content-Type"].startswith("text/css")
    assert not css.streaming  # read whole: ASGI would warn about a sync file iterator
    assert b"body" in css.content
    again = client.get("/static/admin/css/base.css", HTTP_IF_MODIFIED_SINCE=css["Last-Modified"])
    assert again.status_code == 304
    assert client.get("/static/admin/css/missing.css").status_code == 404
    # Only files the staticfiles finders know: no way out of the apps' static folders.
    assert client.get("/static/admin/../../../etl/settings.py").status_code in (400, 404)
    assert client.get("/static/%2e%2e/etl/settings.py").status_code in (400, 404)
