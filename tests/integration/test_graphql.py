"""``/graphql`` over real HTTP against real PostgreSQL: contract, limits, hardening."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import httpx
import pytest
from django.conf import settings as django_settings
from django.db import DEFAULT_DB_ALIAS, connection, connections
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from aggregates.models import ItemStats
from cluster.models import Node
from etl import config
from etl.asgi import django_app
from etl.graphql import limits
from etl.graphql import schema as graphql_schema
from ingest.models import Item, Quest, QuestRequirement, QuestReward, Source, Trade
from tests.support import servers

pytestmark = pytest.mark.django_db(transaction=True)

TALK_QUERY = "{ items { name image value requiredFor { quantity quest { title image text } } } }"
# Behind the ingress, as in production: SECURE_SSL_REDIRECT is on with DEBUG off.
HEADERS = {"X-Forwarded-Proto": "https"}


@pytest.fixture
def api(settings: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """The plain Django ASGI app (no node runtime) on 127.0.0.1; yields the /graphql URL."""
    # Django runs each ASGI request's sync work on a thread of its own, so a persistent
    # connection opened there is never reused and outlives the request until garbage
    # collection; Django's advice for ASGI is CONN_MAX_AGE = 0 (closed at request end).
    monkeypatch.setitem(connections.settings[DEFAULT_DB_ALIAS], "CONN_MAX_AGE", 0)
    # What `etl node` demands with DEBUG off (etl/security.py); Django's middleware needs
    # both. The session has no key, and Django refuses to read an empty one back, so the
    # `settings` fixture cannot restore it: swap it by hand.
    settings.ALLOWED_HOSTS = ["127.0.0.1"]
    saved_key = django_settings._wrapped.SECRET_KEY
    django_settings.SECRET_KEY = "graphql-tests-only"
    try:
        with servers.serve(django_app) as base:
            yield f"{base}/graphql"
    finally:
        django_settings.SECRET_KEY = saved_key


def post(url: str, query: str, **variables: Any) -> dict[str, Any]:
    response = httpx.post(
        url, json={"query": query, "variables": variables}, headers=HEADERS, timeout=10
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def data_of(url: str, query: str, **variables: Any) -> dict[str, Any]:
    body = post(url, query, **variables)
    assert "errors" not in body, body["errors"]
    result: dict[str, Any] = body["data"]
    return result


def error_of(url: str, query: str) -> str:
    body = post(url, query)
    assert body.get("data") is None
    assert body["errors"], body
    message: str = body["errors"][0]["message"]
    return message


def _item(key: str, value: float | None = 1.0, **fields: Any) -> Item:
    fields.setdefault("name", key.title())
    fields.setdefault("image", f"https://img.example/{key}.png")
    return Item.objects.create(key=key, value=value, **fields)


def _stats(item: Item, *, count: int, avg: float) -> ItemStats:
    return ItemStats.objects.create(
        item=item, avg=avg, min=avg - 1, max=avg + 1, count=count, computed_at=timezone.now()
    )


@pytest.fixture
def market(make_source: Any) -> dict[str, Any]:
    """A small market: items with stats, a quest with a dangling link, sources, nodes, trades."""
    apple = _item("apple", 1.5)
    banana = _item("banana", 0.25)
    cherry = _item("cherry", None, name="Sour cherry")
    _stats(apple, count=7, avg=1.4)
    _stats(banana, count=3, avg=0.3)
    harvest = Quest.objects.create(key="harvest", title="Harvest", image="h.png", text="Pick.")
    feast = Quest.objects.create(key="feast", title="Feast", image="f.png", text="Eat.")
    QuestRequirement.objects.create(quest=harvest, item=apple, item_key="apple", quantity=2)
    QuestRequirement.objects.create(quest=harvest, item=None, item_key="durian", quantity=1)
    QuestRequirement.objects.create(quest=feast, item=apple, item_key="apple", quantity=5)
    QuestReward.objects.create(quest=harvest, item=cherry, item_key="cherry", quantity=3)
    ok = make_source("https://a.example/items.json", parser="items-json", last_status="ok")
    make_source("https://b.example/shop/1.html", parser="shop-html", last_status="ok")
    make_source(
        "https://c.example/quests.json",
        parser="quests-json",
        last_status="failed",
        last_error="HTTP 500",
    )
    now = timezone.now()
    Node.objects.create(name="node-0", slot=0, node_count=3, heartbeat_at=now)
    Node.objects.create(
        name="node-1", slot=1, node_count=5, heartbeat_at=now - timedelta(seconds=120)
    )
    for n in range(1, 6):
        Trade.objects.create(
            id=n,
            item=apple if n % 2 else None,
            item_key="apple" if n % 2 else "durian",
            source=ok,
            price=float(n),
            quantity=n,
            traded_at=now,
        )
    return {"apple": apple, "harvest": harvest}


# -- the contract ----------------------------------------------------------------------


def test_talks_query(api: str, market: dict[str, Any]) -> None:
    items = {row["name"]: row for row in data_of(api, TALK_QUERY)["items"]}
    assert set(items) == {"Apple", "Banana", "Sour cherry"}
    apple = items["Apple"]
    assert apple["image"] == "https://img.example/apple.png"
    assert apple["value"] == 1.5
    assert sorted(
        (r["quantity"], r["quest"]["title"], r["quest"]["text"]) for r in apple["requiredFor"]
    ) == [(2, "Harvest", "Pick."), (5, "Feast", "Eat.")]
    assert items["Sour cherry"]["value"] is None
    assert items["Banana"]["requiredFor"] == []


def test_item_stats_example_honours_order_and_limit(api: str) -> None:
    for n in range(30):
        _stats(_item(f"k{n:02d}"), count=(n * 7) % 30, avg=float(n))
    query = "{ itemStats(order: {count: DESC}, pagination: {limit: 25}) { item { key } count } }"
    rows = data_of(api, query)["itemStats"]
    assert len(rows) == 25
    counts = [row["count"] for row in rows]
    assert counts == sorted(counts, reverse=True)
    assert counts[0] == 29
    assert all(row["item"]["key"].startswith("k") for row in rows)


def test_nested_types_and_dangling_links(api: str, market: dict[str, Any]) -> None:
    query = """{
      quests(filters: {key: {exact: "harvest"}}) {
        key title image text
        required { quantity item { key name } }
        rewards { quantity item { key name } }
      }
      item(key: "apple") {
        key stats { avg min max count computedAt }
        rewardFor { quantity quest { title } }
        requiredFor { quest { key } }
      }
      cherry: item(key: "cherry") { stats { count } rewardFor { quantity quest { title } } }
      missing: item(key: "no-such-item") { key }
    }"""
    data = data_of(api, query)
    (harvest,) = data["quests"]
    assert harvest["text"] == "Pick."
    required = sorted(harvest["required"], key=lambda r: r["quantity"])
    assert required == [
        {"quantity": 1, "item": None},  # "durian" is not loaded yet
        {"quantity": 2, "item": {"key": "apple", "name": "Apple"}},
    ]
    assert harvest["rewards"] == [{"quantity": 3, "item": {"key": "cherry", "name": "Sour cherry"}}]
    apple = data["item"]
    assert apple["stats"]["count"] == 7
    assert apple["stats"]["min"] == pytest.approx(0.4)
    assert apple["stats"]["computedAt"]
    assert apple["rewardFor"] == []
    assert {r["quest"]["key"] for r in apple["requiredFor"]} == {"harvest", "feast"}
    assert data["cherry"] == {
        "stats": None,
        "rewardFor": [{"quantity": 3, "quest": {"title": "Harvest"}}],
    }
    assert data["missing"] is None


def test_variables(api: str, market: dict[str, Any]) -> None:
    query = """query Q($key: String!, $page: OffsetPaginationInput, $order: [ItemOrder!]!) {
      item(key: $key) { name }
      items(pagination: $page, order: $order) { key }
    }"""
    data = data_of(
        api, query, key="banana", page={"offset": 1, "limit": 1}, order=[{"key": "DESC"}]
    )
    assert data == {"item": {"name": "Banana"}, "items": [{"key": "banana"}]}


def test_filters(api: str, market: dict[str, Any]) -> None:
    def keys(query: str) -> list[str]:
        (rows,) = data_of(api, query).values()
        return sorted(row["key"] if "key" in row else row["item"]["key"] for row in rows)

    assert keys('{ items(filters: {key: {exact: "apple"}}) { key } }') == ["apple"]
    assert keys('{ items(filters: {key: {inList: ["apple", "cherry"]}}) { key } }') == [
        "apple",
        "cherry",
    ]
    assert keys('{ items(filters: {key: {contains: "an"}}) { key } }') == ["banana"]
    assert keys('{ items(filters: {name: {iContains: "SOUR"}}) { key } }') == ["cherry"]
    assert keys(
        "{ itemStats(filters: {count: {range: {start: 5, end: 9}}}) { item { key } } }"
    ) == ["apple"]
    assert keys("{ itemStats(filters: {avg: {lt: 1}}) { item { key } } }") == ["banana"]
    assert keys('{ itemStats(filters: {item: {key: {exact: "banana"}}}) { item { key } } }') == [
        "banana"
    ]
    assert keys('{ quests(filters: {title: {iContains: "fea"}}) { key } }') == ["feast"]

    def urls(filters: str) -> list[str]:
        rows = data_of(api, f"{{ sources(filters: {filters}) {{ url }} }}")["sources"]
        return sorted(row["url"] for row in rows)

    assert urls('{parser: {exact: "shop-html"}}') == ["https://b.example/shop/1.html"]
    assert urls('{lastStatus: {exact: "failed"}}') == ["https://c.example/quests.json"]
    assert urls('{url: {contains: "a.example"}}') == ["https://a.example/items.json"]


def test_regular_expressions_are_not_a_filter(api: str, market: dict[str, Any]) -> None:
    message = error_of(api, '{ items(filters: {key: {regex: "(a+)+$"}}) { key } }')
    assert "regex" in message


def test_ordering(api: str, market: dict[str, Any]) -> None:
    def names(order: str) -> list[str]:
        return [
            row["name"] for row in data_of(api, f"{{ items(order: {order}) {{ name }} }}")["items"]
        ]

    assert names("{name: DESC}") == ["Sour cherry", "Banana", "Apple"]
    assert names("{key: ASC}") == ["Apple", "Banana", "Sour cherry"]
    assert names("{value: ASC_NULLS_FIRST}") == ["Sour cherry", "Banana", "Apple"]
    stats = data_of(api, "{ itemStats(order: {avg: ASC}) { item { key } avg } }")["itemStats"]
    assert [row["item"]["key"] for row in stats] == ["banana", "apple"]
    both = data_of(api, "{ itemStats(order: [{max: DESC}, {count: ASC}]) { count } }")
    assert [row["count"] for row in both["itemStats"]] == [7, 3]


def test_pagination_and_the_hard_cap(api: str) -> None:
    total = limits.PAGE_CAP + 30
    Item.objects.bulk_create(Item(key=f"i{n:04d}", name=f"n{n}") for n in range(total))

    def keys(pagination: str) -> list[str]:
        query = f"{{ items(pagination: {pagination}) {{ key }} }}"
        return [row["key"] for row in data_of(api, query)["items"]]

    assert keys("{offset: 5, limit: 3}") == ["i0005", "i0006", "i0007"]
    assert len(keys("{limit: 10000}")) == limits.PAGE_CAP
    assert len(keys("{limit: -1}")) == limits.PAGE_CAP
    assert keys(f"{{offset: {limits.PAGE_CAP}, limit: -1}}")[-1] == f"i{total - 1:04d}"
    everything = data_of(api, "{ items { key } }")["items"]
    assert len(everything) == limits.PAGE_CAP
    assert "offset" in error_of(api, "{ items(pagination: {offset: -1}) { key } }")


def test_nested_lists_are_capped_too(api: str) -> None:
    apple = _item("apple")
    quests = Quest.objects.bulk_create(
        Quest(key=f"q{n:04d}", title=f"Quest {n}") for n in range(limits.PAGE_CAP + 5)
    )
    QuestRequirement.objects.bulk_create(
        QuestRequirement(quest=q, item=apple, item_key="apple", quantity=1) for q in quests
    )
    rows = data_of(api, '{ item(key: "apple") { requiredFor { quest { key } } } }')
    assert len(rows["item"]["requiredFor"]) == limits.PAGE_CAP


def test_trades_since_and_limit(api: str, market: dict[str, Any]) -> None:
    def ids(args: str) -> list[int]:
        query = f"{{ trades{args} {{ id itemKey price quantity tradedAt item {{ key }} }} }}"
        return [row["id"] for row in data_of(api, query)["trades"]]

    assert ids("") == [1, 2, 3, 4, 5]
    assert ids("(since: 2, limit: 2)") == [3, 4]
    assert ids("(since: 4, limit: -1)") == [5]
    assert ids("(limit: 0)") == []
    rows = data_of(api, "{ trades(since: 1, limit: 1) { itemKey item { key } } }")["trades"]
    assert rows == [{"itemKey": "durian", "item": None}]


def test_trades_limit_is_capped(api: str, make_source: Any) -> None:
    source = make_source("https://t.example/trades.json", parser="trades-json")
    now = timezone.now()
    Trade.objects.bulk_create(
        Trade(id=n, item_key="x", source=source, price=1.0, quantity=1, traded_at=now)
        for n in range(1, limits.PAGE_CAP + 11)
    )
    rows = data_of(api, "{ trades(limit: 10000) { id } }")["trades"]
    assert [row["id"] for row in rows] == list(range(1, limits.PAGE_CAP + 1))


def test_counts(api: str, market: dict[str, Any]) -> None:
    counts = data_of(api, "{ counts { items observations quests trades sources failingSources } }")[
        "counts"
    ]
    assert counts == {
        "items": 3,
        "observations": 0,
        "quests": 2,
        "trades": 5,
        "sources": 3,
        "failingSources": 1,
    }


def test_nodes_alive_uses_the_node_ttl(
    api: str, market: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    query = "{ nodes { name slot heartbeatAt alive } }"
    monkeypatch.setenv("ETL_NODE_TTL", "15")
    nodes = data_of(api, query)["nodes"]
    assert [(n["name"], n["slot"], n["alive"]) for n in nodes] == [
        ("node-0", 0, True),
        ("node-1", 1, False),
    ]
    assert nodes[0]["heartbeatAt"]
    monkeypatch.setenv("ETL_NODE_TTL", "600")
    config.reset()  # settings are read once per process
    assert all(node["alive"] for node in data_of(api, query)["nodes"])


def test_source_shard_uses_the_live_cluster_size(api: str, market: dict[str, Any]) -> None:
    query = (
        "{ sources { url parser schedule shard lastStatus lastError lastFetchedAt rowsLoaded } }"
    )
    hashes = dict(Source.objects.values_list("url", "shard_hash"))
    rows = data_of(api, query)["sources"]
    # node-0 (3 nodes) heartbeated just now; node-1 (5 nodes) is 120 s old and does not count.
    assert {row["url"]: row["shard"] for row in rows} == {u: h % 3 for u, h in hashes.items()}
    failed = next(row for row in rows if row["lastStatus"] == "failed")
    assert failed["lastError"] == "HTTP 500"
    assert failed["rowsLoaded"] == 0
    Node.objects.update(heartbeat_at=timezone.now() - timedelta(minutes=5))
    assert {row["shard"] for row in data_of(api, query)["sources"]} == {0}  # N = 1


# -- hardening -------------------------------------------------------------------------


def _nested(levels: int) -> str:
    """A query whose deepest field sits ``levels`` selections below the root."""
    cycle = ["requiredFor", "quest", "required", "item"]
    path = ["items", *(cycle * 3)][: levels - 1]
    path.append("key" if path[-1] in ("items", "item") else "__typename")
    return "{ " + " { ".join(path) + " }" * len(path)


def test_deep_query_is_rejected(api: str, market: dict[str, Any]) -> None:
    message = error_of(api, _nested(12))
    assert "exceeds maximum operation depth of 10" in message
    assert data_of(api, _nested(11))["items"]  # the deepest accepted shape still answers
    # Validated documents are cached: the same query is refused again, not let through.
    assert error_of(api, _nested(12)) == message


def test_many_aliases_are_rejected(api: str) -> None:
    query = "{ " + " ".join(f"a{n}: counts {{ items }}" for n in range(50)) + " }"
    message = error_of(api, query)
    assert "aliases" in message
    assert str(limits.MAX_ALIASES) in message


def test_batches_cannot_sidestep_the_limits(api: str) -> None:
    batch = [{"query": "{ counts { items } }"}] * 20
    response = httpx.post(api, json=batch, headers=HEADERS)
    assert response.status_code == 400
    assert "Batching is not enabled" in response.text


def test_oversized_query_is_rejected(api: str) -> None:
    query = "{ items { " + " ".join(["key"] * 2500) + " } }"
    message = error_of(api, query)
    assert "tokens" in message


def test_introspection_follows_debug(api: str, settings: Any) -> None:
    query = "{ __schema { queryType { name } } }"
    settings.DEBUG = False
    assert "introspection" in error_of(api, query).lower()
    html = {"Accept": "text/html", **HEADERS}
    assert httpx.get(api, headers=html).status_code == 404
    settings.DEBUG = True
    assert data_of(api, query) == {"__schema": {"queryType": {"name": "Query"}}}
    assert "graphiql" in httpx.get(api, headers=html).text.lower()
    assert data_of(api, "{ __typename }") == {"__typename": "Query"}
    settings.DEBUG = False  # the same text again: a cached validation must not let it in
    assert "introspection" in error_of(api, query).lower()


def test_mutations_are_rejected(api: str) -> None:
    message = error_of(api, 'mutation { deleteItem(key: "apple") { key } }')
    assert "mutation" in message.lower()


def test_queries_via_get_are_refused(api: str) -> None:
    response = httpx.get(api, params={"query": "{ counts { items } }"}, headers=HEADERS)
    assert response.status_code >= 400
    assert "counts" not in response.text


def test_validation_errors_reach_the_client(api: str) -> None:
    message = error_of(api, "{ items { secret } }")
    assert "Cannot query field 'secret'" in message


def test_internal_errors_are_masked(api: str, monkeypatch: pytest.MonkeyPatch) -> None:
    async def broken() -> None:
        raise RuntimeError("password=hunter2 at db.internal:5432")

    monkeypatch.setattr(graphql_schema, "_counts", broken)
    response = httpx.post(api, json={"query": "{ counts { items } }"}, headers=HEADERS)
    assert response.status_code == 200
    body = response.json()
    assert body["errors"][0]["message"] == limits.MASKED_MESSAGE
    assert "hunter2" not in response.text


# -- the optimizer ---------------------------------------------------------------------


def _catalogue(items: int) -> None:
    quests = Quest.objects.bulk_create(
        Quest(key=f"q{n}", title=f"Quest {n}", image=f"q{n}.png", text="…") for n in range(5)
    )
    made = Item.objects.bulk_create(
        Item(key=f"k{n}", name=f"Item {n}", image=f"{n}.png", value=float(n)) for n in range(items)
    )
    QuestRequirement.objects.bulk_create(
        QuestRequirement(quest=quests[(n + j) % 5], item=item, item_key=item.key, quantity=j + 1)
        for n, item in enumerate(made)
        for j in range(2)
    )


def _queries_for(query: str) -> int:
    with CaptureQueriesContext(connection) as captured:
        result = graphql_schema.schema.execute_sync(query)
    assert result.errors is None, result.errors
    return len(captured.captured_queries)


def test_nested_query_costs_a_constant_number_of_queries() -> None:
    _catalogue(10)
    small = _queries_for(TALK_QUERY)
    Quest.objects.all().delete()
    Item.objects.all().delete()
    _catalogue(100)
    large = _queries_for(TALK_QUERY)
    assert small == large == 2  # items, then requirements joined to their quests
    quests = "{ quests { key required { quantity item { key name stats { count } } } } }"
    assert _queries_for(quests) == 2
