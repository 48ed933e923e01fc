"""Shared bits for the commands that run uvicorn (``etl node``, ``etl upstream``)."""

from __future__ import annotations

import signal


def exit_cleanly_on_signals() -> None:
    """Let a SIGTERM/SIGINT-driven graceful shutdown end the process with status 0.

    uvicorn re-raises the signal after its graceful shutdown, with the handler that was
    installed before it started. With the default handler that kills the process by
    signal (status -15, and no ``atexit`` hooks: the embedded PostgreSQL would not be
    told this process is gone). A no-op handler lets the command return normally.
    """
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: None)
