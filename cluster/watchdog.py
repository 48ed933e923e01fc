"""Notice when the event loop stops turning, and say where it is stuck.

A stalled loop answers no HTTP, renews no lease and misses heartbeats, so the cluster
takes its work away; the log should say why. A daemon thread watches a timestamp the
loop refreshes; when it goes stale it logs the loop thread's stack once per stall.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import threading
import time
import traceback

log = logging.getLogger(__name__)


class Watchdog:
    def __init__(self, *, every: float = 0.25, stall: float = 2.0) -> None:
        self.every = every
        self.stall = stall
        self.stalls = 0
        self._beat = time.monotonic()
        self._loop_thread = threading.get_ident()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="etl-watchdog", daemon=True)

    async def run(self, stop: asyncio.Event) -> None:
        """Refresh the timestamp from the event loop until ``stop`` is set."""
        self._loop_thread = threading.get_ident()
        self._thread.start()
        try:
            while not stop.is_set():
                self._beat = time.monotonic()
                await asyncio.sleep(self.every)
        finally:
            self._stop.set()

    def _watch(self) -> None:
        reported = False
        while not self._stop.wait(self.every):
            stale = time.monotonic() - self._beat
            if stale < self.stall:
                reported = False
                continue
            if reported:
                continue
            reported = True
            self.stalls += 1
            frame = sys._current_frames().get(self._loop_thread)
            stack = "".join(traceback.format_stack(frame)) if frame else "(no frame)"
            log.warning("event loop stalled %.1f s in:\n%s", stale, stack)
