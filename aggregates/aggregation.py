"""The aggregation pass: ``ItemStats`` kept equal to what a ``GROUP BY`` would give.

Full mode recomputes every item from ``ingest_observation`` in one statement.
Incremental mode (the default) applies the deltas the triggers logged since the last
pass (``aggregates_statdelta``: per statement and item, the exact sum and count added
minus removed, and the extremes of each side). Sum and count move by arithmetic; a
minimum or maximum that a removed value may have been is probed again, one lookup in the
(item, value) index; only an item with no stats yet is read whole. Its cost follows the
number of changes, not the size of the table.

Rounding: ``min``, ``max`` and ``count`` are exact in both modes. ``total`` is a float
sum, so a total moved by deltas can differ from one added up afresh in the last bits (as
two plain ``GROUP BY`` plans can: float addition depends on order); ``avg`` agrees to
about 1e-15 relative. Exact sums (``numeric``) would cost five times the full pass, for
digits no one reads. A full pass rewrites any row that drifted; the ``aggregate-full``
job runs one daily.

Consistency: the pass runs in one REPEATABLE READ snapshot, so the deltas it takes are
exactly the changes its reads of observations can see; a change committed meanwhile is
neither in the stats nor taken, and the next pass applies it.

A pass holds a transaction-scoped advisory lock; a second caller at the same moment
does not wait or deadlock, it skips and says so.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from typing import Any

from django.db import connection, transaction
from django.db.utils import OperationalError

# A fixed 63-bit key for pg_try_advisory_xact_lock, derived from a name (not hash()).
LOCK_KEY = int.from_bytes(hashlib.blake2b(b"shardetl.aggregate", digest_size=8).digest()) >> 1

# The one definition of a stats row from an item's observations, for both modes.
_STATS = "sum(value) AS total, count(*) AS count, min(value) AS min, max(value) AS max"

_WRITE = """
upserted AS (
    INSERT INTO aggregates_itemstats AS s (item_id, total, count, min, max, avg, computed_at)
    SELECT item_id, total, count, min, max, total / count, now()
    FROM fresh
    ON CONFLICT (item_id) DO UPDATE
    SET total = EXCLUDED.total, count = EXCLUDED.count, min = EXCLUDED.min,
        max = EXCLUDED.max, avg = EXCLUDED.avg, computed_at = EXCLUDED.computed_at
    WHERE (s.count, s.min, s.max) IS DISTINCT FROM (EXCLUDED.count, EXCLUDED.min, EXCLUDED.max)
       -- Totals are float sums: the same values added in another order (a parallel
       -- plan's workers) can differ in the last bits. A difference within the rounding
       -- bound of summing them, count * count * the largest |value| * 2^-53, is no change.
       OR abs(s.total - EXCLUDED.total) > EXCLUDED.count::float8 * EXCLUDED.count
              * greatest(abs(EXCLUDED.min), abs(EXCLUDED.max)) * 1.1102230246251565e-16
    RETURNING 1),
removed AS (
    DELETE FROM aggregates_itemstats s
    WHERE s.item_id IN (SELECT item_id FROM stale)
      AND NOT EXISTS (SELECT 1 FROM fresh f WHERE f.item_id = s.item_id)
    RETURNING 1)
SELECT (SELECT count(*) FROM fresh), (SELECT count(*) FROM upserted),
       (SELECT count(*) FROM removed), {recomputed}
"""

# Full mode groups into a temporary table first: a read-only statement may use parallel
# workers, and a data-modifying one (the upsert) never does; this halves the pass.
_GROUP = f"""
CREATE TEMPORARY TABLE fresh ON COMMIT DROP AS
SELECT item_id, {_STATS} FROM ingest_observation GROUP BY item_id
"""

_FULL = f"""
WITH stale AS (SELECT item_id FROM aggregates_itemstats),
{_WRITE.format(recomputed="(SELECT count(*) FROM fresh)")}"""

# Deltas summed per item into a temporary table by a statement of their own: the pass's
# statement then plans with their real number (a CTE's would be a guess), and they never
# travel to the client and back.
_TAKE = """
CREATE TEMPORARY TABLE d ON COMMIT DROP AS
WITH taken AS (DELETE FROM aggregates_statdelta RETURNING *)
SELECT item_id, sum(total) AS total, sum(count) AS count, min(added_min) AS added_min,
       max(added_max) AS added_max, min(removed_min) AS removed_min,
       max(removed_max) AS removed_max
FROM taken GROUP BY item_id
"""

# An extreme of one item from its observations: one probe of the (item, value) index.
_EXTREME = "(SELECT {fn}(value) FROM ingest_observation o WHERE o.item_id = j.item_id)"

_INCREMENTAL = f"""
WITH j AS (
    SELECT d.*, s.item_id IS NOT NULL AS known, s.total AS s_total, s.count AS s_count,
           s.min AS s_min, s.max AS s_max,
           d.removed_min <= s.min AS lost_min, d.removed_max >= s.max AS lost_max
    FROM d LEFT JOIN aggregates_itemstats s ON s.item_id = d.item_id),
fresh AS (
    -- Items without stats yet: read whole (one index range each, LATERAL).
    SELECT j.item_id, o.total, o.count, o.min, o.max
    FROM j CROSS JOIN LATERAL (
        SELECT {_STATS} FROM ingest_observation WHERE item_id = j.item_id) o
    WHERE NOT j.known AND o.count > 0
    UNION ALL
    -- The rest move by the deltas: sum and count exactly; an extreme that a removed
    -- value may have been is probed again, otherwise the added values can only widen it.
    SELECT item_id, s_total + total, s_count + count,
           CASE WHEN lost_min THEN {_EXTREME.format(fn="min")}
                ELSE least(s_min, added_min) END,
           CASE WHEN lost_max THEN {_EXTREME.format(fn="max")}
                ELSE greatest(s_max, added_max) END
    FROM j
    WHERE known AND s_count + count > 0),
-- Rows that may have to go: items whose count reached zero.
stale AS (SELECT item_id FROM j WHERE known AND s_count + count <= 0),
{_WRITE.format(recomputed="(SELECT count(*) FROM j WHERE NOT known OR lost_min OR lost_max)")}"""


@dataclass(frozen=True, slots=True, kw_only=True)
class PassResult:
    ran: bool
    mode: str = ""
    items: int = 0  # items whose stats were computed (recomputed or moved by deltas)
    changed: int = 0  # stats rows inserted or updated
    removed: int = 0  # stats rows of items with no observations left
    recomputed: int = 0  # items new to the stats or whose min/max was probed again
    seconds: float = 0.0
    reason: str = ""


_SKIPPED = "another aggregation pass is running; skipped"


def _needs_full(cursor: Any) -> bool:
    # Stats never computed (or forgotten by a TRUNCATE) but observations exist: the
    # deltas cannot know about rows loaded before them.
    cursor.execute(
        "SELECT NOT EXISTS (SELECT 1 FROM aggregates_itemstats)"
        " AND EXISTS (SELECT 1 FROM ingest_observation)"
    )
    return bool(cursor.fetchone()[0])


def _run(cursor: Any, full: bool) -> tuple[str, int, int, int, int]:
    full = full or _needs_full(cursor)
    if full:
        cursor.execute("DELETE FROM aggregates_statdelta")  # all subsumed by this snapshot
        cursor.execute(_GROUP)
        cursor.execute(_FULL)
    else:
        cursor.execute(_TAKE)
        cursor.execute(_INCREMENTAL)
    items, changed, removed, recomputed = cursor.fetchone()
    return ("full" if full else "incremental"), items, changed, removed, recomputed


def run_pass(*, full: bool = False) -> PassResult:
    """One aggregation pass (sync; call through ``etl.db.call``).

    Must start its own transaction: the snapshot is set by its first statement.
    """
    if connection.in_atomic_block:
        raise RuntimeError("run_pass needs a transaction of its own (REPEATABLE READ)")
    started = time.perf_counter()
    try:
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            # The planner's cost guesses for these statements cross the JIT threshold,
            # and compiling them takes longer (seconds) than running them.
            cursor.execute("SET LOCAL jit = off")
            cursor.execute("SELECT pg_try_advisory_xact_lock(%s)", [LOCK_KEY])
            if not cursor.fetchone()[0]:
                return PassResult(ran=False, reason=_SKIPPED)
            mode, items, changed, removed, recomputed = _run(cursor, full)
    except OperationalError as exc:
        # The snapshot predates a pass that committed just before this one took the
        # lock: its writes collide with ours and PostgreSQL refuses ours. Nothing was
        # written; the other pass did the work.
        if getattr(exc.__cause__, "sqlstate", None) == "40001":
            return PassResult(ran=False, reason=_SKIPPED)
        raise
    return PassResult(
        ran=True,
        mode=mode,
        items=items,
        changed=changed,
        removed=removed,
        recomputed=recomputed,
        seconds=time.perf_counter() - started,
    )
