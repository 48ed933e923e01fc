"""``json``: any JSON document → :class:`~ingest.records.ObservationRecord` by dot paths.

Options (all strings)::

    {"rows": "data.results", "key": "id", "name": "title", "value": "price"}

- ``rows``: dot path to the list of rows; absent or ``""`` means the document itself
  must be a list.
- ``key`` (required): dot path within a row; ``""`` means the row itself (a list of
  strings or numbers).
- ``name``: dot path; missing, ``null`` or empty falls back to the key.
- ``value``: dot path to a number or a plain decimal string; without this option every
  row counts 1.0. A row lacking the value it was asked for is rejected.

A dot path is segments separated by ``.``; on a list a segment of ASCII digits is an
index (``"data.0.items"``), on an object every segment is a member name, so object
members whose names contain a dot cannot be reached.

Keys and names are strings; a number becomes its decimal text, and a whole float is
written as an integer (``42`` and ``42.0`` are the same JSON number, so both become
``"42"``; ``12.5`` stays ``"12.5"``). ``true``/``false``, objects and lists are
rejected as keys.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, Final

from ingest import records
from ingest.exceptions import ParseError
from ingest.parsers import _common

NAME = "json"
OPTIONS: Final = ("rows", "key", "name", "value")

Path = tuple[str, ...]


def validate_options(options: Mapping[str, Any]) -> None:
    """Refuse unknown options, a missing ``key`` and malformed dot paths."""
    _compile(options)


def parse(body: bytes, *, url: str, options: Mapping[str, Any]) -> records.ParseResult:
    """Parse ``body`` into one observation per row key (the last row of a key wins)."""
    rows_path, key_path, name_path, value_path = _compile(options)
    document = _common.load_json(body)
    rows = resolve(document, rows_path)
    where = f"at {options.get('rows')!r}" if rows_path else "at the top level"
    if rows is _common.MISSING:
        raise ParseError(f"expected a list of rows {where}, got nothing")
    if not isinstance(rows, list):
        raise ParseError(f"expected a list of rows {where}, got {_common.type_name(rows)}")
    # the dot path names the field in rejection reasons; "" is the row itself
    key_field = options["key"] or "(the row)"
    name_field = options.get("name") or "(the row)"
    value_field = options.get("value") or "(the row)"

    def observation(row: object) -> tuple[str, records.ObservationRecord]:
        raw_key = resolve(row, key_path)
        if not isinstance(raw_key, str):  # strings, the common case, are checked once by key()
            raw_key = _scalar_text(raw_key, key_field)
        key = _common.key(raw_key, key_field)
        name = key
        if name_path is not None:
            raw_name = _scalar_text(resolve(row, name_path), name_field)
            if not isinstance(raw_name, _common.Missing):
                name = raw_name.strip() or key
        value = 1.0
        if value_path is not None:
            value = _common.number(resolve(row, value_path), value_field)
        return key, records.ObservationRecord(item_key=key, name=name, value=value)

    return _common.collect(rows, observation).result("observations")


def resolve(value: Any, path: Path) -> Any:
    """The value at ``path`` inside ``value``, or ``MISSING``."""
    if len(path) == 1 and isinstance(value, dict):  # the hot path: a member of the row
        return value.get(path[0], _common.MISSING)
    for segment in path:
        if isinstance(value, dict):
            value = value.get(segment, _common.MISSING)
            if value is _common.MISSING:
                return value
        elif isinstance(value, list) and segment.isascii() and segment.isdigit():
            index = int(segment)
            if index >= len(value):
                return _common.MISSING
            value = value[index]
        else:
            return _common.MISSING
    return value


def _compile(options: Mapping[str, Any]) -> tuple[Path, Path, Path | None, Path | None]:
    _common.check_option_names(NAME, options, allowed=OPTIONS)
    if options.get("key") is None:
        raise ParseError(f"parser {NAME!r} needs the option 'key' (a dot path within a row)")
    name, value = options.get("name"), options.get("value")
    return (
        _path(options.get("rows") or "", "rows"),
        _path(options["key"], "key"),
        None if name is None else _path(name, "name"),
        None if value is None else _path(value, "value"),
    )


def _path(text: str, option: str) -> Path:
    if not text:
        return ()
    segments = tuple(text.split("."))
    if not all(segments):
        raise ParseError(f"option {option!r}: empty segment in dot path {text!r}")
    return segments


def _scalar_text(value: object, field: str) -> str | _common.Missing:
    """A key or name as text; ``null`` and absent values are ``MISSING``."""
    if value is None or value is _common.MISSING:
        return _common.MISSING
    if isinstance(value, str):
        return _common.text(value, field)
    if isinstance(value, bool):
        raise _common.RowError(
            f"field {field!r} has wrong type: expected string or number, got bool"
        )
    if isinstance(value, int):
        return _int_text(value, field)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise _common.RowError(f"non-finite value in field {field!r}")
        return _int_text(int(value), field) if value.is_integer() else repr(value)
    raise _common.RowError(
        f"field {field!r} has wrong type: expected string or number, got {_common.type_name(value)}"
    )


def _int_text(value: int, field: str) -> str:
    try:
        return str(value)
    except ValueError:  # beyond int()'s digit cap; the stdlib decoder refuses these anyway
        raise _common.RowError(f"field {field!r} out of range: too many digits") from None
