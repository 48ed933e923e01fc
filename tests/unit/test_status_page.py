"""The status page's presentation: redaction, durations, the chart's geometry."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

import etl.text
from cluster import status
from etl import status_page

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("https://ops:hunter2@h.test/feed", "https://***@h.test/feed"),
        ("http://token@h.test/", "http://***@h.test/"),
        ("https://h.test/a?api_key=s3cr3t&page=2", "https://h.test/a?api_key=***&page=2"),
        ("https://h.test/a?page=2&access_token=s3cr3t", "https://h.test/a?page=2&access_token=***"),
        ("https://h.test/a?X-Amz-Signature=ab12&id=1", "https://h.test/a?X-Amz-Signature=***&id=1"),
        ("https://h.test/a?Password=s3cr3t#top", "https://h.test/a?Password=***#top"),
        ("fetching https://h.test/a?key=s3cr3t failed", "fetching https://h.test/a?key=*** failed"),
        # Names that merely contain a word are left alone.
        ("https://h.test/a?author=bob&monkey=1", "https://h.test/a?author=bob&monkey=1"),
        (
            "HTTP 404 Not Found fetching http://h.test/x",
            "HTTP 404 Not Found fetching http://h.test/x",
        ),
    ],
)
def test_redact_masks_credentials_and_token_parameters(text: str, shown: str) -> None:
    assert etl.text.redact(text) == shown


@pytest.mark.parametrize(
    ("seconds", "shown"),
    [
        (0, "0s"),
        (4.4, "4s"),
        (59.6, "1m"),
        (200, "3m 20s"),
        (300, "5m"),
        (7500, "2h 5m"),
        (7200, "2h"),
        (3 * 86400 + 4 * 3600 + 59, "3d 4h"),
        (-3, "0s"),
    ],
)
def test_ago_is_short_and_human(seconds: float, shown: str) -> None:
    assert status_page.ago(seconds) == shown


def test_took_keeps_tenths_for_short_runs() -> None:
    assert status_page.took(0.34) == "0.3s"
    assert status_page.took(75) == "1m 15s"


def _minutes(rows: list[int]) -> list[status.Minute]:
    return [
        status.Minute(start=T0 + timedelta(minutes=i), rows=r, runs=1 if r else 0)
        for i, r in enumerate(rows)
    ]


def test_chart_scales_bars_to_the_busiest_minute() -> None:
    chart = status_page.chart(_minutes([0, 50, 100, 1]))
    bars = chart["bars"]
    assert (chart["peak"], chart["total"], chart["runs"], chart["half"]) == (100, 151, 3, 50)
    heights = [bar["h"] for bar in bars]
    assert heights[0] == 0
    assert heights[2] == status_page.CHART_H  # the peak fills the chart
    assert heights[1] == status_page.CHART_H / 2
    assert heights[3] == 2.0  # one row is still visible
    for bar in bars:
        assert bar["y"] + bar["h"] == pytest.approx(status_page.CHART_H)  # bottom-aligned
        assert bar["x"] >= 0
        assert bar["x"] + bar["w"] <= status_page.CHART_W
    assert [bar["x"] for bar in bars] == sorted(bar["x"] for bar in bars)  # oldest left
    assert bars[1]["label"] == "12:01 UTC: 50 rows, 1 runs"


def test_chart_of_an_idle_hour_is_flat() -> None:
    chart = status_page.chart(_minutes([0] * 60))
    assert chart["peak"] == 0
    assert {bar["h"] for bar in chart["bars"]} == {0}


@pytest.mark.parametrize(
    ("raw", "seconds"),
    [(None, 15), ("60", 60), ("0", 0), ("-3", 0), ("1", 5), ("999999", 3600), ("soon", 15)],
)
def test_refresh_interval_is_kept_within_bounds(raw: str | None, seconds: int) -> None:
    assert status_page.refresh_seconds(raw) == seconds
