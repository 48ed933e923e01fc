"""The email channel: one plain-text message per notification, sent with aiosmtplib."""

from __future__ import annotations

from dataclasses import dataclass
from email import policy
from email.message import EmailMessage
from email.utils import format_datetime, getaddresses, make_msgid, parseaddr
from typing import ClassVar

import aiosmtplib

from etl.notify.config import EmailConfig
from etl.notify.events import Message
from etl.notify.exceptions import DeliveryError

# Folded at 78 columns, a subject holding a URL moves to a line of its own or turns into
# encoded words, and filters like ``^Subject: \[shardetl\]`` miss it. Subjects are cut at
# 200 characters; RFC 5322 allows lines of 998.
WIRE = policy.SMTP.clone(max_line_length=998)


@dataclass(kw_only=True)
class EmailChannel:
    config: EmailConfig
    timeout: float = 10.0
    name: ClassVar[str] = "email"

    def describe(self) -> str:
        return self.config.describe()

    def compose(self, message: Message) -> EmailMessage:
        """The mail for ``message``: its subject, its body as plain text."""
        mail = EmailMessage()
        mail["From"] = self.config.sender
        mail["To"] = ", ".join(self.config.to)
        mail["Subject"] = message.subject
        mail["Date"] = format_datetime(message.at)
        # An explicit domain: make_msgid() would otherwise ask DNS for this host's FQDN.
        domain = parseaddr(self.config.sender)[1].rpartition("@")[2] or "localhost"
        mail["Message-ID"] = make_msgid(domain=domain)
        mail["X-Shardetl-Event"] = message.kind
        mail["X-Shardetl-Node"] = message.node
        mail.set_content(message.body)
        return mail

    async def send(self, message: Message) -> None:
        c = self.config
        try:
            await aiosmtplib.send(
                self.compose(message).as_bytes(policy=WIRE),
                sender=parseaddr(c.sender)[1],
                recipients=[address for _name, address in getaddresses(c.to)],
                hostname=c.host,
                port=c.port,
                username=c.username or None,
                password=c.password or None,
                use_tls=c.tls,
                start_tls=False if c.tls else c.starttls,
                timeout=self.timeout,
            )
        except aiosmtplib.SMTPRecipientsRefused as exc:
            refused = ", ".join(f"{r.recipient} ({r.code})" for r in exc.recipients)
            reason = f"SMTP refused every recipient: {refused}"
            raise DeliveryError(reason, retryable=False) from None
        except aiosmtplib.SMTPResponseException as exc:
            # 4xx is "try again later" in SMTP; 5xx (bad login, relay denied) will not heal.
            raise DeliveryError(
                f"SMTP {exc.code}: {exc.message}", retryable=exc.code < 500
            ) from None
        except (aiosmtplib.SMTPException, OSError) as exc:
            raise DeliveryError(f"{type(exc).__name__}: {exc}", retryable=True) from None

    async def aclose(self) -> None:
        return None  # a connection per message: notifications are rare
