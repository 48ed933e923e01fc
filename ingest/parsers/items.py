"""``items-json``: the upstream's item catalogue → :class:`~ingest.records.ItemRecord`.

Wire format (one page of ``/api/items/?page=N``; a bare list of rows is accepted too)::

    {"page": 1, "pages": 20, "count": 10000,
     "results": [{"key": "item-000042", "fullName": "Rusty Copper Gear",
                  "image": "/img/items/item-000042.png", "basePrice": 123.45}]}

``fullName`` falls back to the key when missing or empty, a missing ``image`` is ``""``
(otherwise it is made absolute against the page URL) and a ``null`` ``basePrice`` is
``value=None``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ingest import records
from ingest.parsers import _common

NAME = "items-json"


def validate_options(options: Mapping[str, Any]) -> None:
    """``items-json`` takes no options."""
    _common.no_options(NAME, options)


def parse(body: bytes, *, url: str, options: Mapping[str, Any]) -> records.ParseResult:
    """Parse one catalogue page; bad rows are rejected, the rest kept (last key wins)."""
    validate_options(options)
    rows = _common.rows_at(_common.load_json(body), "results")
    return _common.collect(rows, lambda row: _item(row, url)).result("items")


def _item(row: object, base: str) -> tuple[str, records.ItemRecord]:
    fields = _common.row_object(row)
    key = _common.key(fields.get("key"), "key")
    name = _common.optional_text(fields.get("fullName"), "fullName").strip() or key
    image = _common.optional_text(fields.get("image"), "image").strip()
    value = _common.optional_number(fields.get("basePrice"), "basePrice")
    record = records.ItemRecord(
        key=key, name=name, image=_common.absolute(base, image), value=value
    )
    return key, record
