"""items-json: the catalogue wire format, and the row rules every JSON parser shares."""

from __future__ import annotations

import json
from typing import Any

import orjson
import pytest

from ingest.exceptions import ParseError
from ingest.parsers import items
from ingest.records import ItemRecord, ParseResult, Rejection

URL = "http://upstream.test/api/items/?page=1"


def parse(body: bytes | list[Any] | dict[str, Any]) -> ParseResult:
    raw = body if isinstance(body, bytes) else orjson.dumps(body)
    return items.parse(raw, url=URL, options={})


def reasons(result: ParseResult) -> list[tuple[int, str]]:
    return [(r.index, r.reason) for r in result.rejected]


def test_a_catalogue_page() -> None:
    body = {
        "page": 1,
        "pages": 20,
        "count": 10000,
        "results": [
            {
                "key": "item-000042",
                "fullName": "Rusty Copper Gear",
                "image": "/img/items/item-000042.png",
                "basePrice": 123.45,
            },
            {"key": "item-000043", "fullName": "Naïve Jade Bell", "basePrice": None},
        ],
    }
    result = parse(body)
    assert result.kind == "items"
    assert result.records == (
        ItemRecord(
            key="item-000042",
            name="Rusty Copper Gear",
            image="http://upstream.test/img/items/item-000042.png",
            value=123.45,
        ),
        ItemRecord(key="item-000043", name="Naïve Jade Bell", image="", value=None),
    )
    assert result.rejected == ()
    assert result.meta == {"rows": "2", "duplicates": "0"}
    assert result.next_cursor is None
    assert result.more is False


def test_a_bare_list_of_rows() -> None:
    result = parse([{"key": "a", "fullName": "A", "basePrice": 1}])
    assert result.records == (ItemRecord(key="a", name="A", value=1.0),)


@pytest.mark.parametrize("full_name", [None, "", "   "])
def test_name_falls_back_to_the_key(full_name: str | None) -> None:
    assert parse([{"key": "a", "fullName": full_name}]).records[0] == ItemRecord(key="a", name="a")
    assert parse([{"key": "a"}]).records[0] == ItemRecord(key="a", name="a")


@pytest.mark.parametrize(
    ("image", "expected"),
    [
        ("/img/a.png", "http://upstream.test/img/a.png"),
        ("img/a.png", "http://upstream.test/api/items/img/a.png"),
        ("../a.png", "http://upstream.test/api/a.png"),
        ("//cdn.test/a.png", "http://cdn.test/a.png"),
        ("https://cdn.test/a.png", "https://cdn.test/a.png"),
        ("", ""),
        (None, ""),
    ],
)
def test_image_is_made_absolute(image: str | None, expected: str) -> None:
    record = parse([{"key": "a", "image": image}]).records[0]
    assert isinstance(record, ItemRecord)
    assert record.image == expected


def test_numeric_strings_are_values_and_bools_are_not() -> None:
    result = parse(
        [
            {"key": "a", "basePrice": "12.5"},
            {"key": "b", "basePrice": " 7 "},
            {"key": "c", "basePrice": True},
            {"key": "d", "basePrice": "1,234.50"},
            {"key": "e", "basePrice": "1_000"},
            {"key": "f", "basePrice": "١٢"},
            {"key": "g", "basePrice": ""},
            {"key": "h", "basePrice": [1]},
        ]
    )
    assert [(r.key, r.value) for r in result.records] == [("a", 12.5), ("b", 7.0)]  # type: ignore[union-attr]
    assert reasons(result) == [
        (2, "field 'basePrice' has wrong type: expected number, got bool"),
        (3, "field 'basePrice' is not a number: '1,234.50'"),
        (4, "field 'basePrice' is not a number: '1_000'"),
        (5, "field 'basePrice' is not a number: '١٢'"),
        (6, "empty field 'basePrice'"),
        (7, "field 'basePrice' has wrong type: expected number, got list"),
    ]


def test_bare_nan_and_infinity_tokens_reject_only_their_rows() -> None:
    # orjson refuses these tokens; the stdlib fallback reads them so only the rows go.
    body = json.dumps(
        [
            {"key": "a", "basePrice": 1},
            {"key": "b", "basePrice": float("nan")},
            {"key": "c", "basePrice": float("inf")},
            {"key": "d", "basePrice": float("-inf")},
            {"key": "e", "basePrice": 2},
        ]
    ).encode()
    assert b"NaN" in body
    assert b"-Infinity" in body
    result = parse(body)
    assert [r.key for r in result.records] == ["a", "e"]  # type: ignore[union-attr]
    assert reasons(result) == [(i, "non-finite value in field 'basePrice'") for i in (1, 2, 3)]


