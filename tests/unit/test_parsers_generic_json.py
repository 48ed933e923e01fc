"""json (generic): rows and fields found by dot paths."""

from __future__ import annotations

import json
from typing import Any

import pytest

from ingest.exceptions import ParseError
from ingest.parsers import generic_json
from ingest.records import ObservationRecord, ParseResult

URL = "http://api.test/v1/products"
OPTIONS = {"rows": "data.results", "key": "id", "name": "title", "value": "price"}


def parse(body: Any, options: dict[str, Any] | None = None) -> ParseResult:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return generic_json.parse(raw, url=URL, options=OPTIONS if options is None else options)


def reasons(result: ParseResult) -> list[tuple[int, str]]:
    return [(r.index, r.reason) for r in result.rejected]


def obs(key: str, name: str | None = None, value: float = 1.0) -> ObservationRecord:
    return ObservationRecord(item_key=key, name=key if name is None else name, value=value)


def test_the_design_example() -> None:
    body = {
        "data": {
            "results": [
                {"id": "sku-1", "title": "Kettle", "price": 19.5},
                {"id": "sku-2", "title": "Lantern", "price": "7"},
            ]
        }
    }
    result = parse(body)
    assert result.kind == "observations"
    assert result.records == (obs("sku-1", "Kettle", 19.5), obs("sku-2", "Lantern", 7.0))
    assert result.meta == {"rows": "2", "duplicates": "0"}


def test_without_a_value_every_row_counts_one_and_the_name_is_the_key() -> None:
    result = parse([{"id": "a"}, {"id": "b"}], {"key": "id"})
    assert result.records == (obs("a"), obs("b"))


def test_an_empty_rows_path_means_the_top_level_list() -> None:
    assert parse([{"id": "a"}], {"rows": "", "key": "id"}).records == (obs("a"),)


def test_an_empty_key_path_means_the_row_itself() -> None:
    result = parse({"tags": ["red", 7, "red", {"x": 1}]}, {"rows": "tags", "key": ""})
    assert result.records == (obs("red"), obs("7"))
    assert reasons(result) == [
        (3, "field '(the row)' has wrong type: expected string or number, got object")
    ]
    assert result.meta["duplicates"] == "1"


def test_integer_segments_index_lists() -> None:
    body = {
        "pages": [
            {"items": [{"ids": ["x", "first"], "names": [{"en": "First"}], "prices": [[0, 4]]}]},
        ]
    }
    options = {"rows": "pages.0.items", "key": "ids.1", "name": "names.0.en", "value": "prices.0.1"}
    assert parse(body, options).records == (obs("first", "First", 4.0),)


def test_integer_segments_are_member_names_on_objects() -> None:
    body = {"data": {"0": [{"id": {"1": "via-names"}}]}}
    assert parse(body, {"rows": "data.0", "key": "id.1"}).records == (obs("via-names"),)


def test_a_path_through_a_scalar_or_past_the_end_is_missing() -> None:
    body = [{"id": "x", "a": [1]}, {"id": "y"}]
    result = parse(body, {"key": "a.5"})
    assert reasons(result) == [(0, "missing field 'a.5'"), (1, "missing field 'a.5'")]
    result = parse(body, {"key": "id.first"})
    assert reasons(result) == [(0, "missing field 'id.first'"), (1, "missing field 'id.first'")]


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        (42, "42"),
        (42.0, "42"),  # the same JSON number as 42
        (-0.0, "0"),
        (12.5, "12.5"),
        (1e20, "100000000000000000000"),
        (" padded ", "padded"),
    ],
)
def test_numbers_become_key_text(key: Any, expected: str) -> None:
    assert parse([{"id": key}], {"key": "id"}).records == (obs(expected),)


@pytest.mark.parametrize(
    ("row", "reason"),
    [
        ({"title": "no id"}, "missing field 'id'"),
        ({"id": None}, "missing field 'id'"),
        ({"id": ""}, "empty field 'id'"),
        ({"id": True}, "field 'id' has wrong type: expected string or number, got bool"),
        ({"id": [1]}, "field 'id' has wrong type: expected string or number, got list"),
        ({"id": "a\x00b"}, "NUL byte in field 'id'"),
        ({"id": "a", "title": "t\x00"}, "NUL byte in field 'title'"),
        (
            {"id": "a", "title": {}},
            "field 'title' has wrong type: expected string or number, got object",
        ),
        ({"id": "a", "price": None}, "missing field 'price'"),
        ({"id": "a"}, "missing field 'price'"),
        ({"id": "a", "price": "cheap"}, "field 'price' is not a number: 'cheap'"),
        ({"id": "a", "price": "Infinity"}, "non-finite value in field 'price'"),
        ({"id": "a", "price": False}, "field 'price' has wrong type: expected number, got bool"),
    ],
)
def test_row_problems_are_rejections(row: dict[str, Any], reason: str) -> None:
    body = {"data": {"results": [row, {"id": "ok", "price": 1}]}}
    result = parse(body)
    assert reasons(result) == [(0, reason)]
    assert result.records == (obs("ok", "ok", 1.0),)


def test_a_missing_or_empty_name_falls_back_to_the_key() -> None:
    body = {"data": {"results": [{"id": "a", "price": 1}, {"id": "b", "title": " ", "price": 2}]}}
    assert parse(body).records == (obs("a", "a", 1.0), obs("b", "b", 2.0))


def test_numeric_names_are_text() -> None:
    result = parse([{"id": "a", "n": 7.0}], {"key": "id", "name": "n"})
    assert result.records == (obs("a", "7"),)


def test_bare_nan_and_infinity_tokens_reject_only_their_rows() -> None:
    body = b'[{"id": "a", "v": NaN}, {"id": NaN}, {"id": "b", "v": -Infinity}, {"id": "c", "v": 1}]'
    result = parse(body, {"key": "id", "value": "v"})
    assert reasons(result) == [
        (0, "non-finite value in field 'v'"),
        (1, "non-finite value in field 'id'"),
        (2, "non-finite value in field 'v'"),
    ]
    assert result.records == (obs("c", "c", 1.0),)


def test_duplicate_keys_collapse_and_the_last_row_wins() -> None:
    body = [{"id": 1, "v": 1}, {"id": "1", "v": 2}, {"id": 1.0, "v": 3}, {"id": 2, "v": 4}]
    result = parse(body, {"key": "id", "value": "v"})
    assert result.records == (obs("1", "1", 3.0), obs("2", "2", 4.0))
    assert result.meta == {"rows": "4", "duplicates": "2"}


@pytest.mark.parametrize(
    ("body", "options", "message"),
    [
        ({"data": {}}, OPTIONS, "expected a list of rows at 'data.results', got nothing"),
        (
            {"data": {"results": {}}},
            OPTIONS,
            "expected a list of rows at 'data.results', got object",
        ),
        ({"data": 5}, OPTIONS, "expected a list of rows at 'data.results', got nothing"),
        ({"id": 1}, {"key": "id"}, "expected a list of rows at the top level, got object"),
        ("text", {"key": "id"}, "expected a list of rows at the top level, got string"),
    ],
)
def test_rows_that_are_not_a_list_are_a_parse_error(
    body: Any, options: dict[str, Any], message: str
) -> None:
    with pytest.raises(ParseError, match=f"^{message}$"):
        parse(body, options)


def test_options_are_checked_before_the_body() -> None:
    with pytest.raises(ParseError, match="needs the option 'key'"):
        parse([], {"rows": ""})
