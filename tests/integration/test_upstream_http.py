"""The sample upstream over real HTTP: uvicorn on 127.0.0.1, httpx as the client."""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import os
import re
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import orjson
import pytest

from tests.support import servers
from tests.support.market import CountingMarket
from upstream import Market, UpstreamConfig, build_app

Start = Callable[..., str]
IDENTITY = {"Accept-Encoding": "identity"}
ROW_KEY = re.compile(rb'<tr data-key="(item-\d{6})">')
PATHS = [
    "/api/items/?page=1",
    "/api/items/?page=2",
    "/api/quests/",
    "/api/trades/?since=3&limit=40",
    "/shops/1.html",
    "/shops/4.html",
    "/api/meta",
    "/sources.jsonl",
]
SMALL = UpstreamConfig(items=600, shops=4, page_size=400, items_per_shop=40)


@pytest.fixture
def start() -> Iterator[Start]:
    """``start(config, market=None)`` serves a fresh app and returns its base URL."""
    with contextlib.ExitStack() as stack:

        def _start(config: UpstreamConfig = SMALL, market: Market | None = None) -> str:
            return stack.enter_context(servers.serve(build_app(config, market=market)))

        yield _start


def fetch_all(base: str, headers: dict[str, str]) -> list[tuple[int, str | None, bytes]]:
    with httpx.Client(base_url=base, headers=headers) as client:
        responses = [client.get(path) for path in PATHS]
    return [(r.status_code, r.headers.get("etag"), r.content) for r in responses]


def read_raw_into(response: httpx.Response, received: bytearray) -> None:
    for chunk in response.iter_raw():
        received.extend(chunk)


def test_same_seed_same_bytes_other_seed_other_bytes(start: Start) -> None:
    # Host is fixed so that sources.jsonl does not differ by the servers' ports.
    headers = {**IDENTITY, "Host": "upstream.test:8800"}
    first = fetch_all(start(SMALL), headers)
    second = fetch_all(start(SMALL), headers)
    assert first == second
    assert {status for status, _, _ in first} == {200}
    other = fetch_all(start(UpstreamConfig(seed=43, items=600, shops=4, page_size=400)), headers)
    assert first[0][2] != other[0][2]
    assert first[0][1] != other[0][1]


def test_gzipped_bytes_are_deterministic_too(start: Start) -> None:
    gzip_only = {"Accept-Encoding": "gzip"}
    raws = []
    for base in (start(), start()):
        with (
            httpx.Client(base_url=base, headers=gzip_only) as client,
            client.stream("GET", "/shops/2.html") as response,
        ):
            raws.append(b"".join(response.iter_raw()))
    assert raws[0] == raws[1]
    assert raws[0][:2] == b"\x1f\x8b"


def test_meta_totals_equal_what_is_served(start: Start) -> None:
    config = UpstreamConfig(
        items=1234, shops=7, trades=900, page_size=100, items_per_shop=50, seed=5
    )
    base = start(config)
    with httpx.Client(base_url=base) as client:
        meta = client.get("/api/meta").json()
        sources = [orjson.loads(line) for line in client.get("/sources.jsonl").content.splitlines()]
        bodies = {s["url"]: client.get(s["url"]) for s in sources if s["parser"] != "trades-json"}
        assert {r.status_code for r in bodies.values()} == {200}
        items = [
            row["key"]
            for s in sources
            if s["parser"] == "items-json"
            for row in bodies[s["url"]].json()["results"]
        ]
        quests = bodies[f"{base}/api/quests/"].json()["results"]
        observations = {
            (s["url"], key)
            for s in sources
            if s["parser"] == "shop-html"
            for key in ROW_KEY.findall(bodies[s["url"]].content)
        }
        trade_ids: list[int] = []
        since = 0
        while True:
            page = client.get("/api/trades/", params={"since": since, "limit": 128}).json()
            if not page["results"]:
                break
            trade_ids += [t["id"] for t in page["results"]]
            since = page["next_since"]
    assert meta["items"] == len(items) == len(set(items)) == 1234
    assert meta["pages"] == sum(s["parser"] == "items-json" for s in sources) == 13
    assert meta["quests"] == len(quests) == 61
    assert meta["required_links"] == sum(len(q["required"]) for q in quests)
    assert meta["reward_links"] == sum(len(q["rewards"]) for q in quests)
    assert meta["shops"] == sum(s["parser"] == "shop-html" for s in sources) == 7
    assert meta["observations"] == len(observations) == 7 * 50
    assert meta["trades"] == len(trade_ids) == 900
    assert trade_ids == list(range(1, 901))
    assert (meta["seed"], meta["page_size"], meta["items_per_shop"]) == (5, 100, 50)


