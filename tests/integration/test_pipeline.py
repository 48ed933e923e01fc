"""The whole pipeline against the real sample upstream and real PostgreSQL."""

from __future__ import annotations

import httpx
import pytest
from asgiref.sync import sync_to_async

from cluster import batch, membership
from etl.config import Settings
from ingest import sources
from ingest.models import (
    Source,
    TaskRun,
)
from tests.support import tables

pytestmark = pytest.mark.django_db(transaction=True)


async def _register(upstream_url: str) -> int:
    async with httpx.AsyncClient() as client:
        text = (await client.get(f"{upstream_url}/sources.jsonl")).text
    created, _ = await sync_to_async(sources.register)(sources.parse_specs(text))
    return created


async def test_run_once_loads_exactly_what_the_upstream_declares(upstream_url: str) -> None:
    async with httpx.AsyncClient() as client:
        meta = (await client.get(f"{upstream_url}/api/meta")).json()
    created = await _register(upstream_url)
    assert created == meta["pages"] + 1 + 1 + meta["shops"]

    summary = await batch.run_due(Settings.from_env(), membership.Everything())
    assert summary.failures == []
    counts = await sync_to_async(tables.counts)()
    assert counts == {k: meta[k] for k in counts}
    assert await Source.objects.filter(last_status="ok").acount() == created

    # Second pass: every source due again; ETags make it a no-op that parses nothing.
    before = await sync_to_async(tables.snapshot)()
    await Source.objects.aupdate(next_run_at=None)
    again = await batch.run_due(Settings.from_env(), membership.Everything())
    assert again.failures == []
    assert again.by_status == {"unchanged": created - 1, "ok": 1}  # trades: nothing new
    assert await sync_to_async(tables.snapshot)() == before
    trades_run = await TaskRun.objects.filter(source__parser="trades-json").alatest("started_at")
    assert trades_run.rows_in == 0


async def test_sources_do_not_run_again_before_their_schedule(upstream_url: str) -> None:
    await _register(upstream_url)
    first = await batch.run_due(Settings.from_env(), membership.Everything())
    second = await batch.run_due(Settings.from_env(), membership.Everything())
    assert first.runs > 0
    assert second.runs == 0  # nothing is due: every next_run_at is in the future
    assert await Source.objects.filter(next_run_at__isnull=True).acount() == 0
    assert await Source.objects.exclude(lease_owner="").acount() == 0  # leases released
