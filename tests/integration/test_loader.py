"""The loader against real PostgreSQL: set-based, idempotent, lease-checked."""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from django.db import connection, connections
from django.db.backends.base.base import BaseDatabaseWrapper
from django.utils.timezone import now

from ingest import loader, runs
from ingest.exceptions import LeaseLost
from ingest.models import (
    Item,
    Observation,
    Quest,
    QuestRequirement,
    QuestReward,
    Source,
    TaskRun,
    Trade,
)
from ingest.records import (
    ItemRecord,
    ObservationRecord,
    ParseResult,
    QuestLinkRecord,
    QuestRecord,
    TradeRecord,
    to_rows,
)
from tests.support.processes import wait_for

pytestmark = pytest.mark.django_db(transaction=True)


def _batch(source: Source, kind: str, rows: list, **kw: object) -> loader.Batch:  # type: ignore[type-arg]
    return loader.Batch(
        source_id=source.pk,
        node="n1",
        result=to_rows(ParseResult(kind=kind, records=tuple(rows), **kw)),  # type: ignore[arg-type]
    )


def _lease(source: Source, node: str = "n1") -> None:
    Source.objects.filter(pk=source.pk).update(lease_owner=node)


def test_items_upsert_is_idempotent_and_collapses_duplicates(
    make_source: Callable[..., Source],
) -> None:
    src = make_source("http://h/items", "items-json")
    _lease(src)
    rows = [
        ItemRecord(key="a", name="A", value=1.0),
        ItemRecord(key="b", name="B", value=2.0),
        ItemRecord(key="a", name="A2", value=3.0),  # same key later in the batch: it wins
    ]
    first = loader.load(_batch(src, "items", rows))
    assert first.rows_out == 2
    assert Item.objects.get(key="a").name == "A2"
    second = loader.load(_batch(src, "items", rows))
    assert second.rows_out == 0  # nothing changed, nothing written


def test_observations_are_replaced_by_the_latest_run(make_source: Callable[..., Source]) -> None:
    src = make_source("http://h/page")
    other = make_source("http://h/other")
    _lease(src)
    _lease(other)
    loader.load(_batch(other, "observations", [ObservationRecord(item_key="x", value=9.0)]))
    loader.load(
        _batch(
            src,
            "observations",
            [
                ObservationRecord(item_key="x", value=1.0),
                ObservationRecord(item_key="y", name="Why", value=2.0),
            ],
        )
    )
    assert Item.objects.get(key="y").name == "Why"  # created with its name
    assert Observation.objects.filter(source=src).count() == 2
    loader.load(_batch(src, "observations", [ObservationRecord(item_key="y", value=5.0)]))
    assert {(o.item.key, o.value) for o in Observation.objects.filter(source=src)} == {("y", 5.0)}
    # A page naming an item for the first time, beside known ones (and a duplicate key).
    page = [
        ObservationRecord(item_key="z", value=7.0),
        ObservationRecord(item_key="y", value=6.0),
        ObservationRecord(item_key="z", name="Zed", value=8.0),  # later in the page: it wins
    ]
    assert loader.load(_batch(src, "observations", page)).rows_out == 2
    assert Item.objects.get(key="z").name == "Zed"
    rows = {(o.item.key, o.value) for o in Observation.objects.filter(source=src)}
    assert rows == {("y", 6.0), ("z", 8.0)}
    # Another source's observation of "x" is untouched.
    assert Observation.objects.get(source=other).value == 9.0


def test_quest_links_to_missing_items_are_kept_and_resolved_later(
    make_source: Callable[..., Source],
) -> None:
    quests = make_source("http://h/quests", "quests-json")
    items = make_source("http://h/items", "items-json")
    _lease(quests)
    _lease(items)
    quest = QuestRecord(
        key="q1",
        title="Q",
        required=(QuestLinkRecord(item_key="later", quantity=2),),
        rewards=(
            QuestLinkRecord(item_key="later", quantity=1),
            QuestLinkRecord(item_key="gone", quantity=1),
        ),
    )
    loader.load(_batch(quests, "quests", [quest]))
    link = QuestRequirement.objects.get(quest__key="q1")
    assert link.item_id is None
    assert link.item_key == "later"
    assert link.quantity == 2
    loader.load(_batch(items, "items", [ItemRecord(key="later", name="Later")]))
    assert QuestRequirement.objects.get(quest__key="q1").item.key == "later"  # type: ignore[union-attr]
    assert QuestReward.objects.filter(quest__key="q1", item__key="later").exists()
    # A new version of the quest replaces its links.
    loader.load(
        _batch(
            quests,
            "quests",
            [
                QuestRecord(
                    key="q1", title="Q2", rewards=(QuestLinkRecord(item_key="later", quantity=4),)
                )
            ],
        )
    )
    assert Quest.objects.get(key="q1").title == "Q2"
    assert not QuestRequirement.objects.filter(quest__key="q1").exists()
    assert list(
        QuestReward.objects.filter(quest__key="q1").values_list("item_key", "quantity")
    ) == [("later", 4)]


