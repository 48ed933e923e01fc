"""ingest.parsers: the registry, option checks, body decoding, purity and pickling."""

from __future__ import annotations

import inspect
import pathlib
import pickle
import subprocess
import sys
from typing import Any

import pytest

from ingest import parsers
from ingest.exceptions import InvalidSource, ParseError, UnknownParser

URL = "http://upstream.test/api/items/?page=1"

# One valid body per parser, with the options it needs.
SAMPLES: dict[str, tuple[bytes, dict[str, Any]]] = {
    "items-json": (b'{"results":[{"key":"item-1","fullName":"Gear","basePrice":1.5}]}', {}),
    "quests-json": (
        b'[{"key":"quest-1","title":"Q","required":[{"item":"item-1","quantity":2}]}]',
        {},
    ),
    "trades-json": (
        b'{"results":[{"id":1,"item":"item-1","price":2,"quantity":1,'
        b'"tradedAt":"2026-01-01T00:00:10+00:00"}]}',
        {},
    ),
    "shop-html": (
        b'<table class="prices"><tbody><tr data-key="item-1"><td class="name">Gear</td>'
        b'<td class="price">1.50</td></tr></tbody></table>',
        {},
    ),
    "json": (b'{"data":[{"id":"a","v":2}]}', {"rows": "data", "key": "id", "value": "v"}),
    "html": (b'<ul><li data-id="a">A</li></ul>', {"rows": "li", "key": "@data-id"}),
}


def test_names_are_the_contract() -> None:
    assert parsers.NAMES == (
        "items-json",
        "quests-json",
        "trades-json",
        "shop-html",
        "json",
        "html",
    )
    assert set(SAMPLES) == set(parsers.NAMES)


def test_get_unknown_parser_lists_the_choices() -> None:
    with pytest.raises(UnknownParser, match=r"unknown parser 'xml'; choose one of: items-json, "):
        parsers.get("xml")


def test_unknown_parser_is_both_a_parse_error_and_an_invalid_source() -> None:
    with pytest.raises(UnknownParser) as caught:
        parsers.validate_options("nope", {})
    assert isinstance(caught.value, ParseError)
    assert isinstance(caught.value, InvalidSource)


@pytest.mark.parametrize("name", parsers.NAMES)
def test_every_parser_parses_its_sample(name: str) -> None:
    body, options = SAMPLES[name]
    parsers.validate_options(name, options)
    result = parsers.parse(name, body, url=URL, options=options)
    assert len(result.records) == 1
    assert result.rejected == ()
    assert result.meta["rows"] == "1"
    assert result.meta["duplicates"] == "0"
    assert parsers.get(name)(body, url=URL, options=options) == result


@pytest.mark.parametrize("name", parsers.NAMES)
def test_results_survive_a_pickle_round_trip(name: str) -> None:
    body, options = SAMPLES[name]
    result = parsers.parse(name, body, url=URL, options=options)
    assert pickle.loads(pickle.dumps(result)) == result


def test_rejections_survive_a_pickle_round_trip() -> None:
    result = parsers.parse("items-json", b'[{"key":""},{"key":"a"}]', url=URL, options={})
    assert len(result.rejected) == 1
    assert pickle.loads(pickle.dumps(result)) == result


@pytest.mark.parametrize("name", parsers.NAMES)
def test_parsers_pickle_by_reference(name: str) -> None:
    # The pool ships the function by name to its children.
    assert pickle.loads(pickle.dumps(parsers.get(name))) is parsers.get(name)


async def test_run_is_a_coroutine_function_returning_what_parse_returns() -> None:
    assert inspect.iscoroutinefunction(parsers.run)
    body, options = SAMPLES["json"]
    assert await parsers.run("json", body, URL, options) == parsers.parse(
        "json", body, url=URL, options=options
    )


async def test_run_raises_parse_errors_like_parse() -> None:
    with pytest.raises(ParseError, match="empty body"):
        await parsers.run("items-json", b"", URL, {})


@pytest.mark.parametrize("name", ["items-json", "quests-json", "trades-json", "shop-html"])
def test_wire_format_parsers_refuse_options(name: str) -> None:
    with pytest.raises(ParseError, match=rf"unknown option\(s\) for '{name}': rows; allowed: none"):
        parsers.validate_options(name, {"rows": "x"})
    body, _ = SAMPLES[name]
    with pytest.raises(ParseError, match="unknown option"):
        parsers.parse(name, body, url=URL, options={"rows": "x"})


