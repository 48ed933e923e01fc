"""``html``: any HTML page → :class:`~ingest.records.ObservationRecord` by CSS selectors.

Options (all strings)::

    {"rows": "a[href]", "key": "@href", "name": "."}

- ``rows`` (required): a CSS selector; each match is one row.
- ``key`` (required), ``name`` (default: the key), ``value`` (default: every row counts
  1.0): field specs, evaluated on a row:

  ==============  =================================================================
  ``CSS``         text of the first element matching ``CSS`` inside the row
  ``CSS@attr``    that element's attribute ``attr``
  ``@attr``       the row's own attribute ``attr``
  ``.``           the row's own text
  ==============  =================================================================

Text is the element's ``textContent`` with whitespace collapsed and stripped; attribute
values are stripped, and ``href``/``src`` values are resolved against the page URL
exactly as ``urllib.parse.urljoin(url, value)`` does (so fragments are kept). "Inside
the row" means a descendant: the row itself never matches its own field selector.

A row whose key is missing or empty is rejected; a row whose ``value`` is missing or
not a plain decimal is rejected; a missing ``name`` falls back to the key. Rows with
the same key collapse, the last one winning, so ``{"rows": "a[href]", "key": "@href"}``
gives one observation per distinct link target. Invalid UTF-8 is not fatal; see
:func:`ingest.parsers._common.load_html` for the ``meta`` it leaves.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from selectolax.lexbor import LexborHTMLParser, LexborNode, SelectolaxError

from ingest import records
from ingest.exceptions import ParseError
from ingest.parsers import _common

NAME = "html"
OPTIONS: Final = ("rows", "key", "name", "value")
_URL_ATTRIBUTES: Final = frozenset({"href", "src"})
# Only a valid attribute name after the last "@" splits a spec, so "a[href*='@']" stays CSS.
_ATTRIBUTE: Final = re.compile(r"[A-Za-z_:][-A-Za-z0-9_:.]*")
# Selectors are checked by running them on an empty document: the same engine that will
# run them later, and 15x cheaper shared than built per check (calls hold the GIL).
_PROBE: Final = LexborHTMLParser("")


@dataclass(frozen=True, slots=True)
class FieldSpec:
    """A compiled field spec: ``selector=None`` is the row itself, ``attribute=None`` text."""

    source: str
    selector: str | None
    attribute: str | None

    def evaluate(self, row: LexborNode, base: str) -> str | None:
        """The field's value on ``row`` (``None`` when absent), resolved and cleaned."""
        node = row if self.selector is None else _descendant(row, self.selector)
        if node is None:
            return None
        if self.attribute is None:
            return _common.squash(node.text_lexbor())
        value = node.attributes.get(self.attribute)
        if value is None:
            return None
        value = value.strip()
        if self.attribute in _URL_ATTRIBUTES and value:
            return _common.absolute(base, value)
        return value


def validate_options(options: Mapping[str, Any]) -> None:
    """Refuse unknown or missing options, invalid CSS and malformed field specs."""
    _compile(options)


def parse(body: bytes, *, url: str, options: Mapping[str, Any]) -> records.ParseResult:
    """Parse ``body`` into one observation per row key (the last row of a key wins)."""
    rows_selector, key_spec, name_spec, value_spec = _compile(options)
    tree, meta = _common.load_html(body)

    def observation(row: LexborNode) -> tuple[str, records.ObservationRecord]:
        key = _common.key(key_spec.evaluate(row, url), key_spec.source)
        name = key
        if name_spec is not None:
            name = _common.text(name_spec.evaluate(row, url) or "", name_spec.source) or key
        value = 1.0
        if value_spec is not None:
            value = _common.number(value_spec.evaluate(row, url), value_spec.source)
        return key, records.ObservationRecord(item_key=key, name=name, value=value)

    return _common.collect(tree.css(rows_selector), observation).result("observations", meta=meta)


def field_spec(spec: str, option: str) -> FieldSpec:
    """Compile one field spec (``CSS``, ``CSS@attr``, ``@attr`` or ``.``)."""
    spec = spec.strip()
    if not spec:
        raise ParseError(f"option {option!r} is empty; use '.' for the row's own text")
    if spec == ".":
        return FieldSpec(spec, None, None)
    selector, at, attribute = spec.rpartition("@")
    if at and _ATTRIBUTE.fullmatch(attribute):
        selector = selector.strip()
        if selector:
            _check_selector(selector, option)
        return FieldSpec(spec, selector or None, attribute.lower())
    _check_selector(spec, option)
    return FieldSpec(spec, spec, None)


def _compile(
    options: Mapping[str, Any],
) -> tuple[str, FieldSpec, FieldSpec | None, FieldSpec | None]:
    _common.check_option_names(NAME, options, allowed=OPTIONS)
    for required in ("rows", "key"):
        if options.get(required) is None:
            raise ParseError(f"parser {NAME!r} needs the option {required!r}")
    rows = options["rows"].strip()
    if not rows:
        raise ParseError("option 'rows' is empty; it must be a CSS selector")
    _check_selector(rows, "rows")
    name, value = options.get("name"), options.get("value")
    return (
        rows,
        field_spec(options["key"], "key"),
        None if name is None else field_spec(name, "name"),
        None if value is None else field_spec(value, "value"),
    )


def _check_selector(selector: str, option: str) -> None:
    try:
        _PROBE.css(selector)
    except SelectolaxError:
        raise ParseError(f"option {option!r}: invalid CSS selector {selector!r}") from None


def _descendant(row: LexborNode, selector: str) -> LexborNode | None:
    match = row.css_first(selector)
    if match is not None and match.mem_id == row.mem_id:  # ten times cheaper than ==
        # lexbor's css() includes the node it starts from; skip the row itself
        matches = row.css(selector)
        return matches[1] if len(matches) > 1 else None
    return match
