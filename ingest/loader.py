"""How parsed records become rows: one transaction per batch, set-based upserts.

Every batch is COPYed into a session-local staging table and merged with one
``INSERT … SELECT … ON CONFLICT DO UPDATE`` per table, so the cost does not grow with a
query per row. Duplicate keys inside a batch are collapsed in SQL (``DISTINCT ON``, the
last row wins) because ``ON CONFLICT`` refuses to touch one row twice. Updates that
would not change anything are skipped (``IS DISTINCT FROM``), so loading the same body
twice writes nothing.

These functions are sync on purpose: they need ``transaction.atomic`` and COPY. Async
callers go through :mod:`etl.db`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from django.db import connection, transaction
from django.db.utils import OperationalError

from ingest import records, runs
from ingest.exceptions import LeaseLost, LoadError

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True, kw_only=True)
class Batch:
    """One parsed body to load for a source, with the HTTP validators to remember."""

    source_id: int
    node: str
    result: records.Rows
    etag: str = ""
    last_modified: str = ""
    check_lease: bool = True
    closing: runs.Closing | None = None  # this is the run's last page: close it too


@dataclass(frozen=True, slots=True, kw_only=True)
class LoadOutcome:
    rows_in: int
    rows_out: int
    cursor: int | None = None
    closed: bool = False  # the run was closed in the same transaction (Batch.closing)
    streak: runs.Streak = None  # from runs.close, when closed


_STAGING = {
    "items": "seq int, key text, name text, image text, value float8",
    "observations": "seq int, key text, name text, value float8",
    "quests": "seq int, key text, title text, image text, text text",
    "quest_links": "seq int, quest_key text, kind char(1), item_key text, quantity int",
    "trades": "id bigint, item_key text, price float8, quantity int, traded_at timestamptz",
}


# Binary COPY where every column's Python value maps to its type without parsing (trades
# keep text: their times arrive as ISO strings).
_BINARY = {
    "items": ["int4", "text", "text", "text", "float8"],
    "observations": ["int4", "text", "text", "float8"],
}


def _stage(cursor: Any, table: str, rows: Iterable[Sequence[Any]]) -> None:
    columns = ", ".join(col.split()[0] for col in _STAGING[table].split(", "))
    cursor.execute(
        f"CREATE TEMP TABLE IF NOT EXISTS stage_{table} ({_STAGING[table]}) ON COMMIT DELETE ROWS"
    )
    types = _BINARY.get(table)
    binary = " (FORMAT BINARY)" if types else ""
    with cursor.cursor.copy(f"COPY stage_{table} ({columns}) FROM STDIN{binary}") as copy:
        if types:
            copy.set_types(types)
        for row in rows:
            copy.write_row(row)


# Links to items (quest links, trades) and the items they name may arrive in two loads
# that run at once, on two nodes or two connections of one. Each side looks for the
# other with a statement of its own: the link insert joins the items it can see, the
# item load resolves the links it can see. Seen from two open transactions, neither sees
# the other, and the link would stay dangling for ever. So both statements run under one
# transaction-scoped advisory lock: whichever side takes it second starts its statement
# after the first has committed, and sees its rows.
_LINKS_KEY = int.from_bytes(hashlib.blake2b(b"shardetl.item-links", digest_size=8).digest()) >> 1


def _lock_links(cursor: Any) -> None:
    cursor.execute("SELECT pg_advisory_xact_lock(%s)", [_LINKS_KEY])


def _resolve_dangling(cursor: Any, stage: str) -> None:
    """Point quest links and trades that named a not-yet-loaded item at it now."""
    _lock_links(cursor)
    for table in ("ingest_questrequirement", "ingest_questreward", "ingest_trade"):
        cursor.execute(
            f"""
            UPDATE {table} t SET item_id = i.id
            FROM ingest_item i
            WHERE t.item_id IS NULL AND t.item_key = i.key
              AND i.key IN (SELECT key FROM {stage})
            """
        )


def _load_items(cursor: Any, batch: Batch) -> int:
    _stage(cursor, "items", ((seq, *row) for seq, row in enumerate(batch.result.rows)))
    cursor.execute(
        """
        INSERT INTO ingest_item (key, name, image, value, updated_at)
        SELECT DISTINCT ON (key) key, name, image, value, now()
        FROM stage_items ORDER BY key, seq DESC
        ON CONFLICT (key) DO UPDATE
        SET name = EXCLUDED.name, image = EXCLUDED.image, value = EXCLUDED.value,
            updated_at = EXCLUDED.updated_at
        WHERE (ingest_item.name, ingest_item.image, ingest_item.value)
              IS DISTINCT FROM (EXCLUDED.name, EXCLUDED.image, EXCLUDED.value)
        """
    )
    written: int = cursor.rowcount
    _resolve_dangling(cursor, "stage_items")
    return written


def _load_observations(cursor: Any, batch: Batch) -> int:
    rows = batch.result.rows
    _stage(cursor, "observations", ((seq, *row) for seq, row in enumerate(rows)))
    cursor.execute(
        "SELECT EXISTS (SELECT 1 FROM ingest_observation WHERE source_id = %s)",
        [batch.source_id],
    )
    row = cursor.fetchone()
    first = not (row and row[0])
    # Items are looked up by key as the rows are written; only when some key names no
    # item yet (rare once a catalogue is loaded) are those items created and their rows
    # written after, which spares every other batch a statement.
    written, resolved = _write_observations(cursor, batch.source_id, first=first)
    if resolved < len({row[0] for row in rows}):
        cursor.execute(
            """
            INSERT INTO ingest_item (key, name, image, value, updated_at)
            SELECT DISTINCT ON (key) key, COALESCE(NULLIF(name, ''), key), '', NULL, now()
            FROM stage_observations ORDER BY key, seq DESC
            ON CONFLICT (key) DO NOTHING
            """
        )
        if cursor.rowcount:
            _resolve_dangling(cursor, "stage_observations")
        cursor.execute(
            f"""
            INSERT INTO ingest_observation (item_id, source_id, value, observed_at)
            SELECT i.id, %s, s.value, now() FROM {_LATEST_OBSERVATIONS}
            ON CONFLICT (source_id, item_id) DO NOTHING
            """,
            [batch.source_id],
        )
        written += cursor.rowcount
    return written


# The page's last value of each key, with its item's id (keys naming no item drop out).
_LATEST_OBSERVATIONS = """
    (SELECT DISTINCT ON (key) key, value FROM stage_observations ORDER BY key, seq DESC) s
    JOIN ingest_item i ON i.key = s.key
