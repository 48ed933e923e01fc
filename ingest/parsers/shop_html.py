"""``shop-html``: a shop's price table → :class:`~ingest.records.ObservationRecord`.

Page format (``/shops/<n>.html``)::

    <table class="prices"><tbody>
      <tr data-key="item-000042"><td class="key">item-000042</td>
        <td class="name">Rusty Copper Gear</td><td class="price">12.34</td></tr>
    </tbody></table>

The key is the row's ``data-key`` (else the text of its ``td.key``), the name the text
of ``td.name`` (else the key) and the value the text of ``td.price``, which must be a
plain decimal: ``"1,234.50"`` or ``"$5"`` are rejected rather than guessed at (a comma
is a thousands separator in one locale and the decimal point in another).

A page without ``table.prices`` raises :class:`ParseError`: it is an error page or the
wrong page, and loading "no rows" would wipe the source's observations. Invalid UTF-8
is not fatal; see :func:`ingest.parsers._common.load_html` for the ``meta`` it leaves.

This is the CPU-heavy parser, so each row is read in one pass over its cells instead
of one CSS query per cell: on a 100-row upstream page two ``css_first()`` calls per row
took about 1 ms, three times lexbor's whole parse, where the pass takes about 0.25 ms.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from selectolax.lexbor import LexborNode

from ingest import records
from ingest.exceptions import ParseError
from ingest.parsers import _common

NAME = "shop-html"
_TABLE: Final = "table.prices"
_ROWS: Final = "table.prices > tbody > tr"
_CELLS: Final = frozenset({"key", "name", "price"})


def validate_options(options: Mapping[str, Any]) -> None:
    """``shop-html`` takes no options."""
    _common.no_options(NAME, options)


def parse(body: bytes, *, url: str, options: Mapping[str, Any]) -> records.ParseResult:
    """Parse one shop page into price observations (the last row of a key wins)."""
    validate_options(options)
    tree, meta = _common.load_html(body)
    rows = tree.css(_ROWS)
    if not rows and tree.css_first(_TABLE) is None:
        raise ParseError(f"no {_TABLE} table in the page")
    return _common.collect(rows, _observation).result("observations", meta=meta)


def _observation(row: LexborNode) -> tuple[str, records.ObservationRecord]:
    cells = _cells(row)
    data_key = row.attributes.get("data-key")
    if data_key and not data_key.isspace():
        key = _common.key(data_key, "data-key")
    else:
        key_cell = cells.get("key")
        key_text = _common.MISSING if key_cell is None else _text(key_cell)
        key = _common.key(key_text, "data-key or td.key")
    name_cell = cells.get("name")
    name = "" if name_cell is None else _common.text(_text(name_cell), "name")
    price_cell = cells.get("price")
    value = _common.number(_common.MISSING if price_cell is None else _text(price_cell), "price")
    return key, records.ObservationRecord(item_key=key, name=name or key, value=value)


def _cells(row: LexborNode) -> dict[str, LexborNode]:
    """The row's first key, name and price cells, by class."""
    found: dict[str, LexborNode] = {}
    for cell in row.iter():
        css_class = cell.attributes.get("class")
        if not css_class:
            continue
        role = css_class if css_class in _CELLS else _role(css_class)
        if role is not None and role not in found:
            found[role] = cell
    return found


def _role(css_class: str) -> str | None:
    # the slow path, for cells with several classes (class="price sale")
    return next((token for token in css_class.split() if token in _CELLS), None)


def _text(cell: LexborNode) -> str:
    # text_lexbor() is textContent computed in C, about twice as fast as text()
    return _common.squash(cell.text_lexbor())
