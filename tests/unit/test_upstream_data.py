"""The sample upstream's data model: deterministic, lazy, and consistent with its meta."""

from __future__ import annotations

import html
import re
from datetime import UTC, datetime, timedelta

import orjson
import pytest

from tests.support.market import CountingMarket
from upstream import data
from upstream.data import Market, UpstreamConfig

ROW = re.compile(
    r'<tr data-key="(item-\d{6})"><td class="key">\1</td>'
    r'<td class="name">([^<]*)</td><td class="price">(\d+\.\d\d)</td></tr>'
)


def bodies(market: Market) -> list[bytes]:
    return [
        market.items_page_body(1),
        market.items_page_body(market.config.pages),
        market.quests_body,
        market.trades_body(since=10, limit=50),
        market.shop_body(1),
        market.shop_body(market.config.shops),
        market.meta_body(),
        market.sources_body("http://upstream.test:8800"),
    ]


def test_defaults() -> None:
    config = UpstreamConfig()
    assert (config.seed, config.items, config.shops, config.page_size) == (42, 1000, 20, 500)
    assert (config.items_per_shop, config.latency_ms, config.fail_rate) == (100, 0, 0)
    assert config.trade_count == 1000
    assert UpstreamConfig(items=10, trades=3).trade_count == 3


@pytest.mark.parametrize(
    "kwargs",
    [
        {"items": 0},
        {"shops": -1},
        {"items": 10, "trades": 11},
        {"trades": -1},
        {"page_size": 0},
        {"items_per_shop": 0},
        {"latency_ms": -1},
        {"fail_rate": 1.5},
        {"fail_rate": -0.1},
    ],
)
def test_config_rejects_nonsense(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):  # noqa: PT011 - each case has its own message
        UpstreamConfig(**kwargs)  # type: ignore[arg-type]


def test_same_seed_same_bytes_other_seed_other_bytes() -> None:
    config = UpstreamConfig(items=300, shops=4, page_size=100, items_per_shop=30)
    first, second = bodies(Market(config)), bodies(Market(config))
    assert first == second
    other = bodies(Market(UpstreamConfig(seed=7, items=300, shops=4, page_size=100)))
    # Everything generated differs; only the sources list does not depend on the seed.
    assert all(a != b for a, b in zip(first[:6], other[:6], strict=True))


def test_items_are_well_formed() -> None:
    market = Market(UpstreamConfig())
    items = [market.item(i) for i in range(1, 1001)]
    assert items[41].key == "item-000042"
    assert items[41].image == "/img/items/item-000042.png"
    for item in items:
        assert re.fullmatch(r"item-\d{6}", item.key)
        assert item.base_price > 0
        assert round(item.base_price, 2) == item.base_price
        assert len(item.name.split()) >= 3
    assert any(not item.name.isascii() for item in items)  # UTF-8 gets exercised
    assert any("&" in item.name or "'" in item.name for item in items)  # so does escaping
    with pytest.raises(LookupError):
        market.item(0)
    with pytest.raises(LookupError):
        market.item(1001)


def test_items_pages_cover_the_catalogue_once() -> None:
    market = Market(UpstreamConfig(items=1234, page_size=100))
    assert market.config.pages == 13
    keys: list[str] = []
    for page in range(1, 14):
        body = orjson.loads(market.items_page_body(page))
        assert (body["page"], body["pages"], body["count"]) == (page, 13, 1234)
        assert set(body["results"][0]) == {"key", "fullName", "image", "basePrice"}
        keys += [row["key"] for row in body["results"]]
    assert keys == [f"item-{i:06d}" for i in range(1, 1235)]
    for page in (0, 14):
        with pytest.raises(LookupError):
            market.items_page(page)


def test_a_page_of_a_huge_catalogue_generates_only_that_page() -> None:
    market = CountingMarket(UpstreamConfig(items=100_000, shops=2000))
    assert market.item_calls == 0
    body = orjson.loads(market.items_page_body(200))
    assert market.item_calls == 500
    assert body["results"][-1]["key"] == "item-100000"
    market.item_calls = 0
    market.shop_body(2000)
    assert market.item_calls == 100
    market.item_calls = 0
    market.trades_body(since=99_000, limit=10)
    assert market.item_calls == 10


