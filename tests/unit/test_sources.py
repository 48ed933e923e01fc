"""Source registration input: JSON lines, CSV, and the checks made before a row exists."""

from __future__ import annotations

import pytest

from ingest import sources
from ingest.exceptions import InvalidSource

JSONL = """\
{"url": "http://h/a", "parser": "items-json", "schedule": "*/5 * * * *", "options": {}}

# comments and blank lines are skipped
{"url": "http://h/b", "parser": "json", "options": {"key": "id"}}
"""

CSV = """\
url,parser,schedule,options
http://h/a,items-json,*/5 * * * *,
http://h/b,json,,"{""key"": ""id""}"
"""


@pytest.mark.parametrize("text", [JSONL, CSV])
def test_jsonl_and_csv_give_the_same_specs(text: str) -> None:
    specs = list(sources.parse_specs(text))
    assert specs == [
        sources.SourceSpec(url="http://h/a", parser="items-json", schedule="*/5 * * * *"),
        sources.SourceSpec(
            url="http://h/b",
            parser="json",
            schedule=sources.DEFAULT_SCHEDULE,
            options={"key": "id"},
        ),
    ]
    assert [sources.validate(spec) for spec in specs] == specs


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('{"url": "http://h/a"}\n', "missing 'parser'"),
        ('{"url": "http://h/a", "parser": "json", "colour": "red"}\n', "unknown field"),
        ('{"url": "http://h/a", "parser": \n', ":1: not valid JSON"),
        ("name,parser\nx,y\n", "header"),
    ],
)
def test_bad_input_names_the_line(text: str, message: str) -> None:
    with pytest.raises(InvalidSource, match=message):
        list(sources.parse_specs(text))


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (sources.SourceSpec(url="ftp://h/a", parser="json", options={"key": "id"}), "http"),
        (sources.SourceSpec(url="/relative", parser="json", options={"key": "id"}), "http"),
        (sources.SourceSpec(url="http://h/a", parser="nope"), "unknown parser"),
        (sources.SourceSpec(url="http://h/a", parser="json"), "key"),
        (sources.SourceSpec(url="http://h/a", parser="items-json", schedule="every day"), "cron"),
    ],
)
def test_validation_refuses_what_cannot_run(spec: sources.SourceSpec, message: str) -> None:
    with pytest.raises(InvalidSource, match=message):
        sources.validate(spec)
