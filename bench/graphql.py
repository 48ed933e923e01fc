"""GraphQL benchmark: the talk's query through ``/graphql`` against a hand-written view.

    python bench/graphql.py [--items N] [--requests N] [--warmup N] [--time-limit S] [--quick]

The talk's query, ``{ items { name image value requiredFor { quantity quest { title
image text } } } }``, over real HTTP (uvicorn on 127.0.0.1, one keep-alive httpx
client), beside a hand-written async Django view that returns the same JSON from the
same two SQL queries. Both are served by the same Django ASGI app, middleware and
server, requests alternate between the two, and the figures are per-request latencies
(p50/p95). The difference is what strawberry, strawberry-django and the optimizer cost.

Runs in the ``shardetl_bench`` database (see ``bench/_common.py``; ``--database`` names
another, e.g. while another benchmark uses it); its project tables are truncated before
and after.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # see bench/_common.py

import argparse
import contextlib
import os
import statistics
import time
import types
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from bench import _common
from bench._common import Row

TALK_QUERY = "{ items { name image value requiredFor { quantity quest { title image text } } } }"
BASELINE_PATH = "/bench-baseline"
URLCONF = "bench_graphql_urls"
# Behind an ingress, as a production node is (SECURE_SSL_REDIRECT is on with DEBUG off).
HEADERS = {"X-Forwarded-Proto": "https"}


def _options(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python bench/graphql.py",
        description="The talk's GraphQL query vs a hand-written async view, over real HTTP.",
    )
    parser.add_argument("--items", type=int, default=100, help="items in the catalogue")
    parser.add_argument("--quests", type=int, default=20, help="quests items are required for")
    parser.add_argument("--per-item", type=int, default=2, help="requirements per item")
    parser.add_argument("--requests", type=int, default=300, help="measured requests per side")
    parser.add_argument("--warmup", type=int, default=30, help="unmeasured requests per side")
    parser.add_argument("--time-limit", type=float, default=300.0, help="seconds allowed")
    parser.add_argument(
        "--quick", action="store_true", help="CI smoke sizes: 100 requests per side, 10 warm-up"
    )
    parser.add_argument(
        "--database",
        default=_common.BENCH_DB,
        help=f"bench database on the DATABASE_URL server (default {_common.BENCH_DB}); "
        "its project tables are truncated",
    )
    opts = parser.parse_args(argv)
    if opts.quick:
        opts.requests, opts.warmup = 100, 10
    if min(opts.items, opts.quests, opts.requests) < 1 or opts.warmup < 0:
        parser.error("--items, --quests and --requests must be positive, --warmup not negative")
    if not 0 <= opts.per_item <= opts.quests:
        parser.error("--per-item must be between 0 and --quests")
    return opts


# -- data ------------------------------------------------------------------------------


def make_catalogue(items: int, quests: int, per_item: int) -> None:
    from ingest.models import Item, Quest, QuestRequirement

    made_quests = Quest.objects.bulk_create(
        Quest(key=f"q{n}", title=f"Quest {n}", image=f"/img/q{n}.png", text=f"Bring items {n}.")
        for n in range(quests)
    )
    made_items = Item.objects.bulk_create(
        Item(key=f"k{n:05d}", name=f"Item {n}", image=f"/img/{n}.png", value=n / 4)
        for n in range(items)
    )
    QuestRequirement.objects.bulk_create(
        QuestRequirement(
            quest=made_quests[(n + j) % quests], item=item, item_key=item.key, quantity=j + 1
        )
        for n, item in enumerate(made_items)
        for j in range(per_item)
    )


# -- the baseline ----------------------------------------------------------------------


async def baseline(request: Any) -> Any:
    """The talk's query by hand: the same rows, the same two queries, the same JSON."""
    from django.http import JsonResponse

    from etl.graphql import limits
    from ingest.models import Item, QuestRequirement

    items = [
        {"id": pk, "name": name, "image": image, "value": value}
        async for pk, name, image, value in Item.objects.order_by("pk").values_list(
            "pk", "name", "image", "value"
        )[: limits.PAGE_CAP]
    ]
    required: dict[int, list[dict[str, Any]]] = defaultdict(list)
    rows = (
        QuestRequirement.objects.filter(item_id__in=[item["id"] for item in items])
        .order_by("pk")
        .values_list("item_id", "quantity", "quest__title", "quest__image", "quest__text")
    )
    async for item_id, quantity, title, image, text in rows:
        quest = {"title": title, "image": image, "text": text}
        required[item_id].append({"quantity": quantity, "quest": quest})
    for item in items:
        item["requiredFor"] = required[item.pop("id")]
    return JsonResponse({"data": {"items": items}})


def install_urlconf() -> None:
    """Serve the baseline beside the real routes, from a URLconf built here."""
    from django.conf import settings
    from django.urls import path

    from etl import urls

    module = types.ModuleType(URLCONF)
    module.urlpatterns = [*urls.urlpatterns, path(BASELINE_PATH.lstrip("/"), baseline)]
    sys.modules[URLCONF] = module
    settings.ROOT_URLCONF = URLCONF


# -- measuring -------------------------------------------------------------------------


