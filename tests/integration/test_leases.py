"""Leases in real PostgreSQL: disjoint claims, expiry, renewal, release."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any

import pytest
from django.db import connections
from django.db.models import F
from django.utils import timezone

from cluster import leases, membership
from ingest.models import Source

pytestmark = pytest.mark.django_db(transaction=True)
ALL = membership.Everything()


def _claim(node: str, limit: int = 100, view: membership.Ownership = ALL, **kw: Any) -> list[int]:
    try:
        return [
            c.id
            for c in leases.claim_due(node=node, view=view, limit=limit, lease_seconds=60, **kw)
        ]
    finally:
        connections.close_all()


def test_concurrent_claims_are_disjoint(make_source: Callable[..., Source]) -> None:
    for i in range(200):
        make_source(f"http://h/{i}")
    with ThreadPoolExecutor(4) as pool:
        claims = list(pool.map(lambda n: _claim(f"n{n}", limit=60), range(4)))
    flat = [sid for claim in claims for sid in claim]
    assert len(flat) == len(set(flat)) == 200  # every source once, none twice
    assert _claim("late") == []  # all leased


def test_shard_selection_happens_in_sql(make_source: Callable[..., Source]) -> None:
    made = [make_source(f"http://h/{i}") for i in range(90)]
    owned = {
        slot: set(_claim(f"n{slot}", view=membership.Static(slot=slot, count=3, ttl=15)))
        for slot in range(3)
    }
    for src in made:
        assert src.pk in owned[src.shard_hash % 3]
    assert sum(len(ids) for ids in owned.values()) == 90


def test_expired_leases_become_claimable_and_renewal_keeps_them(
    make_source: Callable[..., Source],
) -> None:
    a = make_source("http://h/a")
    b = make_source("http://h/b")
    assert sorted(_claim("dead")) == sorted([a.pk, b.pk])
    assert leases.renew(node="dead", ids=[a.pk], lease_seconds=60) == [a.pk]
    # "dead" stops renewing b: its lease runs out.
    Source.objects.filter(pk=b.pk).update(lease_until=timezone.now() - timedelta(seconds=1))
    assert _claim("alive") == [b.pk]
    assert leases.renew(node="dead", ids=[b.pk], lease_seconds=60) == []  # lost it
    assert leases.release_all(node="dead") == 1
    assert _claim("alive") == [a.pk]


def test_due_before_bounds_a_one_shot_pass(make_source: Callable[..., Source]) -> None:
    src = make_source("http://h/x")
    Source.objects.filter(pk=src.pk).update(next_run_at=F("created_at"))
    start = src.created_at - timedelta(seconds=10)
    assert _claim("n", due_before=start) == []  # came due after the pass began
    assert _claim("n", due_before=timezone.now()) == [src.pk]
