"""The aggregation pass in real PostgreSQL: incremental == full == a plain GROUP BY."""

from __future__ import annotations

import random
import threading
from collections.abc import Callable
from decimal import Decimal

import pytest
from django.db import connection, connections, transaction

from aggregates import aggregation
from aggregates.models import DirtyItem, ItemStats
from ingest import loader
from ingest.models import Item, Observation, Source
from ingest.records import Rows

pytestmark = pytest.mark.django_db(transaction=True)

Stats = dict[int, tuple[float, float, float, int]]


def _table() -> Stats:
    return {s.item_id: (s.avg, s.min, s.max, s.count) for s in ItemStats.objects.all()}


def _group_by() -> Stats:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT item_id, avg(value ORDER BY value), min(value), max(value), count(*)"
            " FROM ingest_observation GROUP BY item_id"
        )
        return {row[0]: tuple(row[1:]) for row in cursor.fetchall()}  # type: ignore[misc]


def _python() -> dict[int, tuple[Decimal, float, float, int]]:
    values: dict[int, list[float]] = {}
    for item_id, value in Observation.objects.values_list("item_id", "value"):
        values.setdefault(item_id, []).append(value)
    return {
        item: (sum(map(Decimal, vs)) / len(vs), min(vs), max(vs), len(vs))
        for item, vs in values.items()
    }


def _load(source: Source, rows: list[tuple[str, str, float]]) -> None:
    loader.load(
        loader.Batch(
            source_id=source.pk,
            node="t",
            result=Rows(kind="observations", rows=rows),  # type: ignore[arg-type]
            check_lease=False,
        )
    )


def test_incremental_equals_full_equals_group_by(make_source: Callable[..., Source]) -> None:
    rng = random.Random(20261127)
    keys = [f"k{i}" for i in range(60)]
    sources = [make_source(f"http://h/{i}") for i in range(8)]
    for round_ in range(25):
        # Random inserts, updates and deletions, through the real loader, plus deletions
        # behind the loader's back (a source removed: its observations cascade).
        for source in rng.sample(sources, k=rng.randint(1, len(sources))):
            page = rng.sample(keys, k=rng.randint(0, 20))
            _load(source, [(k, "", round(rng.uniform(-50, 500), 2)) for k in page])
        if round_ % 7 == 6:
            victim = sources.pop(rng.randrange(len(sources)))
            victim.delete()
            sources.append(
                Source.objects.create(url=f"http://h/new{round_}", parser="json", shard_hash=round_)
            )
        if round_ % 5 == 4:
            Observation.objects.filter(value__lt=0).update(value=0)
        result = aggregation.run_pass(full=False)
        assert result.ran
        incremental = _table()
        assert incremental == _group_by(), f"round {round_}"
        assert not DirtyItem.objects.exists()
        full = aggregation.run_pass(full=True)
        assert (full.mode, full.changed, full.removed) == ("full", 0, 0)  # nothing to fix
        assert _table() == incremental
    expected = _python()
    for item_id, (avg, mn, mx, count) in _table().items():
        exact = expected[item_id]
        assert (mn, mx, count) == exact[1:]
        assert abs(Decimal(avg) - exact[0]) <= abs(exact[0]) * Decimal("1e-15") + Decimal("1e-15")


def test_items_without_observations_lose_their_stats(make_source: Callable[..., Source]) -> None:
    src = make_source("http://h/p")
    _load(src, [("a", "", 1.0), ("b", "", 2.0)])
    aggregation.run_pass()
    assert set(ItemStats.objects.values_list("item__key", flat=True)) == {"a", "b"}
    _load(src, [("b", "", 4.0)])  # "a" disappeared from the page
    result = aggregation.run_pass()
    assert (result.items, result.changed, result.removed) == (1, 1, 1)
    stats = ItemStats.objects.get()
    assert (stats.item.key, stats.avg, stats.count) == ("b", 4.0, 1)
    assert Item.objects.filter(key="a").exists()  # the item stays; only its stats go


def test_first_pass_is_full_when_stats_were_never_computed(
    make_source: Callable[..., Source],
) -> None:
    src = make_source("http://h/p")
    _load(src, [("a", "", 1.0)])
    DirtyItem.objects.all().delete()  # e.g. loaded before the aggregation existed
    assert aggregation.run_pass().mode == "full"
    assert ItemStats.objects.count() == 1


def test_concurrent_passes_one_runs_the_other_skips(make_source: Callable[..., Source]) -> None:
    src = make_source("http://h/p")
    _load(src, [("a", "", 1.0)])
    holding = threading.Event()
    release = threading.Event()
    outcome: list[aggregation.PassResult] = []

    def first() -> None:
        try:
            with transaction.atomic():
                outcome.append(aggregation.run_pass())  # inner atomic: a savepoint
                holding.set()  # the advisory lock lives until this transaction ends
                assert release.wait(timeout=30)
        finally:
            connections.close_all()

    thread = threading.Thread(target=first)
    thread.start()
    try:
        assert holding.wait(timeout=30)
        second = aggregation.run_pass()  # same moment, another connection
    finally:
        release.set()
        thread.join(timeout=30)
    assert outcome[0].ran
    assert not second.ran
    assert "another aggregation pass" in second.reason
    assert ItemStats.objects.count() == 1  # written once
    assert aggregation.run_pass().ran  # the lock is gone with the transaction