@pytest.mark.parametrize(
    ("name", "options", "message"),
    [
        ("json", {}, "needs the option 'key'"),
        ("json", {"rows": "data"}, "needs the option 'key'"),
        ("json", {"key": "id", "colour": "red"}, r"unknown option\(s\) for 'json': colour"),
        ("json", {"key": 3}, "option 'key' of 'json' must be a string, got int"),
        ("json", {"key": "a..b"}, "option 'key': empty segment in dot path 'a..b'"),
        ("json", {"key": "id", "rows": "data."}, "option 'rows': empty segment"),
        ("html", {"key": "@href"}, "needs the option 'rows'"),
        ("html", {"rows": "a"}, "needs the option 'key'"),
        ("html", {"rows": "a[", "key": "."}, "option 'rows': invalid CSS selector 'a\\['"),
        ("html", {"rows": " ", "key": "."}, "option 'rows' is empty"),
        ("html", {"rows": "a", "key": ""}, "option 'key' is empty"),
        ("html", {"rows": "a", "key": "td >@href"}, "option 'key': invalid CSS selector 'td >'"),
        ("html", {"rows": "a", "key": ".", "value": "@"}, "option 'value': invalid CSS"),
        ("html", {"rows": "a", "key": ".", "href": "x"}, r"unknown option\(s\) for 'html': href"),
    ],
)
def test_validate_options_names_the_problem(
    name: str, options: dict[str, Any], message: str
) -> None:
    with pytest.raises(ParseError, match=message):
        parsers.validate_options(name, options)


def test_options_must_be_a_mapping() -> None:
    with pytest.raises(ParseError, match="options for 'json' must be an object, got list"):
        parsers.validate_options("json", ["key"])  # type: ignore[arg-type]


@pytest.mark.parametrize("name", parsers.NAMES)
@pytest.mark.parametrize("body", [b"", b" \n\t "])
def test_empty_body_is_a_parse_error(name: str, body: bytes) -> None:
    _, options = SAMPLES[name]
    with pytest.raises(ParseError, match=r"^empty body$"):
        parsers.parse(name, body, url=URL, options=options)


@pytest.mark.parametrize("name", ["items-json", "quests-json", "trades-json", "json"])
@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b'{"results": [1,', r"^malformed JSON at byte 15: Expecting value$"),
        (b"[1] [2]", r"^malformed JSON at byte 4: Extra data$"),
        (b'["\xc3\xa9", tru]', r"^malformed JSON at byte 7: Expecting value$"),  # byte, not char 6
        (b'["ok", "caf\xe9"]', r"^invalid UTF-8 at byte 11: invalid continuation byte$"),
        (b'\xef\xbb\xbf["\xff"]', r"^invalid UTF-8 at byte 5: invalid start byte$"),
        (b"[" * 5000, r"^malformed JSON"),
        (b"[" + b"1" * 5000 + b"]", r"^malformed JSON"),
    ],
)
def test_undecodable_json_is_a_parse_error(name: str, body: bytes, message: str) -> None:
    _, options = SAMPLES[name]
    options = {"key": ""} if name == "json" else options
    with pytest.raises(ParseError, match=message):
        parsers.parse(name, body, url=URL, options=options)


def test_a_utf8_byte_order_mark_is_ignored() -> None:
    result = parsers.parse("items-json", b'\xef\xbb\xbf[{"key":"a"}]', url=URL, options={})
    assert [r.key for r in result.records] == ["a"]  # type: ignore[union-attr]


def test_importing_and_running_the_parsers_never_imports_django() -> None:
    # The pool's children never call django.setup(); a fresh interpreter shows what the
    # parsers pull in, which this test process (with Django loaded elsewhere) cannot.
    script = (
        "import sys, ingest.parsers as p\n"
        "from ingest.exceptions import ParseError\n"
        "for name in p.NAMES:\n"
        "    try: p.parse(name, b'[]', url='http://h/', options={'key': '', 'rows': 'a'})\n"
        "    except ParseError: pass\n"
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'django', 'httpx'}))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
        cwd=pathlib.Path(parsers.__file__).parents[2],
    )
    assert done.stdout.strip() == "[]"