"""


def _write_observations(cursor: Any, source_id: int, *, first: bool) -> tuple[int, int]:
    """Write the staged rows whose item exists; return (rows written, keys resolved)."""
    if first:
        # First load of this source (its row is locked: no one else is loading it):
        # nothing to replace or update, so a plain INSERT.
        cursor.execute(
            f"""
            INSERT INTO ingest_observation (item_id, source_id, value, observed_at)
            SELECT i.id, %s, s.value, now() FROM {_LATEST_OBSERVATIONS}
            """,
            [source_id],
        )
        inserted: int = cursor.rowcount
        return inserted, inserted
    # The source's observations are replaced by this run: keys gone from the page go.
    # (Triggers log what changed for the aggregation pass.)
    cursor.execute(
        f"""
        WITH r AS MATERIALIZED (  -- keys resolved to item ids once, for both statements
            SELECT i.id AS item_id, s.value FROM {_LATEST_OBSERVATIONS}
        ), gone AS (
            DELETE FROM ingest_observation o
            WHERE o.source_id = %(source)s AND o.item_id NOT IN (SELECT item_id FROM r)
            RETURNING o.item_id
        ), written AS (
            INSERT INTO ingest_observation (item_id, source_id, value, observed_at)
            SELECT item_id, %(source)s, value, now() FROM r
            ON CONFLICT (source_id, item_id) DO UPDATE
            SET value = EXCLUDED.value, observed_at = EXCLUDED.observed_at
            WHERE ingest_observation.value IS DISTINCT FROM EXCLUDED.value
            RETURNING item_id
        )
        SELECT (SELECT count(*) FROM gone) + (SELECT count(*) FROM written),
               (SELECT count(*) FROM r)
        """,
        {"source": source_id},
    )
    row = cursor.fetchone()
    return (int(row[0]), int(row[1])) if row else (0, 0)


def _quest_links(rows: Sequence[tuple[Any, ...]]) -> Iterable[tuple[int, str, str, str, int]]:
    seq = 0
    for key, _title, _image, _text, required, rewards in rows:
        for kind, links in (("r", required), ("w", rewards)):
            for item_key, quantity in links:
                seq += 1
                yield (seq, key, kind, item_key, quantity)


_LINK_TABLES = {"r": "ingest_questrequirement", "w": "ingest_questreward"}


def _load_quests(cursor: Any, batch: Batch) -> int:
    rows = batch.result.rows
    _stage(cursor, "quests", ((seq, *row[:4]) for seq, row in enumerate(rows)))
    _stage(cursor, "quest_links", _quest_links(rows))
    cursor.execute(
        """
        INSERT INTO ingest_quest (key, title, image, text)
        SELECT DISTINCT ON (key) key, title, image, text
        FROM stage_quests ORDER BY key, seq DESC
        ON CONFLICT (key) DO UPDATE
        SET title = EXCLUDED.title, image = EXCLUDED.image, text = EXCLUDED.text
        WHERE (ingest_quest.title, ingest_quest.image, ingest_quest.text)
              IS DISTINCT FROM (EXCLUDED.title, EXCLUDED.image, EXCLUDED.text)
        """
    )
    written: int = cursor.rowcount
    _lock_links(cursor)  # before the link inserts look for their items
    for kind, table in _LINK_TABLES.items():
        # A quest's links are replaced by the latest version of the quest.
        cursor.execute(
            f"""
            DELETE FROM {table} t USING ingest_quest q
            WHERE t.quest_id = q.id AND q.key IN (SELECT key FROM stage_quests)
              AND NOT EXISTS (SELECT 1 FROM stage_quest_links l
                              WHERE l.kind = %s AND l.quest_key = q.key
                                AND l.item_key = t.item_key)
            """,
            [kind],
        )
        written += cursor.rowcount
        cursor.execute(
            f"""
            INSERT INTO {table} (quest_id, item_key, item_id, quantity)
            SELECT q.id, l.item_key, i.id, l.quantity
            FROM (SELECT DISTINCT ON (quest_key, item_key) quest_key, item_key, quantity
                  FROM stage_quest_links WHERE kind = %s
                  ORDER BY quest_key, item_key, seq DESC) l
            JOIN ingest_quest q ON q.key = l.quest_key
            LEFT JOIN ingest_item i ON i.key = l.item_key
            ON CONFLICT (quest_id, item_key) DO UPDATE
            SET quantity = EXCLUDED.quantity, item_id = EXCLUDED.item_id
            WHERE ({table}.quantity, {table}.item_id)
                  IS DISTINCT FROM (EXCLUDED.quantity, EXCLUDED.item_id)
            """,
            [kind],
        )
        written += cursor.rowcount
    return written


def _load_trades(cursor: Any, batch: Batch, cursor_before: int | None) -> int:
    _stage(cursor, "trades", batch.result.rows)
    _lock_links(cursor)  # before the insert looks for the trades' items
    cursor.execute(
        """
        INSERT INTO ingest_trade (id, item_key, item_id, source_id, price, quantity, traded_at)
        SELECT DISTINCT ON (s.id) s.id, s.item_key, i.id, %s, s.price, s.quantity, s.traded_at
        FROM stage_trades s LEFT JOIN ingest_item i ON i.key = s.item_key
        WHERE s.id > %s
        ORDER BY s.id
        ON CONFLICT (id) DO NOTHING
        """,
        [batch.source_id, cursor_before or 0],
    )
    written: int = cursor.rowcount
    return written


def _lock_source(cursor: Any, batch: Batch) -> int | None:
    cursor.execute(
        "SELECT lease_owner, cursor FROM ingest_source WHERE id = %s FOR UPDATE",
        [batch.source_id],
    )
    row = cursor.fetchone()
    if row is None:
        raise LoadError(f"source {batch.source_id} no longer exists")
    owner, cursor_before = row
    if batch.check_lease and owner != batch.node:
        raise LeaseLost(
            f"lease of source {batch.source_id} is held by {owner or 'nobody'!r}, "
            f"not {batch.node!r}; write refused"
        )
    return cursor_before


# Deadlock and serialization failures are the database asking for the transaction again:
# it rolled everything back, so a retry is safe.
_TRANSIENT = {"40P01", "40001"}
ATTEMPTS = 3


def load(batch: Batch) -> LoadOutcome:
    """Write one parsed body in one transaction; raise LeaseLost if we lost the source.

    A transaction the server aborted as a deadlock victim or a serialization failure is
    tried again, up to ``ATTEMPTS`` times in all.
    """
    for attempt in range(1, ATTEMPTS + 1):
        try:
            return _load_once(batch)
        except OperationalError as exc:
            code = getattr(exc.__cause__, "sqlstate", None)
            if code not in _TRANSIENT or attempt == ATTEMPTS:
                raise
            # node and source are log fields (etl.logs), set by the pipeline's context.
            log.warning("load attempt %d aborted by the server (%s); retrying", attempt, code)
    raise AssertionError("unreachable")


def _load_once(batch: Batch) -> LoadOutcome:
    result = batch.result
    with transaction.atomic(), connection.cursor() as cursor:
        cursor_before = _lock_source(cursor, batch)
        if result.kind == "items":
            written = _load_items(cursor, batch)
        elif result.kind == "observations":
            written = _load_observations(cursor, batch)
        elif result.kind == "quests":
            written = _load_quests(cursor, batch)
        elif result.kind == "trades":
            written = _load_trades(cursor, batch, cursor_before)
        else:
            raise LoadError(f"parser produced unknown record kind {result.kind!r}")
        new_cursor = cursor_before
        if result.next_cursor is not None:
            new_cursor = max(cursor_before or 0, result.next_cursor)
        validators = runs.Validators(
            etag=batch.etag, last_modified=batch.last_modified, cursor=new_cursor
        )
        if batch.closing is not None:
            # The run's last page: one statement stores the validators, closes the run
            # and schedules the source.
            tally = dataclasses.replace(
                batch.closing.tally,
                rows_in=batch.closing.tally.rows_in + len(result.rows),
                rows_out=batch.closing.tally.rows_out + written,
            )
            streak = runs.close(
                cursor,
                dataclasses.replace(batch.closing, tally=tally),
                source_id=batch.source_id,
                node=batch.node,
                validators=validators,
            )
            return LoadOutcome(
                rows_in=len(result.rows),
                rows_out=written,
                cursor=new_cursor,
                closed=True,
                streak=streak,
            )
        # consecutive_failures is left to runs.finish_source, which reports the streak a
        # successful run ends (notifications: "source recovered").
        cursor.execute(
            """
            UPDATE ingest_source
            SET etag = %s, last_modified = %s, cursor = %s, last_fetched_at = now(),
                last_status = 'ok', last_error = ''
            WHERE id = %s
            """,
            [batch.etag, batch.last_modified, new_cursor, batch.source_id],
        )
    return LoadOutcome(rows_in=len(result.rows), rows_out=written, cursor=new_cursor)
