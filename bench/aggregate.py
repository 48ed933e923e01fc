"""Aggregation pass: full mode beside a raw GROUP BY, incremental beside full.

    python bench/aggregate.py [--observations 1000000] [--items 10000] [--quick]

Fills ``ingest_observation`` with OBSERVATIONS rows over ITEMS items (COPY, not
measured), then prints, from one run:

* a full pass beside a raw ``SELECT item_id, avg, min, max, count … GROUP BY item_id``
  over the same table, fetched to the client (target ≤ 2×);
* an incremental pass after 1 % of the observations changed, beside a full pass after
  the same change (target ≤ 0.1×).

Each figure is the median of ``--repeat`` runs. It never fails on a missed target.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import _common

RAW = (
    "SELECT item_id, avg(value), min(value), max(value), count(*)"
    " FROM ingest_observation GROUP BY item_id"
)


def _fill(observations: int, items: int, seed: int) -> None:
    from django.db import connection, transaction

    from cluster import sharding

    per_source = items
    sources = max(1, observations // per_source)
    _common.reset_tables()  # restarts the ids too, which the COPYs below rely on
    rng = random.Random(seed)
    with transaction.atomic(), connection.cursor() as cursor:
        with cursor.cursor.copy(
            "COPY ingest_item (key, name, image, updated_at) FROM STDIN"
        ) as copy:
            for i in range(items):
                copy.write_row((f"item-{i:06d}", f"Item {i}", "", "2026-01-01T00:00:00Z"))
        with cursor.cursor.copy(
            "COPY ingest_source (url, parser, schedule, options, shard_hash, enabled, created_at,"
            " lease_owner, etag, last_modified, last_status, last_error, rows_loaded,"
            " consecutive_failures) FROM STDIN"
        ) as copy:
            for s in range(sources):
                url = f"http://bench/shops/{s}.html"
                copy.write_row(
                    (
                        url,
                        "shop-html",
                        "H * * * *",
                        "{}",
                        sharding.stable_hash(url),
                        True,
                        "2026-01-01T00:00:00Z",
                        "",
                        "",
                        "",
                        "",
                        "",
                        0,
                        0,
                    )
                )
        with cursor.cursor.copy(
            "COPY ingest_observation (item_id, source_id, value, observed_at) FROM STDIN"
        ) as copy:
            for s in range(1, sources + 1):
                for i in range(1, items + 1):
                    copy.write_row((i, s, round(rng.uniform(1, 500), 2), "2026-01-01T00:00:00Z"))
    _common.execute("VACUUM ANALYZE ingest_observation", "VACUUM ANALYZE ingest_item")


def _raw_group_by() -> float:
    from django.db import connection

    with _common.stopwatch() as t, connection.cursor() as cursor:
        cursor.execute(RAW)
        cursor.fetchall()
    return t[0]


def _pass(*, full: bool) -> float:
    """Seconds of one aggregation pass."""
    from aggregates import aggregation

    with _common.stopwatch() as t:
        aggregation.run_pass(full=full)
    return t[0]


def _change(fraction: float, rng: random.Random, *, spread: bool) -> tuple[int, int]:
    """Change ``fraction`` of the observations; return (observations, items) touched.

    ``spread``: rows drawn uniformly (1 % of 1M rows touches ~63 % of 10k items);
    otherwise every observation of ``fraction`` of the items (a price change).
    """
    from django.db import connection

    if spread:
        where = "id IN (SELECT id FROM ingest_observation ORDER BY random() LIMIT %s)"
        arg = int(_common.count("ingest_observation") * fraction)
    else:
        where = "item_id IN (SELECT id FROM ingest_item ORDER BY random() LIMIT %s)"
        arg = max(1, int(_common.count("ingest_item") * fraction))
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE ingest_observation SET value = value + 1 WHERE {where} RETURNING item_id",
            [arg],
        )
        touched = [row[0] for row in cursor.fetchall()]
        return len(touched), len(set(touched))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--observations", type=int, default=1_000_000)
    parser.add_argument("--items", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="100k observations, 1 repeat")
    parser.add_argument("--seed", type=int, default=7)
    opts = parser.parse_args()
    if opts.quick:
        opts.observations, opts.repeat = 100_000, 1
    db = _common.bench_database()
    _common.setup_django(db)
    rng = random.Random(opts.seed)
    _fill(opts.observations, opts.items, opts.seed)

    raw = statistics.median(_raw_group_by() for _ in range(opts.repeat))
    fresh = []
    for _ in range(opts.repeat):
        _common.empty_derived()
        fresh.append(_pass(full=True))
    steady = statistics.median(_pass(full=True) for _ in range(opts.repeat))

    scenarios = {}
    for spread in (False, True):
        incremental, full_after = [], []
        touched = (0, 0)
        for _ in range(opts.repeat):
            touched = _change(0.01, rng, spread=spread)
            incremental.append(_pass(full=False))
            _change(0.01, rng, spread=spread)
            full_after.append(_pass(full=True))
        scenarios[spread] = (touched, statistics.median(incremental), statistics.median(full_after))
    rows: list[_common.Row | str] = [
        f"Full pass over {opts.observations:,} observations / {opts.items:,} items",
        _common.Row(
            what="full pass, empty ItemStats",
            ours=statistics.median(fresh) * 1000,
            baseline=raw * 1000,
            unit="ms",
            note="baseline: raw GROUP BY fetched; target ≤ 2×",
        ),
        _common.Row(
            what="full pass, nothing changed",
            ours=steady * 1000,
            baseline=raw * 1000,
            unit="ms",
            note="writes nothing (IS DISTINCT FROM)",
        ),
        *(
            row
            for spread, ((obs, items), inc, full) in scenarios.items()
            for row in (
                f"Incremental, 1 % of observations changed: {obs:,} rows of {items:,} items"
                + (" (spread)" if spread else " (1 % of items)"),
                _common.Row(
                    what="incremental pass",
                    ours=inc * 1000,
                    baseline=full * 1000,
                    unit="ms",
                    note="baseline: full pass after the same change; target ≤ 0.1×",
                ),
            )
        ),
    ]
    _common.print_report(
        "bench/aggregate.py",
        [
            f"$ {_common.command_line()}",
            f"{_common.server_version()} ({db.label}); {_common.machine()}",
            f"median of {opts.repeat} run(s) each",
        ],
        rows,
        [
            "ours keeps sum and count per item and moves them by the logged changes; "
            "a full pass re-adds everything (avg agrees to float rounding)",
        ],
    )


if __name__ == "__main__":
    main()
