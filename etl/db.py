"""The one place where async code calls sync database code.

Code that needs ``transaction.atomic``, ``SELECT … FOR UPDATE`` or COPY is written as a
plain sync function and called through :func:`call`, which runs it on Django's shared
database thread and closes connections that went stale or broken, as a long-running
worker must (procrastinate does the same around each unit of work).
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import ParamSpec, TypeVar

from asgiref.sync import sync_to_async
from django.db import close_old_connections

P = ParamSpec("P")
T = TypeVar("T")


def _unit_of_work(fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
    close_old_connections()
    try:
        return fn(*args, **kwargs)
    finally:
        close_old_connections()


async def call(fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
    """Run the sync database function ``fn`` off the event loop and return its result."""
    result: T = await sync_to_async(_unit_of_work, thread_sensitive=True)(fn, *args, **kwargs)
    return result


# Heartbeats and lease renewals must not queue behind a long load on the shared thread:
# a node busy loading would otherwise look dead and lose its slot and its leases.
_control = ThreadPoolExecutor(max_workers=1, thread_name_prefix="etl-control")


async def control(fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
    """Like :func:`call`, on a thread (and connection) of its own for liveness work."""
    result: T = await sync_to_async(_unit_of_work, thread_sensitive=False, executor=_control)(
        fn, *args, **kwargs
    )
    return result
