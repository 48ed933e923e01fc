"""How a body becomes rows: the built-in parsers, by name.

Every parser is a pure function ``parse(body, *, url, options) -> ParseResult``: no
Django, no I/O, picklable arguments and results, so the process pool's children can run
it without ``django.setup()``. A body that cannot be read at all raises
:class:`~ingest.exceptions.ParseError`; a bad row becomes a
:class:`~ingest.records.Rejection` and never costs the other rows.

Every result's ``meta`` carries ``rows`` (rows read) and ``duplicates`` (rows replaced
by a later row with the same key; the last row wins); see the parser modules for the
rest (``max_seen_id``, ``replaced_bytes``, ``transcoded``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Final, NamedTuple

from ingest import records
from ingest.exceptions import UnknownParser
from ingest.parsers import generic_html, generic_json, items, quests, shop_html, trades

Parser = Callable[..., records.ParseResult]


class _Entry(NamedTuple):
    parse: Parser
    validate_options: Callable[[Mapping[str, Any]], None]


_PARSERS: Final[dict[str, _Entry]] = {
    module.NAME: _Entry(module.parse, module.validate_options)
    for module in (items, quests, trades, shop_html, generic_json, generic_html)
}

NAMES: Final[tuple[str, ...]] = tuple(_PARSERS)


def _entry(name: str) -> _Entry:
    try:
        return _PARSERS[name]
    except (KeyError, TypeError):  # TypeError: an unhashable name from JSON input
        raise UnknownParser(f"unknown parser {name!r}; choose one of: {', '.join(NAMES)}") from None


def get(name: str) -> Parser:
    """The parser called ``name``: ``parse(body: bytes, *, url: str, options) -> ParseResult``.

    Raises :class:`UnknownParser` for a name not in :data:`NAMES`.
    """
    return _entry(name).parse


def validate_options(name: str, options: Mapping[str, Any]) -> None:
    """Check a source's parser options at registration time.

    Raises :class:`UnknownParser` for an unknown parser and
    :class:`~ingest.exceptions.ParseError` naming the problem for a missing or unknown
    option, a malformed dot path or field spec, or an invalid CSS selector.
    """
    _entry(name).validate_options(options)


def parse(name: str, body: bytes, *, url: str, options: Mapping[str, Any]) -> records.ParseResult:
    """Parse ``body`` (fetched from ``url``) with the parser called ``name``."""
    return get(name)(body, url=url, options=options)


async def run(name: str, body: bytes, url: str, options: dict[str, Any]) -> records.ParseResult:
    """The process-pool entry point: :func:`parse` as a coroutine function.

    aiomultiprocess runs coroutine functions in its children; there is nothing to await,
    the parse is CPU-bound and runs to completion in the child.
    """
    return parse(name, body, url=url, options=options)