@pytest.mark.parametrize("items", [1, 5, 19, 20, 1000])
def test_quests(items: int) -> None:
    market = Market(UpstreamConfig(items=items))
    body = orjson.loads(market.quests_body)
    assert body["count"] == len(body["results"]) == max(1, items // 20)
    catalogue = {f"item-{i:06d}" for i in range(1, items + 1)}
    for number, quest in enumerate(body["results"], start=1):
        assert quest["key"] == f"quest-{number:05d}"
        assert quest["image"] == f"/img/quests/{quest['key']}.png"
        assert quest["title"]
        assert quest["text"]
        for links, most in ((quest["required"], 4), (quest["rewards"], 2)):
            assert 1 <= len(links) <= min(most, items)
            keys = [link["item"] for link in links]
            assert len(set(keys)) == len(keys)
            assert set(keys) <= catalogue
            assert all(1 <= link["quantity"] <= 10 for link in links)


def test_quests_draw_from_the_whole_catalogue() -> None:
    market = Market(UpstreamConfig(items=2000))
    linked = {link.item for q in market.quests for link in (*q.required, *q.rewards)}
    assert max(linked) > "item-001500"
    assert min(linked) < "item-000500"


def test_trades_paging() -> None:
    market = Market(UpstreamConfig(items=50, trades=25))
    body = orjson.loads(market.trades_body(since=5, limit=3))
    assert [t["id"] for t in body["results"]] == [6, 7, 8]
    assert body["next_since"] == 8
    seven = body["results"][1]
    assert seven["tradedAt"] == "2026-01-01T00:01:10+00:00"
    assert seven["price"] > 0
    assert 1 <= seven["quantity"] <= 10
    assert re.fullmatch(r"item-0000[0-5]\d", seven["item"])
    tail = orjson.loads(market.trades_body(since=20))
    assert [t["id"] for t in tail["results"]] == [21, 22, 23, 24, 25]
    assert orjson.loads(market.trades_body(since=25)) == {"results": [], "next_since": 25}
    assert orjson.loads(market.trades_body(since=99)) == {"results": [], "next_since": 99}
    assert market.trade(3).traded_at == datetime(2026, 1, 1, tzinfo=UTC) + timedelta(seconds=30)


def test_trades_limit_is_capped_and_validated() -> None:
    market = Market(UpstreamConfig(items=6000))
    assert len(market.trades(limit=10_000)) == data.MAX_TRADES_LIMIT
    assert len(market.trades()) == data.DEFAULT_TRADES_LIMIT
    with pytest.raises(ValueError, match="limit"):
        market.trades(limit=0)
    with pytest.raises(ValueError, match="since"):
        market.trades(since=-1)


@pytest.mark.parametrize(("items", "per_shop"), [(1000, 100), (30, 100)])
def test_shop_pages(items: int, per_shop: int) -> None:
    market = Market(UpstreamConfig(items=items, shops=3, items_per_shop=per_shop))
    page = market.shop_body(2).decode()
    assert page.startswith("<!doctype html>")
    assert "<title>" in page
    assert "<nav>" in page
    assert "<h1>Shop 2</h1>" in page
    assert '<table class="prices"><thead>' in page.replace("\n", "")
    assert "<footer>" in page
    rows = ROW.findall(page)
    assert len(rows) == len({key for key, _, _ in rows}) == min(per_shop, items)
    for key, name, price in rows:
        item = market.item(int(key[5:]))
        assert name == html.escape(item.name)
        assert 0.8 * item.base_price - 0.01 <= float(price) <= 1.2 * item.base_price + 0.01
    for number in (0, 4):
        with pytest.raises(LookupError):
            market.shop(number)


def test_shops_differ_from_each_other() -> None:
    market = Market(UpstreamConfig())
    assert {r.item.key for r in market.shop(1).rows} != {r.item.key for r in market.shop(2).rows}


def test_meta_matches_the_entities() -> None:
    config = UpstreamConfig(items=500, shops=6, trades=400, page_size=64, items_per_shop=70)
    market = Market(config)
    meta = orjson.loads(market.meta_body())
    assert meta == {
        "seed": 42,
        "items": 500,
        "pages": 8,
        "page_size": 64,
        "quests": 25,
        "required_links": sum(len(q.required) for q in market.quests),
        "reward_links": sum(len(q.rewards) for q in market.quests),
        "trades": 400,
        "shops": 6,
        "items_per_shop": 70,
        "observations": sum(len(market.shop(n).rows) for n in range(1, 7)),
    }
    assert meta["observations"] == 6 * 70


def test_sources_list_every_url() -> None:
    market = Market(UpstreamConfig(items=1200, shops=3))
    lines = [orjson.loads(line) for line in market.sources_body("http://h:1/").splitlines()]
    assert [(s["url"], s["parser"], s["schedule"]) for s in lines] == [
        ("http://h:1/api/items/?page=1", "items-json", "*/5 * * * *"),
        ("http://h:1/api/items/?page=2", "items-json", "*/5 * * * *"),
        ("http://h:1/api/items/?page=3", "items-json", "*/5 * * * *"),
        ("http://h:1/api/quests/", "quests-json", "*/10 * * * *"),
        ("http://h:1/api/trades/?limit=1000", "trades-json", "* * * * *"),
        ("http://h:1/shops/1.html", "shop-html", "H/15 * * * *"),
        ("http://h:1/shops/2.html", "shop-html", "H/15 * * * *"),
        ("http://h:1/shops/3.html", "shop-html", "H/15 * * * *"),
    ]
    assert all(s["options"] == {} for s in lines)
