"""What parsers return: plain, picklable records (no Django here).

Parsers run in child processes, so everything in this module must pickle cheaply and
must not import Django.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True, kw_only=True)
class ItemRecord:
    """One catalogue item (``items-json``)."""

    key: str
    name: str
    image: str = ""
    value: float | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class QuestLinkRecord:
    """One required or reward item of a quest, by item key (resolved at load time)."""

    item_key: str
    quantity: int


@dataclass(frozen=True, slots=True, kw_only=True)
class QuestRecord:
    """One quest with its required and reward items (``quests-json``)."""

    key: str
    title: str
    image: str = ""
    text: str = ""
    required: tuple[QuestLinkRecord, ...] = ()
    rewards: tuple[QuestLinkRecord, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class TradeRecord:
    """One trade (``trades-json``); ``id`` is the upstream's increasing id."""

    id: int
    item_key: str
    price: float
    quantity: int
    traded_at: str  # ISO-8601 with offset, as the upstream sends it


@dataclass(frozen=True, slots=True, kw_only=True)
class ObservationRecord:
    """One observed value of an item on the fetched page (``shop-html``, ``json``, ``html``).

    ``name`` is used only when the item does not exist yet.
    """

    item_key: str
    name: str = ""
    value: float = 1.0


@dataclass(frozen=True, slots=True, kw_only=True)
class Rejection:
    """A row the parser refused, with the reason; never silently dropped."""

    index: int
    reason: str


Record = ItemRecord | QuestRecord | TradeRecord | ObservationRecord


@dataclass(frozen=True, slots=True, kw_only=True)
class ParseResult:
    """A parser's output for one body: records of one kind, plus rejections.

    ``next_cursor`` is set by incremental parsers (``trades-json``): the highest id seen.
    ``more`` tells the pipeline that another page follows (a full page of trades).
    """

    kind: str  # "items" | "quests" | "trades" | "observations"
    records: tuple[Record, ...] = ()
    rejected: tuple[Rejection, ...] = ()
    next_cursor: int | None = None
    more: bool = False
    meta: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True, kw_only=True)
class Rows:
    """A ParseResult in the loader's column order, as plain tuples.

    This is what crosses the process boundary: a plain tuple pickles about ten times
    faster than a frozen dataclass, and the parent unpickles on the event loop.
    Column orders: items (key, name, image, value); observations (key, name, value);
    quests (key, title, image, text, ((item_key, qty), …) required, (…) rewards);
    trades (id, item_key, price, quantity, traded_at).
    """

    kind: str
    rows: list[tuple[Any, ...]]
    rejected: tuple[Rejection, ...] = ()
    next_cursor: int | None = None
    more: bool = False
    meta: dict[str, str] = field(default_factory=dict)


def _links(links: tuple[QuestLinkRecord, ...]) -> tuple[tuple[str, int], ...]:
    return tuple((link.item_key, link.quantity) for link in links)


def to_rows(result: ParseResult) -> Rows:
    """The compact form of ``result`` (see :class:`Rows`)."""
    recs = result.records
    rows: list[tuple[Any, ...]]
    if result.kind == "items":
        rows = [(r.key, r.name, r.image, r.value) for r in recs if isinstance(r, ItemRecord)]
    elif result.kind == "observations":
        rows = [(r.item_key, r.name, r.value) for r in recs if isinstance(r, ObservationRecord)]
    elif result.kind == "quests":
        rows = [
            (r.key, r.title, r.image, r.text, _links(r.required), _links(r.rewards))
            for r in recs
            if isinstance(r, QuestRecord)
        ]
    elif result.kind == "trades":
        rows = [
            (r.id, r.item_key, r.price, r.quantity, r.traded_at)
            for r in recs
            if isinstance(r, TradeRecord)
        ]
    else:
        raise ValueError(f"unknown record kind {result.kind!r}")
    return Rows(
        kind=result.kind,
        rows=rows,
        rejected=result.rejected,
        next_cursor=result.next_cursor,
        more=result.more,
        meta=result.meta,
    )