def test_etag_and_conditional_get(start: Start) -> None:
    with httpx.Client(base_url=start(), headers=IDENTITY) as client:
        response = client.get("/api/items/?page=1")
        etag = response.headers["etag"]
        assert etag == f'"{hashlib.blake2b(response.content, digest_size=12).hexdigest()}"'
        assert response.headers["last-modified"].endswith(" GMT")
        assert response.headers["content-type"] == "application/json"
        for condition in (etag, f'"nope", {etag}', "*", f"W/{etag}"):
            not_modified = client.get("/api/items/?page=1", headers={"If-None-Match": condition})
            assert not_modified.status_code == 304
            assert not_modified.headers["etag"] == etag
            assert not_modified.content == b""
        changed = client.get("/api/items/?page=2", headers={"If-None-Match": etag})
        assert changed.status_code == 200
        assert client.get("/api/meta").headers["etag"].startswith('"')


def test_gzip_when_accepted_and_worth_it(start: Start) -> None:
    with httpx.Client(base_url=start()) as client:
        plain = client.get("/shops/1.html", headers=IDENTITY)
        assert "content-encoding" not in plain.headers
        assert plain.headers["content-type"] == "text/html; charset=utf-8"
        with client.stream("GET", "/shops/1.html", headers={"Accept-Encoding": "gzip"}) as packed:
            raw = b"".join(packed.iter_raw())
        assert packed.headers["content-encoding"] == "gzip"
        assert packed.headers["vary"] == "Accept-Encoding"
        assert packed.headers["etag"] == plain.headers["etag"]
        assert gzip.decompress(raw) == plain.content
        assert len(raw) < len(plain.content)
        refused = client.get("/shops/1.html", headers={"Accept-Encoding": "gzip;q=0"})
        assert "content-encoding" not in refused.headers
        small = client.get("/api/meta", headers={"Accept-Encoding": "gzip"})
        assert len(small.content) <= 1024
        assert "content-encoding" not in small.headers


def test_fail_rate_one_rotates_through_the_three_faults(start: Start) -> None:
    base = start(UpstreamConfig(items=600, fail_rate=1.0, latency_ms=1))
    with httpx.Client(base_url=base) as client:
        failed = client.get("/api/items/?page=1")
        assert failed.status_code == 500
        assert failed.json()["error"]
        throttled = client.get("/api/items/?page=1")
        assert throttled.status_code == 429
        assert throttled.headers["retry-after"] == "1"
        with pytest.raises(httpx.RemoteProtocolError):
            client.get("/api/items/?page=1")
        assert client.get("/api/quests/").status_code == 500
        # The control endpoints are never failed (nor delayed).
        counts = client.get("/_upstream/requests")
    assert counts.status_code == 200
    assert counts.json() == {"/api/items/?page=1": 3, "/api/quests/": 1}


def test_truncated_body_stops_halfway(start: Start) -> None:
    base = start(UpstreamConfig(items=600, fail_rate=1.0))
    with httpx.Client(base_url=base, headers=IDENTITY) as client:
        client.get("/shops/1.html")  # 500
        client.get("/shops/1.html")  # 429
        received = bytearray()
        with client.stream("GET", "/shops/1.html") as response:
            declared = int(response.headers["content-length"])
            with pytest.raises(httpx.RemoteProtocolError):
                read_raw_into(response, received)
    assert response.status_code == 200
    assert len(received) == declared // 2


def test_fault_sequence_is_seeded(start: Start) -> None:
    def outcomes(base: str) -> list[int]:
        seen = []
        with httpx.Client(base_url=base) as client:
            for _ in range(40):
                try:
                    seen.append(client.get("/api/meta").status_code)
                except httpx.RemoteProtocolError:
                    seen.append(0)
        return seen

    config = UpstreamConfig(items=100, fail_rate=0.5, seed=9)
    first = outcomes(start(config))
    assert first == outcomes(start(config))
    assert {200, 500, 429, 0} <= set(first)


def test_huge_catalogue_serves_its_last_page_lazily(start: Start) -> None:
    config = UpstreamConfig(items=100_000, shops=2000)
    market = CountingMarket(config)
    with httpx.Client(base_url=start(config, market)) as client:
        page = client.get("/api/items/?page=200").json()
        assert market.item_calls == 500
        assert (page["page"], page["pages"], page["count"]) == (200, 200, 100_000)
        assert page["results"][-1]["key"] == "item-100000"
        assert client.get("/shops/2000.html").status_code == 200
        assert market.item_calls == 600