def test_trades_load_only_above_the_cursor(make_source: Callable[..., Source]) -> None:
    src = make_source("http://h/trades", "trades-json")
    _lease(src)

    def trade(i: int) -> TradeRecord:
        return TradeRecord(
            id=i, item_key="a", price=1.5, quantity=1, traded_at="2026-01-01T00:00:00+00:00"
        )

    out = loader.load(_batch(src, "trades", [trade(1), trade(2), trade(3)], next_cursor=3))
    assert out.rows_out == 3
    assert out.cursor == 3
    Trade.objects.filter(pk=2).update(price=99)
    out = loader.load(_batch(src, "trades", [trade(2), trade(3), trade(4)], next_cursor=4))
    assert out.rows_out == 1
    assert out.cursor == 4
    assert Trade.objects.get(pk=2).price == 99  # below the cursor: never rewritten
    assert Source.objects.get(pk=src.pk).cursor == 4


def test_a_write_without_the_lease_is_refused(make_source: Callable[..., Source]) -> None:
    src = make_source("http://h/x")
    _lease(src, node="someone-else")
    with pytest.raises(LeaseLost, match="someone-else"):
        loader.load(_batch(src, "observations", [ObservationRecord(item_key="k")]))
    assert not Item.objects.filter(key="k").exists()  # nothing half-written


def test_one_batch_is_one_transaction(make_source: Callable[..., Source]) -> None:
    src = make_source("http://h/x")
    _lease(src)
    # A NUL byte reaching COPY fails the batch; no row of it may stay behind.
    with pytest.raises(Exception, match=r"0x00|NUL|null"):
        loader.load(
            _batch(
                src,
                "observations",
                [ObservationRecord(item_key="ok"), ObservationRecord(item_key="bad\x00")],
            )
        )
    assert not Item.objects.filter(key="ok").exists()
    assert connection.connection is None or not connection.in_atomic_block


def test_a_deadlock_victim_is_loaded_again(
    make_source: Callable[..., Source], caplog: pytest.LogCaptureFixture
) -> None:
    """A real deadlock: another session holds an item the load must update, then asks for
    the source row the load has locked. PostgreSQL checks for a deadlock once per wait,
    after ``deadlock_timeout``: the load's (5 s) runs out while both wait, the other's
    (60 s) does not, so the load is the one aborted; the loader tries it again, and it
    succeeds once the other session is done."""
    src = make_source("http://h/items", "items-json")
    _lease(src)
    loader.load(_batch(src, "items", [ItemRecord(key="a", name="A", value=1.0)]))
    holding = threading.Event()
    errors: list[Exception] = []

    def load_is_waiting(probe: BaseDatabaseWrapper) -> bool:
        with probe.cursor() as cursor:
            cursor.execute(
                "SELECT count(*) FROM pg_locks WHERE NOT granted AND pid <> pg_backend_pid()"
            )
            return bool(cursor.fetchone()[0])

    def other_session() -> None:
        # Django's connection objects belong to the thread that made them.
        other = connections.create_connection("default")  # a second session
        probe = connections.create_connection("default")
        try:
            other.set_autocommit(False)
            with other.cursor() as cursor:
                cursor.execute("SET deadlock_timeout = '60s'")
                cursor.execute("UPDATE ingest_item SET name = name WHERE key = 'a'")
                holding.set()
                wait_for(
                    lambda: load_is_waiting(probe), timeout=30, what="the load to wait for item a"
                )
                cursor.execute("SELECT 1 FROM ingest_source WHERE id = %s FOR UPDATE", [src.pk])
            other.commit()
        except Exception as exc:  # noqa: BLE001 - reported by the test's own thread
            errors.append(exc)
        finally:
            other.close()
            probe.close()

    thread = threading.Thread(target=other_session)
    thread.start()
    try:
        assert holding.wait(timeout=30)
        with connection.cursor() as cursor:
            cursor.execute("SET deadlock_timeout = '5s'")
        outcome = loader.load(_batch(src, "items", [ItemRecord(key="a", name="A2", value=2.0)]))
    finally:
        thread.join(timeout=60)
    assert not errors
    assert "load attempt 1 aborted by the server (40P01); retrying" in caplog.text
    assert outcome.rows_out == 1
    assert Item.objects.get(key="a").name == "A2"


