"""``quests-json``: quests with their required and reward items → ``QuestRecord``.

Wire format (``/api/quests/``; a bare list of rows is accepted too)::

    {"count": 1, "results": [{"key": "quest-00001", "title": "…",
      "image": "/img/quests/quest-00001.png", "text": "…",
      "required": [{"item": "item-000017", "quantity": 3}],
      "rewards": [{"item": "item-000901", "quantity": 1}]}]}

Links name items by key only; the loader resolves them (an item not loaded yet is kept
by key, not dropped). One invalid link rejects its whole quest, so a quest is never
loaded with part of its requirements. Within one list a repeated item key keeps its
last quantity (the table is unique on ``(quest, item_key)``). ``title`` falls back to
the key when missing or empty; ``text``, ``image``, ``required`` and ``rewards`` may be
missing or ``null``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ingest import records
from ingest.parsers import _common

NAME = "quests-json"


def validate_options(options: Mapping[str, Any]) -> None:
    """``quests-json`` takes no options."""
    _common.no_options(NAME, options)


def parse(body: bytes, *, url: str, options: Mapping[str, Any]) -> records.ParseResult:
    """Parse a quest list; bad quests are rejected, the rest kept (last key wins)."""
    validate_options(options)
    rows = _common.rows_at(_common.load_json(body), "results")
    return _common.collect(rows, lambda row: _quest(row, url)).result("quests")


def _quest(row: object, base: str) -> tuple[str, records.QuestRecord]:
    fields = _common.row_object(row)
    key = _common.key(fields.get("key"), "key")
    title = _common.optional_text(fields.get("title"), "title").strip() or key
    image = _common.optional_text(fields.get("image"), "image").strip()
    record = records.QuestRecord(
        key=key,
        title=title,
        image=_common.absolute(base, image),
        text=_common.optional_text(fields.get("text"), "text"),
        required=_links(fields.get("required"), "required"),
        rewards=_links(fields.get("rewards"), "rewards"),
    )
    return key, record


def _links(value: object, field: str) -> tuple[records.QuestLinkRecord, ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        raise _common.RowError(
            f"field {field!r} has wrong type: expected list, got {_common.type_name(value)}"
        )
    quantities: dict[str, int] = {}
    for position, link in enumerate(value):
        where = f"{field}[{position}]"
        if not isinstance(link, dict):
            raise _common.RowError(f"{where} is not an object, got {_common.type_name(link)}")
        try:
            item_key = _common.key(link.get("item"), "item")
            quantity = _common.integer(
                link.get("quantity"), "quantity", low=0, high=_common.INT32_MAX
            )
        except _common.RowError as error:
            raise _common.RowError(f"{where}: {error}") from None
        quantities[item_key] = quantity
    return tuple(
        records.QuestLinkRecord(item_key=item_key, quantity=quantity)
        for item_key, quantity in quantities.items()
    )
