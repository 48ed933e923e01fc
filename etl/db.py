"""The one place where async code calls sync database code.

Code that needs ``transaction.atomic``, ``SELECT … FOR UPDATE`` or COPY is written as a
plain sync function and called through :func:`call`, which runs it on Django's shared
database thread and drops a connection that an error left broken, as a long-running
worker must (procrastinate closes old connections around each unit of work).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import ParamSpec, TypeVar

from asgiref.sync import sync_to_async
from django.db import connection

from etl import config

P = ParamSpec("P")
T = TypeVar("T")


def _drop_if_broken() -> None:
    # CONN_MAX_AGE is 0 (right for ASGI requests, each on a thread of its own), so
    # close_old_connections() would close this long-lived thread's connection after every
    # unit. Keep it open, and drop it only when an error left it unusable.
    conn = connection
    if conn.connection is not None and conn.errors_occurred:
        if conn.is_usable():
            conn.errors_occurred = False
        else:
            conn.close()


def _unit_of_work(fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
    _drop_if_broken()
    try:
        return fn(*args, **kwargs)
    finally:
        _drop_if_broken()


async def call(fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
    """Run the sync database function ``fn`` off the event loop and return its result."""
    result: T = await sync_to_async(_unit_of_work, thread_sensitive=True)(fn, *args, **kwargs)
    return result


# Heartbeats and lease renewals must not queue behind a long load on the shared thread:
# a node busy loading would otherwise look dead and lose its slot and its leases.
_control = ThreadPoolExecutor(max_workers=1, thread_name_prefix="etl-control")


# Probes and scrapes: off the shared thread too (a long load must not time them out),
# and off the control thread (a slow scrape must not delay a heartbeat).
_probe = ThreadPoolExecutor(max_workers=1, thread_name_prefix="etl-probe")


async def probe(fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
    """Like :func:`call`, on a thread (and connection) of its own for probes and scrapes."""
    result: T = await sync_to_async(_unit_of_work, thread_sensitive=False, executor=_probe)(
        fn, *args, **kwargs
    )
    return result


async def control(fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
    """Like :func:`call`, on a thread (and connection) of its own for liveness work."""
    result: T = await sync_to_async(_unit_of_work, thread_sensitive=False, executor=_control)(
        fn, *args, **kwargs
    )
    return result


# Loads (a run's transaction, its record) run on a few threads of their own, each with
# its own connection, so that one source's load does not queue behind another's on the
# shared thread. Loads of different sources touch different rows; where they meet
# (items both pages list) the loader's upserts are ordered by key and a deadlock victim
# is retried. ETL_LOAD_CONNECTIONS (Settings.load_connections) sets how many; a node
# reads its settings at start, so a bad value fails there, not on the first load.
_loads: ThreadPoolExecutor | None = None
_load_threads = 0


def _load_executor() -> ThreadPoolExecutor:
    global _loads, _load_threads
    if _loads is None:
        _load_threads = config.settings().load_connections
        _loads = ThreadPoolExecutor(max_workers=_load_threads, thread_name_prefix="etl-load")
    return _loads


async def load(fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
    """Like :func:`call`, on one of the load threads (``ETL_LOAD_CONNECTIONS``)."""
    result: T = await sync_to_async(
        _unit_of_work, thread_sensitive=False, executor=_load_executor()
    )(fn, *args, **kwargs)
    return result


def close_loads() -> None:
    """Close the load threads' connections (tests, before their database is dropped).

    One task per thread: each closes its own thread's connection and waits at a barrier
    until all have, so no two tasks can share a thread.
    """
    if _loads is None:
        return
    barrier = threading.Barrier(_load_threads)

    def close() -> None:
        connection.close()
        barrier.wait(timeout=30)

    for future in [_loads.submit(close) for _ in range(_load_threads)]:
        future.result(timeout=60)
