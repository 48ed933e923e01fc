"""The sample upstream's market, generated on demand from the seed (pure: no I/O).

Every entity is drawn from its own ``random.Random(f"{seed}:{kind}:{index}")``, so any
item, quest, trade or shop can be built alone, in any order, and always comes out the
same. Nothing is pre-rendered: a 100k-item catalogue costs nothing until a page of it is
asked for, and then only that page's items are generated.
"""

from __future__ import annotations

import functools
import html
import math
import random
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import orjson

DEFAULT_TRADES_LIMIT = 1000
MAX_TRADES_LIMIT = 5000
TRADES_EPOCH = datetime(2026, 1, 1, tzinfo=UTC)
TRADE_INTERVAL = timedelta(seconds=10)

# A few non-ASCII words and HTML-special characters, so UTF-8 handling and HTML
# unescaping are exercised by every consumer.
ADJECTIVES = (
    "Rusty", "Polished", "Ancient", "Sturdy", "Cracked", "Gilded", "Crème", "Worn",
    "Shiny", "Heavy", "Tiny", "Cursed", "Blessed", "Dusty", "Tinker's", "Naïve",
    "Rugged", "Bent", "Pristine", "Humble", "Royal", "Smoky", "Frosted", "Crooked",
)  # fmt: skip
MATERIALS = (
    "Copper", "Iron", "Oak", "Silver", "Bronze", "Leather", "Glass", "Ébène",
    "Bone", "Granite", "Linen", "Tin", "Jade", "Steel", "Clay", "Wool",
)  # fmt: skip
NOUNS = (
    "Gear", "Hammer", "Lantern", "Kettle", "Amulet", "Shield", "Compass", "Goblet",
    "Key", "Ring", "Nuts & Bolts", "Spindle", "Chisel", "Bell", "Flask", "Buckle",
    "Dagger", "Whistle", "Spoon", "Anvil", "Jalapeño Jar", "Cog", "Quill", "Trowel",
)  # fmt: skip
QUEST_OPENERS = ("The Lost", "A Gift of the", "Bring Me the", "The Smith's", "Hunt for the")
MERCHANTS = ("Old Mara", "Brother Jöns", "Kestrel & Sons", "The Widow Pell", "Amadou")


