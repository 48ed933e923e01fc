"""The aggregation pass: ``ItemStats`` recomputed from observations with set-based SQL.

Full mode recomputes every item in one statement. Incremental mode (the default)
recomputes only the items the loader marked dirty; both run the same statement, so
they produce the same table. ``avg`` adds the values in ascending order: float addition
depends on order, the scan order differs between the two modes, and an incremental pass
must give exactly what a full pass gives (summing as numeric would too, at three times the cost).

A pass holds a transaction-scoped advisory lock; a second caller at the same moment
does not wait or deadlock, it skips and says so.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass

from django.db import connection, transaction

# A fixed 63-bit key for pg_try_advisory_xact_lock, derived from a name (not hash()).
LOCK_KEY = int.from_bytes(hashlib.blake2b(b"shardetl.aggregate", digest_size=8).digest()) >> 1

_FULL_SCOPE = """
    fresh AS (
        SELECT item_id, avg(value ORDER BY value) AS avg, min(value) AS min,
               max(value) AS max, count(*) AS count
        FROM ingest_observation GROUP BY item_id),
    stale AS (SELECT item_id FROM aggregates_itemstats)"""

_DIRTY_SCOPE = """
    fresh AS (
        SELECT o.item_id, avg(o.value ORDER BY o.value) AS avg, min(o.value) AS min,
               max(o.value) AS max, count(*) AS count
        FROM ingest_observation o JOIN taken t ON t.item_id = o.item_id
        GROUP BY o.item_id),
    stale AS (SELECT item_id FROM taken)"""

_TAKE_ALL = "taken AS (DELETE FROM aggregates_dirtyitem RETURNING item_id)"
# Incremental: the dirty ids were taken by a statement of their own, so the planner sees
# how few they are (index scans) rather than guessing at a DELETE … RETURNING. Its
# snapshot is older than this statement's, so every change taken is visible here; one
# that lands in between is computed now and again next pass, which is harmless.
_TAKEN = "taken AS (SELECT unnest(%s::bigint[]) AS item_id)"

_STATEMENT = """
WITH {taken},
{scope},
upserted AS (
    INSERT INTO aggregates_itemstats AS s (item_id, avg, min, max, count, computed_at)
    SELECT item_id, avg, min, max, count, now() FROM fresh
    ON CONFLICT (item_id) DO UPDATE
    SET avg = EXCLUDED.avg, min = EXCLUDED.min, max = EXCLUDED.max,
        count = EXCLUDED.count, computed_at = EXCLUDED.computed_at
    WHERE (s.avg, s.min, s.max, s.count)
          IS DISTINCT FROM (EXCLUDED.avg, EXCLUDED.min, EXCLUDED.max, EXCLUDED.count)
    RETURNING 1),
removed AS (
    DELETE FROM aggregates_itemstats s
    WHERE s.item_id IN (SELECT item_id FROM stale)
      AND NOT EXISTS (SELECT 1 FROM fresh f WHERE f.item_id = s.item_id)
    RETURNING 1)
SELECT (SELECT count(*) FROM fresh), (SELECT count(*) FROM upserted),
       (SELECT count(*) FROM removed)
"""


@dataclass(frozen=True, slots=True, kw_only=True)
class PassResult:
    ran: bool
    mode: str = ""
    items: int = 0  # items recomputed
    changed: int = 0  # stats rows inserted or updated
    removed: int = 0  # stats rows of items with no observations left
    seconds: float = 0.0
    reason: str = ""


def _needs_full(cursor: object) -> bool:
    # Stats never computed but observations exist (e.g. loaded before this table):
    # the dirty set cannot know about them.
    cursor.execute(  # type: ignore[attr-defined]
        "SELECT NOT EXISTS (SELECT 1 FROM aggregates_itemstats)"
        " AND EXISTS (SELECT 1 FROM ingest_observation)"
    )
    return bool(cursor.fetchone()[0])  # type: ignore[attr-defined]


def run_pass(*, full: bool = False) -> PassResult:
    """One aggregation pass (sync; call through ``etl.db.call``)."""
    started = time.perf_counter()
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_xact_lock(%s)", [LOCK_KEY])
        row = cursor.fetchone()
        if not (row and row[0]):
            return PassResult(ran=False, reason="another aggregation pass is running; skipped")
        full = full or _needs_full(cursor)
        if full:
            cursor.execute(_STATEMENT.format(taken=_TAKE_ALL, scope=_FULL_SCOPE))
        else:
            cursor.execute("DELETE FROM aggregates_dirtyitem RETURNING item_id")
            dirty = [row[0] for row in cursor.fetchall()]
            cursor.execute(_STATEMENT.format(taken=_TAKEN, scope=_DIRTY_SCOPE), [dirty])
        items, changed, removed = cursor.fetchone()
    return PassResult(
        ran=True,
        mode="full" if full else "incremental",
        items=items,
        changed=changed,
        removed=removed,
        seconds=time.perf_counter() - started,
    )