def test_the_last_page_closes_its_run_in_the_same_transaction(
    make_source: Callable[..., Source],
) -> None:
    src = make_source("http://h/closing")
    Source.objects.filter(pk=src.pk).update(consecutive_failures=2)
    _lease(src)
    run = TaskRun.objects.create(node="n1", job="source:shop-html", source=src, started_at=now())
    next_run_at = now() + timedelta(hours=1)
    tally = runs.RunTally(bytes=123, attempts=1)
    tally.reject(4, "NaN is not a value")
    rows = [ObservationRecord(item_key="x", value=1.0), ObservationRecord(item_key="y", value=2.0)]
    batch = dataclasses.replace(
        _batch(src, "observations", rows),
        closing=runs.Closing(run_id=run.pk, next_run_at=next_run_at, tally=tally),
    )
    outcome = loader.load(batch)
    assert (outcome.closed, outcome.streak) == (True, (2, 0))  # a failure streak ended
    run.refresh_from_db()
    assert run.status == TaskRun.Status.OK
    assert run.finished_at is not None
    assert (run.rows_in, run.rows_out, run.rows_rejected, run.bytes) == (2, 2, 1, 123)
    src.refresh_from_db()
    assert (src.lease_owner, src.next_run_at, src.rows_loaded) == ("", next_run_at, 2)
    # An interruption noticed after that commit does not rewrite what was recorded.
    runs.abandon(run_id=run.pk, source_id=src.pk, node="n1", tally=runs.RunTally(status="failed"))
    run.refresh_from_db()
    assert run.status == TaskRun.Status.OK


def test_a_refused_last_page_leaves_its_run_open(make_source: Callable[..., Source]) -> None:
    src = make_source("http://h/taken")
    _lease(src, node="n2")  # taken over
    run = TaskRun.objects.create(node="n1", job="source:shop-html", source=src, started_at=now())
    batch = dataclasses.replace(
        _batch(src, "observations", [ObservationRecord(item_key="x", value=1.0)]),
        closing=runs.Closing(run_id=run.pk, next_run_at=now(), tally=runs.RunTally()),
    )
    with pytest.raises(LeaseLost):
        loader.load(batch)
    run.refresh_from_db()
    assert run.status == TaskRun.Status.RUNNING  # the pipeline records the failure
    assert not Observation.objects.filter(source=src).exists()
    assert Source.objects.get(pk=src.pk).lease_owner == "n2"


@pytest.mark.parametrize("links", ["quests", "trades"])
def test_links_and_their_items_loaded_at_once_still_meet(
    make_source: Callable[..., Source], monkeypatch: pytest.MonkeyPatch, links: str
) -> None:
    """Two loads at once (two nodes, or two connections of one): the items page has
    resolved the links it can see but not committed, when the links' page is loaded.
    Neither transaction sees the other's rows; the link must still end up joined."""
    items = make_source("http://h/items", "items-json")
    linking = make_source(f"http://h/{links}", f"{links}-json")
    _lease(items)
    _lease(linking)
    paused, resume = threading.Event(), threading.Event()
    errors: list[Exception] = []
    resolve = loader._resolve_dangling

    def resolve_then_pause(cursor: Any, stage: str) -> None:
        resolve(cursor, stage)
        paused.set()
        assert resume.wait(timeout=60)

    def in_a_thread(batch: loader.Batch) -> threading.Thread:
        def run() -> None:
            try:
                loader.load(batch)
            except Exception as exc:  # noqa: BLE001 - reported by the test's own thread
                errors.append(exc)
            finally:
                connection.close()  # this thread's own connection

        thread = threading.Thread(target=run)
        thread.start()
        return thread

    monkeypatch.setattr(loader, "_resolve_dangling", resolve_then_pause)
    first = in_a_thread(_batch(items, "items", [ItemRecord(key="a", name="A")]))
    assert paused.wait(timeout=30)
    if links == "quests":
        quest = QuestRecord(
            key="q", title="Q", required=(QuestLinkRecord(item_key="a", quantity=1),)
        )
        second = in_a_thread(_batch(linking, "quests", [quest]))
    else:
        trade = TradeRecord(
            id=1, item_key="a", price=1.0, quantity=1, traded_at="2026-01-01T00:00:00+00:00"
        )
        second = in_a_thread(_batch(linking, "trades", [trade], next_cursor=1))

    def second_waits_or_is_done() -> bool:
        if not second.is_alive():
            return True
        with connection.cursor() as cursor:
            cursor.execute("SELECT count(*) FROM pg_locks WHERE NOT granted")
            return bool(cursor.fetchone()[0])

    try:
        wait_for(second_waits_or_is_done, timeout=30, what="the links' load to wait or end")
    finally:
        resume.set()
        first.join(timeout=60)
        second.join(timeout=60)
    assert not errors
    if links == "quests":
        assert QuestRequirement.objects.get(quest__key="q").item_id == Item.objects.get(key="a").pk
    else:
        assert Trade.objects.get(pk=1).item_id == Item.objects.get(key="a").pk
