"""Schedule maths: when is a cron spec next due (``H`` spread by a stable name)."""

from __future__ import annotations

import functools
import threading
from datetime import UTC, datetime

from croniter import croniter
from croniter.croniter import CroniterError

# Parsing a spec costs more than stepping it (a third of a millisecond, on every run of
# every source), so parsed specs are kept and only their clock is set. The name changes
# the result only through ``H`` and the ``@`` aliases (which croniter spreads when given
# a name); every other spec is shared by all names.
_EPOCH = datetime(2000, 1, 1, tzinfo=UTC)
_SHARED = b"shardetl"
_lock = threading.Lock()  # a parsed spec is stepped in place: one caller at a time


@functools.lru_cache(maxsize=4096)
def _parsed(spec: str, hash_id: bytes) -> croniter:
    return croniter(spec, _EPOCH, hash_id=hash_id)


def _hash_id(spec: str, name: str) -> bytes:
    spreads = "H" in spec.upper() or spec.lstrip().startswith("@")
    return name.encode("utf-8") if spreads else _SHARED


def next_run(spec: str, now: datetime, name: str) -> datetime:
    """The first time strictly after ``now`` matching ``spec``; ``H`` hashed by ``name``."""
    with _lock:
        cron = _parsed(spec, _hash_id(spec, name))
        cron.set_current(now, force=True)
        nxt: datetime = cron.get_next(datetime)
    return nxt if nxt.tzinfo else nxt.replace(tzinfo=UTC)


def validate(spec: str) -> str:
    """Return ``spec`` if croniter accepts it (``H`` included), else raise ValueError."""
    try:
        croniter(spec, datetime.now(UTC), hash_id=b"validate").get_next(datetime)
    except (CroniterError, ValueError, KeyError) as exc:
        raise ValueError(f"invalid cron schedule {spec!r}: {exc}") from None
    return spec
