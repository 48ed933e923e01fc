"""Validation shared by every parser: decoding, field checks, duplicate collapsing.

Field checks raise :class:`RowError`; a parser catches it per row and turns it into a
:class:`~ingest.records.Rejection`, so one bad row never costs the others. Whole-body
problems raise :class:`~ingest.exceptions.ParseError` instead.

The limits come from the columns the loader writes: Postgres ``text`` cannot hold NUL,
``double precision`` should not hold NaN/Infinity (they poison avg/min/max), quantities
are ``integer`` (int32) and trade ids are ``bigint`` primary keys.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Hashable, Iterable, Mapping
from typing import Any, Final
from urllib.parse import urljoin

import orjson
from selectolax.lexbor import LexborHTMLParser, SelectolaxError

from ingest import records
from ingest.exceptions import ParseError

INT32_MAX: Final = 2**31 - 1
BIGINT_MAX: Final = 2**63 - 1

_BOM: Final = b"\xef\xbb\xbf"
_INTEGER: Final = re.compile(r"[+-]?\d+", re.ASCII)
_ESCAPED_BYTE: Final = re.compile("[\udc80-\udcff]")
# Longer digit strings are out of any column's range; int() on them would be slow or refuse.
_MAX_DIGITS: Final = 30


class RowError(Exception):
    """One row cannot be loaded; ``str(error)`` is the rejection reason."""


class Missing:
    """Sentinel type for "no value here" (distinct from JSON ``null``)."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "MISSING"


MISSING: Final = Missing()


def type_name(value: object) -> str:
    """JSON-ish name of a value's type, for reasons an operator can act on."""
    if value is None:
        return "null"
    return {dict: "object", list: "list", str: "string", bool: "bool"}.get(type(value)) or (
        type(value).__name__
    )


# -- decoding ---------------------------------------------------------------------------


def check_not_empty(body: bytes) -> None:
    """Reject a body with nothing in it (a truncated or misrouted response, not "no rows")."""
    if not body or body.isspace():
        raise ParseError("empty body")


def load_json(body: bytes) -> Any:
    """Decode a JSON body: orjson first, then the stdlib for what orjson refuses.

    The stdlib fallback accepts the bare ``NaN``/``Infinity`` tokens some producers emit
    (they become float NaN/inf and only the rows using them are rejected), very large
    integers and lone surrogate escapes (rejected per field by :func:`text`).
    """
    check_not_empty(body)
    offset = 0
    if body.startswith(_BOM):  # RFC 8259 lets parsers ignore it; orjson refuses it
        body, offset = body[len(_BOM) :], len(_BOM)
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        pass
    try:
        text_body = body.decode("utf-8")
    except UnicodeDecodeError as error:
        raise ParseError(f"invalid UTF-8 at byte {error.start + offset}: {error.reason}") from None
    try:
        # parse_constant: NaN/Infinity become floats that number() then refuses per row
        return json.loads(text_body, parse_constant=float)
    except json.JSONDecodeError as error:
        at = len(text_body[: error.pos].encode("utf-8", "surrogatepass")) + offset
        raise ParseError(f"malformed JSON at byte {at}: {error.msg}") from None
    except RecursionError:
        raise ParseError("malformed JSON: nested too deeply") from None
    except ValueError as error:  # e.g. an integer literal longer than int()'s digit cap
        raise ParseError(f"malformed JSON: {error}") from None


def load_html(body: bytes) -> tuple[LexborHTMLParser, dict[str, str]]:
    """Parse an HTML body the way a browser decodes it, never failing on encoding.

    A byte-order mark or a ``<meta charset>`` in the first 1024 bytes is honoured (the
    HTML Standard's prescan, done by lexbor); anything else is read as UTF-8 with each
    invalid sequence shown as U+FFFD. The returned meta says what happened:
    ``replaced_bytes`` (how many bytes were not valid UTF-8) or ``transcoded=true``
    (the page was decoded from the charset its BOM or ``<meta charset>`` declares).
    """
    check_not_empty(body)
    meta: dict[str, str] = {}
    invalid = 0 if body.isascii() else _invalid_utf8_bytes(body)
    try:
        tree = LexborHTMLParser(body, encoding=True)
    except (ValueError, SelectolaxError) as error:
        raise ParseError(f"unparsable HTML: {error}") from None
    if invalid:
        # lexbor hands back the UTF-8 it parsed (minus a BOM): changed bytes mean it transcoded
        if tree.raw_html != body.removeprefix(_BOM):
            meta["transcoded"] = "true"
        else:
            meta["replaced_bytes"] = str(invalid)
    return tree, meta


