"""The Discord transport: ``!count``, ``!status``… answered by the chat commands.

``discord.py`` is an optional extra (``pip install 'shardetl[discord]'``), imported only
when ``DISCORD_TOKEN`` is set. The bot needs the privileged *Message Content* intent
(enabled for the bot in Discord's developer portal) to read what people type. It ignores
its own messages and those of other bots.

Every node with the token connects, and Discord delivers each message to all of them, so
the nodes first claim the message in PostgreSQL (``queries.claim_message``): exactly one
answers. :class:`Handler` holds that logic and takes plain message-like objects, so it is
tested without the network; :class:`Bot` only wires it to a ``discord.Client``.
"""

from __future__ import annotations

import asyncio
import logging
import warnings
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from types import ModuleType
from typing import Any, Protocol

from etl.chat.commands import Commands
from etl.exceptions import ConfigError

log = logging.getLogger(__name__)

PREFIX = "!"
INSTALL_HINT = "pip install 'shardetl[discord]'"
CLOSE_SECONDS = 10.0
_HINTS = {
    "LoginFailure": "Discord refused DISCORD_TOKEN",
    "PrivilegedIntentsRequired": (
        "the bot lacks the Message Content intent: enable it in Discord's developer portal "
        "(Bot → Privileged Gateway Intents)"
    ),
}


def import_discord() -> ModuleType:
    """The ``discord`` package, or a ConfigError that says how to install it."""
    try:
        with warnings.catch_warnings():
            # discord.py imports audioop for voice, which we never use; it is deprecated.
            warnings.simplefilter("ignore", DeprecationWarning)
            import discord
    except ImportError:
        raise ConfigError(
            f"DISCORD_TOKEN is set but discord.py is not installed: {INSTALL_HINT}"
        ) from None
    return discord


class Author(Protocol):
    @property
    def id(self) -> int: ...
    @property
    def bot(self) -> bool: ...


class Channel(Protocol):
    @property
    def id(self) -> int: ...
    async def send(self, content: str, **options: Any) -> Any: ...


class Message(Protocol):
    """The part of ``discord.Message`` the handler uses."""

    @property
    def id(self) -> int: ...
    @property
    def content(self) -> str: ...
    @property
    def created_at(self) -> datetime: ...
    @property
    def author(self) -> Author: ...
    @property
    def channel(self) -> Channel: ...


Claim = Callable[[Message], Awaitable[bool]]


@dataclass(frozen=True, slots=True, kw_only=True)
class Handler:
    """Decides whether a message is a command for us, and answers it."""

    commands: Commands
    claim: Claim  # True for the one node of the cluster that answers this message
    channels: frozenset[int] = frozenset()  # empty: every channel the bot can read
    send_options: Mapping[str, Any] = field(default_factory=dict)

    async def on_message(self, message: Message, *, me: int | None) -> str | None:
        """The reply sent to ``message``, or None when it is not ours to answer."""
        author = message.author
        if author.bot or author.id == me:
            return None
        content = message.content.strip()
        if not content.startswith(PREFIX) or not content[len(PREFIX) :].strip():
            return None
        if self.channels and message.channel.id not in self.channels:
            return None
        try:
            if not await self.claim(message):
                return None  # another node answers
        except Exception:
            # Better a duplicate answer than none: the command will report the database.
            log.exception("could not claim Discord message %s", message.id)
        reply = await self.commands.handle(content[len(PREFIX) :], who=f"discord:{author.id}")
        try:
            await message.channel.send(reply, **self.send_options)
        except Exception:
            log.exception("could not answer on Discord")
            return None
        return reply


def build_client() -> Any:
    """A ``discord.Client`` that may read message content."""
    discord = import_discord()
    intents = discord.Intents.default()
    intents.message_content = True  # privileged: the portal must allow it too
    return discord.Client(intents=intents)


def no_mentions() -> Mapping[str, Any]:
    """Send options so that a reply (quoting an upstream's error text) pings no one."""
    return {"allowed_mentions": import_discord().AllowedMentions.none()}


@dataclass(kw_only=True)
class Bot:
    """A client connected with ``token`` whose messages go to ``handler``."""

    handler: Handler
    token: str = field(repr=False)
    client: Any = None  # a discord.Client; tests pass a stand-in
    _task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Connect in the background; a refused token is logged and does not stop the node."""
        if self.client is None:
            self.client = build_client()
        client = self.client

        async def on_message(message: Any) -> None:
            me = client.user
            await self.handler.on_message(message, me=me.id if me is not None else None)

        client.event(on_message)
        self._task = asyncio.create_task(self._run(), name="discord")

    async def _run(self) -> None:
        try:
            await self.client.start(self.token)
        except Exception as exc:
            hint = _HINTS.get(type(exc).__name__, "the Discord bot stopped")
            log.exception("%s; chat over Discord is off", hint)

    async def close(self) -> None:
        if self.client is None:
            return
        await self.client.close()
        if self._task is not None:
            done, _ = await asyncio.wait([self._task], timeout=CLOSE_SECONDS)
            if not done:
                self._task.cancel()
                log.warning("the Discord client did not close in time")
            self._task = None