def test_sources_use_the_host_header(start: Start) -> None:
    with httpx.Client(base_url=start()) as client:
        response = client.get("/sources.jsonl", headers={"Host": "market.example:9000"})
        own = client.get("/sources.jsonl")
    assert response.headers["content-type"] == "application/x-ndjson"
    sources = [orjson.loads(line) for line in response.content.splitlines()]
    assert all(s["url"].startswith("http://market.example:9000/") for s in sources)
    by_parser: dict[str, list[str]] = {}
    for s in sources:
        by_parser.setdefault(s["parser"], []).append(
            s["url"].removeprefix("http://market.example:9000")
        )
    assert by_parser == {
        "items-json": ["/api/items/?page=1", "/api/items/?page=2"],
        "quests-json": ["/api/quests/"],
        "trades-json": ["/api/trades/?limit=1000"],
        "shop-html": [f"/shops/{n}.html" for n in range(1, 5)],
    }
    assert own.content.startswith(
        f'{{"url":"{own.url.scheme}://{own.url.netloc.decode()}/'.encode()
    )


def test_request_counters_and_reset(start: Start) -> None:
    with httpx.Client(base_url=start()) as client:
        client.get("/api/items/?page=1")
        client.get("/api/items/?page=1")
        client.get("/api/items/?page=2")
        client.get("/shops/3.html")
        client.get("/nowhere")
        assert client.get("/_upstream/requests").json() == {
            "/api/items/?page=1": 2,
            "/api/items/?page=2": 1,
            "/nowhere": 1,
            "/shops/3.html": 1,
        }
        assert client.get("/_upstream/reset").status_code == 405
        assert client.post("/_upstream/reset").status_code == 200
        assert client.get("/_upstream/requests").json() == {}
        client.get("/api/quests/")
        assert client.get("/_upstream/requests").json() == {"/api/quests/": 1}


def test_head_is_get_without_a_body(start: Start) -> None:
    with httpx.Client(base_url=start(), headers=IDENTITY) as client:
        got = client.get("/api/quests/")
        head = client.head("/api/quests/")
    assert head.status_code == 200
    assert head.content == b""
    assert head.headers["content-length"] == str(len(got.content))
    assert head.headers["etag"] == got.headers["etag"]


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("GET", "/", 404),
        ("GET", "/api/items", 404),
        ("GET", "/api/items/?page=0", 404),
        ("GET", "/api/items/?page=3", 404),
        ("GET", "/api/items/?page=abc", 404),
        ("GET", "/api/items/?page=", 404),
        ("GET", "/api/items/?page=-1", 404),
        ("GET", "/shops/0.html", 404),
        ("GET", "/shops/5.html", 404),
        ("GET", "/shops/01.html", 404),
        ("GET", "/api/trades/?since=-1", 400),
        ("GET", "/api/trades/?limit=abc", 400),
        ("GET", "/api/trades/?limit=0", 400),
        ("GET", "/_upstream/nothing", 404),
        ("POST", "/api/items/", 405),
        ("DELETE", "/_upstream/requests", 405),
    ],
)
def test_errors(start: Start, method: str, path: str, status: int) -> None:
    response = httpx.request(method, start() + path)
    assert response.status_code == status
    assert response.headers["content-type"] == "application/json"
    assert response.json()["error"]
    assert "etag" not in response.headers


def test_query_defaults(start: Start) -> None:
    with httpx.Client(base_url=start(UpstreamConfig(items=7000))) as client:
        assert client.get("/api/items/").json()["page"] == 1
        trades = client.get("/api/trades/").json()
        capped = client.get("/api/trades/?since=10&limit=99999").json()
    assert [t["id"] for t in trades["results"]] == list(range(1, 1001))
    assert trades["next_since"] == 1000
    assert len(capped["results"]) == 5000
    assert capped["results"][0]["id"] == 11


def test_management_command_serves_without_a_database() -> None:
    repo = Path(__file__).resolve().parents[2]
    # An unreachable database proves the command never connects.
    env = {**os.environ, "DATABASE_URL": "postgresql://nobody@127.0.0.1:1/none"}
    command = [sys.executable, "manage.py", "upstream", "--port", "0", "--items", "40"]
    command += ["--shops", "2", "--seed", "3"]
    with subprocess.Popen(
        command, cwd=repo, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    ) as process:
        try:
            line = process.stdout.readline() if process.stdout else ""
            match = re.search(r"(http://127\.0\.0\.1:\d+)/ .*\1/sources\.jsonl", line)
            assert match, (line, process.stderr.read() if process.poll() is not None else "")
            meta = httpx.get(match[1] + "/api/meta").json()
        finally:
            process.terminate()
            process.wait(timeout=10)
    assert (meta["items"], meta["shops"], meta["seed"], meta["quests"]) == (40, 2, 3, 2)
