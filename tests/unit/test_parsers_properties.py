"""Properties: whatever the bytes, a parser answers with a result or a ParseError."""

from __future__ import annotations

import json
import pickle
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ingest import parsers
from ingest.exceptions import ParseError
from ingest.records import ParseResult

URL = "http://upstream.test/api/?limit=3"

# No example database: unit tests write nothing to disk.
PROPERTY = settings(
    max_examples=200,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
    st.sampled_from(["item-1", "12.5", "NaN", "1e999", "\x00", "2026-01-01T00:00:00+00:00"]),
)
json_values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=5),
        st.dictionaries(
            st.sampled_from(["key", "fullName", "image", "basePrice", "results", "x"]),
            inner,
            max_size=5,
        ),
    ),
    max_leaves=25,
)
item_rows = st.fixed_dictionaries(
    {},
    optional={
        "key": scalars,
        "fullName": scalars,
        "image": scalars,
        "basePrice": scalars,
    },
)
item_bodies = st.one_of(
    json_values,
    st.lists(st.one_of(item_rows, json_values), max_size=6),
    st.fixed_dictionaries({"results": st.lists(st.one_of(item_rows, json_values), max_size=6)}),
)


def parse_or_parse_error(name: str, body: bytes, options: dict[str, Any]) -> ParseResult | None:
    try:
        result = parsers.parse(name, body, url=URL, options=options)
    except ParseError:
        return None
    assert len(result.records) + len(result.rejected) + int(result.meta["duplicates"]) == int(
        result.meta["rows"]
    )
    assert pickle.loads(pickle.dumps(result)) == result
    return result


@PROPERTY
@given(body=st.binary(max_size=200))
def test_generic_json_on_arbitrary_bytes(body: bytes) -> None:
    parse_or_parse_error("json", body, {"key": "id", "name": "n", "value": "v"})
    parse_or_parse_error("json", body, {"rows": "a.0", "key": ""})


@PROPERTY
@given(value=json_values)
def test_generic_json_on_arbitrary_json(value: Any) -> None:
    body = json.dumps(value).encode()  # the stdlib writes NaN/Infinity tokens
    parse_or_parse_error("json", body, {"key": "", "value": ""})
    parse_or_parse_error("json", body, {"rows": "results", "key": "key", "name": "fullName"})


@PROPERTY
@given(value=item_bodies)
def test_items_on_arbitrary_json_values(value: Any) -> None:
    result = parse_or_parse_error("items-json", json.dumps(value).encode(), {})
    if isinstance(value, list):
        assert result is not None


@PROPERTY
@given(value=item_bodies, name=st.sampled_from(["quests-json", "trades-json"]))
def test_other_json_parsers_on_arbitrary_json_values(value: Any, name: str) -> None:
    parse_or_parse_error(name, json.dumps(value).encode(), {})


@PROPERTY
@given(body=st.binary(max_size=300))
def test_html_parsers_on_arbitrary_bytes(body: bytes) -> None:
    parse_or_parse_error("shop-html", body, {})
    parse_or_parse_error("html", body, {"rows": "a, p", "key": "@href", "value": "."})