def sql_queries_per_request() -> int:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from etl.graphql.schema import schema

    with CaptureQueriesContext(connection) as captured:
        result = schema.execute_sync(TALK_QUERY)
    if result.errors:
        raise RuntimeError(f"the talk's query failed: {result.errors}")
    return len(captured.captured_queries)


def measure(base: str, opts: argparse.Namespace) -> tuple[list[float], list[float]]:
    """Alternate GraphQL and baseline requests; return both latency lists in ms."""
    import httpx

    deadline = _common.Deadline(opts.time_limit, "the GraphQL benchmark")
    body = {"query": TALK_QUERY}
    ours: list[float] = []
    theirs: list[float] = []
    with httpx.Client(base_url=base, headers=HEADERS, timeout=30) as client:

        def graphql() -> Any:
            response = client.post("/graphql", json=body)
            response.raise_for_status()
            return response.json()

        def hand_written() -> Any:
            response = client.get(BASELINE_PATH)
            response.raise_for_status()
            return response.json()

        first = graphql()
        if "errors" in first or first != hand_written():
            raise RuntimeError("the GraphQL answer and the baseline's differ; not comparable")
        if len(first["data"]["items"]) != min(opts.items, _page_cap()):
            raise RuntimeError("the GraphQL answer does not hold every item")
        for n in range(opts.warmup + opts.requests):
            deadline.check()
            # Alternate which side goes first, so neither always follows the other.
            pair = (graphql, hand_written) if n % 2 else (hand_written, graphql)
            for call in pair:
                started = time.perf_counter()
                call()
                elapsed = (time.perf_counter() - started) * 1000
                if n >= opts.warmup:
                    (ours if call is graphql else theirs).append(elapsed)
    return ours, theirs


def _page_cap() -> int:
    from etl.graphql import limits

    return limits.PAGE_CAP


def _percentile(values: Sequence[float], pct: int) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[pct - 1]


# -- main ------------------------------------------------------------------------------


def _unshadow_graphql_core() -> None:
    """Take ``bench/`` off ``sys.path``: there ``import graphql`` would import this script.

    Every import of strawberry (and so of graphql-core) in this file happens after this.
    """
    here = Path(__file__).resolve().parent
    sys.path[:] = [entry for entry in sys.path if Path(entry or ".").resolve() != here]


def main(argv: Sequence[str] | None = None) -> int:
    _unshadow_graphql_core()
    opts = _options(argv)
    started = time.perf_counter()
    # A production-like node: DEBUG off (no query log, no GraphiQL), explicit hosts and key.
    os.environ.setdefault("DJANGO_SECRET_KEY", "bench-only-not-a-secret")
    os.environ.setdefault("DJANGO_ALLOWED_HOSTS", "127.0.0.1")
    # Django gives each ASGI request a thread of its own, so a kept connection is never
    # reused; close it at the end of the request, as Django advises under ASGI.
    os.environ.setdefault("ETL_CONN_MAX_AGE", "0")
    db = _common.bench_database(opts.database)
    _common.setup_django(db)
    from django.db import connections

    from etl.asgi import django_app, settle
    from tests.support import servers

    header = [
        f"[bold]$ {_common.command_line()}[/bold]",
        f"{_common.server_version()} ({db.label}); {_common.machine()}",
        f"{opts.items} items, {opts.quests} quests, {opts.per_item} requirements per item; "
        f"{opts.requests} measured requests per side after {opts.warmup} warm-up, alternating",
    ]
    rows: list[Row | str] = []
    notes: list[str] = []
    try:
        _common.reset_tables()
        make_catalogue(opts.items, opts.quests, opts.per_item)
        queries = sql_queries_per_request()
        install_urlconf()
        settle()  # as a node does once started (both sides gain)
        with servers.serve(django_app) as base:
            ours, theirs = measure(base, opts)
        rows = [
            "the talk's query, 1 client, keep-alive",
            Row(
                what="p50 latency",
                ours=_percentile(ours, 50),
                baseline=_percentile(theirs, 50),
                unit="ms",
            ),
            Row(
                what="p95 latency",
                ours=_percentile(ours, 95),
                baseline=_percentile(theirs, 95),
                unit="ms",
            ),
            Row(
                what="mean latency",
                ours=statistics.fmean(ours),
                baseline=statistics.fmean(theirs),
                unit="ms",
            ),
        ]
        notes = [
            f"ours: POST /graphql (strawberry AsyncGraphQLView + DjangoOptimizerExtension), "
            f"{queries} SQL queries per request; baseline: GET {BASELINE_PATH}, a hand-written "
            "async view with the same 2 queries (async ORM) and the same JSON.",
            "Both served by etl.asgi.django_app (same middleware) on uvicorn in a thread of "
            "this process; the client runs in the main thread. Ratio = ours / baseline.",
            "ETL_CONN_MAX_AGE=0 unless set: every request connects to PostgreSQL, on both sides.",
        ]
    finally:
        with contextlib.suppress(Exception):  # cleaning up must not hide the real error
            _common.reset_tables()
        connections.close_all()
    notes.append(
        f"Tables of {db.label} truncated at the end. "
        f"Total wall time {time.perf_counter() - started:.0f} s."
    )
    _common.print_report("shardetl GraphQL benchmark", header, rows, notes)
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
