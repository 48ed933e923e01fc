"""html (generic): rows by CSS selector, fields by spec, links resolved like urljoin."""

from __future__ import annotations

from typing import Any
from urllib.parse import urljoin

import pytest

from ingest.exceptions import ParseError
from ingest.parsers import generic_html
from ingest.records import ObservationRecord, ParseResult

URL = "http://site.test/blog/2026/post.html?page=2#top"
LINKS = {"rows": "a[href]", "key": "@href", "name": "."}


def parse(body: str | bytes, options: dict[str, Any]) -> ParseResult:
    raw = body.encode() if isinstance(body, str) else body
    return generic_html.parse(raw, url=URL, options=options)


def reasons(result: ParseResult) -> list[tuple[int, str]]:
    return [(r.index, r.reason) for r in result.rejected]


def obs(key: str, name: str | None = None, value: float = 1.0) -> ObservationRecord:
    return ObservationRecord(item_key=key, name=key if name is None else name, value=value)


def test_the_design_example_counts_each_link_target_once() -> None:
    body = """<html><body>
      <a href="/about">About <b>us</b></a>
      <a href="https://other.test/x">Elsewhere</a>
      <a>no href: not a row</a>
      <a href="/about">About again</a>
    </body></html>"""
    result = parse(body, LINKS)
    assert result.kind == "observations"
    assert result.records == (
        obs("http://site.test/about", "About again"),
        obs("https://other.test/x", "Elsewhere"),
    )
    assert result.meta == {"rows": "3", "duplicates": "1"}


@pytest.mark.parametrize(
    "href",
    [
        "../x",
        "../../../../x",
        "//cdn.test/x",
        "?q=1",
        "#frag",
        "x/y",
        "/abs",
        "https://other.test/p?q#f",
        "mailto:someone@site.test",
        "  padded.html  ",
        "a b",
    ],
)
def test_href_and_src_are_resolved_exactly_like_urljoin(href: str) -> None:
    body = f'<a href="{href}">A</a><img src="{href}">'
    links = parse(body, LINKS).records
    images = parse(body, {"rows": "img", "key": "@src"}).records
    expected = urljoin(URL, href.strip())
    assert links == (obs(expected, "A"),)
    assert images == (obs(expected),)


def test_urljoin_examples_spelled_out() -> None:
    body = '<a href="../x">1</a><a href="//host/x">2</a><a href="?q">3</a><a href="#frag">4</a>'
    assert [r.item_key for r in parse(body, LINKS).records] == [  # type: ignore[union-attr]
        "http://site.test/blog/x",
        "http://host/x",
        "http://site.test/blog/2026/post.html?q",
        "http://site.test/blog/2026/post.html?page=2#frag",
    ]


def test_other_attributes_are_not_resolved() -> None:
    body = '<a href="/a" data-id="../rel">A</a>'
    assert parse(body, {"rows": "a", "key": "@data-id"}).records == (obs("../rel"),)


PRODUCTS = """
<div class="product" data-sku="sku-1">
  <h2 class="title">  Copper
     Kettle </h2>
  <span class="price">19.50</span>
  <a class="more" href="/p/1">details</a>
  <img src="img/1.png">
</div>
<div class="product" data-sku="sku-2">
  <h2 class="title">Lantern</h2><span class="price">7</span>
  <a class="more" href="/p/2">details</a>
</div>
"""


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        (
            {"rows": "div.product", "key": "@data-sku", "name": "h2.title", "value": "span.price"},
            [obs("sku-1", "Copper Kettle", 19.5), obs("sku-2", "Lantern", 7.0)],
        ),
        (
            {"rows": "div.product", "key": "a.more@href", "name": "h2"},
            [obs("http://site.test/p/1", "Copper Kettle"), obs("http://site.test/p/2", "Lantern")],
        ),
        (
            {"rows": "span.price", "key": ".", "value": "."},
            [obs("19.50", "19.50", 19.5), obs("7", "7", 7.0)],
        ),
        (
            {"rows": "div.product", "key": "@DATA-SKU", "name": "@data-missing"},
            [obs("sku-1"), obs("sku-2")],
        ),
    ],
)
def test_field_specs(options: dict[str, str], expected: list[ObservationRecord]) -> None:
    result = parse(PRODUCTS, options)
    assert list(result.records) == expected
    assert result.rejected == ()


