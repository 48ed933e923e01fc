"""The aggregation pass in real PostgreSQL: incremental == full == a plain GROUP BY."""

from __future__ import annotations

import math
import random
import threading
from collections.abc import Callable
from decimal import Decimal

import pytest
from django.db import connection, connections, transaction

from aggregates import aggregation
from aggregates.models import ItemStats, StatDelta
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
            "SELECT item_id, avg(value), min(value), max(value), count(*)"
            " FROM ingest_observation GROUP BY item_id"
        )
        return {row[0]: tuple(row[1:]) for row in cursor.fetchall()}  # type: ignore[misc]


def _assert_same(ours: Stats, expected: Stats, what: str = "") -> None:
    """Same items, exact min, max and count; avg equal up to float rounding (a sum moved
    by deltas and one added afresh may differ in the last bits, as two GROUP BY plans
    may)."""
    assert ours.keys() == expected.keys(), what
    for item, (avg, *exact) in ours.items():
        expected_avg, *expected_exact = expected[item]
        assert exact == expected_exact, f"{what} item {item}"
        assert math.isclose(avg, expected_avg, rel_tol=1e-12, abs_tol=1e-12), f"{what} {item}"


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
        _assert_same(incremental, _group_by(), f"round {round_}")
        assert not StatDelta.objects.exists()
        full = aggregation.run_pass(full=True)
        assert (full.mode, full.removed) == ("full", 0)  # no stale row to fix
        _assert_same(_table(), incremental, f"round {round_}")
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
    StatDelta.objects.all().delete()  # e.g. loaded before the aggregation existed
    assert aggregation.run_pass().mode == "full"
    assert ItemStats.objects.count() == 1


def test_concurrent_passes_one_runs_the_other_skips(make_source: Callable[..., Source]) -> None:
    src = make_source("http://h/p")
    _load(src, [("a", "", 1.0)])
    holding = threading.Event()
    release = threading.Event()
    outcome: list[aggregation.PassResult] = []
    original = aggregation._run

    def slow_run(cursor: object, full: bool) -> tuple[str, int, int, int, int]:
        result = original(cursor, full)
        holding.set()  # inside the pass, lock held, nothing committed yet
        assert release.wait(timeout=30)
        return result

    def first() -> None:
        try:
            outcome.append(aggregation.run_pass())
        finally:
            connections.close_all()

    aggregation._run = slow_run  # type: ignore[assignment]
    thread = threading.Thread(target=first)
    thread.start()
    try:
        assert holding.wait(timeout=30)
        aggregation._run = original  # type: ignore[assignment]
        second = aggregation.run_pass()  # same moment, another connection
    finally:
        aggregation._run = original  # type: ignore[assignment]
        release.set()
        thread.join(timeout=30)
    assert outcome[0].ran
    assert not second.ran
    assert "another aggregation pass" in second.reason
    assert ItemStats.objects.count() == 1  # written once
    assert aggregation.run_pass().ran  # the lock is gone with the transaction


def test_deltas_move_stats_without_rereading_observations(
    make_source: Callable[..., Source],
) -> None:
    a, b, c, d = (make_source(f"http://h/{name}") for name in "abcd")
    for source, value in ((a, 1.0), (b, 5.0), (c, 9.0)):
        _load(source, [("x", "", value)])
    assert aggregation.run_pass().mode == "full"

    def step() -> tuple[int, int, int]:
        result = aggregation.run_pass()
        assert result.mode == "incremental"
        _assert_same(_table(), _group_by())
        return result.items, result.changed, result.recomputed

    _load(b, [("x", "", 6.0)])  # strictly inside the range: arithmetic alone
    assert step() == (1, 1, 0)
    _load(d, [("x", "", 100.0)])  # a new maximum, nothing removed: arithmetic alone
    assert step() == (1, 1, 0)
    _load(b, [])  # a middle value goes
    assert step() == (1, 1, 0)
    _load(a, [("x", "", 2.0)])  # the minimum goes: x is read again
    assert step() == (1, 1, 1)
    stats = ItemStats.objects.get(item__key="x")
    assert (stats.min, stats.max, stats.count, stats.avg) == (2.0, 100.0, 3, 37.0)
    assert step() == (0, 0, 0)  # nothing logged: nothing to do


def test_pass_needs_a_transaction_of_its_own() -> None:
    with transaction.atomic(), pytest.raises(RuntimeError, match="transaction of its own"):
        aggregation.run_pass()


def test_a_total_off_by_rounding_is_kept_and_a_real_change_is_written(
    make_source: Callable[..., Source],
) -> None:
    # A parallel plan adds the same values in another order; its total may differ in the
    # last bits. Such a row is not rewritten, but any real change still is.
    a, b = make_source("http://h/a"), make_source("http://h/b")
    _load(a, [("x", "", 0.1)])
    _load(b, [("x", "", 0.2)])
    assert aggregation.run_pass(full=True).changed == 1
    stats = ItemStats.objects.get(item__key="x")
    ItemStats.objects.filter(pk=stats.pk).update(total=math.nextafter(stats.total, 1.0))
    assert aggregation.run_pass(full=True).changed == 0  # one ulp: the same sum
    ItemStats.objects.filter(pk=stats.pk).update(total=stats.total + 1e-9)
    assert aggregation.run_pass(full=True).changed == 1  # drifted beyond rounding: mended
    assert ItemStats.objects.get(pk=stats.pk).total == stats.total
    _load(a, [("x", "", 0.1 + 1e-12)])  # a real change, however small
    result = aggregation.run_pass()
    assert (result.mode, result.changed) == ("incremental", 1)
    _assert_same(_table(), _group_by())


def test_an_extreme_lost_is_probed_and_the_rest_moves_by_deltas(
    make_source: Callable[..., Source],
) -> None:
    sources = [make_source(f"http://h/{n}") for n in range(5)]
    for n, source in enumerate(sources):
        _load(source, [("x", "", float(n)), ("y", "", float(10 * n))])
    aggregation.run_pass(full=True)
    _load(sources[0], [("x", "", 2.5)])  # x loses its min 0.0; y (0.0) goes
    _load(sources[4], [("x", "", 4.0), ("y", "", 41.0)])  # y's max moves up
    result = aggregation.run_pass()
    assert (result.items, result.recomputed) == (2, 2)  # x's min, y's min probed
    _assert_same(_table(), _group_by())
    x = ItemStats.objects.get(item__key="x")
    assert (x.min, x.max, x.count) == (1.0, 4.0, 5)
    y = ItemStats.objects.get(item__key="y")
    assert (y.min, y.max, y.count) == (10.0, 41.0, 4)