@pytest.mark.parametrize("text", ["NaN", "nan", "Infinity", "-inf", "+Infinity", "1e999"])
def test_non_finite_strings_are_rejected(text: str) -> None:
    result = parse([{"key": "a", "basePrice": text}])
    assert reasons(result) == [(0, "non-finite value in field 'basePrice'")]


def test_overflowing_numbers_are_non_finite() -> None:
    result = parse(b'[{"key":"a","basePrice":1e400},{"key":"b","basePrice":' + b"9" * 400 + b"}]")
    assert reasons(result) == [
        (0, "non-finite value in field 'basePrice'"),
        (1, "non-finite value in field 'basePrice'"),
    ]


@pytest.mark.parametrize("field", ["key", "fullName", "image"])
def test_a_nul_byte_rejects_the_row(field: str) -> None:
    row = {"key": "a", "fullName": "A", "image": "/a.png", field: "x\x00y"}
    result = parse([row, {"key": "b"}])
    assert reasons(result) == [(0, f"NUL byte in field {field!r}")]
    assert len(result.records) == 1


def test_a_lone_surrogate_rejects_the_row() -> None:
    # orjson refuses the escape; the stdlib fallback lets it in and the field check stops it.
    result = parse(b'[{"key":"a","fullName":"x\\ud800"},{"key":"b"}]')
    assert reasons(result) == [(0, "invalid Unicode (lone surrogate) in field 'fullName'")]


@pytest.mark.parametrize(
    ("row", "reason"),
    [
        ({"fullName": "A"}, "missing field 'key'"),
        ({"key": None}, "missing field 'key'"),
        ({"key": ""}, "empty field 'key'"),
        ({"key": "  "}, "empty field 'key'"),
        ({"key": 42}, "field 'key' has wrong type: expected string, got int"),
        ({"key": "a", "fullName": 3}, "field 'fullName' has wrong type: expected string, got int"),
        ({"key": "a", "image": {}}, "field 'image' has wrong type: expected string, got object"),
    ],
)
def test_missing_keys_and_wrong_types_are_rejected(row: dict[str, Any], reason: str) -> None:
    assert reasons(parse([row])) == [(0, reason)]


@pytest.mark.parametrize("row", [1, "item-1", None, ["key"]])
def test_a_row_that_is_not_an_object_is_rejected(row: object) -> None:
    result = parse([row, {"key": "a"}])
    assert len(result.rejected) == 1
    assert result.rejected[0].index == 0
    assert result.rejected[0].reason.startswith("row is not an object, got ")


def test_keys_are_stripped() -> None:
    assert parse([{"key": " a\n"}]).records[0] == ItemRecord(key="a", name="a")


def test_duplicate_keys_collapse_and_the_last_row_wins() -> None:
    result = parse(
        [
            {"key": "a", "fullName": "first", "basePrice": 1},
            {"key": "b", "fullName": "B"},
            {"key": "a", "fullName": "second", "basePrice": 2},
            {"key": "a", "fullName": "third", "basePrice": 3},
        ]
    )
    assert {r.key: (r.name, r.value) for r in result.records} == {  # type: ignore[union-attr]
        "a": ("third", 3.0),
        "b": ("B", None),
    }
    assert result.rejected == ()
    assert result.meta == {"rows": "4", "duplicates": "2"}


def test_a_rejected_duplicate_does_not_replace_the_valid_row() -> None:
    result = parse([{"key": "a", "basePrice": 1}, {"key": "a", "basePrice": "x"}])
    assert result.records == (ItemRecord(key="a", name="a", value=1.0),)
    assert result.rejected == (Rejection(index=1, reason="field 'basePrice' is not a number: 'x'"),)
    assert result.meta["duplicates"] == "0"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"page": 1}, "expected a list of rows at 'results', got nothing"),
        ({"results": {"a": 1}}, "expected a list of rows at 'results', got object"),
        ({"results": None}, "expected a list of rows at 'results', got null"),
        ("results", "expected an object with 'results' or a list of rows, got string"),
        (3, "expected an object with 'results' or a list of rows, got int"),
    ],
)
def test_a_body_of_the_wrong_shape_is_a_parse_error(body: Any, message: str) -> None:
    with pytest.raises(ParseError, match=f"^{message}$"):
        parse(orjson.dumps(body))


def test_an_empty_page_is_no_rows() -> None:
    assert parse({"results": []}) == ParseResult(
        kind="items", meta={"rows": "0", "duplicates": "0"}
    )
