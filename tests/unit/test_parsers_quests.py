"""quests-json: quests with their required and reward item links."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from ingest.parsers import quests
from ingest.records import ParseResult, QuestLinkRecord, QuestRecord

URL = "http://upstream.test/api/quests/"


def parse(body: Any) -> ParseResult:
    return quests.parse(orjson.dumps(body), url=URL, options={})


def reasons(result: ParseResult) -> list[tuple[int, str]]:
    return [(r.index, r.reason) for r in result.rejected]


def quest(**fields: Any) -> dict[str, Any]:
    return {"key": "quest-00001", "title": "The Lost Goblet", **fields}


def test_a_quest_list() -> None:
    body = {
        "count": 1,
        "results": [
            {
                "key": "quest-00001",
                "title": "The Lost Goblet",
                "image": "/img/quests/quest-00001.png",
                "text": "Old Mara needs 3 x Rusty Gear.",
                "required": [{"item": "item-000017", "quantity": 3}],
                "rewards": [
                    {"item": "item-000901", "quantity": 1},
                    {"item": "item-000902", "quantity": 0},
                ],
            }
        ],
    }
    result = parse(body)
    assert result.kind == "quests"
    assert result.records == (
        QuestRecord(
            key="quest-00001",
            title="The Lost Goblet",
            image="http://upstream.test/img/quests/quest-00001.png",
            text="Old Mara needs 3 x Rusty Gear.",
            required=(QuestLinkRecord(item_key="item-000017", quantity=3),),
            rewards=(
                QuestLinkRecord(item_key="item-000901", quantity=1),
                QuestLinkRecord(item_key="item-000902", quantity=0),
            ),
        ),
    )
    assert result.meta == {"rows": "1", "duplicates": "0"}


def test_a_bare_list_with_optional_fields_left_out() -> None:
    result = parse([{"key": "q", "required": None}])
    assert result.records == (QuestRecord(key="q", title="q"),)


def test_a_repeated_item_in_one_list_keeps_the_last_quantity() -> None:
    result = parse(
        [
            quest(
                required=[
                    {"item": "a", "quantity": 1},
                    {"item": "b", "quantity": 2},
                    {"item": "a", "quantity": 5},
                ],
                rewards=[{"item": "a", "quantity": 9}],  # the other list is independent
            )
        ]
    )
    record = result.records[0]
    assert isinstance(record, QuestRecord)
    assert record.required == (
        QuestLinkRecord(item_key="a", quantity=5),
        QuestLinkRecord(item_key="b", quantity=2),
    )
    assert record.rewards == (QuestLinkRecord(item_key="a", quantity=9),)
    assert result.meta["duplicates"] == "0"  # counts quests, not links


@pytest.mark.parametrize(
    ("links", "reason"),
    [
        (
            [{"item": "a", "quantity": 2**31}],
            "required[0]: field 'quantity' out of range: 2147483648 not in 0..2147483647",
        ),
        (
            [{"item": "a", "quantity": -1}],
            "required[0]: field 'quantity' out of range: -1 not in 0..2147483647",
        ),
        (
            [{"item": "a", "quantity": 1}, {"item": "", "quantity": 1}],
            "required[1]: empty field 'item'",
        ),
        ([{"quantity": 1}], "required[0]: missing field 'item'"),
        ([{"item": "a"}], "required[0]: missing field 'quantity'"),
        (
            [{"item": "a", "quantity": 1.5}],
            "required[0]: field 'quantity' has wrong type: expected integer, got float",
        ),
        (
            [{"item": "a", "quantity": True}],
            "required[0]: field 'quantity' has wrong type: expected integer, got bool",
        ),
        (
            [{"item": "a", "quantity": "two"}],
            "required[0]: field 'quantity' is not an integer: 'two'",
        ),
        ([{"item": "a\x00", "quantity": 1}], "required[0]: NUL byte in field 'item'"),
        (["item-1"], "required[0] is not an object, got string"),
        ({"item": "a"}, "field 'required' has wrong type: expected list, got object"),
    ],
)
def test_one_invalid_link_rejects_its_quest(links: Any, reason: str) -> None:
    result = parse([quest(key="bad", required=links), quest(key="good")])
    assert reasons(result) == [(0, reason)]
    assert [r.key for r in result.records] == ["good"]  # type: ignore[union-attr]


def test_quantities_accept_integer_strings() -> None:
    result = parse([quest(rewards=[{"item": "a", "quantity": " 12 "}])])
    record = result.records[0]
    assert isinstance(record, QuestRecord)
    assert record.rewards == (QuestLinkRecord(item_key="a", quantity=12),)


def test_a_huge_integer_string_is_out_of_range_not_a_crash() -> None:
    result = parse([quest(rewards=[{"item": "a", "quantity": "9" * 5000}])])
    assert reasons(result)[0][1].startswith("rewards[0]: field 'quantity' out of range: 9999")


def test_quest_fields_are_validated() -> None:
    result = parse(
        [
            quest(key="a", text=5),
            quest(key="b", title="NUL\x00"),
            quest(key="", title="no key"),
            quest(key="c", title=""),
        ]
    )
    assert reasons(result) == [
        (0, "field 'text' has wrong type: expected string, got int"),
        (1, "NUL byte in field 'title'"),
        (2, "empty field 'key'"),
    ]
    assert result.records == (QuestRecord(key="c", title="c"),)


def test_duplicate_quests_collapse_and_the_last_wins() -> None:
    result = parse([quest(title="old"), quest(key="other"), quest(title="new")])
    assert [(r.key, r.title) for r in result.records] == [  # type: ignore[union-attr]
        ("quest-00001", "new"),
        ("other", "The Lost Goblet"),
    ]
    assert result.meta == {"rows": "3", "duplicates": "1"}


@pytest.mark.parametrize(
    ("image", "expected"),
    [
        ("/img/q.png", "http://upstream.test/img/q.png"),
        ("q.png", "http://upstream.test/api/quests/q.png"),
        ("../q.png", "http://upstream.test/api/q.png"),
        (None, ""),
    ],
)
def test_image_is_made_absolute(image: str | None, expected: str) -> None:
    record = parse([quest(image=image)]).records[0]
    assert isinstance(record, QuestRecord)
    assert record.image == expected
