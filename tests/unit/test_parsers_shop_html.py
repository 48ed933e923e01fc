"""shop-html: a shop's price table becomes price observations."""

from __future__ import annotations

import pytest

from ingest.exceptions import ParseError
from ingest.parsers import shop_html
from ingest.records import ObservationRecord, ParseResult

URL = "http://upstream.test/shops/3.html"


def page(rows: str, *, head: str = '<meta charset="utf-8">') -> bytes:
    return (
        f"<!doctype html><html><head>{head}<title>Shop 3 — Sample</title></head><body>"
        '<nav><a href="/shops/2.html">Previous</a></nav>'
        '<table class="prices"><thead><tr><th>Key</th><th>Name</th><th>Price</th></tr></thead>'
        f"<tbody>\n{rows}\n</tbody></table></body></html>"
    ).encode()


def row(key: str, name: str, price: str, *, data_key: str | None = None) -> str:
    attribute = f' data-key="{key if data_key is None else data_key}"'
    return (
        f'<tr{attribute}><td class="key">{key}</td><td class="name">{name}</td>'
        f'<td class="price">{price}</td></tr>'
    )


def parse(body: bytes) -> ParseResult:
    return shop_html.parse(body, url=URL, options={})


def reasons(result: ParseResult) -> list[tuple[int, str]]:
    return [(r.index, r.reason) for r in result.rejected]


def test_a_price_table() -> None:
    body = page(
        row("item-000042", "Rusty Copper Gear", "12.34")
        + row("item-000043", "Nuts &amp; Bolts, Crème", " 7 ")
    )
    result = parse(body)
    assert result.kind == "observations"
    assert result.records == (
        ObservationRecord(item_key="item-000042", name="Rusty Copper Gear", value=12.34),
        ObservationRecord(item_key="item-000043", name="Nuts & Bolts, Crème", value=7.0),
    )
    assert result.rejected == ()
    assert result.meta == {"rows": "2", "duplicates": "0"}


def test_the_key_falls_back_to_the_key_cell() -> None:
    body = page(
        '<tr><td class="key"> item-1 </td><td class="price">1</td></tr>'
        + row("item-2", "Two", "2", data_key="  ")
    )
    result = parse(body)
    assert [(r.item_key, r.name) for r in result.records] == [  # type: ignore[union-attr]
        ("item-1", "item-1"),
        ("item-2", "Two"),
    ]


def test_the_data_key_wins_over_the_key_cell() -> None:
    result = parse(page(row("cell-key", "N", "1", data_key="attr-key")))
    assert [r.item_key for r in result.records] == ["attr-key"]  # type: ignore[union-attr]


def test_names_are_whitespace_collapsed_and_fall_back_to_the_key() -> None:
    body = page(row("a", "\n  Rusty <b>Copper</b>\t Gear  ", "1") + row("b", "   ", "2"))
    assert [r.name for r in parse(body).records] == ["Rusty Copper Gear", "b"]  # type: ignore[union-attr]


def test_cells_with_several_classes_are_found() -> None:
    body = page('<tr data-key="a"><td class="name wide">A</td><td class="sale price">3.5</td></tr>')
    assert parse(body).records == (ObservationRecord(item_key="a", name="A", value=3.5),)


@pytest.mark.parametrize(
    ("price", "reason"),
    [
        ("1,234.50", "field 'price' is not a number: '1,234.50'"),
        ("$5", "field 'price' is not a number: '$5'"),
        ("12,5", "field 'price' is not a number: '12,5'"),
        ("", "empty field 'price'"),
        ("NaN", "non-finite value in field 'price'"),
        ("Infinity", "non-finite value in field 'price'"),
    ],
)
def test_a_price_that_is_not_a_plain_decimal_is_rejected(price: str, reason: str) -> None:
    result = parse(page(row("a", "A", price) + row("b", "B", "2.00")))
    assert reasons(result) == [(0, reason)]
    assert [r.item_key for r in result.records] == ["b"]  # type: ignore[union-attr]


def test_rows_without_a_key_or_a_price_are_rejected() -> None:
    body = page(
        '<tr><td class="name">Nameless</td><td class="price">1</td></tr>'
        '<tr data-key="a"><td class="name">No price</td></tr>'
        '<tr data-key="b"><td class="price">1</td></tr>'
    )
    result = parse(body)
    assert reasons(result) == [
        (0, "missing field 'data-key or td.key'"),
        (1, "missing field 'price'"),
    ]
    assert result.records == (ObservationRecord(item_key="b", name="b", value=1.0),)


def test_nul_bytes_never_reach_a_field() -> None:
    # The HTML parser drops NUL characters from text, as browsers do: nothing to reject.
    result = parse(page(row("a", "x\x00y", "1")))
    assert result.records == (ObservationRecord(item_key="a", name="xy", value=1.0),)


def test_duplicate_keys_collapse_and_the_last_row_wins() -> None:
    body = page(row("a", "A", "1") + row("b", "B", "2") + row("a", "A again", "3"))
    result = parse(body)
    assert result.records == (
        ObservationRecord(item_key="a", name="A again", value=3.0),
        ObservationRecord(item_key="b", name="B", value=2.0),
    )
    assert result.meta == {"rows": "3", "duplicates": "1"}


def test_header_rows_and_other_tables_are_not_rows() -> None:
    body = page(row("a", "A", "1")).replace(
        b"</body>", b'<table><tbody><tr data-key="x"><td class="price">1</td></tr></tbody></table>'
    )
    result = parse(body)
    assert [r.item_key for r in result.records] == ["a"]  # type: ignore[union-attr]
    assert result.meta["rows"] == "1"


def test_an_empty_table_is_no_rows() -> None:
    assert parse(page("")).records == ()


def test_a_page_without_the_price_table_is_a_parse_error() -> None:
    with pytest.raises(ParseError, match=r"^no table\.prices table in the page$"):
        parse(b"<html><body><h1>502 Bad Gateway</h1></body></html>")


def test_invalid_utf8_is_replaced_and_counted() -> None:
    body = page(row("a", "Crème", "1")).replace("è".encode(), b"\xe8")  # a Latin-1 byte
    result = parse(body)
    assert result.records == (ObservationRecord(item_key="a", name="Cr\ufffdme", value=1.0),)
    assert result.meta["replaced_bytes"] == "1"


def test_a_declared_legacy_charset_is_honoured() -> None:
    body = page(row("a", "Crème", "1"), head='<meta charset="windows-1252">')
    result = parse(body.decode().encode("cp1252"))
    assert result.records == (ObservationRecord(item_key="a", name="Crème", value=1.0),)
    assert result.meta["transcoded"] == "true"
    assert "replaced_bytes" not in result.meta
