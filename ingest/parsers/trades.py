"""``trades-json``: incremental trades → :class:`~ingest.records.TradeRecord`.

Wire format (``/api/trades/?since=ID&limit=L``; a bare list of rows is accepted too)::

    {"results": [{"id": 7, "item": "item-000003", "price": 12.5, "quantity": 2,
                  "tradedAt": "2026-01-01T00:01:10+00:00"}],
     "next_since": 7}

``next_cursor`` is the highest id among accepted rows (``None`` without any), so the
next fetch asks ``?since=<next_cursor>``. ``more`` is true when the page was full: at
least ``limit`` rows (the URL's ``limit`` query parameter, 1000 when absent or not a
positive integer). ``meta["max_seen_id"]`` is the highest well-formed id of any row,
rejected or not, when there is one: a pipeline that sees a full page of rejected rows
can step past it instead of asking for the same page again.

``tradedAt`` must carry a UTC offset (a naive time is ambiguous, so the row is
rejected); it is stored re-serialised by ``datetime.isoformat()``.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, Final
from urllib.parse import parse_qs, urlsplit

from ingest import records
from ingest.parsers import _common

NAME = "trades-json"
DEFAULT_LIMIT: Final = 1000


def validate_options(options: Mapping[str, Any]) -> None:
    """``trades-json`` takes no options."""
    _common.no_options(NAME, options)


def parse(body: bytes, *, url: str, options: Mapping[str, Any]) -> records.ParseResult:
    """Parse one page of trades; sets ``next_cursor`` and ``more`` for the next fetch."""
    validate_options(options)
    rows = _common.rows_at(_common.load_json(body), "results")
    out = _common.collect(rows, _trade)
    accepted = [record.id for record in out.values() if isinstance(record, records.TradeRecord)]
    meta: dict[str, str] = {}
    max_seen = max(filter(None, map(_well_formed_id, rows)), default=None)
    if max_seen is not None:
        meta["max_seen_id"] = str(max_seen)
    return out.result(
        "trades",
        next_cursor=max(accepted, default=None),
        more=len(rows) >= limit_of(url),
        meta=meta,
    )


def limit_of(url: str) -> int:
    """The page size the URL asks for (the last ``limit`` parameter wins, as in most servers)."""
    values = parse_qs(urlsplit(url).query).get("limit")
    if values:
        try:
            limit = int(values[-1])
        except ValueError:
            return DEFAULT_LIMIT
        if limit > 0:
            return limit
    return DEFAULT_LIMIT


def _trade(row: object) -> tuple[int, records.TradeRecord]:
    fields = _common.row_object(row)
    trade_id = _common.integer(fields.get("id"), "id", low=1, high=_common.BIGINT_MAX)
    record = records.TradeRecord(
        id=trade_id,
        item_key=_common.key(fields.get("item"), "item"),
        price=_common.number(fields.get("price"), "price"),
        quantity=_common.integer(fields.get("quantity"), "quantity", low=0, high=_common.INT32_MAX),
        traded_at=_timestamp(fields.get("tradedAt"), "tradedAt"),
    )
    return trade_id, record


def _timestamp(value: object, field: str) -> str:
    if value is None:
        raise _common.RowError(f"missing field {field!r}")
    raw = _common.text(value, field).strip()
    try:
        moment = datetime.fromisoformat(raw)
    except ValueError:
        raise _common.RowError(f"field {field!r} is not an ISO-8601 time: {raw[:40]!r}") from None
    if moment.utcoffset() is None:
        raise _common.RowError(f"field {field!r} has no UTC offset: {raw[:40]!r}")
    return moment.isoformat()


def _well_formed_id(row: object) -> int | None:
    if not isinstance(row, dict):
        return None
    try:
        return _common.integer(row.get("id"), "id", low=1, high=_common.BIGINT_MAX)
    except _common.RowError:
        return None