def _invalid_utf8_bytes(body: bytes) -> int:
    try:
        body.decode("utf-8")
    except UnicodeDecodeError:
        # surrogateescape maps each undecodable byte to one U+DC80..U+DCFF code point
        return len(_ESCAPED_BYTE.findall(body.decode("utf-8", "surrogateescape")))
    return 0


def rows_at(document: Any, key: str) -> list[Any]:
    """The list of rows of an upstream envelope ``{key: [...]}``, or a bare list."""
    if isinstance(document, list):
        return document
    if not isinstance(document, dict):
        raise ParseError(
            f"expected an object with {key!r} or a list of rows, got {type_name(document)}"
        )
    rows = document.get(key, MISSING)
    if not isinstance(rows, list):
        got = "nothing" if rows is MISSING else type_name(rows)
        raise ParseError(f"expected a list of rows at {key!r}, got {got}")
    return rows


def no_options(parser: str, options: Mapping[str, Any]) -> None:
    """Built-in wire-format parsers take no options; refuse any so typos surface."""
    check_option_names(parser, options, allowed=())


def check_option_names(
    parser: str, options: Mapping[str, Any], *, allowed: tuple[str, ...]
) -> None:
    """Refuse a non-mapping, an unknown option name or a non-string option value."""
    if not isinstance(options, Mapping):
        raise ParseError(f"options for {parser!r} must be an object, got {type_name(options)}")
    unknown = sorted(str(name) for name in options if name not in allowed)
    if unknown:
        choices = ", ".join(allowed) if allowed else "none"
        raise ParseError(
            f"unknown option(s) for {parser!r}: {', '.join(unknown)}; allowed: {choices}"
        )
    for name in allowed:
        value = options.get(name)
        if value is not None and not isinstance(value, str):
            raise ParseError(
                f"option {name!r} of {parser!r} must be a string, got {type_name(value)}"
            )


# -- fields -----------------------------------------------------------------------------


def text(value: object, field: str) -> str:
    """A string that Postgres ``text`` can store."""
    if not isinstance(value, str):
        raise RowError(f"field {field!r} has wrong type: expected string, got {type_name(value)}")
    if "\x00" in value:
        raise RowError(f"NUL byte in field {field!r}")
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:  # a lone surrogate escape that only the stdlib decoder lets in
            raise RowError(f"invalid Unicode (lone surrogate) in field {field!r}") from None
    return value


def key(value: object, field: str) -> str:
    """A required, non-empty key; surrounding whitespace never distinguishes two keys."""
    if value is None or value is MISSING:
        raise RowError(f"missing field {field!r}")
    stripped = text(value, field).strip()
    if not stripped:
        raise RowError(f"empty field {field!r}")
    return stripped


def optional_text(value: object, field: str) -> str:
    """A string, with missing and ``null`` read as ``""``."""
    if value is None or value is MISSING:
        return ""
    return text(value, field)


def number(value: object, field: str) -> float:
    """A finite float from a JSON number or a plain decimal string (``"12.5"``)."""
    if isinstance(value, str):  # first: every HTML value is one
        result = _decimal(value, field)
    elif isinstance(value, float):
        result = value
    elif isinstance(value, bool):  # bool is an int subclass, but true is not 1.0 here
        raise RowError(f"field {field!r} has wrong type: expected number, got bool")
    elif isinstance(value, int):
        try:
            result = float(value)
        except OverflowError:  # the stdlib decoder keeps arbitrarily large integers
            raise RowError(f"non-finite value in field {field!r}") from None
    elif value is None or value is MISSING:
        raise RowError(f"missing field {field!r}")
    else:
        raise RowError(f"field {field!r} has wrong type: expected number, got {type_name(value)}")
    if not math.isfinite(result):
        raise RowError(f"non-finite value in field {field!r}")
    return result


def _decimal(value: str, field: str) -> float:
    # float() alone would also take "1_000" and non-ASCII digits; "nan" and "inf" do parse
    # here, and number() refuses them as non-finite.
    if value.isascii() and "_" not in value:
        try:
            return float(value)
        except ValueError:
            pass
    if not value.strip():
        raise RowError(f"empty field {field!r}")
    raise RowError(f"field {field!r} is not a number: {value[:40]!r}")