def test_a_row_missing_its_key_is_rejected() -> None:
    result = parse(PRODUCTS, {"rows": "div.product", "key": "img@src"})
    assert result.records == (obs("http://site.test/blog/2026/img/1.png"),)
    assert reasons(result) == [(1, "missing field 'img@src'")]


def test_an_empty_key_is_rejected() -> None:
    body = '<li data-id="a">A</li><li data-id=" ">B</li><li data-id>C</li><li>  </li>'
    result = parse(body, {"rows": "li", "key": "@data-id"})
    assert reasons(result) == [
        (1, "empty field '@data-id'"),
        (2, "missing field '@data-id'"),
        (3, "missing field '@data-id'"),
    ]
    assert reasons(parse(body, {"rows": "li", "key": "."}))[0] == (3, "empty field '.'")


def test_a_value_that_is_missing_or_not_a_number_is_rejected() -> None:
    body = (
        '<tr data-k="a"><td class="p">1,50</td></tr><tr data-k="b"></tr>'
        '<tr data-k="c"><td class="p">NaN</td></tr><tr data-k="d"><td class="p"> 2 </td></tr>'
    )
    result = parse(f"<table>{body}</table>", {"rows": "tr", "key": "@data-k", "value": "td.p"})
    assert reasons(result) == [
        (0, "field 'td.p' is not a number: '1,50'"),
        (1, "missing field 'td.p'"),
        (2, "non-finite value in field 'td.p'"),
    ]
    assert result.records == (obs("d", "d", 2.0),)


def test_a_field_selector_never_matches_the_row_itself() -> None:
    body = '<div class="box" id="outer">outer text<div class="box" id="inner">inner</div></div>'
    result = parse(body, {"rows": "#outer", "key": "div.box@id", "name": "div"})
    assert result.records == (obs("inner", "inner"),)
    result = parse(body, {"rows": "#inner", "key": "@id", "name": "div.box"})
    assert result.records == (obs("inner"),)  # no descendant: falls back to the key


def test_selectors_with_an_at_sign_stay_css() -> None:
    body = '<a href="mailto:x@site.test">mail</a><a href="/p">page</a>'
    options = {"rows": "a[href*='@']", "key": "."}
    assert parse(body, options).records == (obs("mail"),)
    nested = {"rows": "body", "key": "a[href*='@']@href"}
    assert parse(body, nested).records == (obs("mailto:x@site.test"),)


def test_invalid_utf8_is_replaced_and_counted() -> None:
    result = parse(b'<a href="/caf\xe9">caf\xe9 \xff\xfe</a>', LINKS)
    # urljoin does not percent-encode, so neither do we
    assert result.records == (obs("http://site.test/caf\ufffd", "caf\ufffd \ufffd\ufffd"),)
    assert result.meta["replaced_bytes"] == "4"


def test_no_matching_rows_is_an_empty_result() -> None:
    result = parse("<p>nothing here</p>", LINKS)
    assert result.records == ()
    assert result.meta == {"rows": "0", "duplicates": "0"}


def test_options_are_checked_before_the_body() -> None:
    with pytest.raises(ParseError, match="invalid CSS selector"):
        parse("<a href=x>x</a>", {"rows": "a[", "key": "."})


@pytest.mark.parametrize(
    ("spec", "selector", "attribute"),
    [
        (".", None, None),
        ("@href", None, "href"),
        ("@Data-Id", None, "data-id"),
        ("td.price", "td.price", None),
        ("td a@href", "td a", "href"),
        ("svg use@xlink:href", "svg use", "xlink:href"),
        ("a[href$='@x']", "a[href$='@x']", None),
    ],
)
def test_field_spec_compilation(spec: str, selector: str | None, attribute: str | None) -> None:
    compiled = generic_html.field_spec(spec, "key")
    assert (compiled.selector, compiled.attribute) == (selector, attribute)
