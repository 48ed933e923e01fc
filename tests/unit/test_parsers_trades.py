"""trades-json: incremental trades, the cursor and the "full page" signal."""

from __future__ import annotations

import json
from typing import Any

import orjson
import pytest

from ingest.parsers import trades
from ingest.records import ParseResult, TradeRecord

URL = "http://upstream.test/api/trades/?since=0&limit=3"


def parse(body: Any, url: str = URL) -> ParseResult:
    # the stdlib encoder: orjson refuses integers beyond 64 bits
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return trades.parse(raw, url=url, options={})


def reasons(result: ParseResult) -> list[tuple[int, str]]:
    return [(r.index, r.reason) for r in result.rejected]


def trade(trade_id: Any = 7, **fields: Any) -> dict[str, Any]:
    row = {
        "id": trade_id,
        "item": "item-000003",
        "price": 12.5,
        "quantity": 2,
        "tradedAt": "2026-01-01T00:01:10+00:00",
    }
    return {**row, **fields}


def test_a_page_of_trades() -> None:
    result = parse({"results": [trade(7), trade(9, price="3.25", quantity=1)], "next_since": 9})
    assert result.kind == "trades"
    assert result.records == (
        TradeRecord(
            id=7,
            item_key="item-000003",
            price=12.5,
            quantity=2,
            traded_at="2026-01-01T00:01:10+00:00",
        ),
        TradeRecord(
            id=9,
            item_key="item-000003",
            price=3.25,
            quantity=1,
            traded_at="2026-01-01T00:01:10+00:00",
        ),
    )
    assert result.next_cursor == 9
    assert result.more is False  # 2 rows < limit 3
    assert result.meta == {"rows": "2", "duplicates": "0", "max_seen_id": "9"}


def test_a_full_page_means_more() -> None:
    result = parse({"results": [trade(1), trade(2), trade(3)], "next_since": 3})
    assert result.more is True
    assert result.next_cursor == 3


def test_rejected_rows_count_towards_a_full_page_but_not_the_cursor() -> None:
    result = parse({"results": [trade(1), trade(2), trade(3, price=None)]})
    assert result.more is True
    assert result.next_cursor == 2
    assert result.meta["max_seen_id"] == "3"


@pytest.mark.parametrize(
    ("url", "rows", "more"),
    [
        ("http://u.test/api/trades/", 999, False),
        ("http://u.test/api/trades/", 1000, True),
        ("http://u.test/api/trades/?limit=abc", 1000, True),
        ("http://u.test/api/trades/?limit=0", 1000, True),
        ("http://u.test/api/trades/?limit=5&limit=2", 2, True),
        ("http://u.test/api/trades/?since=5&limit=10", 9, False),
    ],
)
def test_the_limit_comes_from_the_url(url: str, rows: int, more: bool) -> None:
    result = parse({"results": [trade(i + 1) for i in range(rows)]}, url=url)
    assert result.more is more
    assert trades.limit_of(url) in {1000, 2, 10}


def test_no_rows_means_no_cursor() -> None:
    result = parse({"results": [], "next_since": 40})
    assert result.next_cursor is None
    assert result.more is False
    assert "max_seen_id" not in result.meta


@pytest.mark.parametrize(
    ("trade_id", "reason"),
    [
        (0, "field 'id' out of range: 0 not in 1..9223372036854775807"),
        (-3, "field 'id' out of range: -3 not in 1..9223372036854775807"),
        (2**63, "field 'id' out of range: 9223372036854775808 not in 1..9223372036854775807"),
        (2**64, "field 'id' out of range: 18446744073709551616 not in 1..9223372036854775807"),
        (None, "missing field 'id'"),
        (True, "field 'id' has wrong type: expected integer, got bool"),
        (7.0, "field 'id' has wrong type: expected integer, got float"),
        ("7a", "field 'id' is not an integer: '7a'"),
    ],
)
def test_ids_must_fit_a_bigint(trade_id: Any, reason: str) -> None:
    result = parse({"results": [trade(trade_id), trade(5)]})
    assert reasons(result) == [(0, reason)]
    assert result.next_cursor == 5


def test_the_largest_bigint_id_and_id_strings_are_accepted() -> None:
    result = parse({"results": [trade(2**63 - 1), trade("12")]})
    assert [r.id for r in result.records] == [2**63 - 1, 12]  # type: ignore[union-attr]
    assert result.next_cursor == 2**63 - 1


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        ({"quantity": 2**31}, "field 'quantity' out of range: 2147483648 not in 0..2147483647"),
        ({"quantity": -1}, "field 'quantity' out of range: -1 not in 0..2147483647"),
        ({"price": None}, "missing field 'price'"),
        ({"price": "NaN"}, "non-finite value in field 'price'"),
        ({"price": False}, "field 'price' has wrong type: expected number, got bool"),
        ({"item": ""}, "empty field 'item'"),
        ({"item": "it\x00em"}, "NUL byte in field 'item'"),
        (
            {"tradedAt": "2026-01-01T00:01:10"},
            "field 'tradedAt' has no UTC offset: '2026-01-01T00:01:10'",
        ),
        ({"tradedAt": "yesterday"}, "field 'tradedAt' is not an ISO-8601 time: 'yesterday'"),
        ({"tradedAt": 1767225670}, "field 'tradedAt' has wrong type: expected string, got int"),
        ({"tradedAt": None}, "missing field 'tradedAt'"),
    ],
)
def test_row_fields_are_validated(fields: dict[str, Any], reason: str) -> None:
    result = parse({"results": [trade(1, **fields), trade(2)]})
    assert reasons(result) == [(0, reason)]


def test_the_largest_int32_quantity_is_accepted() -> None:
    result = parse({"results": [trade(1, quantity=2**31 - 1)]})
    assert result.records[0].quantity == 2**31 - 1  # type: ignore[union-attr]


def test_bare_nan_tokens_reject_only_their_rows() -> None:
    body = orjson.dumps({"results": [trade(1), trade(2), trade(3)]}).replace(b"12.5", b"NaN", 1)
    result = parse(body)
    assert reasons(result) == [(0, "non-finite value in field 'price'")]
    assert result.next_cursor == 3


@pytest.mark.parametrize(
    ("traded_at", "stored"),
    [
        ("2026-01-01T00:01:10+00:00", "2026-01-01T00:01:10+00:00"),
        ("2026-01-01T00:01:10Z", "2026-01-01T00:01:10+00:00"),
        ("2026-01-01 02:01:10.250+02:00", "2026-01-01T02:01:10.250000+02:00"),
    ],
)
def test_timestamps_are_stored_as_iso_with_their_offset(traded_at: str, stored: str) -> None:
    record = parse({"results": [trade(1, tradedAt=traded_at)]}).records[0]
    assert isinstance(record, TradeRecord)
    assert record.traded_at == stored


def test_duplicate_ids_collapse_and_the_last_wins() -> None:
    result = parse({"results": [trade(4, price=1), trade(5), trade(4, price=2)]})
    assert [(r.id, r.price) for r in result.records] == [(4, 2.0), (5, 12.5)]  # type: ignore[union-attr]
    assert result.meta["duplicates"] == "1"
    assert result.next_cursor == 5