def optional_number(value: object, field: str) -> float | None:
    """Like :func:`number`, with missing and ``null`` read as ``None``."""
    if value is None or value is MISSING:
        return None
    return number(value, field)


def integer(value: object, field: str, *, low: int, high: int) -> int:
    """An integer in ``low..high`` from a JSON integer or a string of digits.

    Floats are refused even when whole: an id or a count sent as ``3.0`` means the
    producer's types are off, and guessing would hide it.
    """
    if isinstance(value, bool):
        raise RowError(f"field {field!r} has wrong type: expected integer, got bool")
    if isinstance(value, int):
        result = value
    elif isinstance(value, str):
        stripped = value.strip()
        if not _INTEGER.fullmatch(stripped):
            raise RowError(f"field {field!r} is not an integer: {value[:40]!r}")
        if len(stripped.lstrip("+-")) > _MAX_DIGITS:
            raise RowError(f"field {field!r} out of range: {stripped[:40]}... not in {low}..{high}")
        result = int(stripped)
    elif isinstance(value, float) and value.is_integer() and not low <= value <= high:
        # orjson turns integers beyond 64 bits into floats; say what the producer meant
        shown = f"{value:.0f}" if abs(value) < 1e30 else f"{value:.6g}"
        raise RowError(f"field {field!r} out of range: {shown} not in {low}..{high}")
    elif value is None or value is MISSING:
        raise RowError(f"missing field {field!r}")
    else:
        raise RowError(f"field {field!r} has wrong type: expected integer, got {type_name(value)}")
    if not low <= result <= high:
        raise RowError(f"field {field!r} out of range: {result} not in {low}..{high}")
    return result


def row_object(row: object) -> dict[str, Any]:
    """A row of a JSON wire format must be an object."""
    if not isinstance(row, dict):
        raise RowError(f"row is not an object, got {type_name(row)}")
    return row


def squash(value: str) -> str:
    """Whitespace collapsed to single spaces and stripped, as text reads on screen."""
    return " ".join(value.split())


def absolute(base: str, reference: str) -> str:
    """``reference`` resolved against the page URL; an empty reference stays empty."""
    return urljoin(base, reference) if reference else ""


# -- collecting -------------------------------------------------------------------------


class Collector:
    """Accepted records by key (the last row with a key wins), and rejections by index."""

    __slots__ = ("_records", "duplicates", "rejected")

    def __init__(self) -> None:
        self._records: dict[Hashable, records.Record] = {}
        self.rejected: list[records.Rejection] = []
        self.duplicates = 0

    def values(self) -> list[records.Record]:
        """The accepted records so far, in first-seen key order."""
        return list(self._records.values())

    def add(self, row_key: Hashable, record: records.Record) -> None:
        """Keep ``record``; an earlier record with the same key is replaced, not rejected."""
        if row_key in self._records:
            self.duplicates += 1
        self._records[row_key] = record

    def reject(self, index: int, reason: str) -> None:
        """Record why row ``index`` (0-based, in body order) was refused."""
        self.rejected.append(records.Rejection(index=index, reason=reason))

    def result(
        self,
        kind: str,
        *,
        next_cursor: int | None = None,
        more: bool = False,
        meta: Mapping[str, str] | None = None,
    ) -> records.ParseResult:
        """The :class:`ParseResult`, with ``rows`` and ``duplicates`` counts in ``meta``."""
        rows = len(self._records) + self.duplicates + len(self.rejected)
        return records.ParseResult(
            kind=kind,
            records=tuple(self._records.values()),
            rejected=tuple(self.rejected),
            next_cursor=next_cursor,
            more=more,
            meta={"rows": str(rows), "duplicates": str(self.duplicates), **(meta or {})},
        )


def collect(
    rows: Iterable[Any], convert: Callable[[Any], tuple[Hashable, records.Record]]
) -> Collector:
    """Convert each row, keeping ``(key, record)`` results and rejecting on :class:`RowError`."""
    out = Collector()
    for index, row in enumerate(rows):
        try:
            row_key, record = convert(row)
        except RowError as error:
            out.reject(index, str(error))
        else:
            out.add(row_key, record)
    return out
