"""Receivers for notifications in tests: a real SMTP server (aiosmtpd) and a webhook."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Any, cast

import orjson
from aiosmtpd.controller import Controller

from tests.support import servers


@dataclass
class Inbox:
    """Every mail the SMTP server accepted, parsed; thread-safe to read while it runs."""

    port: int = 0
    mails: list[EmailMessage] = field(default_factory=list)
    envelopes: list[tuple[str, list[str]]] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    async def handle_DATA(
        self, server: Any, session: Any, envelope: Any
    ) -> str:  # aiosmtpd's hook name
        # SMTP lines end in CRLF; the parser keeps them in the body, tests want "\n".
        text = envelope.content.replace(b"\r\n", b"\n")
        mail = cast(EmailMessage, message_from_bytes(text, policy=policy.default))
        with self._lock:
            self.mails.append(mail)
            self.envelopes.append((envelope.mail_from, list(envelope.rcpt_tos)))
        return "250 OK"

    def subjects(self) -> list[str]:
        with self._lock:
            return [str(mail["Subject"]) for mail in self.mails]

    def find(self, prefix: str) -> list[EmailMessage]:
        with self._lock:
            return [mail for mail in self.mails if str(mail["Subject"]).startswith(prefix)]


@contextlib.contextmanager
def smtp_server() -> Iterator[Inbox]:
    """A real SMTP server on 127.0.0.1 (aiosmtpd in a thread of its own)."""
    inbox = Inbox(port=servers.free_port())
    controller = Controller(inbox, hostname="127.0.0.1", port=inbox.port)
    controller.start()
    try:
        yield inbox
    finally:
        controller.stop()


@dataclass
class Hook:
    """An ASGI app that records the JSON bodies POSTed to it (a stand-in for Slack)."""

    status: int = 200
    posts: list[tuple[str, dict[str, Any]]] = field(default_factory=list)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        assert scope["type"] == "http"
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        self.posts.append((scope["path"], orjson.loads(body)))
        await send({"type": "http.response.start", "status": self.status, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    def events(self, kind: str) -> list[dict[str, Any]]:
        return [body for _path, body in list(self.posts) if body["shardetl"]["event"] == kind]


@contextlib.contextmanager
def webhook_server() -> Iterator[tuple[str, Hook]]:
    """A :class:`Hook` served on 127.0.0.1; yields (base URL, hook)."""
    hook = Hook()
    with servers.serve(hook) as url:
        yield url, hook