@dataclass(frozen=True, slots=True, kw_only=True)
class UpstreamConfig:
    """What the sample upstream serves and how badly it behaves.

    ``trades`` defaults to ``items``; ``latency_ms`` and ``fail_rate`` only affect the
    HTTP app, never the data.
    """

    seed: int = 42
    items: int = 1000
    shops: int = 20
    trades: int | None = None
    page_size: int = 500
    items_per_shop: int = 100
    latency_ms: float = 0.0
    fail_rate: float = 0.0

    def __post_init__(self) -> None:
        if self.items < 1:
            raise ValueError("items must be at least 1")
        if self.shops < 0:
            raise ValueError("shops must not be negative")
        if self.trades is not None and not 0 <= self.trades <= self.items:
            raise ValueError("trades must be between 0 and items")
        if self.page_size < 1:
            raise ValueError("page_size must be at least 1")
        if self.items_per_shop < 1:
            raise ValueError("items_per_shop must be at least 1")
        if self.latency_ms < 0:
            raise ValueError("latency_ms must not be negative")
        if not 0.0 <= self.fail_rate <= 1.0:
            raise ValueError("fail_rate must be between 0 and 1")

    @property
    def trade_count(self) -> int:
        return self.items if self.trades is None else self.trades

    @property
    def pages(self) -> int:
        return math.ceil(self.items / self.page_size)

    @property
    def quest_count(self) -> int:
        return max(1, self.items // 20)

    @property
    def shop_size(self) -> int:
        """How many distinct items each shop lists."""
        return min(self.items_per_shop, self.items)


@dataclass(frozen=True, slots=True, kw_only=True)
class Item:
    index: int
    key: str
    name: str
    image: str
    base_price: float


@dataclass(frozen=True, slots=True, kw_only=True)
class Link:
    item: str
    quantity: int


@dataclass(frozen=True, slots=True, kw_only=True)
class Quest:
    key: str
    title: str
    image: str
    text: str
    required: tuple[Link, ...]
    rewards: tuple[Link, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class Trade:
    id: int
    item: str
    price: float
    quantity: int
    traded_at: datetime


@dataclass(frozen=True, slots=True, kw_only=True)
class ShopRow:
    item: Item
    price: float


@dataclass(frozen=True, slots=True, kw_only=True)
class Shop:
    number: int
    merchant: str
    rows: tuple[ShopRow, ...]


def item_key(index: int) -> str:
    return f"item-{index:06d}"


class Market:
    """All entities and response bodies of one configuration, built lazily.

    Lookups of things that do not exist raise ``LookupError``; bad parameters raise
    ``ValueError``. The HTTP layer maps those to 404 and 400.
    """

    def __init__(self, config: UpstreamConfig) -> None:
        self.config = config

    def _rng(self, kind: str, index: object) -> random.Random:
        return random.Random(f"{self.config.seed}:{kind}:{index}")

    def _sample_items(self, rng: random.Random, count: int) -> list[int]:
        # sample() indexes a range lazily, so 100k items are never materialised.
        return rng.sample(range(1, self.config.items + 1), min(count, self.config.items))

    # -- entities -------------------------------------------------------------------

    def item(self, index: int) -> Item:
        """Catalogue item ``index`` (1-based); every other entity prices through this."""
        if not 1 <= index <= self.config.items:
            raise LookupError(f"no item {index}")
        rng = self._rng("item", index)
        name = f"{rng.choice(ADJECTIVES)} {rng.choice(MATERIALS)} {rng.choice(NOUNS)}"
        key = item_key(index)
        price = round(rng.uniform(1.0, 500.0), 2)
        return Item(
            index=index, key=key, name=name, image=f"/img/items/{key}.png", base_price=price
        )

    def items_page(self, page: int) -> list[Item]:
        if not 1 <= page <= self.config.pages:
            raise LookupError(f"no items page {page}")
        first = (page - 1) * self.config.page_size + 1
        last = min(page * self.config.page_size, self.config.items)
        return [self.item(index) for index in range(first, last + 1)]

    def _links(self, rng: random.Random, most: int) -> list[tuple[int, int]]:
        chosen = self._sample_items(rng, rng.randint(1, most))
        return [(index, rng.randint(1, 10)) for index in chosen]

    def quest(self, index: int) -> Quest:
        if not 1 <= index <= self.config.quest_count:
            raise LookupError(f"no quest {index}")
        rng = self._rng("quest", index)
        title = f"{rng.choice(QUEST_OPENERS)} {rng.choice(NOUNS)}"
        required = self._links(rng, 4)
        rewards = self._links(rng, 2)
        wanted = ", ".join(f"{qty} x {self.item(i).name}" for i, qty in required)
        key = f"quest-{index:05d}"
        return Quest(
            key=key,
            title=title,
            image=f"/img/quests/{key}.png",
            text=f"{rng.choice(MERCHANTS)} needs {wanted}.",
            required=tuple(Link(item=item_key(i), quantity=qty) for i, qty in required),
            rewards=tuple(Link(item=item_key(i), quantity=qty) for i, qty in rewards),
        )

    @functools.cached_property
    def quests(self) -> tuple[Quest, ...]:
        # Small (items // 20) and asked for by /api/meta too, so built once per market.
        return tuple(self.quest(i) for i in range(1, self.config.quest_count + 1))

    def trade(self, trade_id: int) -> Trade:
        if not 1 <= trade_id <= self.config.trade_count:
            raise LookupError(f"no trade {trade_id}")
        rng = self._rng("trade", trade_id)
        item = self.item(rng.randint(1, self.config.items))
        return Trade(
            id=trade_id,
            item=item.key,
            price=round(item.base_price * rng.uniform(0.7, 1.3), 2),
            quantity=rng.randint(1, 10),
            traded_at=TRADES_EPOCH + trade_id * TRADE_INTERVAL,
        )

    def trades(self, *, since: int = 0, limit: int = DEFAULT_TRADES_LIMIT) -> list[Trade]:
        """Trades with ``id > since``, ascending, at most ``limit`` (capped at 5000)."""
        if since < 0:
            raise ValueError("since must not be negative")
        if limit < 1:
            raise ValueError("limit must be at least 1")
        first = since + 1
        last = min(since + min(limit, MAX_TRADES_LIMIT), self.config.trade_count)
        return [self.trade(trade_id) for trade_id in range(first, last + 1)]

    def shop(self, number: int) -> Shop:
        if not 1 <= number <= self.config.shops:
            raise LookupError(f"no shop {number}")
        rng = self._rng("shop", number)
        merchant = rng.choice(MERCHANTS)
        rows: list[ShopRow] = []
        for index in sorted(self._sample_items(rng, self.config.items_per_shop)):
            item = self.item(index)
            rows.append(ShopRow(item=item, price=round(item.base_price * rng.uniform(0.8, 1.2), 2)))
        return Shop(number=number, merchant=merchant, rows=tuple(rows))

    # -- response bodies ------------------------------------------------------------

    def items_page_body(self, page: int) -> bytes:
        results = [
            {"key": i.key, "fullName": i.name, "image": i.image, "basePrice": i.base_price}
            for i in self.items_page(page)
        ]
        c = self.config
        return orjson.dumps({"page": page, "pages": c.pages, "count": c.items, "results": results})

    @functools.cached_property
    def quests_body(self) -> bytes:
        def links(links: tuple[Link, ...]) -> list[dict[str, object]]:
            return [{"item": link.item, "quantity": link.quantity} for link in links]

        results = [
            {
                "key": q.key,
                "title": q.title,
                "image": q.image,
                "text": q.text,
                "required": links(q.required),
                "rewards": links(q.rewards),
            }
            for q in self.quests
        ]
        return orjson.dumps({"count": len(results), "results": results})

    def trades_body(self, *, since: int = 0, limit: int = DEFAULT_TRADES_LIMIT) -> bytes:
        trades = self.trades(since=since, limit=limit)
        results = [
            {
                "id": t.id,
                "item": t.item,
                "price": t.price,
                "quantity": t.quantity,
                "tradedAt": t.traded_at.isoformat(),
            }
            for t in trades
        ]
        next_since = trades[-1].id if trades else since
        return orjson.dumps({"results": results, "next_since": next_since})

    def shop_body(self, number: int) -> bytes:
        shop = self.shop(number)
        esc = html.escape
        rows = "\n".join(
            f'<tr data-key="{r.item.key}"><td class="key">{r.item.key}</td>'
            f'<td class="name">{esc(r.item.name)}</td><td class="price">{r.price:.2f}</td></tr>'
            for r in shop.rows
        )
        nav = ['<a href="/shops/1.html">First</a>']
        if number > 1:
            nav.append(f'<a href="/shops/{number - 1}.html" rel="prev">Previous</a>')
        if number < self.config.shops:
            nav.append(f'<a href="/shops/{number + 1}.html" rel="next">Next</a>')
        page = f"""<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>Shop {number} — Sample Market</title></head>
<body>
<nav>{" ".join(nav)}</nav>
<h1>Shop {number}</h1>
<p class="merchant">Kept by {esc(shop.merchant)}</p>
<table class="prices">
<thead><tr><th>Key</th><th>Name</th><th>Price</th></tr></thead>
<tbody>
{rows}
</tbody>
</table>
<footer><a href="/api/items/">Catalogue</a> · <a href="/sources.jsonl">Sources</a></footer>
</body>
</html>
"""
        return page.encode()

    def meta(self) -> dict[str, int]:
        """The totals a full ingest of this upstream must end up with."""
        c = self.config
        return {
            "seed": c.seed,
            "items": c.items,
            "pages": c.pages,
            "page_size": c.page_size,
            "quests": len(self.quests),
            "required_links": sum(len(q.required) for q in self.quests),
            "reward_links": sum(len(q.rewards) for q in self.quests),
            "trades": c.trade_count,
            "shops": c.shops,
            "items_per_shop": c.items_per_shop,
            "observations": c.shops * c.shop_size,
        }

    def meta_body(self) -> bytes:
        return orjson.dumps(self.meta())

    def sources_body(self, base_url: str) -> bytes:
        """``/sources.jsonl``: every URL this upstream serves, absolute under ``base_url``."""
        base = base_url.rstrip("/")
        sources = [
            (f"/api/items/?page={page}", "items-json", "*/5 * * * *")
            for page in range(1, self.config.pages + 1)
        ]
        sources.append(("/api/quests/", "quests-json", "*/10 * * * *"))
        sources.append((f"/api/trades/?limit={DEFAULT_TRADES_LIMIT}", "trades-json", "* * * * *"))
        sources.extend(
            (f"/shops/{n}.html", "shop-html", "H/15 * * * *")
            for n in range(1, self.config.shops + 1)
        )
        return b"".join(
            orjson.dumps({"url": base + path, "parser": p, "schedule": s, "options": {}}) + b"\n"
            for path, p, s in sources
        )
