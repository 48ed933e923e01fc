"""Acceptance: the status page in a real headless Chromium against a 3-node cluster.

Debian's ``chromium`` package (``/usr/bin/chromium``, or ``ETL_TEST_CHROMIUM``) is driven
by Playwright; no browser is ever downloaded. A missing browser fails the test: an
acceptance test that skips itself proves nothing. Screenshots are written to
``test-artifacts/`` at the repository root.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from django.contrib.auth.models import User
from django.utils import timezone
from playwright.sync_api import (
    BrowserContext,
    ConsoleMessage,
    Page,
    Request,
    sync_playwright,
)

from aggregates.models import ItemStats
from ingest import sources
from ingest.models import Source, TaskRun
from tests.cluster.conftest import YEARLY, Cluster, all_done, register
from tests.support import processes, servers
from upstream import UpstreamConfig, build_app

PASSWORD = "browser-tests-only"
CHROMIUM = Path(os.environ.get("ETL_TEST_CHROMIUM", "/usr/bin/chromium"))
ARTIFACTS = processes.ROOT / "test-artifacts"
NODES = ("page-node-0", "page-node-1", "page-node-2")
SMALL = UpstreamConfig(items=400, shops=6, seed=5, page_size=100, trades=200)
FLAGS = [
    "--headless",
    "--no-sandbox",  # we run as root in CI
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def require_chromium() -> None:
    if not CHROMIUM.exists():
        pytest.fail(
            f"no Chromium at {CHROMIUM}: install Debian's package "
            "(apt-get install -y chromium) or point ETL_TEST_CHROMIUM at one"
        )


@contextlib.contextmanager
def chromium() -> Iterator[BrowserContext]:
    """Chromium with a fresh profile; closed (and its processes gone) on leaving.

    Playwright's sync API runs an event loop in this thread while it is open, and Django
    refuses ORM calls from a thread with a running loop: query the database before.
    """
    require_chromium()
    with (
        tempfile.TemporaryDirectory(prefix="shardetl-chromium-") as profile,
        sync_playwright() as playwright,
    ):
        context = playwright.chromium.launch_persistent_context(
            profile,
            executable_path=str(CHROMIUM),
            headless=True,
            args=FLAGS,
            viewport={"width": 1280, "height": 900},
        )
        try:
            yield context
        finally:
            context.close()


class Problems:
    """Console errors, uncaught exceptions and failed requests of a page."""

    def __init__(self, page: Page, *, favicon: bool = True) -> None:
        self.seen: list[str] = []
        self.favicon = favicon
        page.on("console", self._console)
        page.on("pageerror", lambda exc: self.seen.append(f"page error: {exc}"))
        page.on("requestfailed", self._failed)

    def _failed(self, request: Request) -> None:
        # A load the browser cancelled because the page navigated on (a form submitted
        # while icons were still coming) is no fault of the page; HTTP errors show up as
        # console errors.
        if request.failure != "net::ERR_ABORTED":
            self.seen.append(f"request failed: {request.url} ({request.failure})")

    def _console(self, message: ConsoleMessage) -> None:
        if message.type not in ("error", "warning"):
            return
        if not self.favicon and message.location.get("url", "").endswith("/favicon.ico"):
            return
        self.seen.append(f"console {message.type}: {message.text} {message.location}")


def _open(context: BrowserContext, url: str, *, favicon: bool = True) -> tuple[Page, Problems]:
    page = context.new_page()
    problems = Problems(page, favicon=favicon)
    response = page.goto(url, wait_until="load")
    assert response is not None
    assert response.status == 200, response.status
    return page, problems


@pytest.mark.timeout(300)
def test_status_page_in_chromium(cluster: Cluster) -> None:
    require_chromium()  # before starting anything: a missing browser fails at once
    ARTIFACTS.mkdir(exist_ok=True)
    with servers.serve(build_app(SMALL)) as upstream:
        total = register(upstream)
        broken = f"{upstream}/api/feeds/missing.json"  # the upstream answers 404
        sources.register([sources.SourceSpec(url=broken, parser="items-json", schedule=YEARLY)])
        for slot, name in enumerate(NODES):
            cluster.start(
                name,
                ETL_SERVER_ID=str(slot),
                ETL_NODE_COUNT="3",
                ETL_PARSE_WORKERS="1",
                ETL_AGGREGATE_SCHEDULE="* * * * * */2",  # every 2 seconds
            )
        for name in NODES:
            cluster.wait_started(name)
        processes.wait_for(all_done(total), timeout=120, what="every upstream source loaded")
        processes.wait_for(
            lambda: Source.objects.filter(url=broken, last_status="failed").exists(),
            timeout=60,
            what="the broken source to fail",
        )
        processes.wait_for(ItemStats.objects.exists, timeout=60, what="an aggregation pass")
        assert TaskRun.objects.filter(status="ok", rows_in__gt=0).exists()
        User.objects.create_superuser("ops", "ops@example.org", PASSWORD)
        # Backed off for a day: only "fetch now" in the admin can bring it back today.
        Source.objects.filter(url=broken).update(next_run_at=timezone.now() + timedelta(days=1))
        assert TaskRun.objects.filter(source__url=broken).count() == 1

        with chromium() as browser:
            # Refresh off while we look: a reload must not swap the page under the asserts.
            page, problems = _open(browser, f"{cluster.url(NODES[0])}/?refresh=0")
            page.screenshot(path=ARTIFACTS / "status-page.png", full_page=True)

            assert page.title().startswith("shardetl")
            names = page.locator("#nodes td.nodename").all_inner_texts()
            assert names == list(NODES)
            assert page.locator("#nodes .badge.alive").count() == 3
            assert "served by page-node-0" in page.locator("header").inner_text()

            failing = page.locator("#failing tr.failing-source")
            assert failing.count() == 1
            row = failing.first.inner_text()
            assert broken in row
            assert "404" in row  # its last error

            assert page.locator("#throughput svg rect.bar").count() == 60
            heights = page.locator("#throughput svg rect.bar").evaluate_all(
                "bars => bars.map(b => b.getBBox().height)"
            )
            assert max(heights) > 0  # the rows just loaded are on the chart
            assert page.locator("#top tbody tr").count() > 0
            assert page.locator("#runs tbody tr").count() > 0
            assert problems.seen == []

            # Every node serves the same page, and it reloads itself (5 s: the shortest).
            for name in NODES[1:]:
                other, other_problems = _open(browser, f"{cluster.url(name)}/?refresh=5")
                assert f"served by {name}" in other.locator("header").inner_text()
                with other.expect_navigation(wait_until="load", timeout=15_000):
                    pass  # the <meta refresh> fires
                assert other.locator("#nodes td.nodename").all_inner_texts() == list(NODES)
                assert other_problems.seen == []
                other.close()

            # On a phone: nothing sticks out sideways but the tables, which scroll.
            page.set_viewport_size({"width": 390, "height": 844})
            page.reload(wait_until="load")
            overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
            assert overflow <= 0, f"the page is {overflow}px wider than a phone"
            page.screenshot(path=ARTIFACTS / "status-page-phone.png", full_page=True)
            assert problems.seen == []

            # The admin on a live node: log in, "fetch now" the failing source.
            admin, admin_problems = _open(
                browser, f"{cluster.url(NODES[1])}/admin/login/", favicon=False
            )
            admin.fill("#id_username", "ops")
            admin.fill("#id_password", PASSWORD)
            admin.click("input[type=submit]")
            admin.goto(f"{cluster.url(NODES[1])}/admin/ingest/source/?last_status__exact=failed")
            rows = admin.locator("#result_list tbody tr")
            assert rows.count() == 1
            assert broken in rows.first.inner_text()
            admin.wait_for_load_state("networkidle")
            admin.screenshot(path=ARTIFACTS / "admin-sources.png", full_page=True)
            rows.first.locator("input.action-select").check()
            admin.select_option("select[name=action]", "fetch_now")
            admin.click("button[name=index]")
            assert "1 source(s) due now" in admin.locator(".messagelist").inner_text()
            # The admin's own CSS and JS load from the node: no console error at all.
            assert admin_problems.seen == []

        # Its node fetched it again at once instead of tomorrow.
        processes.wait_for(
            lambda: (
                TaskRun.objects.filter(source__url=broken, finished_at__isnull=False).count() >= 2
            ),
            timeout=20,
            what="the fetch-now run",
        )
        codes = cluster.stop_all()
    assert codes == dict.fromkeys(NODES, 0)
    assert (ARTIFACTS / "status-page.png").stat().st_size > 10_000
