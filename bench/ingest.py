"""Ingest benchmark: the loader against raw COPY, the pipeline against fetch-only.

    python bench/ingest.py [--rows N] [--batch-rows N] [--shops N] [--quick] ...

1. Loader vs raw COPY: the same observations (default 1,000,000) are COPYed straight
   into ``ingest_observation`` (text COPY, ``write_row``, one transaction), then loaded
   with ``loader.load`` one source batch at a time through ``etl.db.load``, as the
   pipeline does: fresh, then (for a share of the sources, on the full table) re-loaded
   unchanged and re-loaded with every value changed.
2. Shop pages/s: the sample upstream's shop pages fetched only, then run through
   ``batch.run_due`` (fetch, parse in the process pool, load), with the same
   ``FetchLimits`` and the same number of requests in flight; plus fetch-only at a few
   concurrency settings.

Everything runs in the ``shardetl_bench`` database (see ``bench/_common.py``) whose
tables are truncated before each measured run and at the end. A missed target is printed,
never an exit status: the exit status is non-zero only when something failed.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # see bench/_common.py

import argparse
import asyncio
import contextlib
import dataclasses
import os
import random
import statistics
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from bench import _common
from bench._common import Row

NODE = "bench-node"
COPY_SQL = "COPY ingest_observation (item_id, source_id, value, observed_at) FROM STDIN"
FRESH_TARGET = 0.5


# -- options ---------------------------------------------------------------------------


def _options(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python bench/ingest.py",
        description="Loader vs raw COPY, and pipeline vs fetch-only, measured in one run.",
    )
    parser.add_argument("--rows", type=int, help="observations to load (default 1,000,000)")
    parser.add_argument(
        "--batch-rows", type=int, default=1000, help="observations per source batch"
    )
    parser.add_argument("--items", type=int, default=10_000, help="item catalogue size")
    parser.add_argument("--shops", type=int, help="shop pages to fetch (default 500)")
    parser.add_argument("--items-per-shop", type=int, default=100)
    parser.add_argument(
        "--sweep", default="1,4,16", help="fetch-only connection counts (comma-separated)"
    )
    parser.add_argument(
        "--upstream",
        choices=("process", "thread"),
        default="process",
        help="serve the sample upstream in a subprocess (default) or a thread of this process",
    )
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument(
        "--time-limit", type=float, default=600.0, help="seconds allowed per measured run"
    )
    parser.add_argument(
        "--reload-share",
        type=float,
        default=0.25,
        help="share of the sources re-loaded for the unchanged and update runs (default 0.25)",
    )
    parser.add_argument(
        "--batched-copy",
        action="store_true",
        help="also time raw COPY committed once per batch (the cost of the commits alone)",
    )
    parser.add_argument("--skip-loader", action="store_true")
    parser.add_argument("--skip-pages", action="store_true")
    parser.add_argument(
        "--quick", action="store_true", help="CI smoke sizes: 100,000 rows and 100 shops"
    )
    opts = parser.parse_args(argv)
    opts.rows = opts.rows or (100_000 if opts.quick else 1_000_000)
    opts.shops = opts.shops or (100 if opts.quick else 500)
    try:
        opts.sweep = sorted({int(part) for part in opts.sweep.split(",") if part.strip()})
    except ValueError:
        parser.error("--sweep takes comma-separated integers, e.g. 1,4,16")
    if opts.batch_rows < 1 or opts.rows < opts.batch_rows:
        parser.error("--rows must be at least --batch-rows, which must be at least 1")
    if not 1 <= opts.batch_rows <= opts.items:
        parser.error("--batch-rows cannot exceed --items (a batch has distinct items)")
    if not 0 < opts.reload_share <= 1:
        parser.error("--reload-share must be in (0, 1]")
    if opts.shops < 1 or opts.items_per_shop < 1 or any(c < 1 for c in opts.sweep):
        parser.error("--shops, --items-per-shop and --sweep values must be positive")
    return opts


# -- database state --------------------------------------------------------------------


def empty_observations() -> None:
    _common.execute(f"TRUNCATE {', '.join(['ingest_observation', *_common.derived_tables()])}")
    checkpoint()


def checkpoint() -> None:
    """Write out what earlier runs left dirty, so no measured run pays for another's.

    Without it the checkpoint that raw COPY's WAL sets off lands in whichever run comes
    next, and moved the fresh-load ratio by ±0.05 from run to run."""
    from django.db.utils import DatabaseError

    try:
        _common.execute("CHECKPOINT")
    except DatabaseError:  # needs superuser or pg_checkpoint: the figures are just noisier
        print("note: CHECKPOINT not allowed for this user; runs are not isolated")


# -- 1. loader vs raw COPY -------------------------------------------------------------


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class LoadData:
    sources: int
    copy_rows: list[tuple[int, int, float, datetime]]
    fresh: list[Any]  # loader.Batch
    changed: list[Any]  # loader.Batch for the first ``reload`` sources, every value changed


def _make_items(count: int) -> tuple[dict[str, int], dict[str, str]]:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            """
            INSERT INTO ingest_item (key, name, image, value, updated_at)
            SELECT format('item-%%s', lpad(g::text, 6, '0')), format('Bench item %%s', g),
                   '', NULL, now()
            FROM generate_series(1, %s) g
            RETURNING key, id, name
            """,
            [count],
        )
        rows = cursor.fetchall()
    return {key: pk for key, pk, _ in rows}, {key: name for key, _, name in rows}


def _make_sources(count: int) -> list[int]:
    from cluster import sharding
    from ingest.models import Source

    # Leased to us (the loader checks it) and not due, as during a real run.
    until = datetime.now(UTC) + timedelta(days=1)
    sources = []
    for n in range(count):
        url = f"http://bench.invalid/observations/{n}.html"
        sources.append(
            Source(
                url=url,
                parser="shop-html",
                shard_hash=sharding.stable_hash(url),
                lease_owner=NODE,
                lease_until=until,
                next_run_at=until,
            )
        )
    return [s.pk for s in Source.objects.bulk_create(sources, batch_size=1000)]


def prepare_load(opts: argparse.Namespace) -> LoadData:
    """Items and sources in the database; the rows to load, built outside any timing."""
    from ingest import loader, records

    _common.reset_tables()
    ids, names = _make_items(opts.items)
    _common.execute("ANALYZE ingest_item")
    source_ids = _make_sources(opts.rows // opts.batch_rows)
    keys = sorted(ids)
    observed_at = datetime.now(UTC)
    copy_rows: list[tuple[int, int, float, datetime]] = []
    fresh: list[loader.Batch] = []
    changed: list[loader.Batch] = []
    reload = max(1, round(opts.reload_share * len(source_ids)))
    for n, source_id in enumerate(source_ids):
        rng = random.Random(f"{opts.seed}:{source_id}")
        chosen = [keys[i] for i in sorted(rng.sample(range(len(keys)), opts.batch_rows))]
        values = [round(rng.uniform(1.0, 500.0), 2) for _ in chosen]
        copy_rows.extend(
            (ids[key], source_id, value, observed_at)
            for key, value in zip(chosen, values, strict=True)
        )
        for shift, out in ((0.0, fresh), (1.0, changed))[: 2 if n < reload else 1]:
            # What the parse pool hands the loader: (key, name, value) per observation.
            rows = [
                (key, names[key], value + shift) for key, value in zip(chosen, values, strict=True)
            ]
            out.append(
                loader.Batch(
                    source_id=source_id,
                    node=NODE,
                    result=records.Rows(kind="observations", rows=rows),
                    etag='"bench"',
                )
            )
    return LoadData(sources=len(source_ids), copy_rows=copy_rows, fresh=fresh, changed=changed)


def _copy(rows: Sequence[tuple[Any, ...]], *, per: int, deadline: _common.Deadline) -> float:
    """Raw text COPY of ``rows``, committing every ``per`` rows; return the seconds."""
    from django.db import connection, transaction

    with _common.stopwatch() as elapsed:
        for start in range(0, len(rows), per):
            with (
                transaction.atomic(),
                connection.cursor() as cursor,
                cursor.cursor.copy(COPY_SQL) as copy,
            ):
                for row in rows[start : start + per]:
                    copy.write_row(row)
            deadline.check()
    return elapsed[0]


async def _load_all(batches: Sequence[Any], deadline: _common.Deadline) -> tuple[float, int]:
    """Load every batch as the pipeline does (one ``db.load`` each); (seconds, rows_out)."""
    from etl import db
    from ingest import loader

    written = 0
    with _common.stopwatch() as elapsed:
        for one in batches:
            outcome = await db.load(loader.load, one)
            written += outcome.rows_out
            deadline.check()
    return elapsed[0], written


def bench_loader(opts: argparse.Namespace) -> tuple[list[Row | str], list[str]]:
    data = prepare_load(opts)
    total = len(data.copy_rows)

    def limit(what: str) -> _common.Deadline:
        return _common.Deadline(opts.time_limit, what)

    def check_count(expected: int, after: str) -> None:
        found = _common.count("ingest_observation")
        if found != expected:
            raise RuntimeError(f"after {after}: {found} observations, expected {expected}")

    empty_observations()
    copy_seconds = _copy(data.copy_rows, per=total, deadline=limit("raw COPY"))
    check_count(total, "raw COPY")

    copy_batched: float | None = None
    if opts.batched_copy:
        empty_observations()
        copy_batched = _copy(data.copy_rows, per=opts.batch_rows, deadline=limit("batched COPY"))
        check_count(total, "batched COPY")

    empty_observations()
    fresh_seconds, fresh_out = asyncio.run(_load_all(data.fresh, limit("fresh load")))
    check_count(total, "fresh load")
    if fresh_out != total:
        raise RuntimeError(f"fresh load wrote {fresh_out} rows, expected {total}")

    # Between runs, as autovacuum and the aggregation pass would have done in steady state.
    _common.execute("VACUUM ANALYZE ingest_observation")
    _common.empty_derived()
    checkpoint()
    again = data.fresh[: len(data.changed)]
    reloaded = sum(len(one.result.rows) for one in again)
    same_seconds, same_out = asyncio.run(_load_all(again, limit("unchanged re-load")))
    if same_out != 0:
        raise RuntimeError(f"unchanged re-load wrote {same_out} rows, expected 0")

    _common.empty_derived()
    checkpoint()
    changed_seconds, changed_out = asyncio.run(_load_all(data.changed, limit("update load")))
    check_count(total, "update load")
    if changed_out != reloaded:
        raise RuntimeError(f"update load wrote {changed_out} rows, expected {reloaded}")

    copy_rate = total / copy_seconds
    fresh_rate = total / fresh_seconds
    verdict = "met" if fresh_rate / copy_rate >= FRESH_TARGET else "MISSED"
    rows: list[Row | str] = [
        f"Loader vs raw COPY, {total:,} rows",
        Row(
            what="load fresh (all INSERT)",
            ours=fresh_rate,
            baseline=copy_rate,
            unit="rows/s",
            note=f"{fresh_seconds:.1f} s vs {copy_seconds:.1f} s; "
            f"target ≥ {FRESH_TARGET:.2f}×: {verdict}",
        ),
        Row(
            what="re-load unchanged (0 written)",
            ours=reloaded / same_seconds,
            baseline=copy_rate,
            unit="rows/s",
            note=f"{same_seconds:.1f} s for {reloaded:,} rows",
        ),
        Row(
            what="load pure updates (all UPDATE)",
            ours=reloaded / changed_seconds,
            baseline=copy_rate,
            unit="rows/s",
            note=f"{changed_seconds:.1f} s for {reloaded:,} rows",
        ),
    ]
    if copy_batched is not None:
        rows.append(
            Row(
                what="ref: raw COPY, 1 transaction per batch",
                ours=total / copy_batched,
                baseline=copy_rate,
                unit="rows/s",
                note=f"{copy_batched:.1f} s: what {data.sources:,} commits alone cost",
            )
        )
    notes = [
        f"Loader: {data.sources:,} batches of {opts.batch_rows:,} distinct items each from "
        f"{opts.items:,} items created beforehand for both sides; one loader.load (one "
        "transaction, lease checked) per batch through etl.db.load, as the pipeline calls it. "
        "Baseline: the same rows as (item_id, source_id, value, observed_at), one text COPY "
        "with write_row in one transaction. Rows are built before timing; commits are timed; "
        "both sides pay the same deferred FK checks and delta-log triggers.",
        "State: ingest_observation and the delta log are TRUNCATEd before the COPY and "
        "fresh runs; ANALYZE ingest_item once; ingest_observation is not analysed before the "
        "fresh runs (empty, as at a first ingest); VACUUM ANALYZE ingest_observation and an "
        "empty delta log before the unchanged and update runs, which re-load the "
        f"first {len(again):,} of the {data.sources:,} sources (--reload-share "
        f"{opts.reload_share:g}) on the full table. A CHECKPOINT before every measured run. "
        f"synchronous_commit={_common.setting('synchronous_commit')}, "
        f"shared_buffers={_common.setting('shared_buffers')}.",
    ]
    return rows, notes


# -- 2. shop pages: fetch+parse+load vs fetch-only -------------------------------------

# The sample upstream keeps its 256 most recent pages rendered; the sweep stays inside that.
SWEEP_PAGES = 200
SWEEP_REQUESTS = 300  # at least, so that each setting runs for a second or so
PARSE_ROUNDS = 100
_TINY_PAGE = b'<table class="prices"><tbody><tr data-key="k"><td class="price">1</td></tr></tbody>'


async def fetch_all(
    urls: Sequence[str], limits: Any, in_flight: int, deadline: _common.Deadline
) -> tuple[float, int]:
    """Fetch every URL with ``in_flight`` workers over one Fetcher; (seconds, bytes)."""
    import etl
    from ingest import fetch

    pending = iter(urls)
    received = [0, 0]  # pages, bytes

    async def worker(fetcher: fetch.Fetcher) -> None:
        for url in pending:  # one shared iterator: each URL is fetched once
            result = await fetcher.fetch(url)
            if result.status != 200 or not result.body:
                raise RuntimeError(f"fetch-only: {url} answered {result.status}")
            received[0] += 1
            received[1] += len(result.body)

    with _common.stopwatch() as elapsed:
        async with (
            asyncio.timeout(deadline.left()),
            fetch.Fetcher(limits=limits, user_agent=fetch.user_agent(etl.__version__, NODE)) as f,
        ):
            await asyncio.gather(*(worker(f) for _ in range(in_flight)))
    if received[0] != len(urls):
        raise RuntimeError(f"fetch-only fetched {received[0]} of {len(urls)} pages")
    return elapsed[0], received[1]


def _register_shops(base: str, shops: int) -> list[str]:
    from ingest import sources

    urls = [f"{base}/shops/{n}.html" for n in range(1, shops + 1)]
    specs = (sources.SourceSpec(url=u, parser="shop-html", schedule="H/15 * * * *") for u in urls)
    created, _ = sources.register(specs)
    if created != shops:
        raise RuntimeError(f"registered {created} shop sources, expected {shops}")
    return urls


async def run_pipeline(
    settings: Any, limits: Any, deadline: _common.Deadline, page: bytes
) -> tuple[float, float, Any, tuple[float, float]]:
    """``run_due`` over every due source with a started, warm parse pool, as in a node.

    Returns (seconds to start and warm the pool, seconds of ``run_due``, its summary,
    median seconds of one ``page`` parsed through the pool and in this process).
    """
    from cluster import batch, membership
    from ingest import parsers
    from ingest.pool import ParsePool

    pool = ParsePool(settings.parse_workers)
    try:
        async with asyncio.timeout(deadline.left()):
            with _common.stopwatch() as warming:
                await pool.start()
                # One parse per child, so each has imported the parsers before timing.
                tiny = [
                    pool.parse("shop-html", _TINY_PAGE, url="http://bench.invalid/", options={})
                    for _ in range(2 * settings.parse_workers)
                ]
                await asyncio.gather(*tiny)
            trips, here = [], []
            for _ in range(PARSE_ROUNDS):  # one at a time: the round trip, not throughput
                with _common.stopwatch() as trip:
                    await pool.parse("shop-html", page, url="http://bench.invalid/", options={})
                trips.append(trip[0])
                with _common.stopwatch() as local:
                    parsers.parse("shop-html", page, url="http://bench.invalid/", options={})
                here.append(local[0])
            with _common.stopwatch() as elapsed:
                summary = await batch.run_due(
                    settings, membership.Everything(), limits=limits, pool=pool
                )
    finally:
        await pool.close()
    return warming[0], elapsed[0], summary, (statistics.median(trips), statistics.median(here))


def _check_pipeline(summary: Any, urls: Sequence[str], per_page: int) -> None:
    if summary.failures or summary.runs != len(urls):
        shown = "; ".join(f"{url}: {error}" for url, error in summary.failures[:3])
        raise RuntimeError(f"pipeline: {summary.runs} runs of {len(urls)}; failures: {shown}")
    expected = len(urls) * per_page
    if (found := _common.count("ingest_observation")) != expected:
        raise RuntimeError(f"pipeline loaded {found} observations, expected {expected}")


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def bench_pages(opts: argparse.Namespace) -> tuple[list[Row | str], list[str]]:
    import httpx

    from etl.config import Settings
    from ingest import fetch
    from upstream import UpstreamConfig

    settings = dataclasses.replace(Settings.from_env(), node_name=NODE)
    limits = fetch.FetchLimits(
        concurrency=settings.http_concurrency,
        per_host=settings.per_host_concurrency,
        max_body_bytes=settings.max_body_bytes,
    )
    per_page = min(opts.items_per_shop, opts.items)
    config = UpstreamConfig(
        seed=opts.seed, items=opts.items, shops=opts.shops, items_per_shop=per_page
    )

    def limit(what: str) -> _common.Deadline:
        return _common.Deadline(opts.time_limit, what)

    _common.reset_tables()
    in_flight = settings.http_concurrency
    with _common.upstream(config, mode=opts.upstream) as base:
        urls = _register_shops(base, opts.shops)
        # An unmeasured pass first: every measured pass (all in page order) then meets the
        # upstream's render cache in the same state.
        asyncio.run(fetch_all(urls, limits, in_flight, limit("warm-up")))
        only_seconds, only_bytes = asyncio.run(
            fetch_all(urls, limits, in_flight, limit("fetch-only"))
        )
        # The sweep: as many requests, over pages the upstream keeps rendered, so that the
        # figures are the client's and the loopback's rather than page rendering.
        cached = urls[:SWEEP_PAGES]
        swept_urls = [cached[i % len(cached)] for i in range(max(len(urls), SWEEP_REQUESTS))]
        asyncio.run(fetch_all(cached, limits, in_flight, limit("warm-up")))
        sweep: list[tuple[int, float]] = []
        for connections in opts.sweep:
            swept = fetch.FetchLimits(
                concurrency=connections, per_host=connections, max_body_bytes=limits.max_body_bytes
            )
            seconds, _ = asyncio.run(
                fetch_all(swept_urls, swept, connections, limit(f"fetch-only ×{connections}"))
            )
            sweep.append((connections, len(swept_urls) / seconds))
        page = httpx.get(urls[0], timeout=30).content
        pool_seconds, full_seconds, summary, (trip, local) = asyncio.run(
            run_pipeline(settings, limits, limit("pipeline"), page)
        )
    _check_pipeline(summary, urls, per_page)

    pages = len(urls)
    rows: list[Row | str] = [
        f"Shop pages/s, {pages:,} pages",
        Row(
            what="fetch+parse+load (run_due)",
            ours=pages / full_seconds,
            baseline=pages / only_seconds,
            unit="pages/s",
            note=f"{full_seconds:.2f} s vs fetch-only {only_seconds:.2f} s",
        ),
    ]
    first = sweep[0]
    rows.extend(
        Row(
            what=f"fetch-only, {_plural(connections, 'connection')}",
            ours=rate,
            baseline=first[1],
            unit="pages/s",
            note=f"vs {_plural(first[0], 'connection')}; {len(swept_urls)} requests",
        )
        for connections, rate in sweep
    )
    rows.extend(
        [
            "One shop page parsed, one at a time",
            Row(
                what="parse through the pool",
                ours=trip * 1000,
                baseline=local * 1000,
                unit="ms",
                note=f"median of {PARSE_ROUNDS}; baseline: the same parser in this process",
            ),
        ]
    )
    where = (
        "a subprocess (python -m etl upstream): no GIL shared with the client"
        if opts.upstream == "process"
        else "a thread of this process (tests.support.servers): it shares the client's GIL"
    )
    cache_state = "every request renders its page" if pages > 256 else "every page is cached"
    notes = [
        f"Pages: {per_page} items each, {only_bytes / pages / 1024:.1f} KiB decoded "
        f"(gzip on the wire). Both sides use FetchLimits(concurrency={limits.concurrency}, "
        f"per_host={limits.per_host}) and {in_flight} requests in flight "
        "(ETL_HTTP_CONCURRENCY); all pages are on one host, so per_host caps both at "
        f"{min(limits.per_host, limits.concurrency)} concurrent fetches. run_due: "
        f"{settings.parse_workers} parse workers (ETL_PARSE_WORKERS), started and warmed "
        f"before timing ({pool_seconds:.2f} s, not counted), empty tables (the loader "
        "creates the items), TaskRun records included.",
        f"Upstream in {where}. Its render cache holds 256 pages: with {pages} pages "
        f"{cache_state} in both measured passes (after one unmeasured pass). The sweep "
        f"sets concurrency = per_host = in flight = N and fetches {len(swept_urls)} times "
        f"from the first {len(cached)} pages, all cached.",
    ]
    return rows, notes


# -- main ------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    opts = _options(argv)
    db = _common.bench_database()
    started = time.perf_counter()
    _common.setup_django(db)
    from django.db import connections

    header = [
        f"[bold]$ {_common.command_line()}[/bold]",
        f"{_common.server_version()} ({db.label}); {_common.machine()}; "
        f"at start: {_common.load_average()}",
    ]
    rows: list[Row | str] = []
    notes: list[str] = []
    try:
        if not opts.skip_loader:
            loader_rows, loader_notes = bench_loader(opts)
            rows += loader_rows
            notes += loader_notes
        if not opts.skip_pages:
            page_rows, page_notes = bench_pages(opts)
            rows += page_rows
            notes += page_notes
    finally:
        with contextlib.suppress(Exception):  # cleaning up must not hide the real error
            _common.reset_tables()
        connections.close_all()
    notes.append(
        f"Tables of {db.label} truncated at the end. Total wall time "
        f"{time.perf_counter() - started:.0f} s; at the end: {_common.load_average()}."
    )
    _common.print_report("shardetl ingest benchmark", header, rows, notes)
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
