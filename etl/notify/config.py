"""Typed notification settings, read once from ``ETL_NOTIFY_*`` (docs/notifications.md).

Every value is checked when the node starts, so a typo fails the start rather than the
first notification hours later. With no channel configured the result is ``enabled ==
False`` and the node runs no notifier at all.
"""

from __future__ import annotations

import math
import os
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field
from email.utils import parseaddr
from urllib.parse import urlsplit

from etl.config import Env
from etl.exceptions import ConfigError

# Event kinds an operator can switch on with ETL_NOTIFY_ON.
RUN_FAILED = "run_failed"
FAILING = "failing"
RECOVERED = "recovered"
AGGREGATE = "aggregate"
KINDS = (RUN_FAILED, FAILING, RECOVERED, AGGREGATE)


@dataclass(frozen=True, slots=True, kw_only=True)
class EmailConfig:
    """Where and how mail goes: an SMTP server, a sender, one or more recipients."""

    to: tuple[str, ...]
    sender: str
    host: str
    port: int
    username: str = ""
    password: str = field(default="", repr=False)
    starttls: bool | None = None  # None: upgrade when the server offers it
    tls: bool = False  # implicit TLS from the first byte (port 465)

    def describe(self) -> str:
        return f"email via {self.host}:{self.port} to {', '.join(self.to)}"


@dataclass(frozen=True, slots=True, kw_only=True)
class WebhookConfig:
    url: str = field(repr=False)  # Slack and Discord URLs carry their secret token

    def describe(self) -> str:
        parts = urlsplit(self.url)
        return f"webhook {parts.scheme}://{parts.netloc.rpartition('@')[2]}/…"


@dataclass(frozen=True, slots=True, kw_only=True)
class NotifyConfig:
    """What to notify about, through which channels, and how hard to try."""

    on: frozenset[str] = frozenset(KINDS)
    failing_after: int = 3
    email: EmailConfig | None = None
    webhook: WebhookConfig | None = None
    rate_per_minute: float = 10.0  # 0: no limit
    burst: int = 10
    queue_size: int = 1000
    attempts: int = 4
    backoff_seconds: float = 1.0
    backoff_cap_seconds: float = 60.0
    timeout_seconds: float = 10.0
    drain_seconds: float = 5.0

    @property
    def enabled(self) -> bool:
        """A channel exists and at least one kind of event is switched on."""
        return bool(self.on) and (self.email is not None or self.webhook is not None)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> NotifyConfig:
        """Read and check every ``ETL_NOTIFY_*`` variable; raise ``ConfigError`` if bad."""
        e = Env(os.environ if env is None else env)
        rate = e.number("ETL_NOTIFY_RATE_PER_MINUTE", 10.0, minimum=0)
        return cls(
            on=_kinds(e.text("ETL_NOTIFY_ON")),
            failing_after=e.integer("ETL_NOTIFY_FAILING_AFTER", 3, minimum=1),
            email=_email(e),
            webhook=_webhook(e),
            rate_per_minute=rate,
            burst=e.integer("ETL_NOTIFY_BURST", max(1, math.ceil(rate)), minimum=1),
            queue_size=e.integer("ETL_NOTIFY_QUEUE_SIZE", 1000, minimum=1),
            attempts=e.integer("ETL_NOTIFY_ATTEMPTS", 4, minimum=1),
            backoff_seconds=e.number("ETL_NOTIFY_BACKOFF_SECONDS", 1.0, minimum=0),
            timeout_seconds=e.number("ETL_NOTIFY_TIMEOUT", 10.0, minimum=0.1),
            drain_seconds=e.number("ETL_NOTIFY_DRAIN_SECONDS", 5.0, minimum=0),
        )


def _kinds(raw: str) -> frozenset[str]:
    if not raw or raw.lower() == "all":
        return frozenset(KINDS)
    if raw.lower() == "none":
        return frozenset()
    names = {part.strip().lower() for part in raw.split(",") if part.strip()}
    unknown = sorted(names - set(KINDS))
    if unknown:
        raise ConfigError(
            f"ETL_NOTIFY_ON: unknown event {', '.join(unknown)}; choose from "
            f"{', '.join(KINDS)} (or all, none)"
        )
    return frozenset(names)


def _address(name: str, raw: str) -> str:
    _display, address = parseaddr(raw)
    local, at, domain = address.rpartition("@")
    if not (local and at and domain) or any(c.isspace() for c in address):
        raise ConfigError(f"{name}: {raw!r} is not an email address")
    return raw


_SMTP_NAMES = (
    "ETL_NOTIFY_EMAIL_FROM",
    "ETL_NOTIFY_SMTP_HOST",
    "ETL_NOTIFY_SMTP_PORT",
    "ETL_NOTIFY_SMTP_USERNAME",
    "ETL_NOTIFY_SMTP_PASSWORD",
    "ETL_NOTIFY_SMTP_STARTTLS",
    "ETL_NOTIFY_SMTP_TLS",
)


def _email(e: Env) -> EmailConfig | None:
    to = tuple(part.strip() for part in e.text("ETL_NOTIFY_EMAIL_TO").split(",") if part.strip())
    if not to:
        stray = [name for name in _SMTP_NAMES if e.text(name)]
        if stray:
            raise ConfigError(f"{stray[0]} is set but ETL_NOTIFY_EMAIL_TO is not: nobody to mail")
        return None
    for address in to:
        _address("ETL_NOTIFY_EMAIL_TO", address)
    sender = _address(
        "ETL_NOTIFY_EMAIL_FROM",
        e.text("ETL_NOTIFY_EMAIL_FROM", f"shardetl@{socket.gethostname() or 'localhost'}"),
    )
    starttls = e.flag("ETL_NOTIFY_SMTP_STARTTLS")
    tls = bool(e.flag("ETL_NOTIFY_SMTP_TLS"))
    if tls and starttls:
        raise ConfigError(
            "ETL_NOTIFY_SMTP_TLS (implicit TLS, port 465) and ETL_NOTIFY_SMTP_STARTTLS "
            "(upgrade, port 587) exclude each other"
        )
    default_port = 465 if tls else 587 if starttls else 25
    username = e.text("ETL_NOTIFY_SMTP_USERNAME")
    password = e.env.get("ETL_NOTIFY_SMTP_PASSWORD", "")  # may legitimately hold spaces
    if bool(username) != bool(password):
        raise ConfigError("ETL_NOTIFY_SMTP_USERNAME and ETL_NOTIFY_SMTP_PASSWORD go together")
    port = e.port("ETL_NOTIFY_SMTP_PORT") or default_port
    return EmailConfig(
        to=to,
        sender=sender,
        host=e.text("ETL_NOTIFY_SMTP_HOST", "localhost"),
        port=port,
        username=username,
        password=password,
        starttls=starttls,
        tls=tls,
    )


def _webhook(e: Env) -> WebhookConfig | None:
    url = e.text("ETL_NOTIFY_WEBHOOK_URL")
    if not url:
        return None
    parts = urlsplit(url)
    if parts.scheme not in {"http", "https"} or not parts.hostname:
        # Never echo the URL: Slack and Discord webhook URLs are secrets.
        raise ConfigError("ETL_NOTIFY_WEBHOOK_URL must be an absolute http:// or https:// URL")
    return WebhookConfig(url=url)
